"""`finsent run`: consume -> classify -> store -> commit, with detection and alerting on a schedule.

Delivery is at-least-once in and exactly-once in effect: offsets are committed only after
the batch's database transaction (and its dead letters' produce) succeeded, and the store
is idempotent, so a crash replays at most one batch and the replay changes nothing.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from monitor.app import metrics
from monitor.app.batch import ClassifierUnavailable
from monitor.app.wiring import build
from monitor.classify.base import Classifier
from monitor.config import Settings
from monitor.ingest.source import DeadLetterSink, RawRecord, UndecodableBatch, consumer_for, poll, records_from_poll
from monitor.redact import redact_url
from monitor.store.repository import BatchResult

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 15.0
CLOSE_TIMEOUT_MS = 2000
COMMIT_TIMEOUT_MS = 10_000


def _hard_exit(code: int) -> None:
    """End the process without running anything else (no atexit, no thread joins)."""
    logging.shutdown()
    os._exit(code)


def _backoff(attempt: int) -> float:
    from tenacity import wait_exponential_jitter

    # tenacity's wait strategies take a RetryCallState; a tiny stand-in carries the attempt number.
    class _State:
        attempt_number = attempt

    return float(wait_exponential_jitter(initial=0.5, max=MAX_BACKOFF_S, jitter=0.5)(_State()))  # type: ignore[arg-type]


class Daemon:
    def __init__(
        self, settings: Settings, classifier: Classifier, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.now = now or (lambda: datetime.now(UTC))
        self.parts = build(settings)
        self.engine = self.parts.engine
        self.processor = self.parts.processor(classifier)
        self.health = metrics.Health(settings.stuck_after_seconds)
        self.stop_event = threading.Event()
        self.consumer: Any = None
        self.dead_letters: DeadLetterSink | None = None
        self.scheduler: Any = None
        self._lag_checked = 0.0
        self.totals = BatchResult()
        # Called after each batch's offsets are committed, with its records and the wall
        # time (epoch seconds): benchmarks measure produce-to-stored latency with it.
        self.observer: Callable[[list[RawRecord], float], None] | None = None
        self._waiting_for_db = False
        self._watchdog: threading.Timer | None = None
        self._undecodable_since: float | None = None
        self._undecodable_last = 0.0
        self._undecodable_logged = 0.0

    # -- lifecycle -----------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the daemon within `stop_timeout_seconds`, whatever the
        broker, the database or the CPU are doing: the loop stops, the batch in flight gets
        `stop_grace_seconds` to finish and is otherwise abandoned uncommitted, and a
        watchdog ends the process if the orderly stop itself hangs. A second signal ends
        it at once. Either way no offset of an unfinished batch is committed, so the batch
        is replayed by whoever next owns its partitions, harmlessly."""

        def handler(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.stop_event.is_set():
                log.warning("received %s again: exiting now; the batch in flight stays uncommitted", name)
                _hard_exit(1)
            log.info(
                "received %s: stopping (a batch in flight gets %.0fs, the whole stop at most %.0fs)",
                name,
                self.settings.stop_grace_seconds,
                self.settings.stop_timeout_seconds,
            )
            self.request_stop()
            self._arm_watchdog()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def request_stop(self) -> None:
        """Ask the loop to stop (also from another thread); `run` returns soon after."""
        self.stop_event.set()

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None:
            return
        limit = self.settings.stop_timeout_seconds

        def expire() -> None:
            log.error(
                "did not stop within %.0fs of the signal; exiting now, the batch in flight uncommitted "
                "(where each thread was: on stderr)",
                limit,
            )
            faulthandler.dump_traceback(all_threads=True)
            _hard_exit(1)

        self._watchdog = threading.Timer(limit, expire)
        self._watchdog.name = "finsent-stop-watchdog"
        self._watchdog.daemon = True
        self._watchdog.start()

    def run(self) -> int:
        metrics.serve(self.settings.metrics_port, self.health)
        self._migrate()
        if self.stop_event.is_set():
            return 0
        self._start_scheduler()
        self._connect()
        metrics.UP.set(1)
        try:
            while not self.stop_event.is_set():
                self._iteration()
        finally:
            metrics.UP.set(0)
            self._shutdown()
        log.info(
            "stopped: %d stored, %d already stored, %d dead letters",
            self.totals.inserted,
            self.totals.duplicates,
            self.totals.dead_letters,
        )
        return 0

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stop_event.is_set() and time.monotonic() < end:
            self.health.beat()
            self.stop_event.wait(min(0.5, max(0.0, end - time.monotonic())))

    def _migrate(self) -> None:
        from monitor.store.migrate import upgrade

        attempt = 0
        while not self.stop_event.is_set():
            try:
                upgrade(self.settings.database_url, self.engine)
                return
            except (OperationalError, InterfaceError) as exc:
                attempt += 1
                metrics.RETRIES.labels("database").inc()
                delay = _backoff(attempt)
                log.warning(
                    "database %s not reachable (%s); retrying in %.1fs",
                    redact_url(self.settings.database_url),
                    _short(exc),
                    delay,
                )
                self.health.beat(state="waiting for database")
                self._wait(delay)

    def _start_scheduler(self) -> None:
        from monitor.app.scheduler import start_background

        self.scheduler = start_background(self.parts, self.now)

    def _connect(self) -> None:
        from kafka.errors import KafkaError

        attempt = 0
        while not self.stop_event.is_set():
            try:
                self.consumer = consumer_for(self.settings)
                log.info(
                    "consuming %s as group %r from %s",
                    ",".join(self.settings.kafka_topics),
                    self.settings.kafka_group,
                    self.settings.kafka_bootstrap,
                )
                self.health.beat(state="consuming")
                return
            except KafkaError as exc:
                attempt += 1
                metrics.RETRIES.labels("kafka").inc()
                delay = _backoff(attempt)
                log.warning(
                    "Kafka at %s not reachable (%s); retrying in %.1fs",
                    self.settings.kafka_bootstrap,
                    _short(exc),
                    delay,
                )
                self.health.beat(state="waiting for kafka")
                self._wait(delay)

    def _shutdown(self) -> None:
        if self.scheduler is not None:
            try:
                self.scheduler.shutdown(wait=False)
            except Exception:  # pragma: no cover
                log.debug("scheduler shutdown", exc_info=True)
        if self.consumer is not None:
            try:
                # Bounded: the coordinator may be gone; leaving the group is best effort.
                self.consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
            except Exception as exc:
                log.warning("closing the consumer: %s", _short(exc))
        if self.dead_letters is not None:
            try:
                self.dead_letters.close()
            except Exception:
                log.debug("closing the dead-letter producer", exc_info=True)
        self.engine.dispose()

    # -- the loop --------------------------------------------------------------------
    def _iteration(self) -> None:
        self.health.beat()
        t0 = time.monotonic()
        try:
            polled = poll(
                self.consumer, timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.batch_max_records
            )
        except UndecodableBatch as exc:
            self._undecodable(exc)
            return
        # A lasting fault fails again within seconds (polls in between may return other
        # partitions' records or nothing), so it is over only after a quiet half-minute.
        if self._undecodable_since is not None and time.monotonic() - self._undecodable_last > 30:
            log.info(
                "record batches decode again after %.0fs; consuming", self._undecodable_last - self._undecodable_since
            )
            self._undecodable_since = None
            self.health.clear_fault()
        self._maybe_report_lag()
        if not polled:
            # With the broker gone, poll returns at once; wait out the rest of the poll
            # timeout so the loop idles instead of spinning on metadata retries.
            rest = self.settings.poll_timeout_ms / 1000 - (time.monotonic() - t0)
            if rest > 0:
                self.stop_event.wait(rest)
            return
        if self.stop_event.is_set():  # polled while asked to stop: leave it uncommitted
            return
        started = time.perf_counter()
        records, offsets = records_from_poll(polled, self.now)
        for tp, recs in polled.items():
            metrics.CONSUMED.labels(tp.topic).inc(len(recs))
        metrics.BATCH_SIZE.observe(len(records))

        result = self._process_with_retry(records)
        if result is None:  # stopping while the database was away: nothing committed, replayed later
            return
        self._commit(offsets)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        if self.observer is not None:
            self.observer(records, time.time())

    def _undecodable(self, exc: UndecodableBatch) -> None:
        """A batch this process cannot decode: /healthz turns 503, offsets stay, retry later.

        Logged as an error when it starts, then once a minute, not once per poll.
        """
        now = time.monotonic()
        if self._undecodable_since is None:
            self._undecodable_since = now
            self._undecodable_logged = 0.0
        self._undecodable_last = now
        metrics.UNDECODABLE.inc()
        self.health.set_fault(f"cannot decode a record batch: {_short(exc)}")
        if now - self._undecodable_logged >= 60:
            self._undecodable_logged = now
            log.error("consumption halted, nothing committed: %s", exc)
        # Poll again well within max_poll_interval_ms, so the consumer keeps its partitions.
        self._wait(min(5.0, self.settings.max_poll_interval_ms / 2000))

    def _process_with_retry(self, records: list[RawRecord]) -> BatchResult | None:
        """Work the batch in a helper thread while this thread keeps the consumer in its group.

        Partitions are paused for the duration (back-pressure) and `poll` keeps being called,
        so a slow batch (a loaded CPU, 10 MB records, a database outage) never exceeds
        `max_poll_interval_ms` and never triggers a rebalance that would replay it forever.
        """
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = self._store_until_done(records)
            except BaseException as exc:  # re-raised below, in the loop's thread
                box["error"] = exc

        self.consumer.pause(*self.consumer.assignment())
        worker = threading.Thread(target=work, name="finsent-batch", daemon=True)
        started = time.monotonic()
        abandon_at: float | None = None
        worker.start()
        try:
            while worker.is_alive():
                if self.stop_event.is_set():
                    # Stopping: the batch gets a grace period, then is abandoned. Its
                    # offsets stay uncommitted; the helper thread dies with the process.
                    if abandon_at is None:
                        abandon_at = time.monotonic() + self.settings.stop_grace_seconds
                    if time.monotonic() >= abandon_at:
                        log.warning(
                            "stopping: abandoned a batch of %d records in flight; its offsets stay uncommitted",
                            len(records),
                        )
                        return None
                    worker.join(0.05)
                    continue
                self._poll_paused()
                # Healthy while the batch makes progress or waits for the database; a batch
                # stuck for longer than stuck_after_seconds turns /healthz red.
                if self._waiting_for_db or time.monotonic() - started < self.settings.stuck_after_seconds:
                    self.health.beat()
                worker.join(0.05)
        finally:
            paused = self.consumer.paused()
            if paused:
                self.consumer.resume(*paused)
        if "error" in box:
            raise box["error"]
        result: BatchResult | None = box.get("result")
        return result

    def _poll_paused(self) -> None:
        """Poll only to stay in the group. Paused partitions return nothing, but partitions
        newly assigned by a rebalance are not paused and can return records: rewind to the
        first of them and pause, so they are fetched again with the next batch, not skipped.
        """
        try:
            got = poll(self.consumer, timeout_ms=100)
        except UndecodableBatch:  # met again by the main loop, which reports it
            return
        for tp, recs in got.items():
            if recs:
                self.consumer.seek(tp, recs[0].offset)
                self.consumer.pause(tp)

    def _store_until_done(self, records: list[RawRecord]) -> BatchResult | None:
        """Process and store; wait out database outages (None if asked to stop meanwhile)."""
        attempt = 0
        while True:
            try:
                t0 = self.processor.timings.classify_s
                result = self.processor.process(records, self.now())
                metrics.CLASSIFY_SECONDS.observe(self.processor.timings.classify_s - t0)
                break
            except ClassifierUnavailable as exc:
                # Systemic: consumption stays paused, the offsets uncommitted, /healthz 503.
                attempt += 1
                metrics.RETRIES.labels("classifier").inc()
                delay = _backoff(attempt)
                log.error(
                    "classifier unavailable (%s); holding %d records uncommitted, retry in %.1fs",
                    _short(exc),
                    len(records),
                    delay,
                )
                self._waiting_for_db = True  # waiting on a dependency, not stuck
                self.health.set_fault(f"classifier unavailable: {_short(exc)[:200]}")
                self.health.status["state"] = "waiting for the classifier"
                if self.stop_event.wait(delay):
                    return None
            except (OperationalError, InterfaceError) as exc:
                attempt += 1
                metrics.RETRIES.labels("database").inc()
                delay = _backoff(attempt)
                log.warning(
                    "database unavailable (%s); holding %d records uncommitted, retry in %.1fs",
                    _short(exc),
                    len(records),
                    delay,
                )
                self._waiting_for_db = True
                self.health.status["state"] = "waiting for database"
                if self.stop_event.wait(delay):
                    return None
        # Counted as soon as the batch is committed to the store, before the dead letters
        # go out, so the metric trails the database by as little as possible.
        self._count(result)
        if self._waiting_for_db:
            self._waiting_for_db = False
            self.health.clear_fault()
            self.health.status["state"] = "consuming"
        self._send_dead_letters(result, records)
        return result

    def _send_dead_letters(self, result: BatchResult, records: list[RawRecord]) -> None:
        if not result.rejections:
            return
        if self.dead_letters is None:
            self.dead_letters = DeadLetterSink(self.settings)
        for rej in self.dead_letters.send(result.rejections, records):
            metrics.DEAD_LETTERS.labels(rej.topic).inc()
            log.warning("dead letter %s[%d]@%d: %s", rej.topic, rej.partition, rej.offset, rej.reason[:200])

    def _commit(self, offsets: dict[Any, Any]) -> None:
        from kafka.errors import CommitFailedError, KafkaError

        try:
            # Bounded, so a broker that vanished cannot hold the loop (and a stop) forever;
            # an uncommitted batch is replayed harmlessly.
            self.consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
        except CommitFailedError as exc:
            # The group rebalanced while we worked; the batch is stored, the new owner of
            # these partitions replays it and the store recognises every document.
            log.warning(
                "offset commit rejected after a rebalance (%s); the batch will be replayed harmlessly", _short(exc)
            )
        except KafkaError as exc:
            log.warning("offset commit failed (%s); the batch will be replayed harmlessly", _short(exc))

    def _count(self, r: BatchResult) -> None:
        metrics.STORED.inc(r.inserted)
        metrics.DUPLICATES.inc(r.duplicates)
        metrics.NEAR_DUPLICATES.inc(r.near_duplicates)
        self.totals.inserted += r.inserted
        self.totals.duplicates += r.duplicates
        self.totals.dead_letters += r.dead_letters

    def _maybe_report_lag(self) -> None:
        if time.monotonic() - self._lag_checked < 10:
            return
        self._lag_checked = time.monotonic()
        try:
            assigned = list(self.consumer.assignment())
            if not assigned:
                return
            ends = self.consumer.end_offsets(assigned, timeout_ms=1000)
            for tp in assigned:
                pos = self.consumer.position(tp, timeout_ms=1000)
                if pos is not None and tp in ends:
                    metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, ends[tp] - pos))
        except Exception as exc:
            log.debug("lag check failed: %s", _short(exc))


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
