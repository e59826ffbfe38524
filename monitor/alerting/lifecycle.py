"""Alert lifecycle, a pure function of the stream (the first stage of alerting).

`evaluate`: signals -> alert transitions. One alert *occurrence* per (rule, key) at a
time: pending (the spike must hold `pending_minutes`) -> firing -> resolved (when the
detector says calm). A pending alert whose spike does not hold is dropped. Firing again
later is a new occurrence. Ids are derived from the fingerprint and the occurrence's
start (event time), so a replay of the same stream yields the same ids, and signals at or
before the last one seen for a fingerprint are ignored: applying the same signals twice
changes nothing (this is the chain's dedup stage).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from monitor.detect.signals import Key, Signal

RULE = "negative_surge"

AlertState = Literal["pending", "firing", "resolved"]
ChangeKind = Literal["pending", "fired", "resolved", "dropped", "updated"]


def fingerprint(rule: str, key: Key) -> str:
    """Stable identity of what an alert is about, independent of when it happens."""
    return hashlib.sha256(f"{rule}\x1f{key.kind}\x1f{key.value}".encode()).hexdigest()[:32]


def alert_id(fp: str, started_at: datetime) -> str:
    """Deterministic id of one occurrence: the same stream gives the same id on replay."""
    return hashlib.sha256(f"{fp}\x1f{_iso(started_at)}".encode()).hexdigest()[:32]


def _iso(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("naive datetime; alerting works in timezone-aware UTC")
    return t.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    fingerprint: str
    rule: str
    key: Key
    state: AlertState
    started_at: datetime
    updated_at: datetime  # event time of the last signal applied: the per-fingerprint watermark
    severity: str = "warning"
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    window_start: datetime | None = None
    topic: str | None = None
    summary: str = ""
    numbers: Mapping[str, Any] = field(default_factory=dict)
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    def labels(self) -> dict[str, str | None]:
        topic = self.key.value if self.key.kind == "topic" else self.topic
        return {
            "rule": self.rule,
            "key_kind": self.key.kind,
            "key_value": self.key.value,
            "topic": topic,
            "severity": self.severity,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """One transition. `before` is None for a new occurrence."""

    kind: ChangeKind
    alert: Alert
    before: Alert | None = None


def summarize(key: Key, numbers: Mapping[str, Any], state: str = "firing") -> str:
    """One line for lists and chat previews, tolerant of missing figures."""
    what = f"{'topic' if key.kind == 'topic' else 'company'} {key.value}"
    share, base = numbers.get("share"), numbers.get("baseline_share")
    neg = numbers.get("window_negative", numbers.get("negative"))
    tot = numbers.get("window_total", numbers.get("total"))
    parts = [f"Negative surge in {what}" if state != "resolved" else f"Resolved: negative surge in {what}"]
    if isinstance(share, int | float) and isinstance(base, int | float):
        parts.append(f"{share:.0%} negative vs {base:.0%} baseline")
    if neg is not None and tot is not None:
        parts.append(f"{neg}/{tot} docs")
    p = numbers.get("p_value")
    if isinstance(p, int | float):
        parts.append(f"p={p:.2g}")
    return ", ".join(parts)


def evaluate(
    latest: Mapping[str, Alert],
    signals: Iterable[Signal],
    *,
    pending_minutes: float = 0,
    rule: str = RULE,
) -> tuple[list[Change], dict[str, Alert]]:
    """Apply signals in event-time order to the latest alert of each fingerprint.

    `latest` maps fingerprint -> the most recent alert of that fingerprint in any state
    (an open one if there is one). Returns the changes and the new latest map.
    """
    cur: dict[str, Alert] = dict(latest)
    changes: list[Change] = []
    hold = timedelta(minutes=pending_minutes)
    for sig in sorted(signals, key=lambda s: (s.at, s.key.kind, s.key.value)):
        fp = fingerprint(rule, sig.key)
        a = cur.get(fp)
        if a is not None and sig.at <= a.updated_at:
            continue  # already applied (replay, or a second worker on the same tick)
        open_ = a is not None and a.state in ("pending", "firing")
        if not open_:
            if not sig.spiking:
                continue
            new = _new_alert(fp, rule, sig)
            if hold <= timedelta(0):
                new = replace(new, state="firing", fired_at=sig.at, summary=summarize(sig.key, sig.numbers))
                changes.append(Change("fired", new, None))
            else:
                changes.append(Change("pending", new, None))
            cur[fp] = new
            continue
        assert a is not None
        refreshed = _refresh(a, sig)
        if a.state == "pending":
            if not sig.spiking:
                changes.append(Change("dropped", replace(refreshed, state="resolved", resolved_at=sig.at), a))
                # keep the dropped occurrence as the watermark, so its signals are not re-applied
                cur[fp] = replace(refreshed, state="resolved", resolved_at=sig.at)
                continue
            if sig.at - a.started_at >= hold:
                fired = replace(refreshed, state="firing", fired_at=sig.at, summary=summarize(sig.key, sig.numbers))
                changes.append(Change("fired", fired, a))
                cur[fp] = fired
            else:
                changes.append(Change("updated", refreshed, a))
                cur[fp] = refreshed
            continue
        # firing
        if sig.calm:
            done = replace(
                refreshed,
                state="resolved",
                resolved_at=sig.at,
                summary=summarize(sig.key, a.numbers, "resolved"),
                numbers={**a.numbers, "resolved_numbers": dict(sig.numbers)},
            )
            changes.append(Change("resolved", done, a))
            cur[fp] = done
        else:
            changes.append(Change("updated", refreshed, a))
            cur[fp] = refreshed
    return changes, cur


def _new_alert(fp: str, rule: str, sig: Signal) -> Alert:
    return Alert(
        id=alert_id(fp, sig.at),
        fingerprint=fp,
        rule=rule,
        key=sig.key,
        state="pending",
        started_at=sig.at,
        updated_at=sig.at,
        severity=sig.severity,
        window_start=sig.window_start,
        topic=sig.topic if sig.key.kind == "entity" else sig.key.value,
        summary=summarize(sig.key, sig.numbers, "pending"),
        numbers=dict(sig.numbers),
    )


def _refresh(a: Alert, sig: Signal) -> Alert:
    """The latest figures while open. The numbers shown are those of the latest spiking
    tick, so a firing alert's message describes the surge, not a quieter in-between tick."""
    if sig.spiking:
        return replace(
            a,
            updated_at=sig.at,
            numbers=dict(sig.numbers),
            window_start=sig.window_start,
            severity=sig.severity,
            topic=(sig.topic or a.topic) if a.key.kind == "entity" else a.topic,
            summary=summarize(a.key, sig.numbers, a.state),
        )
    return replace(a, updated_at=sig.at)
