"""The daemon's scheduled jobs (apscheduler 3.x, in a background thread).

- detect + alert: every `detect.interval_seconds`, one detector tick on the clock (the
  wall clock live), then the alert stages and the outbox, in one transaction. The
  detector holds a database lease, so with several daemons one tick runs at a time.
- send: the outbox sender, every `alerting.sender_interval_seconds`.
- digest: the daily digest, when `alerting.digest_channel` is set.
- alertmanager re-post: every `alerting.alertmanager_repost_seconds`, when an
  `alertmanager` channel is configured: still-firing alerts posted again with a fresh
  endsAt (`monitor.notify.repost`).
- prune: forget near-duplicate bands older than twice the novelty horizon.
- retention: the batched purge and roll-ups of `[retention]` (`monitor.store.retention`).

Every job reads and writes only the database, so any number of daemons can run them.
The parts come from the composition root (`monitor.app.wiring.build`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from monitor.app import metrics
from monitor.app.wiring import Parts
from monitor.redact import redact

log = logging.getLogger(__name__)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {redact(str(exc).splitlines()[0][:300]) if str(exc) else ''}"


def detect_and_alert(parts: Parts, now: datetime) -> int:
    """One detector tick and its alert transitions; returns the number of transitions."""
    signals = parts.detector.tick(now)
    # Called with no signals too: group waits and repeats are released on the clock.
    result = parts.alerting.apply(signals, now)
    changed = [c for c in result.changes if c.kind in ("fired", "resolved")]
    for c in changed:
        log.info("alert %s %s (%s=%s)", c.alert.id, c.kind, c.alert.key.kind, c.alert.key.value)
    if parts.results is not None:
        # The transitions were written with the alert transaction; produce every one not
        # yet published (this tick's, and any a killed process left behind).
        try:
            parts.results.publish_alert_events(parts.engine, now)
        except Exception as exc:
            metrics.JOB_FAILURES.labels("publish-alerts").inc()
            log.error("publishing alert changes to %s failed: %s", parts.settings.alerts_topic, _short(exc))
    return len(changed)


def _report_backlog(parts: Parts, now: datetime) -> None:
    from monitor.notify.outbox import backlog

    pending, oldest = backlog(parts.engine, now)
    metrics.OUTBOX_PENDING.set(pending)
    metrics.OUTBOX_OLDEST_SECONDS.set(oldest)


def register_jobs(scheduler: Any, parts: Parts, now: Callable[[], datetime] | None = None) -> list[Any]:
    """Add the sender (every `alerting.sender_interval_seconds`) and, when
    `alerting.digest_channel` is set, the daily digest (`alerting.digest_cron`, UTC) to an
    apscheduler 3.x scheduler (e.g. BackgroundScheduler). Returns the jobs."""
    settings = parts.settings
    clock = now or (lambda: datetime.now(UTC))

    def send_job() -> None:
        try:
            stats = parts.sender.send_due(clock() if now else None)
            if stats.due:
                log.debug("sender tick: %s", stats.as_dict())
            for outcome in ("sent", "retrying", "failed", "deferred"):
                metrics.NOTIFICATIONS.labels(outcome).inc(getattr(stats, outcome))
            _report_backlog(parts, clock())
        except Exception as exc:  # keep the job alive; never print a traceback with a URL
            metrics.JOB_FAILURES.labels("send").inc()
            log.error("sender tick failed: %s", _short(exc))

    def digest_job() -> None:
        try:
            key = parts.alerting.digest(clock())
            if key:
                log.info("daily digest %s enqueued", key)
        except Exception as exc:
            log.error("daily digest failed: %s", _short(exc))

    def repost_job() -> None:
        from monitor.notify.repost import repost_firing

        try:
            repost_firing(parts.engine, settings, clock())
        except Exception as exc:
            metrics.JOB_FAILURES.labels("repost").inc()
            log.error("Alertmanager re-post failed: %s", _short(exc))

    jobs = [
        scheduler.add_job(
            send_job,
            "interval",
            seconds=settings.alerting.sender_interval_seconds,
            id="finsent-sender",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )
    ]
    if any(c.type == "alertmanager" for c in settings.channels):
        jobs.append(
            scheduler.add_job(
                repost_job,
                "interval",
                seconds=settings.alerting.alertmanager_repost_seconds,
                id="finsent-alertmanager-repost",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
            )
        )
    if settings.alerting.digest_channel:
        jobs.append(
            scheduler.add_job(
                digest_job,
                CronTrigger.from_crontab(settings.alerting.digest_cron, timezone=UTC),
                id="finsent-digest",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
            )
        )
    return jobs


def start_background(parts: Parts, now: Callable[[], datetime]) -> BackgroundScheduler:
    settings = parts.settings
    sched = BackgroundScheduler(
        timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    horizon = timedelta(minutes=settings.detect.novelty_horizon_minutes)

    def detect_job() -> None:
        t = now()
        started = time.perf_counter()
        try:
            detect_and_alert(parts, t)
            metrics.DETECTOR_TICK_SECONDS.observe(time.perf_counter() - started)
            metrics.DETECTOR_LAST_TICK.set_to_current_time()
        except Exception as exc:
            metrics.JOB_FAILURES.labels("detect").inc()
            log.error("detector tick at %s failed (%s); the next tick retries", t.isoformat(), _short(exc))

    def prune_job() -> None:
        try:
            n = parts.store.prune_bands(now() - horizon * 2)
            if n:
                log.debug("pruned %d near-duplicate bands", n)
        except Exception as exc:
            log.warning("pruning near-duplicate bands failed: %s", type(exc).__name__)

    def retention_job() -> None:
        from monitor.store.retention import purge

        try:
            stats = purge(parts.engine, settings.retention, now())
            log.info("retention purge: %s", stats.as_dict())
        except Exception as exc:
            log.warning("retention purge failed (%s); the next run retries", _short(exc))

    sched.add_job(detect_job, "interval", seconds=settings.detect.interval_seconds, id="detect")
    sched.add_job(prune_job, "interval", minutes=10, id="prune-bands")
    if settings.retention.enabled:
        sched.add_job(retention_job, "interval", minutes=settings.retention.interval_minutes, id="retention")
    register_jobs(sched, parts, now)
    sched.start()
    return sched
