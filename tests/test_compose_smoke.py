"""compose.yaml's finsent services, run as local processes (no Docker).

The commands and environments of `migrate`, `monitor`, `dashboard` and `feed` are read from
compose.yaml (interpolated with its defaults) and run here, pointed at the embedded broker
and a fresh PostgreSQL database, with the keyword test double as the model and free ports
for metrics and the dashboard. Topics are made as `kafka-init` makes them (each with its
`.dlq`). Checked: the migration succeeds, the feed's script generates and sends its
messages, every one lands in the database, the monitor's own compose health check passes
(/healthz 200), /metrics counts the stored documents, the dashboard answers 200 on `/`
and its compose health check passes, and SIGTERM stops the daemon cleanly within the
service's stop_grace_period. A second test starts the monitor before its database and
broker exist: it must wait with clear log lines and a green /healthz, not crash.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.app.broker import EmbeddedBroker, create_topics, free_port
from monitor.store.schema import documents, make_engine
from tests.compose_file import duration_seconds, load, service_command, service_env

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _local(argv: list[str]) -> list[str]:
    """The container's `finsent`/`python` are this environment's."""
    if argv[0] == "finsent":
        exe = BIN / "finsent"
        return [str(exe), *argv[1:]] if exe.exists() else [sys.executable, "-m", "monitor.cli", *argv[1:]]
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    return argv


def _http(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def _wait(pred, timeout: float, what: str, logs: list[Path]) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def _count(url: str) -> int:
    eng = make_engine(url)
    try:
        with eng.connect() as c:
            return int(c.execute(select(func.count()).select_from(documents)).scalar_one())
    except Exception:
        return -1
    finally:
        eng.dispose()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    running: list[subprocess.Popen[bytes]] = []
    yield running
    for p in running:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_compose_services_run_as_configured(
    broker: EmbeddedBroker, pg_url: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    services = load()["services"]
    topic = f"n{uuid.uuid4().hex[:8]}"
    # kafka-init: each input topic with its dead-letter topic.
    create_topics(
        broker.bootstrap, [topic, f"{topic}.dlq"], partitions=int(service_env(services["kafka-init"])["PARTITIONS"])
    )
    metrics_port, dash_port = free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}"
    base["PYTHONUNBUFFERED"] = "1"
    here = {
        "FINSENT_DATABASE_URL": pg_url,
        "FINSENT_KAFKA_BOOTSTRAP": broker.bootstrap,
        "FINSENT_KAFKA_TOPICS": topic,
        "FINSENT_KAFKA_GROUP": f"g-{topic}",
        "FINSENT_MODEL": "test-double",
        "FINSENT_METRICS_PORT": str(metrics_port),
    }

    def env_of(name: str, **extra: str) -> dict[str, str]:
        env = {**base, **service_env(services[name])}
        env.update({k: v for k, v in here.items() if k in env or k in ("FINSENT_MODEL", "FINSENT_KAFKA_GROUP")})
        env.update(extra)
        return env

    def start(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("ab")
        p = subprocess.Popen(_local(argv), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        procs.append(p)
        return p

    logs = [tmp_path / f"{n}.log" for n in ("migrate", "monitor", "dashboard", "feed")]

    # migrate: a one-shot that must exit 0 (the others depend on its completion).
    mig = start("migrate", service_command(services["migrate"]), env_of("migrate"))
    assert mig.wait(60) == 0, (tmp_path / "migrate.log").read_text()
    assert "at revision" in (tmp_path / "migrate.log").read_text()

    # monitor: the daemon, and its own compose health check run verbatim.
    mon_env = env_of("monitor")
    mon = start("monitor", service_command(services["monitor"]), mon_env)
    # dashboard: same command, on a free port and loopback only.
    dash_cmd = service_command(services["dashboard"])
    dash_cmd[dash_cmd.index("--port") + 1] = str(dash_port)
    dash_cmd[dash_cmd.index("--host") + 1] = "127.0.0.1"
    dash = start("dashboard", dash_cmd, env_of("dashboard"))

    healthz = f"http://127.0.0.1:{metrics_port}/healthz"
    _wait(lambda: _http(healthz)[0] == 200, 60, "/healthz 200", logs)
    check = services["monitor"]["healthcheck"]["test"]
    assert check[0] == "CMD"
    assert subprocess.run(_local(check[1:]), env=mon_env, timeout=30).returncode == 0

    # feed: its script as compose runs it (`sh -c`), a shorter feed at a higher rate.
    feed_cmd = service_command(services["feed"])
    assert feed_cmd[:2] == ["sh", "-c"] and "/tmp/feed.jsonl" in feed_cmd[2]
    feed_cmd[2] = feed_cmd[2].replace("/tmp/feed.jsonl", str(tmp_path / "feed.jsonl"))  # the container's /tmp
    feed_env = env_of("feed", FEED_MINUTES="240", FEED_RATE="3000")
    feed = start("feed", feed_cmd, feed_env)
    assert feed.wait(90) == 0, (tmp_path / "feed.log").read_text()
    out = (tmp_path / "feed.log").read_text()
    written = int(re.search(r"wrote (\d+) messages", out).group(1))  # type: ignore[union-attr]
    sent = json.loads(out.strip().splitlines()[-1])
    assert sent["topic"] == topic and sent["sent"] == written > 100

    _wait(lambda: _count(pg_url) == written, 60, f"{written} documents in the database", logs)
    status, body = _http(healthz)
    assert status == 200 and json.loads(body)["healthy"] is True and json.loads(body)["state"] == "consuming"

    def stored_metric() -> float | None:
        status, body = _http(f"http://127.0.0.1:{metrics_port}/metrics")
        found = re.search(rb"^finsent_documents_stored_total (\S+)$", body, re.M)
        return float(found.group(1)) if status == 200 and found else None

    # The counter moves just after the database commit, so it may trail the rows briefly.
    _wait(lambda: stored_metric() == written, 15, f"finsent_documents_stored_total {written}", logs)
    assert stored_metric() == written

    # dashboard: Streamlit's health endpoint and the app page, then its compose health check.
    _wait(lambda: _http(f"http://127.0.0.1:{dash_port}/_stcore/health")[0] == 200, 60, "dashboard health", logs)
    status, page = _http(f"http://127.0.0.1:{dash_port}/")
    assert status == 200 and b"<html" in page.lower()
    dcheck = [a.replace(":8501/", f":{dash_port}/") for a in services["dashboard"]["healthcheck"]["test"][1:]]
    assert subprocess.run(_local(dcheck), env=env_of("dashboard"), timeout=30).returncode == 0

    # SIGTERM (the service's stop_signal) drains and exits 0 within the stop grace period.
    grace = duration_seconds(services["monitor"]["stop_grace_period"])
    t0 = time.monotonic()
    mon.send_signal(getattr(signal, services["monitor"]["stop_signal"]))
    assert mon.wait(grace) == 0
    assert time.monotonic() - t0 < min(grace, 20)
    assert "stopped:" in (tmp_path / "monitor.log").read_text()
    dash.send_signal(signal.SIGTERM)
    assert dash.wait(20) is not None


def test_monitor_waits_for_its_dependencies_with_clear_messages(tmp_path: Path) -> None:
    """Started before PostgreSQL and Kafka answer (compose restarts, outages), the daemon
    waits with back-off, says what it waits for, stays healthy, and still stops on SIGTERM."""
    services = load()["services"]
    metrics_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    env.update(service_env(services["monitor"]))
    env.update(
        FINSENT_DATABASE_URL=f"postgresql+psycopg://finsent:not-a-secret@127.0.0.1:{free_port()}/finsent",
        FINSENT_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
        FINSENT_MODEL="test-double",
        FINSENT_METRICS_PORT=str(metrics_port),
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "monitor.log"
    with log_path.open("ab") as log:
        mon = subprocess.Popen(
            _local(service_command(services["monitor"])), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    try:
        _wait(lambda: "not reachable" in log_path.read_text(errors="replace"), 60, "a 'not reachable' line", [log_path])
        status, body = _http(f"http://127.0.0.1:{metrics_port}/healthz")
        assert status == 200 and json.loads(body)["state"] == "waiting for database"
        text = log_path.read_text()
        assert re.search(r"database postgresql\+psycopg://\S+ not reachable \(.*\); retrying in [\d.]+s", text), text
        assert "not-a-secret" not in text
        mon.send_signal(signal.SIGTERM)
        assert mon.wait(20) == 0
    finally:
        if mon.poll() is None:
            mon.kill()
            mon.wait(10)
