"""Detector ticks against a database: the lease that makes one daemon tick at a time, and
the warm `Detector` kept per database between ticks.

Several daemons may share a database: a tick runs under a lease row in the `state`
table (held by one process, renewed by each tick, taken over when it expires) and, on
PostgreSQL, also under ``pg_try_advisory_xact_lock`` for the tick's transaction. A
daemon that does not hold the lease gets ``[]`` (the holder's tick covers the minute).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Text, cast, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from monitor.config import Settings
from monitor.detect.detector import Detector
from monitor.detect.params import Params
from monitor.detect.signals import Signal
from monitor.detect.source import SqlSource
from monitor.store.schema import alerts, state

log = logging.getLogger(__name__)

LEASE_NAME = "detector.lease"
ADVISORY_KEY = 0x66696E73656E74  # "finsent"
_OWNER = f"{socket.gethostname()}:{os.getpid()}"


_detectors: dict[tuple[str, Params], Detector] = {}
_detectors_lock = threading.Lock()


def detector_for(engine: Engine, settings: Settings, params: Params | None = None) -> Detector:
    return _detector((str(engine.url), params or Params.from_settings(settings.detect)))


def _detector(key: tuple[str, Params]) -> Detector:
    with _detectors_lock:
        det = _detectors.get(key)
        if det is None:
            det = _detectors[key] = Detector(key[1])
        return det


def forget(engine: Engine) -> None:
    """Drop the cached detectors of this database (a replay starting over, a wiped database)."""
    url = str(engine.url)
    with _detectors_lock:
        for key in [k for k in _detectors if k[0] == url]:
            del _detectors[key]


def _acquire_lease(conn: Connection, owner: str, wall: datetime | None, seconds: float) -> bool:
    """Take or renew the detector lease; False if another live process holds it.

    Ages are judged by the database's clock (PostgreSQL's ``now()``), so daemons whose
    host clocks disagree still agree on who holds the lease. SQLite is a local file: its
    clock is the host's, `wall` (now when None).
    """
    me = {"owner": owner}
    if conn.dialect.name == "postgresql":
        stamp: Any = func.now()
        expired_before: Any = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds)
    else:
        stamp = wall or datetime.now(UTC)
        expired_before = stamp - timedelta(seconds=seconds)
    res = conn.execute(
        update(state)
        .where(state.c.name == LEASE_NAME)
        .where((cast(state.c.value, Text) == json.dumps(me)) | (state.c.updated_at < expired_before))
        .values(value=me, updated_at=stamp)
    )
    if res.rowcount:
        return True
    exists = conn.execute(select(state.c.name).where(state.c.name == LEASE_NAME)).first()
    if exists:
        return False
    try:
        with conn.begin_nested():
            conn.execute(insert(state).values(name=LEASE_NAME, value=me, updated_at=stamp))
        return True
    except IntegrityError:
        return False


def tick(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    lock: bool = True,
    owner: str | None = None,
    wall: datetime | None = None,
    recheck_minutes: int | None = None,
    final_until: datetime | None = None,
    params: Params | None = None,
) -> list[Signal]:
    """One detector tick at clock time `now` (wall time live, the watermark in a replay).

    Returns one Signal per topic/entity key seen in the baseline or recent span, or
    ``[]`` when another daemon holds the detector lease. `lock=False` skips the lease
    (a replay is a single process working on its own database). `recheck_minutes`
    overrides how far back minute buckets are re-read every tick (a replay, whose
    watermark guarantees complete minutes, passes 0).
    """
    if now.tzinfo is None:
        raise ValueError("tick(now=...) needs a timezone-aware UTC datetime")
    det = detector_for(engine, settings, params)
    if recheck_minutes is not None:
        det.recheck_minutes = max(0, int(recheck_minutes))
    if not lock and not det.needs_full_tick:
        # Nothing to take or write, no open alerts to look up: the source connects only if
        # the tick has minutes to read (most of a replay's ticks have them already).
        with SqlSource(engine) as source:
            return det.tick(source, now, final_until, None)
    with engine.begin() as conn:
        if lock:
            if conn.dialect.name == "postgresql":
                got = conn.execute(select(func.pg_try_advisory_xact_lock(ADVISORY_KEY))).scalar()
                if not got:
                    log.debug("detector tick skipped: another daemon holds the advisory lock")
                    return []
            lease_s = max(3 * settings.detect.interval_seconds, 60.0)
            if not _acquire_lease(conn, owner or _OWNER, wall, lease_s):
                log.debug("detector tick skipped: another daemon holds the lease")
                return []
        open_keys = None
        if det.needs_full_tick:
            # A starting detector judges the fresh keys and those with an open alert, not
            # every quiet key it has a baseline for.
            open_keys = open_alert_keys(conn)
        with SqlSource(conn) as source:
            return det.tick(source, now, final_until, open_keys)


def open_alert_keys(conn: Connection) -> set[tuple[str, str]]:
    """The (kind, value) keys with a pending or firing alert."""
    a = alerts.c
    rows = conn.execute(select(a.key_kind, a.key_value).where(a.state.in_(("pending", "firing"))))
    return {(str(k), str(v)) for k, v in rows}


class DetectorRunner:
    """One database's detector, as the composition root hands it to the daemon and replay."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        # Built once: a replay asks for its detector several times a minute of stream.
        self.params = Params.from_settings(settings.detect)
        self._key = (str(engine.url), self.params)

    def tick(self, now: datetime, **kwargs: Any) -> list[Signal]:
        """See `tick`; the keyword arguments are its (lock, owner, wall, recheck_minutes, final_until)."""
        return tick(self.engine, self.settings, now, params=self.params, **kwargs)

    def needs_full_tick(self) -> bool:
        """See `Detector.needs_full_tick`: the next tick reads the keys with open alerts."""
        return _detector(self._key).needs_full_tick

    def watching(self) -> bool:
        """See `Detector.watching` (a replay asks it before skipping a minute)."""
        return _detector(self._key).watching()

    def forget(self) -> None:
        """Start over from the database (a replay's own history, a wiped database)."""
        forget(self.engine)
