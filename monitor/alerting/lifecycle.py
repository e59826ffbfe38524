"""Alert lifecycle and notification grouping, as pure functions of the stream.

Two stages, both with the clock passed in:

1. `evaluate`: signals -> alert transitions. One alert *occurrence* per (rule, key) at a
   time: pending (the spike must hold `pending_minutes`) -> firing -> resolved (when the
   detector says calm). A pending alert whose spike does not hold is dropped. Firing
   again later is a new occurrence. Ids are derived from the fingerprint and the
   occurrence's start (event time), so a replay of the same stream yields the same ids,
   and signals at or before the last one seen for a fingerprint are ignored: applying the
   same signals twice changes nothing.

2. `plan_groups`: Alertmanager's aggregation + dedup + repeat stages. Alerts routed to a
   channel are grouped by `group_by` labels; a group's first message waits `group_wait`
   (to gather alerts that start together), later changes wait `group_interval`, and an
   unchanged firing group is re-sent after `repeat_interval` (not while every firing
   alert in it is acknowledged). Each message gets a deterministic dedup key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
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


# --- grouping, dedup, repeat -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupState:
    """What a (channel, group labels) group has told its channel so far."""

    channel: str
    labels: tuple[tuple[str, str], ...]
    seq: int = 0  # messages sent so far; only grows, so dedup keys never repeat
    waiting_since: datetime | None = None  # first un-notified firing alert seen while idle
    last_flush_at: datetime | None = None
    last_firing_flush_at: datetime | None = None
    notified_firing: frozenset[str] = frozenset()

    @property
    def group_id(self) -> str:
        return group_id(self.channel, self.labels)

    def to_json(self) -> dict[str, Any]:
        def t(x: datetime | None) -> str | None:
            return x.isoformat() if x else None

        return {
            "channel": self.channel,
            "labels": [list(p) for p in self.labels],
            "seq": self.seq,
            "waiting_since": t(self.waiting_since),
            "last_flush_at": t(self.last_flush_at),
            "last_firing_flush_at": t(self.last_firing_flush_at),
            "notified_firing": sorted(self.notified_firing),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GroupState:
        def t(x: str | None) -> datetime | None:
            return datetime.fromisoformat(x) if x else None

        return cls(
            channel=d["channel"],
            labels=tuple((str(a), str(b)) for a, b in d["labels"]),
            seq=int(d.get("seq", 0)),
            waiting_since=t(d.get("waiting_since")),
            last_flush_at=t(d.get("last_flush_at")),
            last_firing_flush_at=t(d.get("last_firing_flush_at")),
            notified_firing=frozenset(d.get("notified_firing", ())),
        )


def group_id(channel: str, labels: Sequence[tuple[str, str]]) -> str:
    raw = json.dumps([channel, [list(p) for p in labels]], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def group_labels(alert: Alert, group_by: Sequence[str]) -> tuple[tuple[str, str], ...]:
    lab = alert.labels()
    return tuple((name, str(lab.get(name) or "")) for name in group_by)


@dataclass(frozen=True, slots=True)
class Flush:
    """One message to send to one channel about one group."""

    channel: str
    group_id: str
    labels: tuple[tuple[str, str], ...]
    seq: int
    kind: Literal["firing", "resolved"]
    firing: tuple[Alert, ...]
    resolved: tuple[Alert, ...]
    repeat: bool = False  # nothing changed; re-sent because repeat_interval passed

    @property
    def lead(self) -> Alert:
        return (self.firing or self.resolved)[0]

    @property
    def dedup_key(self) -> str:
        # (group_id, seq) alone is unique; the lead alert id and kind make it readable.
        return f"{self.lead.id}:{self.kind}:{self.group_id}:{self.seq}"


@dataclass(frozen=True, slots=True)
class GroupTiming:
    group_by: tuple[str, ...] = ("key_kind", "key_value")
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=4)
    send_resolved: bool = True

    @classmethod
    def from_settings(cls, s: Any) -> GroupTiming:
        return cls(
            group_by=tuple(s.group_by),
            group_wait=timedelta(seconds=s.group_wait_seconds),
            group_interval=timedelta(seconds=s.group_interval_seconds),
            repeat_interval=timedelta(seconds=s.repeat_interval_seconds),
            send_resolved=s.send_resolved,
        )


def plan_groups(
    states: Mapping[str, GroupState],
    members: Iterable[tuple[str, Alert]],
    now: datetime,
    timing: GroupTiming,
) -> tuple[list[Flush], dict[str, GroupState]]:
    """Decide which groups send a message now.

    `members`: (channel, alert) for every alert routed to that channel and not muted that
    is firing, or resolved but still in a group's `notified_firing`. Returns the messages
    and every group's new state (unchanged ones included; callers persist changed ones).
    """
    by_group: dict[str, list[Alert]] = {}
    fresh: dict[str, GroupState] = dict(states)
    for channel, a in members:
        labels = group_labels(a, timing.group_by)
        gid = group_id(channel, labels)
        by_group.setdefault(gid, []).append(a)
        if gid not in fresh:
            fresh[gid] = GroupState(channel=channel, labels=labels)

    flushes: list[Flush] = []
    out: dict[str, GroupState] = {}
    for gid, st in fresh.items():
        alerts = by_group.get(gid, [])
        firing = sorted((a for a in alerts if a.state == "firing"), key=lambda a: (a.started_at, a.id))
        resolved = sorted(
            (a for a in alerts if a.state == "resolved" and a.id in st.notified_firing and a.fired_at is not None),
            key=lambda a: (a.started_at, a.id),
        )
        firing_ids = frozenset(a.id for a in firing)
        if not st.notified_firing:
            if not firing:
                out[gid] = replace(st, waiting_since=None)
                continue
            waiting = st.waiting_since or now
            st = replace(st, waiting_since=waiting)
            due = now >= waiting + timing.group_wait
        else:
            due = st.last_flush_at is None or now >= st.last_flush_at + timing.group_interval
        if not due:
            out[gid] = st
            continue
        new_firing = firing_ids - st.notified_firing
        to_resolve = tuple(resolved) if timing.send_resolved else ()
        repeat = bool(
            firing
            and not new_firing
            and st.last_firing_flush_at is not None
            and now >= st.last_firing_flush_at + timing.repeat_interval
            and any(a.acknowledged_at is None for a in firing)
        )
        if not new_firing and not to_resolve and not repeat:
            # Nothing to say; forget alerts that left the group silently (muted, or
            # resolved with send_resolved off).
            out[gid] = replace(st, notified_firing=firing_ids & st.notified_firing)
            continue
        seq = st.seq + 1
        flushes.append(
            Flush(
                channel=st.channel,
                group_id=gid,
                labels=st.labels,
                seq=seq,
                kind="firing" if firing else "resolved",
                firing=tuple(firing),
                resolved=to_resolve,
                repeat=repeat,
            )
        )
        out[gid] = replace(
            st,
            seq=seq,
            waiting_since=None,
            last_flush_at=now,
            last_firing_flush_at=now if firing else None,
            notified_firing=firing_ids,
        )
    return flushes, out
