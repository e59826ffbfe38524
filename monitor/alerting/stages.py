"""One alerting tick as a chain of small pure stages, the way Alertmanager's notify pipeline is built.

    load (repository) -> lifecycle (dedup + state machine) -> load facts (repository)
      -> topics -> inhibit -> silence -> route -> audit -> group -> plan notifications
      -> write (repository)

Every stage here takes plain values and returns plain values: no SQL, no HTTP, no clock
read. What the decisions need from the database (the latest alert of each fingerprint,
the alerts in view, group state, active silences, then the documents that inhibition
weighs, the dominant topic of new company alerts and the evidence documents) is loaded
by `monitor.alerting.repository` before the stages that use it, and the resulting `Plan`
is written in the same transaction (`monitor.alerting.service` runs the chain).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from monitor.alerting.grouping import Flush, GroupState, GroupTiming, plan_groups
from monitor.alerting.inhibition import mute_reasons, topics_explained_by_entities
from monitor.alerting.lifecycle import RULE, Alert, Change, evaluate, fingerprint
from monitor.alerting.matchers import Silence
from monitor.alerting.message import build_message, silenced_message
from monitor.alerting.routing import Router
from monitor.detect.signals import Signal
from monitor.notify.render import render_body

CompanyDocuments = Mapping[str, tuple[int, int, Sequence[str]]]


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings the stages read, as plain values (built once, by the composition root)."""

    router: Router
    timing: GroupTiming = field(default_factory=GroupTiming)
    channel_types: Mapping[str, str] = field(default_factory=dict)
    channel_locales: Mapping[str, str] = field(default_factory=dict)
    # A company's display name (the universe's and the watchlist's), for the messages that show it.
    company_name: Callable[[str], str | None] | None = None
    dashboard_url: str = ""
    pending_minutes: float = 0.0
    evidence_count: int = 5
    inhibit_entity_by_topic: bool = False
    inhibit_topic_by_entity: bool = False
    inhibit_topic_share: float = 0.5
    # Keep each transition for the alerts topic (`publish_results`), written with it.
    record_events: bool = False

    @classmethod
    def from_settings(cls, settings: Any, router: Router | None = None) -> Policy:
        a = settings.alerting
        return cls(
            router=router or Router.from_settings(settings),
            timing=GroupTiming.from_settings(a),
            channel_types={c.name: c.type for c in settings.channels},
            channel_locales={c.name: getattr(c, "locale", "en") for c in settings.channels},
            company_name=_company_names(settings),
            dashboard_url=settings.dashboard_url,
            pending_minutes=settings.detect.pending_minutes,
            evidence_count=a.evidence_count,
            inhibit_entity_by_topic=a.inhibit_entity_by_topic,
            inhibit_topic_by_entity=a.inhibit_topic_by_entity,
            inhibit_topic_share=a.inhibit_topic_share,
            record_events=bool(getattr(settings, "publish_results", False)),
        )

    @property
    def has_channels(self) -> bool:
        return bool(self.channel_types)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the repository loads before the lifecycle stage."""

    latest: Mapping[str, Alert]  # fingerprint -> the latest alert of each signal's fingerprint
    alerts: Mapping[str, Alert]  # id -> alerts firing, or still listed as notified by a group
    groups: Mapping[str, GroupState]  # group id -> what the group has told its channel
    silences: Sequence[Silence]  # active now


@dataclass(frozen=True, slots=True)
class Needs:
    """What the repository must fetch after the lifecycle stage for the decisions after it."""

    topic_for: tuple[Alert, ...]  # new company alerts without a topic: their dominant topic
    firing: tuple[Alert, ...]  # firing alerts in view: evidence, and documents for inhibition
    company_documents: bool  # whether inhibition needs the documents of firing companies
    evidence_count: int


@dataclass(frozen=True, slots=True)
class Facts:
    topics: Mapping[str, str | None] = field(default_factory=dict)  # alert id -> dominant topic
    company_documents: CompanyDocuments = field(default_factory=dict)  # topic -> (docs, negatives, companies)
    evidence: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)  # alert id -> documents


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One notification row to insert (ignored if its dedup key is already there)."""

    dedup_key: str
    channel: str
    kind: str
    payload: dict[str, Any]
    alert_id: str | None
    status: str  # pending | suppressed | silenced


