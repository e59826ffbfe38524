"""What the detector hands to alerting: one evaluated key at one tick.

Kept in its own small module so `detect` and `alerts` depend on a shared value type and
not on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

KeyKind = Literal["topic", "entity"]


@dataclass(frozen=True, slots=True)
class Key:
    kind: KeyKind
    value: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value}


@dataclass(frozen=True, slots=True)
class Signal:
    """The detector's verdict for one key at `at` (the detector clock's time).

    `spiking` is the firing condition; `calm` is the (hysteresis) resolve condition.
    A key can be neither (in between): an alert then keeps its state.
    `numbers` carries every figure the decision used (window counts, baseline share,
    share, lift, p-value, alpha, ...) for the alert text and the dashboard.
    """

    key: Key
    at: datetime
    window_start: datetime
    spiking: bool
    calm: bool
    numbers: dict[str, Any] = field(default_factory=dict)
    severity: str = "warning"
    # The topic of an entity's negative documents in the window (for routing/inhibition).
    topic: str | None = None
