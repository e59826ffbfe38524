"""Deliver the outbox: claim due notification rows, send, record, back off, rate-limit.

Delivery is at-least-once, made exactly-once at the receiver by an idempotency key:

1. *Claim* (own transaction): the row is taken with `FOR UPDATE SKIP LOCKED` on
   PostgreSQL (SQLite has one writer) and a conditional update on `attempts`, which bumps
   `attempts`, pushes `next_attempt_at` out by a lease (timeout + margin) and writes an
   attempt row saying "in flight". The claim commits *before* the request is sent.
2. *Send* outside any transaction, with header `X-Finsent-Notification-Id: <dedup_key>`
   (also `notification_id` in webhook bodies).
3. *Record* (own transaction): the attempt row gets the outcome; the notification becomes
   `sent`, or `pending` with the next attempt time (exponential back-off with jitter from
   tenacity, or the receiver's Retry-After), or `failed` (not retryable, or
   `max_attempts` used up).

A sender killed after 1 and before 3 leaves the row pending with an "in flight" attempt;
once the lease passes any sender retries it. So a duplicate can only come from a crash
after the receiver got the request and before step 3 committed, or from a request that
timed out after the receiver had processed it (a timeout is an unknown outcome, so it is
retried). Receivers that drop repeated notification ids (the finsent webhook contract)
see every notification once; chat vendors without idempotency keys may then show that
one message twice.

Rate limits are per channel and held across all senders through the database: each send
first reserves the channel's next slot in a `state` row (`rate.<channel>`), taken under a
row lock on PostgreSQL (SQLite has one writer), and the slots are 60/rate seconds apart
(defaults: Slack 60, Teams 60, Feishu 100, DingTalk 20 per minute, webhook unlimited).
So however many senders tick together, the channel never gets more than `rate` requests
in any minute. A sender waits for a slot at most one spacing; a later one is left for a
later tick. A 429 (or a vendor rate-limit code) pauses that channel for the rest of the
tick. Slot times come from the senders' clocks: keep hosts on NTP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from tenacity import RetryCallState, wait_exponential_jitter

from monitor.config import Settings
from monitor.notify.delivery import SendResult, default_rate_per_minute, deliver
from monitor.notify.repost import lookback_for, pinned_body
from monitor.redact import REDACTING_FILTER, redact, register_settings_secrets
from monitor.store.schema import notification_attempts, notifications, state

log = logging.getLogger(__name__)
log.addFilter(REDACTING_FILTER)

IN_FLIGHT = "in flight: no outcome recorded (sender stopped during the request?)"
LEASE_MARGIN_SECONDS = 30.0
BACKOFF_INITIAL_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 30 * 60.0
BACKOFF_JITTER_SECONDS = 10.0
BATCH = 100

_wait = wait_exponential_jitter(
    multiplier=BACKOFF_INITIAL_SECONDS, max=BACKOFF_MAX_SECONDS, jitter=BACKOFF_JITTER_SECONDS
)


def backoff_seconds(attempt: int) -> float:
    """Delay after failed attempt number `attempt` (1-based): tenacity's exponential
    back-off with jitter, so many senders retrying one receiver spread out."""
    rs = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    rs.attempt_number = max(1, attempt)
    return float(_wait(rs))


@dataclass
class SendStats:
    due: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    deferred: int = 0  # left for a later tick by a rate limit or a paused channel

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _Claim:
    id: int
    dedup_key: str
    channel: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    attempt_id: int
    created_at: datetime


def _claim(engine: Engine, nid: int, now: datetime, lease: timedelta) -> _Claim | None:
    n = notifications.c
    try:
        with engine.begin() as conn:
            q = select(notifications).where(n.id == nid, n.status == "pending", n.next_attempt_at <= now)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            row = conn.execute(q).mappings().first()
            if row is None:
                return None
            res = conn.execute(
                update(notifications)
                .where(n.id == nid, n.status == "pending", n.attempts == row["attempts"])
                .values(attempts=row["attempts"] + 1, next_attempt_at=now + lease)
            )
            if res.rowcount != 1:
                return None
            aid = conn.execute(
                notification_attempts.insert()
                .values(notification_id=nid, at=now, status_code=None, ok=False, retryable=True, error=IN_FLIGHT)
                .returning(notification_attempts.c.id)
            ).scalar_one()
    except OperationalError as exc:  # SQLite busy: another writer; try next tick
        log.warning("could not claim notification %s: %s", nid, redact(str(exc.orig)))
        return None
    assert row is not None
    return _Claim(
        nid,
        row["dedup_key"],
        row["channel"],
        row["kind"],
        row["payload"],
        row["attempts"] + 1,
        int(aid),
        row["created_at"],
    )


def _record(engine: Engine, c: _Claim, r: SendResult, now: datetime, max_attempts: int) -> str:
    n = notifications.c
    err = redact(r.error) if r.error else None
    if r.ok:
        outcome, values = "sent", {"status": "sent", "sent_at": now, "last_error": None}
    elif r.retryable and c.attempts < max_attempts:
        delay = r.retry_after if r.retry_after is not None else backoff_seconds(c.attempts)
        outcome, values = "retrying", {"next_attempt_at": now + timedelta(seconds=delay), "last_error": err}
    else:
        why = err if not r.retryable else f"gave up after {c.attempts} attempts; last error: {err}"
        outcome, values = "failed", {"status": "failed", "last_error": why}
    with engine.begin() as conn:
        conn.execute(
            update(notification_attempts)
            .where(notification_attempts.c.id == c.attempt_id)
            .values(status_code=r.status_code, ok=r.ok, retryable=r.retryable, error=err)
        )
        res = conn.execute(
            update(notifications).where(n.id == c.id, n.status == "pending", n.attempts == c.attempts).values(**values)
        )
    if res.rowcount != 1:
        log.warning(
            "notification %s was re-claimed while this attempt ran; outcome %s kept in attempts only",
            c.dedup_key,
            outcome,
        )
    return outcome


def _take_slot(engine: Engine, channel: str, rate: float, now: datetime) -> float | None:
    """Reserve the channel's next send slot for the whole cluster.

    Returns the seconds to wait before sending, or None when the next free slot is more
    than one spacing away (the send is left for a later tick) or the row is busy.
    """
    spacing = 60.0 / rate
    name = f"rate.{channel}"
    t = now.timestamp()
    q = select(state.c.value).where(state.c.name == name)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            row = conn.execute(q).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(state).values(name=name, value={"next": t + spacing}, updated_at=now))
                    return 0.0
                except IntegrityError:  # another sender created it meanwhile: take its lock
                    row = conn.execute(q).first()
            assert row is not None
            nxt = float((row[0] or {}).get("next", 0.0))
            slot = max(t, nxt)
            if slot - t > spacing:
                return None
            conn.execute(
                update(state).where(state.c.name == name).values(value={"next": slot + spacing}, updated_at=now)
            )
            return slot - t
    except OperationalError as exc:  # SQLite: another writer got there first; next tick
        log.debug("rate slot for %s busy: %s", channel, redact(str(exc.orig)))
        return None


def send_due(
    engine: Engine,
    settings: Settings,
    now: datetime | None = None,
    *,
    client: httpx.Client | None = None,
    limit: int = BATCH,
    sleep: Callable[[float], None] = time.sleep,
) -> SendStats:
    """One sender tick: deliver the notifications that are due. Safe to run in several
    processes at once. `now` (default: the wall clock) drives the bookkeeping times, so
    tests and replays can move the clock; request signatures always use the wall clock."""
    clock: Callable[[], datetime] = (lambda: now) if now is not None else (lambda: datetime.now(UTC))  # type: ignore[assignment,return-value]
    register_settings_secrets(settings)  # so the log filter knows them even without load_settings
    t0 = clock()
    stats = SendStats()
    n = notifications.c
    with engine.connect() as conn:
        due = conn.execute(
            select(n.id, n.channel)
            .where(n.status == "pending", n.next_attempt_at <= t0)
            .order_by(n.next_attempt_at, n.id)
            .limit(limit)
        ).all()
    if not due:
        return stats
    stats.due = len(due)
    channels = {c.name: c for c in settings.channels}
    paused: set[str] = set()
    http = client  # None: each request gets its own connection, bounded as a whole (`deliver`)
    for nid, ch_name in due:
        ch = channels.get(ch_name)
        if ch is None:
            _fail_unknown_channel(engine, nid, ch_name, clock())
            stats.failed += 1
            continue
        if ch_name in paused:
            stats.deferred += 1
            continue
        rate = default_rate_per_minute(ch)
        if rate is not None:
            wait = _take_slot(engine, ch_name, rate, clock())
            if wait is None:  # no slot soon enough: this channel waits for a later tick
                paused.add(ch_name)
                stats.deferred += 1
                continue
            if wait > 0:
                sleep(wait)
        claim = _claim(engine, nid, clock(), timedelta(seconds=ch.timeout_seconds + LEASE_MARGIN_SECONDS))
        if claim is None:
            continue
        body = claim.payload.get("body") if isinstance(claim.payload, dict) else None
        if body is None:
            result = SendResult(False, False, None, "notification has no rendered body")
        else:
            if ch.type == "alertmanager":  # an alert keeps the labels of its first post
                # Anchored at the row's creation: a replay's rows carry event times.
                body = pinned_body(engine, ch_name, claim.payload, lookback_for(settings), claim.created_at)
            result = deliver(ch, body, claim.dedup_key, client=http)
        outcome = _record(engine, claim, result, clock(), settings.alerting.max_attempts)
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        if result.ok:
            log.info("notification %s sent to %s (attempt %d)", claim.dedup_key, ch_name, claim.attempts)
        else:
            log.warning(
                "notification %s to %s failed (attempt %d, %s): %s",
                claim.dedup_key,
                ch_name,
                claim.attempts,
                outcome,
                result.error,
            )
        if result.status_code == 429 or (result.retryable and result.retry_after is not None):
            paused.add(ch_name)
    return stats


def _fail_unknown_channel(engine: Engine, nid: int, ch_name: str, now: datetime) -> None:
    n = notifications.c
    with engine.begin() as conn:
        conn.execute(
            update(notifications)
            .where(n.id == nid, n.status == "pending")
            .values(status="failed", last_error=f"channel {ch_name!r} is no longer configured")
        )
    log.warning("notification %s failed: channel %r is no longer configured", nid, ch_name)


class Sender:
    """The outbox sender for one database and one set of channels (built by the
    composition root; any number of processes may run one)."""

    def __init__(self, engine: Engine, settings: Settings, client: httpx.Client | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.client = client

    def send_due(self, now: datetime | None = None, **kwargs: Any) -> SendStats:
        return send_due(self.engine, self.settings, now, client=self.client, **kwargs)
