"""The daemon's scheduled jobs (apscheduler 3.x, in a background thread).

- detect + alert: every `detect.interval_seconds`, one detector tick on the clock (the
  wall clock live), then the alert lifecycle and the outbox, in one transaction. The
  detector holds a database lock, so with several daemons one tick runs at a time.
- send: the outbox sender, every `alerting.sender_interval_seconds`.
- digest: the daily digest, when `alerting.digest_channel` is set.
- prune: forget near-duplicate bands older than twice the novelty horizon.

Every job reads and writes only the database, so any number of daemons can run them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.store.repository import Store

log = logging.getLogger(__name__)


def detect_and_alert(engine: Engine, settings: Settings, now: datetime) -> int:
    """One detector tick and its alert transitions; returns the number of transitions."""
    from monitor.detect.detector import tick
    from monitor.alerting.outbox import apply_signals

    signals = tick(engine, settings, now)
    # Called with no signals too: group waits and repeats are released on the clock.
    result = apply_signals(engine, settings, signals, now)
    changed = [c for c in result.changes if c.kind in ("fired", "resolved")]
    for c in changed:
        log.info("alert %s %s (%s=%s)", c.alert.id, c.kind, c.alert.key.kind, c.alert.key.value)
    return len(changed)


def start_background(engine: Engine, settings: Settings, now: Callable[[], datetime]) -> BackgroundScheduler:
    from monitor.notify.sender import register_jobs

    sched = BackgroundScheduler(
        timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    store = Store(engine)
    horizon = timedelta(minutes=settings.detect.novelty_horizon_minutes)

    def detect_job() -> None:
        t = now()
        try:
            detect_and_alert(engine, settings, t)
        except Exception as exc:
            log.error(
                "detector tick at %s failed (%s: %s); the next tick retries",
                t.isoformat(),
                type(exc).__name__,
                str(exc).splitlines()[0][:300] if str(exc) else "",
            )

    def prune_job() -> None:
        try:
            n = store.prune_bands(now() - horizon * 2)
            if n:
                log.debug("pruned %d near-duplicate bands", n)
        except Exception as exc:
            log.warning("pruning near-duplicate bands failed: %s", type(exc).__name__)

    sched.add_job(detect_job, "interval", seconds=settings.detect.interval_seconds, id="detect")
    sched.add_job(prune_job, "interval", minutes=10, id="prune-bands")
    register_jobs(sched, engine, settings, now)
    sched.start()
    return sched