@dataclass(slots=True)
class Plan:
    """Everything a tick writes, in one transaction."""

    changes: list[Change] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)  # final state of each changed alert
    groups: dict[str, GroupState] = field(default_factory=dict)  # changed groups only
    notifications: list[Outgoing] = field(default_factory=list)


# --- the stages ------------------------------------------------------------------------------


def fingerprints(signals: Iterable[Signal]) -> list[str]:
    """The fingerprints whose latest alert the lifecycle stage needs."""
    return sorted({fingerprint(RULE, s.key) for s in signals})


def lifecycle(snapshot: Snapshot, signals: Iterable[Signal], policy: Policy) -> list[Change]:
    """Dedup + state machine: the signals applied to each fingerprint's latest alert."""
    changes, _ = evaluate(snapshot.latest, signals, pending_minutes=policy.pending_minutes)
    return changes


def final_alerts(changes: Sequence[Change]) -> list[Alert]:
    """The last state of each alert that changed, in first-change order."""
    final: dict[str, Alert] = {}
    for c in changes:
        final[c.alert.id] = c.alert
    return list(final.values())


def in_view(snapshot: Snapshot, changed: Sequence[Alert]) -> list[Alert]:
    """The alerts the routing stages look at once the changes are written: firing ones, and
    resolved ones a group still lists as notified (so their resolution can be sent)."""
    notified = set().union(*(g.notified_firing for g in snapshot.groups.values())) if snapshot.groups else set()
    merged = {**snapshot.alerts, **{a.id: a for a in changed}}
    view = [a for a in merged.values() if a.state == "firing" or a.id in notified]
    return sorted(view, key=lambda a: (a.started_at, a.id))


def _wants_topic(c: Change) -> bool:
    """A new company alert the detector gave no topic (looked up once, when it starts)."""
    return c.alert.key.kind == "entity" and c.alert.topic is None and c.kind in ("pending", "fired")


def needs(snapshot: Snapshot, changes: Sequence[Change], policy: Policy) -> Needs:
    topic_for: dict[str, Alert] = {}
    for c in changes:
        if _wants_topic(c):
            topic_for.setdefault(c.alert.id, c.alert)
    firing: tuple[Alert, ...] = ()
    if policy.has_channels:
        firing = tuple(a for a in in_view(snapshot, final_alerts(changes)) if a.state == "firing")
    return Needs(
        topic_for=tuple(topic_for.values()),
        firing=firing,
        company_documents=policy.has_channels and policy.inhibit_topic_by_entity,
        evidence_count=policy.evidence_count if policy.has_channels else 0,
    )


def with_topics(changes: Sequence[Change], topics: Mapping[str, str | None]) -> list[Change]:
    """Fill the topic of new company alerts the detector did not give one, so topic routes
    and `inhibit_entity_by_topic` work for company alerts too."""
    out = []
    for c in changes:
        a = c.alert
        if _wants_topic(c) or (a.key.kind == "entity" and a.topic is None and topics.get(a.id)):
            c = Change(c.kind, replace(a, topic=topics.get(a.id)), c.before)
        out.append(c)
    return out


@dataclass(frozen=True, slots=True)
class Mutes:
    """The inhibition and silence state of one tick."""

    silences: Sequence[Silence]
    firing_topics: frozenset[str]
    explained: Mapping[str, list[str]]
    inhibit_entity_by_topic: bool

    def reasons(self, alert: Alert, now: datetime) -> list[str]:
        return mute_reasons(
            alert.labels(),
            self.silences,
            now,
            firing_topics=self.firing_topics,
            inhibit_entity_by_topic=self.inhibit_entity_by_topic,
            explained_topics=self.explained,
        )


