"""The detection settings the statistics use, and the time span one tick reads.

Pure: built once from `DetectSettings` (`Params.from_settings`), then plain values.

Horizons
    Every key is tested at several horizons (window lengths), from minutes (a busy topic's
    burst) to a day (a company with two items a day). The false-alarm *budget* is the
    expected number of false alerts per key per 30 days of quiet traffic; it is shared
    equally over the horizons and the two tests made at each (share, and share combined
    with volume). A window of ``w`` minutes has about ``30 days / w`` independent
    outcomes in 30 days, so the per-test level is ``budget / (2 * horizons * 30d / w)``:
    a day-long window gets a looser level than a 15-minute one, and a key's quiet-traffic
    rate stays near the budget whatever its volume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MONTH_MINUTES = 30 * 24 * 60
TESTS_PER_HORIZON = 2  # the share test and the share-and-volume (Fisher) test


@dataclass(frozen=True, slots=True)
class Params:
    """The [detect] settings the statistics use (built from DetectSettings)."""

    windows: tuple[int, ...] = (15, 60, 240, 720, 1440)
    budget: float = 0.05
    min_negative: int = 3
    min_negative_ratio: float = 2.0
    min_lift: float = 1.5
    min_share_delta: float = 0.10
    warmup_minutes: int = 120
    resolve_minutes: int = 15
    prior_strength: float = 30.0
    max_concentration: float = 200.0
    baseline_days: float = 7.0
    overdispersion: float = 0.3
    rate_prior_hours: float = 24.0
    copy_weight: float = 0.25
    copy_cap: float = 0.5
    fresh_minutes: int = 2

    @staticmethod
    def from_settings(cfg: Any) -> Params:
        extra = tuple(getattr(cfg, "extra_windows_minutes", ()) or ())
        windows = tuple(sorted({int(cfg.window_minutes), *(int(w) for w in extra)}))
        return Params(
            windows=windows,
            budget=float(cfg.false_alarm_budget),
            min_negative=int(cfg.min_negative),
            min_negative_ratio=float(cfg.min_negative_ratio),
            min_lift=float(cfg.min_lift),
            min_share_delta=float(cfg.min_share_delta),
            warmup_minutes=int(cfg.warmup_minutes),
            resolve_minutes=int(cfg.resolve_minutes),
            prior_strength=float(cfg.prior_strength),
            max_concentration=float(cfg.max_concentration),
            baseline_days=float(cfg.baseline_days),
            overdispersion=float(cfg.overdispersion),
            rate_prior_hours=float(cfg.rate_prior_hours),
            copy_weight=float(cfg.copy_weight),
            copy_cap=float(cfg.copy_cap),
            fresh_minutes=int(cfg.fresh_minutes),
        )

    @property
    def main_window(self) -> int:
        return self.windows[0]

    @property
    def positions(self) -> int:
        """How many window ends the resolve test covers (the window is stretched by this less one)."""
        return max(1, self.resolve_minutes)

    @property
    def span_minutes(self) -> int:
        """Minutes of minute-level data the windows need, ending at the tick's minute."""
        return max(self.windows) + self.positions - 1

    @property
    def widths(self) -> tuple[int, ...]:
        """Every window width the rolling sums keep: the horizons, each stretched for the
        resolve test, and the freshness window."""
        return tuple(sorted({*self.windows, *(w + self.positions - 1 for w in self.windows), self.fresh_minutes}))

    @property
    def baseline_hours(self) -> int:
        return max(1, math.ceil(self.baseline_days * 24))

    @property
    def resolve_negative(self) -> int:
        return max(1, math.ceil(self.min_negative / 2))

    def alpha_for(self, width: int) -> float:
        """The per-test level of a horizon of `width` minutes (see the module docstring)."""
        outcomes = MONTH_MINUTES / max(1, width)
        return self.budget / (TESTS_PER_HORIZON * len(self.windows) * outcomes)


def span_bounds(end: int, p: Params) -> tuple[int, int, int]:
    """(first baseline hour, baseline end hour (exclusive), first recent minute) for a tick ending at `end`.

    The baseline is made of complete hours ending at or before the oldest minute any
    window or resolve position looks at; the minute-level span starts where it ends.
    """
    base_end_h = (end - p.span_minutes) // 60
    return base_end_h - p.baseline_hours, base_end_h, base_end_h * 60
