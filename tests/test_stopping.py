"""Stopping always stops: the daemon and the demo exit within a bounded time after
SIGTERM/SIGINT whatever the broker is doing, and waiting for a broker does not spin.

Real processes on a real embedded broker that is SIGKILLed under them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from monitor.app.broker import EmbeddedBroker
from monitor.classify.base import KeywordTestDouble, Prediction
from monitor.config import Settings
from tests.test_ingest import DaemonProc, counts, daemon_env, make_messages, produce, wait_for

pytestmark = pytest.mark.integration

STOP_BOUND_S = 20.0  # the daemon's own hard deadline is 15 s (stop_timeout_seconds); 5 s of slack


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _cpu_share(pid: int, seconds: float) -> float:
    a = _cpu_seconds(pid)
    time.sleep(seconds)
    return (_cpu_seconds(pid) - a) / seconds


def test_daemon_whose_broker_died_idles_and_stops_in_bounded_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    b = EmbeddedBroker(topics=["news"], partitions=3).start()
    try:
        d = DaemonProc(daemon_env(url, b.bootstrap, "news", "g-stop"), tmp_path / "d.log")
        d.start()
        produce(b.bootstrap, "news", make_messages(300, 0))
        wait_for(lambda: counts(url)[0] == 300, 120, "300 documents stored", [d])
        assert d.proc is not None
        os.kill(b.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        b.proc.wait(10)  # type: ignore[union-attr]
        time.sleep(5)  # let the client notice and settle into its retries
        share = _cpu_share(d.proc.pid, 10)
        rc = d.terminate(timeout=60)
        print(f"\nbroker gone: daemon CPU {share:.1%} of a core; stopped {d.stop_seconds:.1f} s after SIGTERM, rc {rc}")
        assert share < 0.25, f"the daemon spins at {share:.0%} of a core with its broker gone"
        assert d.stop_seconds < STOP_BOUND_S, d.log_path.read_text()[-3000:]
    finally:
        b.stop()


class _Hang:
    """A classifier stuck in a forward pass (a wedged GPU, a starved CPU)."""

    model_version = "hang-1"

    def __init__(self) -> None:
        self.entered = threading.Event()

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        self.entered.set()
        threading.Event().wait(3600)
        return KeywordTestDouble().classify(texts)


def test_stop_abandons_the_batch_in_flight_without_committing(broker, topic_name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from kafka import KafkaAdminClient

    from monitor.app.broker import create_topics
    from monitor.app.daemon import Daemon

    create_topics(broker.bootstrap, [topic_name], partitions=3)
    produce(broker.bootstrap, topic_name, make_messages(50, 0))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'hang.db'}",
        kafka_bootstrap=broker.bootstrap,
        kafka_topics=[topic_name],
        kafka_group=f"g-{topic_name}",
        metrics_port=0,
    )
    clf = _Hang()
    daemon = Daemon(settings, clf)
    out: dict[str, object] = {}
    t = threading.Thread(target=lambda: out.setdefault("rc", daemon.run()), daemon=True)
    t.start()
    assert clf.entered.wait(60), "the classifier was never called"
    t0 = time.monotonic()
    daemon.stop_event.set()
    t.join(STOP_BOUND_S)
    took = time.monotonic() - t0
    print(f"\nclassifier hung: run() returned {took:.1f} s after the stop request")
    assert not t.is_alive(), "run() did not return after a stop request while the classifier hung"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        committed = admin.list_group_offsets(f"g-{topic_name}").get(f"g-{topic_name}", {})
    finally:
        admin.close()
    assert all(o.offset <= 0 for o in committed.values()), f"offsets of an abandoned batch were committed: {committed}"
    assert counts(settings.database_url)[0] == 0


def _start_demo(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {**os.environ, "FINSENT_MODEL": "test-double", "FINSENT_METRICS_PORT": "0", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "demo", "--no-dashboard", "--minutes", "240", "--db", db],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    children: list[int] = []
    end = time.monotonic() + 120
    while time.monotonic() < end and len(children) < 2:  # the broker and the daemon
        time.sleep(0.5)
        children = _children(proc.pid)
    assert len(children) >= 2, "the demo did not start its broker and daemon"
    return proc, children


def _reap(children: list[int]) -> list[int]:
    end = time.monotonic() + 20
    alive = [pid for pid in children if _alive(pid)]
    while alive and time.monotonic() < end:
        time.sleep(0.5)
        alive = [pid for pid in children if _alive(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    return alive


def test_demo_stops_after_sigint_with_its_children(tmp_path: Path) -> None:
    proc, children = _start_demo(tmp_path)
    try:
        time.sleep(3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        # A second Ctrl-C while it is stopping must not abort the clean-up.
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    alive = _reap(children)
    print(f"\ndemo stopped {took:.1f} s after SIGINT, rc {proc.returncode}; children left: {alive}")
    assert not alive, "the demo left children running"
    assert proc.returncode == 0 and "demo stopped" in out, out[-3000:]
    assert took < 30


def test_demo_killed_takes_its_children_along(tmp_path: Path) -> None:
    proc, children = _start_demo(tmp_path)
    proc.kill()
    proc.wait(10)
    alive = _reap(children)
    print(f"\ndemo SIGKILLed: children left after 20 s: {alive}")
    assert not alive, "the demo's children outlived it"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid: int) -> bool:
    try:
        st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return st != "Z"
