"""The command line as users drive it: help, errors, secrets, stats, the broker and the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main


def _commands(group, prefix=()):  # type: ignore[no-untyped-def]
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", sorted(_commands(main)))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(main, [*path, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage" in r.output or "usage" in r.output


def test_bad_setting_is_one_line_nonzero(tmp_path: Path) -> None:
    env = {**os.environ, "FINSENT_METRICS_PORT": "not-a-port"}
    p = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "stats", "--db", f"sqlite:///{tmp_path}/x.db"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode != 0
    err = [ln for ln in p.stderr.strip().splitlines() if ln]
    assert len(err) == 1 and "FINSENT_METRICS_PORT" in err[0], p.stderr


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "stats", "--db", "postgresql://nobody:pw@127.0.0.1:1/none"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1
    assert "not reachable" in p.stderr and "pw@" not in p.stderr


def test_config_masks_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text(
        '[[channels]]\nname = "desk"\ntype = "dingtalk"\n'
        'url = "https://oapi.dingtalk.com/robot/send?access_token=TOPSECRETTOKEN"\nsecret = "SECabcdef123"\n'
    )
    r = CliRunner().invoke(main, ["config", "--json", "--config", str(cfg), "--db", "postgresql://u:dbsecret@h/db"])
    assert r.exit_code == 0, r.output
    assert "TOPSECRETTOKEN" not in r.output and "SECabcdef123" not in r.output and "dbsecret" not in r.output
    assert json.loads(r.output)["channels"][0]["name"] == "desk"
    r = CliRunner().invoke(main, ["channels", "list", "--config", str(cfg)])
    assert r.exit_code == 0 and "TOPSECRETTOKEN" not in r.output and "desk" in r.output


def test_stats_json_contract_keys(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/s.db"
    assert CliRunner().invoke(main, ["migrate", "--db", db]).exit_code == 0  # stats itself never migrates
    r = CliRunner().invoke(main, ["stats", "--json", "--db", db])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output[r.output.index("{") :])
    assert {"documents", "dead_letters", "alerts", "notifications"} <= set(data)
    assert data["documents"] == 0


@pytest.mark.integration
def test_broker_fixture_produces_and_consumes_in_a_group(broker, topic_name: str) -> None:  # type: ignore[no-untyped-def]
    from kafka import KafkaConsumer, KafkaProducer

    from monitor.app.broker import create_topics

    create_topics(broker.bootstrap, [topic_name], partitions=3)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(30):
        p.send(topic_name, key=str(i).encode(), value=f"m{i}".encode())
    p.flush()
    p.close()
    c = KafkaConsumer(
        topic_name,
        bootstrap_servers=broker.bootstrap,
        group_id=f"g-{topic_name}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_interval_ms=10_000,
        session_timeout_ms=10_000,
    )
    got: set[bytes] = set()
    end = time.monotonic() + 60
    while len(got) < 30 and time.monotonic() < end:
        for recs in c.poll(timeout_ms=500).values():
            got.update(r.value for r in recs)
    c.commit()
    assert len(c.assignment()) == 3
    c.close()
    assert got == {f"m{i}".encode() for i in range(30)}


@pytest.mark.integration
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_demo_brings_up_broker_feed_and_daemon(tmp_path: Path, lang: str) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {**os.environ, "FINSENT_MODEL": "test-double", "FINSENT_METRICS_PORT": "0", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "demo", "--no-dashboard", "--minutes", "240", "--db", db, "--lang", lang],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        docs = 0
        end = time.monotonic() + 120
        while time.monotonic() < end and docs < 200:
            time.sleep(2)
            r = subprocess.run(
                [sys.executable, "-m", "monitor.cli", "stats", "--json", "--db", db],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if r.returncode == 0:
                docs = json.loads(r.stdout)["documents"]
        assert docs >= 200, f"documents did not arrive (saw {docs})"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert "broker" in out and "sample feed" in out, out
    assert proc.returncode == 0, out
    if lang == "zh":  # Chinese texts, stored as such, their A-shares linked from the text
        import sqlite3

        with sqlite3.connect(tmp_path / "demo.db") as c:
            langs = dict(c.execute("SELECT lang, count(*) FROM documents GROUP BY lang").fetchall())
            linked = {r[0] for r in c.execute("SELECT DISTINCT entity FROM document_entities")}
        assert langs.get("zh", 0) >= 150, langs
        assert {"600519.SH", "300750.SZ"} <= linked, linked
        assert "600519.SH" in out


def test_demo_children_read_the_same_config_file(tmp_path: Path) -> None:
    from monitor.cli.demo import _child_env
    from monitor.config import load_settings

    cfg = tmp_path / "finsent.toml"
    cfg.write_text(
        '[alerting]\ninhibit_topic_by_entity = true\n[[channels]]\nname = "hook"\ntype = "webhook"\nurl = "http://127.0.0.1:9/x"\n'
    )
    env = _child_env(load_settings(str(cfg), database_url="sqlite:///demo.db"), "127.0.0.1:9092")
    assert env["FINSENT_CONFIG"] == str(cfg.resolve())
    assert env["FINSENT_KAFKA_BOOTSTRAP"] == "127.0.0.1:9092" and env["FINSENT_DATABASE_URL"] == "sqlite:///demo.db"
    # a child started with that environment (the daemon, the dashboard) sees the file's settings
    r = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "config", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["alerting"]["inhibit_topic_by_entity"] is True and [c["name"] for c in got["channels"]] == ["hook"]
    assert got["kafka_bootstrap"] == "127.0.0.1:9092" and got["database_url"] == "sqlite:///demo.db"


def test_help_lists_the_offline_jobs_without_importing_them() -> None:
    """`finsent --help` names every job, but loads none of them (training pulls in torch)."""
    code = (
        "import sys; from click.testing import CliRunner; from monitor.cli import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
        "assert all(f'  {n} ' in r.output for n in ('train', 'evaluate', 'replay', 'bench', 'feed')), r.output; "
        "loaded = sorted(m for m in ('torch', 'pipelines.train', 'pipelines.bench_classify') if m in sys.modules); "
        "assert not loaded, loaded"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
