"""Alerting as a service: one tick of signals through the stages, and the daily digest.

`AlertService.apply` runs `monitor.alerting.stages` against the database in ONE
transaction: the alert changes and the notification rows they cause commit together or
not at all (the transactional outbox). Replays are harmless: alert ids come from the
stream, signals older than a fingerprint's last applied one are ignored, group state
lives in the `state` table, and every notification has a deterministic `dedup_key`
inserted with ON CONFLICT DO NOTHING.

`notify=False` (a replay without --notify) still writes the notification rows, complete,
with status `suppressed`: the backtest shows exactly what would have been sent and when,
and the sender never picks them up. Alerts muted by a silence or inhibition at the moment
they fire get one `silenced` row per routed channel (an audit trail, never sent).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from monitor.alerting import repository as repo
from monitor.alerting import stages
from monitor.alerting.lifecycle import Change
from monitor.alerting.message import digest_message
from monitor.alerting.routing import Router
from monitor.alerting.stages import Outgoing, Policy
from monitor.config import Settings
from monitor.detect.signals import Signal
from monitor.redact import REDACTING_FILTER
from monitor.store.schema import alerts, minute_counts

log = logging.getLogger(__name__)
log.addFilter(REDACTING_FILTER)

DIGEST_TOP = 5


@dataclass
class ApplyResult:
    changes: list[Change] = field(default_factory=list)
    enqueued: list[str] = field(default_factory=list)  # dedup keys of new notification rows
    silenced: int = 0

    @property
    def transitions(self) -> list[tuple[str, str]]:
        return [(c.kind, c.alert.id) for c in self.changes if c.kind != "updated"]


class AlertService:
    """Alerting over one database with one policy (built by `monitor.app.wiring`)."""

    def __init__(self, bind: repo.Bind, policy: Policy, digest_channel: str | None = None) -> None:
        self.bind = bind
        self.policy = policy
        self.digest_channel = digest_channel

    def apply(self, signals: Iterable[Signal], now: datetime, notify: bool = True) -> ApplyResult:
        """Apply one detector tick (or several) and enqueue the notifications it causes.

        `now` is the detector clock (wall clock live, stream watermark in a replay); alert
        times come from the signals. Call it every tick, even with no signals: group waits,
        group intervals and repeats are flushed on the clock.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware UTC")
        sigs = list(signals)
        policy = self.policy
        with repo.tx(self.bind) as conn:
            repo.lock(conn, now)
            snapshot = repo.load_snapshot(conn, stages.fingerprints(sigs), now, with_groups=policy.has_channels)
            changes = stages.lifecycle(snapshot, sigs, policy)
            facts = repo.load_facts(conn, stages.needs(snapshot, changes, policy))
            plan = stages.plan(snapshot, changes, facts, policy, now, notify)
            written = repo.write(conn, plan, now, events=policy.record_events)
        result = ApplyResult(
            changes=plan.changes,
            enqueued=[o.dedup_key for o in written if o.status != "silenced"],
            silenced=sum(o.status == "silenced" for o in written),
        )
        if plan.changes:
            log.debug(
                "alert transitions: %s",
                [(c.kind, c.alert.key.value, c.alert.id) for c in plan.changes if c.kind != "updated"],
            )
        for key in result.enqueued:
            log.info("notification %s enqueued%s", key, "" if notify else " (suppressed: notify is off)")
        return result

    def digest(self, now: datetime, *, top: int = DIGEST_TOP, notify: bool = True) -> str | None:
        """Enqueue the daily digest (top negative topics and companies over the last 24 h) to
        the digest channel. One per UTC day: running it twice enqueues nothing new.
        Returns the dedup key when a row was written, None otherwise."""
        ch_name = self.digest_channel
        if not ch_name:
            return None
        if ch_name not in self.policy.channel_types:
            raise ValueError(f"alerting.digest_channel {ch_name!r} is not a configured channel")
        since = now - timedelta(hours=24)
        mc = minute_counts.c
        with repo.tx(self.bind) as conn:
            rows: dict[str, list[dict[str, Any]]] = {"topic": [], "entity": []}
            for kind in rows:
                neg, tot = func.sum(mc.negative).label("neg"), func.sum(mc.total).label("tot")
                q = (
                    select(mc.key_value, neg, tot)
                    .where(mc.key_kind == kind, mc.minute >= since, mc.minute < now)
                    .group_by(mc.key_value)
                    .order_by(neg.desc(), tot.desc(), mc.key_value)
                    .limit(top)
                )
                for r in conn.execute(q):
                    n, t = int(r.neg or 0), int(r.tot or 0)
                    if n:
                        rows[kind].append(
                            {"value": r.key_value, "negative": n, "total": t, "share": n / t if t else None}
                        )
            fired = conn.execute(
                select(func.count()).select_from(alerts).where(alerts.c.fired_at >= since, alerts.c.fired_at < now)
            ).scalar_one()
            key = f"digest:{now.astimezone(UTC).date().isoformat()}:{ch_name}"
            message = digest_message(
                key, ch_name, self.policy.dashboard_url, since, now, fired, rows["topic"], rows["entity"]
            )
            out = Outgoing(
                dedup_key=key,
                channel=ch_name,
                kind="digest",
                payload=stages.payload(
                    self.policy.channel_types[ch_name], message, self.policy.channel_locales.get(ch_name, "en")
                ),
                alert_id=None,
                status="pending" if notify else "suppressed",
            )
            ok = repo.enqueue(conn, out, now)
        return key if ok else None


def service_for(bind: repo.Bind, settings: Settings, router: Router | None = None) -> AlertService:
    """The alerting of `settings` over `bind` (the composition root passes its router)."""
    return AlertService(bind, Policy.from_settings(settings, router), settings.alerting.digest_channel)


def apply_signals(
    bind: repo.Bind, settings: Any, signals: Iterable[Signal], now: Any, notify: bool = True
) -> ApplyResult:
    """One tick with the policy of `settings` (for callers without a composition root)."""
    return service_for(bind, settings).apply(signals, now, notify)


def digest(
    bind: repo.Bind, settings: Settings, now: datetime, *, top: int = DIGEST_TOP, notify: bool = True
) -> str | None:
    """The daily digest with the settings' channels (see `AlertService.digest`)."""
    return service_for(bind, settings).digest(now, top=top, notify=notify)
