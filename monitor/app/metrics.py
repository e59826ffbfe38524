"""Prometheus metrics and the /healthz endpoint, served on `metrics_port`.

Health is a heartbeat: the consume loop beats every iteration (also while it waits for
a database or broker); /healthz answers 503 when the last beat is older than
`stuck_after_seconds`, so an orchestrator restarts a wedged process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

CONSUMED = Counter("finsent_messages_consumed_total", "Kafka records polled", ["topic"], registry=REGISTRY)
STORED = Counter("finsent_documents_stored_total", "new documents stored", registry=REGISTRY)
DUPLICATES = Counter(
    "finsent_duplicates_skipped_total", "records whose document id was already stored", registry=REGISTRY
)
NEAR_DUPLICATES = Counter(
    "finsent_near_duplicates_total", "new documents that near-copy an earlier one", registry=REGISTRY
)
DEAD_LETTERS = Counter("finsent_dead_letters_total", "records sent to the dead letters", ["topic"], registry=REGISTRY)
BATCH_SIZE = Histogram(
    "finsent_batch_size",
    "records per poll batch",
    buckets=(1, 8, 32, 64, 128, 256, 512, 1024, 4096, 16384),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "finsent_batch_seconds",
    "seconds from poll to offsets committed",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
CLASSIFY_SECONDS = Histogram(
    "finsent_classifier_seconds",
    "seconds in the classifier per batch",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)
LAG = Gauge("finsent_consumer_lag", "records behind the partition's end", ["topic", "partition"], registry=REGISTRY)
RETRIES = Counter("finsent_retries_total", "waits on an unavailable dependency", ["dependency"], registry=REGISTRY)
LAST_BEAT = Gauge("finsent_loop_heartbeat_timestamp_seconds", "last iteration of the consume loop", registry=REGISTRY)
UP = Gauge("finsent_up", "1 while the daemon's loop runs", registry=REGISTRY)
UNDECODABLE = Counter(
    "finsent_undecodable_batches_total",
    "polls that met a record batch this process cannot decode (missing codec, corrupt batch)",
    registry=REGISTRY,
)
DETECTOR_TICK_SECONDS = Histogram(
    "finsent_detector_tick_seconds",
    "seconds per scheduled detector tick, alert stages included",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
    registry=REGISTRY,
)
DETECTOR_LAST_TICK = Gauge(
    "finsent_detector_last_tick_timestamp_seconds", "end of the last detector tick that succeeded", registry=REGISTRY
)
JOB_FAILURES = Counter(
    "finsent_job_failures_total", "scheduled jobs that raised (detect, send, repost)", ["job"], registry=REGISTRY
)
NOTIFICATIONS = Counter(
    "finsent_notifications_total",
    "outbox deliveries by outcome: sent, retrying (failed, will retry), failed (given up), deferred (rate limit)",
    ["outcome"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge("finsent_outbox_pending", "notifications waiting to be delivered", registry=REGISTRY)
OUTBOX_OLDEST_SECONDS = Gauge(
    "finsent_outbox_oldest_pending_seconds", "age of the oldest notification still pending (0: none)", registry=REGISTRY
)


class Health:
    def __init__(self, stuck_after_s: float) -> None:
        self.stuck_after_s = stuck_after_s
        self._last = time.monotonic()
        self.status: dict[str, Any] = {"state": "starting"}
        # A fault the loop survives but cannot get past on its own (a batch it cannot
        # decode): the loop still beats, yet /healthz must say it is not doing its job.
        self.fault: str | None = None

    def set_fault(self, reason: str) -> None:
        self.fault = reason
        self.status["fault"] = reason

    def clear_fault(self) -> None:
        if self.fault is not None:
            self.fault = None
            self.status.pop("fault", None)

    def beat(self, **status: Any) -> None:
        self._last = time.monotonic()
        LAST_BEAT.set_to_current_time()
        if status:
            self.status.update(status)

    def healthy(self) -> bool:
        return self.fault is None and time.monotonic() - self._last < self.stuck_after_s

    def report(self) -> dict[str, Any]:
        return {**self.status, "healthy": self.healthy(), "seconds_since_beat": round(time.monotonic() - self._last, 1)}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("metrics http: " + format, *args)


def serve(port: int, health: Health, host: str = "0.0.0.0") -> WSGIServer | None:
    """Serve /metrics and /healthz in a daemon thread; port 0 disables it."""
    if port == 0:
        return None
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/healthz":
            ok = health.healthy()
            body = json.dumps(health.report(), default=str).encode()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [body]
        return metrics_app(environ, start_response)

    try:
        server = make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as exc:
        raise RuntimeError(
            f"cannot serve metrics on port {port}: {exc.strerror} (setting metrics_port / FINSENT_METRICS_PORT)"
        ) from None
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    log.info("metrics and health on %s port %d (paths /metrics and /healthz)", host, port)
    return server
