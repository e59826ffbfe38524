"""The detection settings the statistics use, and the time span one tick reads.

Pure: built once from `DetectSettings` (`Params.from_settings`), then plain values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Params:
    """The [detect] settings the statistics use (built from DetectSettings)."""

    windows: tuple[int, ...] = (15, 60, 240)
    alpha: float = 0.001
    min_negative: int = 8
    min_lift: float = 1.8
    min_share_delta: float = 0.10
    warmup_minutes: int = 120
    resolve_minutes: int = 15
    prior_strength: float = 50.0
    max_concentration: float = 400.0
    baseline_days: float = 7.0

    @staticmethod
    def from_settings(cfg: Any) -> Params:
        extra = tuple(getattr(cfg, "extra_windows_minutes", (60, 240)) or ())
        windows = tuple(sorted({int(cfg.window_minutes), *(int(w) for w in extra)}))
        return Params(
            windows=windows,
            alpha=float(cfg.alpha),
            min_negative=int(cfg.min_negative),
            min_lift=float(cfg.min_lift),
            min_share_delta=float(cfg.min_share_delta),
            warmup_minutes=int(cfg.warmup_minutes),
            resolve_minutes=int(cfg.resolve_minutes),
            prior_strength=float(cfg.prior_strength),
            max_concentration=float(getattr(cfg, "max_concentration", 400.0)),
            baseline_days=float(cfg.baseline_days),
        )

    @property
    def main_window(self) -> int:
        return self.windows[0]

    @property
    def positions(self) -> int:
        """How many window ends the resolve test looks at."""
        return max(1, self.resolve_minutes)

    @property
    def span_minutes(self) -> int:
        """Minutes of minute-level data the windows need, ending at the tick's minute."""
        return max(self.windows) + self.positions - 1

    @property
    def baseline_hours(self) -> int:
        return max(1, math.ceil(self.baseline_days * 24))

    @property
    def resolve_negative(self) -> int:
        return max(1, math.ceil(self.min_negative / 2))


def span_bounds(end: int, p: Params) -> tuple[int, int, int]:
    """(first baseline hour, baseline end hour (exclusive), first recent minute) for a tick ending at `end`.

    The baseline is made of complete hours ending at or before the oldest minute any
    window or resolve position looks at; the minute-level span starts where it ends.
    """
    base_end_h = (end - p.span_minutes) // 60
    return base_end_h - p.baseline_hours, base_end_h, base_end_h * 60