def inhibit(firing: Sequence[Alert], facts: Facts, silences: Sequence[Silence], policy: Policy) -> Mutes:
    """Which topic alerts are the echo of firing company alerts; what mutes what."""
    explained = (
        topics_explained_by_entities(
            [(a.labels(), a.numbers) for a in firing], facts.company_documents, policy.inhibit_topic_share
        )
        if policy.inhibit_topic_by_entity
        else {}
    )
    # A topic alert muted as the echo of its companies' alerts does not in turn mute them.
    firing_topics = frozenset(a.key.value for a in firing if a.key.kind == "topic") - explained.keys()
    return Mutes(silences, firing_topics, explained, policy.inhibit_entity_by_topic)


def route(view: Sequence[Alert], mutes: Mutes, policy: Policy, now: datetime) -> list[tuple[str, Alert]]:
    """(channel, alert) for every alert in view that is not muted, per routed channel."""
    members: list[tuple[str, Alert]] = []
    for a in view:
        if mutes.reasons(a, now):
            continue
        members.extend((ch, a) for ch in policy.router.channels(a.labels()))
    return members


def audit(changes: Sequence[Change], mutes: Mutes, policy: Policy, now: datetime) -> list[Outgoing]:
    """A `silenced` row per routed channel for each alert muted at the moment it fires."""
    out = []
    for c in changes:
        if c.kind != "fired":
            continue
        reasons = mutes.reasons(c.alert, now)
        if not reasons:
            continue
        for ch in policy.router.channels(c.alert.labels()):
            out.append(
                Outgoing(
                    dedup_key=f"{c.alert.id}:silenced:{ch}"[:200],
                    channel=ch,
                    kind="firing",
                    payload={"message": silenced_message(c.alert.id, reasons)},
                    alert_id=c.alert.id,
                    status="silenced",
                )
            )
    return out


def _company_names(settings: Any) -> Callable[[str], str | None] | None:
    """Display names of companies, when a channel writes them (a Chinese one: "贵州茅台（600519.SH）")."""
    if all(getattr(c, "locale", "en") == "en" for c in settings.channels):
        return None
    from monitor.enrich.entities import WatchEntity, build_matcher

    m = build_matcher(
        (WatchEntity(e.symbol, tuple(e.aliases), e.name) for e in settings.entities),
        settings.entity_universe.enabled,
        settings.entity_universe.path,
    )
    return m.display_name


def payload(channel_type: str, message: dict[str, Any], locale: str = "en") -> dict[str, Any]:
    """What an outbox row carries: the message and the channel body rendered from it."""
    return {"message": message, "body": render_body(channel_type, message, locale=locale)}


def notifications(
    flushes: Sequence[Flush], facts: Facts, policy: Policy, now: datetime, notify: bool
) -> list[Outgoing]:
    out = []
    for f in flushes:
        message = build_message(f, policy.dashboard_url, facts.evidence, now, policy.company_name)
        out.append(
            Outgoing(
                dedup_key=f.dedup_key,
                channel=f.channel,
                kind=f.kind,
                payload=payload(policy.channel_types[f.channel], message, policy.channel_locales.get(f.channel, "en")),
                alert_id=f.lead.id,
                status="pending" if notify else "suppressed",
            )
        )
    return out


def plan(
    snapshot: Snapshot, changes: Sequence[Change], facts: Facts, policy: Policy, now: datetime, notify: bool = True
) -> Plan:
    """The stages after the lifecycle, in order; returns everything the tick writes."""
    changes = with_topics(changes, facts.topics)
    changed = final_alerts(changes)
    result = Plan(changes=list(changes), alerts=changed)
    if not policy.has_channels:
        return result
    view = in_view(snapshot, changed)
    mutes = inhibit([a for a in view if a.state == "firing"], facts, snapshot.silences, policy)
    members = route(view, mutes, policy, now)
    result.notifications.extend(audit(changes, mutes, policy, now))
    flushes, groups = plan_groups(snapshot.groups, members, now, policy.timing)
    result.groups = {gid: gs for gid, gs in groups.items() if snapshot.groups.get(gid) != gs}
    result.notifications.extend(notifications(flushes, facts, policy, now, notify))
    return result
