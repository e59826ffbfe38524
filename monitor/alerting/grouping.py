"""Grouping, dedup and repeat: Alertmanager's aggregation stages, as pure functions.

Alerts routed to a channel are grouped by `group_by` labels; a group's first message
waits `group_wait` (to gather alerts that start together), later changes wait
`group_interval`, and an unchanged firing group is re-sent after `repeat_interval` (not
while every firing alert in it is acknowledged). Each message gets a deterministic dedup
key, so a replayed tick enqueues nothing new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from monitor.alerting.lifecycle import Alert


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
