"""The daemon's scheduled jobs (apscheduler 3.x, in a background thread).

Every job reads and writes only the database, so any number of daemons can run them;
the detector takes a database lock so one tick runs at a time across processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.store import Store

log = logging.getLogger(__name__)


def start_background(engine: Engine, settings: Settings, now: Callable[[], datetime]) -> BackgroundScheduler:
    sched = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
    store = Store(engine)
    horizon = timedelta(minutes=settings.detect.novelty_horizon_minutes)

    def prune() -> None:
        try:
            n = store.prune_bands(now() - horizon * 2)
            if n:
                log.debug("pruned %d near-duplicate bands", n)
        except Exception:
            log.exception("pruning near-duplicate bands failed")

    sched.add_job(prune, "interval", minutes=10, id="prune-bands")
    sched.start()
    return sched
