"""Security: secrets never leak; the dashboard's search cannot inject SQL; webhooks are signed.

(a) Channels with distinctive secret URL tokens and signing secrets, a database password
    and a dashboard password are configured; then the code paths that log run: the
    sender in-process (caplog at DEBUG, receiver errors that echo the URL back, a
    timeout), `finsent replay --notify` and `finsent run` as subprocesses at DEBUG, and
    the CLI commands that print settings or errors. Every log line, every CLI output,
    every text/JSON/binary column of every table, every stored error and the rendered
    dashboard pages are searched for each secret.
(b) The dashboard's document search (`dashboards.queries.search_documents`) with hostile
    strings leaves the tables intact and returns exactly what a plain Python substring
    filter returns.
(c) Webhook HMAC: tests/test_alerts_integration.py already verifies every vendor's
    signature through the sender with independent code; here every webhook request the
    receiver got during (a) is also checked with `hmac` (not monitor.notify.signing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import LargeBinary, func, inspect, select
from sqlalchemy.engine import make_url

from monitor.store.schema import documents, make_engine, metadata
from tests._alerts_fixtures import Action, Receiver

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 5, 6, tzinfo=UTC)

SECRET = {
    "hook_path": "hookPATHsec4f9a2c7e1b",
    "hook_sign": "hookSIGNsec8e1d3a77",
    "slack_path": "xoxSLACKsec7c2e9b15",
    "ding_token": "dingTOKENsec6b3f1a2",
    "ding_sign": "SECdingSIGNsec2c8e4",
    "feishu_path": "feishuHOOKsec91d0c3",
    "feishu_sign": "feishuSIGNsec5a7b2",
    "db_password": "dbPASSsec7f3e1c0d",
    "dash_password": "dashPASSsec4d2a9e",
}


def _config(path: Path, base: str) -> Path:
    s = SECRET
    path.write_text(
        textwrap.dedent(
            f"""
            dashboard_url = "http://dash.example:8501"
            [alerting]
            group_wait_seconds = 0
            [[channels]]
            name = "hook"
            type = "webhook"
            url = "{base}/webhook/{s["hook_path"]}"
            secret = "{s["hook_sign"]}"
            timeout_seconds = 1
            [[channels]]
            name = "slack"
            type = "slack"
            url = "{base}/slack/services/T0/B0/{s["slack_path"]}"
            timeout_seconds = 1
            [[channels]]
            name = "ding"
            type = "dingtalk"
            url = "{base}/dingtalk/robot/send?access_token={s["ding_token"]}"
            secret = "{s["ding_sign"]}"
            timeout_seconds = 1
            [[channels]]
            name = "feishu"
            type = "feishu"
            url = "{base}/feishu/open-apis/bot/v2/hook/{s["feishu_path"]}"
            secret = "{s["feishu_sign"]}"
            timeout_seconds = 1
            """
        )
    )
    return path


def _hostile_receiver() -> Receiver:
    """A receiver whose errors echo the request path and token back (as real ones do)."""
    r = Receiver().start()
    s = SECRET
    echo = f"no route for /webhook/{s['hook_path']} (token {s['ding_token']}, url {r.base}/slack/{s['slack_path']})"
    r.push("/webhook", Action(500, echo), Action(200, {"ok": True}, delay=2.5), Action(404, echo))
    r.push("/slack", Action(500, echo), Action(400, f"invalid_token {s['slack_path']}"))
    r.push("/dingtalk", Action(200, {"errcode": 310000, "errmsg": f"sign mismatch for {s['ding_token']}"}))
    r.push("/feishu", Action(200, {"code": 19021, "msg": f"sign {s['feishu_sign']} invalid"}))
    return r


def _leaks(text: str) -> list[str]:
    return [name for name, v in SECRET.items() if v in text]


def _db_text(url: str) -> str:
    """Every value of every column of every table, as text."""
    eng = make_engine(url)
    parts: list[str] = []
    try:
        present = set(inspect(eng).get_table_names())
        with eng.connect() as c:
            for table in metadata.sorted_tables:
                if table.name not in present:
                    continue
                for row in c.execute(select(table)):
                    for col, v in zip(table.columns, row, strict=True):
                        if v is None:
                            continue
                        if isinstance(col.type, LargeBinary) or isinstance(v, bytes | memoryview):
                            parts.append(bytes(v).decode("utf-8", "replace"))
                        else:
                            parts.append(v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False))
    finally:
        eng.dispose()
    return "\n".join(parts)


def _cli(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args], env=env, capture_output=True, timeout=timeout, cwd=REPO
    )
    return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def _write_feed(path: Path) -> None:
    from pipelines.feed import Surge, generate, write

    surge = Surge("NVDA", T0 + timedelta(hours=15), 30, 3.0)
    write(path, generate(14, T0 + timedelta(hours=10), 9 * 60, 6.0, surges=[surge]))


def _dashboard_text(url: str, cfg: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from streamlit.testing.v1 import AppTest

    for k in list(os.environ):
        if k.startswith("FINSENT_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("FINSENT_DATABASE_URL", url)
    monkeypatch.setenv("FINSENT_CONFIG", str(cfg))
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=120)
    at.run()
    out: list[str] = []
    pages = sorted(p.name for p in (REPO / "dashboards" / "pages").glob("*.py"))
    for page in [None, *pages]:
        if page is not None:
            at.switch_page(f"pages/{page}").run()
        assert not at.exception, [e.value for e in at.exception]
        for kind in ("markdown", "caption", "text", "code", "json", "title", "header", "subheader", "error", "warning",
                     "info", "success", "metric", "text_input", "selectbox", "multiselect", "radio"):  # fmt: skip
            for el in getattr(at, kind, []):
                out.append(f"{getattr(el, 'label', '')} {getattr(el, 'value', '')} {getattr(el, 'options', '')}")
        for df in [*at.dataframe, *at.table]:
            out.append(df.value.to_csv())
    st.cache_resource.clear()
    return "\n".join(out)


def test_secrets_never_reach_logs_errors_database_or_dashboard(
    pg_url: str, broker: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.alerting.service import apply_signals
    from monitor.config import load_settings
    from monitor.detect.signals import Key, Signal
    from monitor.notify.sender import send_due
    from monitor.redact import install_log_redaction
    from monitor.store.migrate import upgrade

    url = make_url(pg_url).set(password=SECRET["db_password"]).render_as_string(hide_password=False)  # trust auth
    receiver = _hostile_receiver()
    cfg = _config(tmp_path / "finsent.toml", receiver.base)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    env = {**base_env, "FINSENT_CONFIG": str(cfg), "FINSENT_DATABASE_URL": url, "FINSENT_LOG_LEVEL": "DEBUG",
           "FINSENT_MODEL": "test-double", "FINSENT_DASHBOARD_PASSWORD": SECRET["dash_password"],
           "FINSENT_METRICS_PORT": "0", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    outputs: dict[str, str] = {}
    try:
        # 1. the sender in-process, logging at DEBUG through the entry point's redaction
        caplog.set_level(logging.DEBUG)
        caplog.set_level(logging.WARNING, logger="kafka")  # its DEBUG lines are wire dumps of our own messages
        install_log_redaction()
        upgrade(url)
        settings = load_settings(cfg, database_url=url)
        engine = make_engine(url)
        numbers = {"window_minutes": 15, "window_negative": 14, "window_total": 20, "share": 0.7,
                   "baseline_share": 0.2, "lift": 3.5, "p_value": 2.5e-7}  # fmt: skip
        now = datetime.now(UTC)
        sig = Signal(Key("entity", "AAPL"), now, now - timedelta(minutes=15), True, False, numbers)
        apply_signals(engine, settings, [sig], now)
        for k in range(4):  # 500 with echo, timeout, 404 with echo, ... (vendors likewise)
            send_due(engine, settings, now + timedelta(hours=k + 1))
        engine.dispose()
        # 2. replay --notify (detection, alerts, delivery) and the daemon, as subprocesses
        feed = tmp_path / "feed.csv"
        _write_feed(feed)
        outputs["replay"] = _cli(["replay", str(feed), "--notify"], env, timeout=300)
        from monitor.app.broker import create_topics
        from tests.test_ingest import make_messages, produce

        topic = f"sec{int(time.time()) % 10**6}"
        create_topics(broker.bootstrap, [topic, f"{topic}.dlq"])
        produce(broker.bootstrap, topic, make_messages(200, 20, seed=3))
        denv = {**env, "FINSENT_KAFKA_BOOTSTRAP": broker.bootstrap, "FINSENT_KAFKA_TOPICS": topic,
                "FINSENT_KAFKA_GROUP": f"g-{topic}", "FINSENT_ALERTING__SENDER_INTERVAL_SECONDS": "1"}  # fmt: skip
        log_path = tmp_path / "daemon.log"
        with log_path.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", "run"], env=denv, stdout=fh, stderr=subprocess.STDOUT
            )
            try:
                from tests.test_ingest import counts, wait_for

                wait_for(lambda: counts(url)[1] >= 20, 120, "the daemon's dead letters")
                time.sleep(3)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        outputs["daemon"] = log_path.read_text(errors="replace")
        # 3. the CLI commands that show settings or errors (in-process, to keep the suite fast;
        #    replay and run above are the fresh-process paths)
        from click.testing import CliRunner

        from monitor.cli import main as cli_main

        runner = CliRunner()
        for args in (["config"], ["config", "--json"], ["channels", "list"], ["channels", "list", "--json"],
                     ["channels", "test", "hook"], ["channels", "test", "slack"], ["channels", "test", "ding"],
                     ["stats", "--json"], ["alerts", "list", "--json"]):  # fmt: skip
            res = runner.invoke(cli_main, args, env=env, catch_exceptions=True)
            outputs[" ".join(args)] = res.output + (repr(res.exception) if res.exception else "")
        # a bad database URL with the password in it: the one-line error must not repeat it
        bad = make_url(url).set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
        outputs["stats bad db"] = _cli(["stats", "--db", bad], {**env, "FINSENT_DATABASE_URL": bad}, timeout=60)
    finally:
        receiver.stop()

    assert "dead letter" in outputs["daemon"] and "stopped:" in outputs["daemon"], outputs["daemon"][-2000:]
    assert "hook" in outputs["channels list"] and SECRET["hook_path"] not in outputs["channels list"]
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "notification" in logs
    leaks = {name: _leaks(text) for name, text in {**outputs, "caplog": logs}.items()}
    assert not any(leaks.values()), {k: v for k, v in leaks.items() if v}
    db_text = _db_text(url)
    assert "gave up" in db_text or "HTTP 500" in db_text or "500" in db_text  # errors were recorded ...
    assert not _leaks(db_text), _leaks(db_text)  # ... without the secrets
    if (REPO / "dashboards" / "app.py").exists():
        dash = _dashboard_text(url, cfg, monkeypatch)
        assert "AAPL" in dash or "NVDA" in dash, dash[:2000]
        assert not _leaks(dash), _leaks(dash)
    # (c) every webhook request was signed with the channel secret (independent HMAC)
    hooks = receiver.on("/webhook")
    assert hooks
    for r in hooks:
        signed = r.headers["x-finsent-timestamp"].encode() + b"." + r.body
        mac = hmac.new(SECRET["hook_sign"].encode(), signed, hashlib.sha256).hexdigest()
        assert r.headers["x-finsent-signature"] == f"v1={mac}"
    n_lines = sum(t.count("\n") for t in outputs.values()) + len(caplog.records)
    print(f"\nsecret scan: {len(SECRET)} secrets, {n_lines} log/CLI lines, {len(db_text):,} characters of database "
          f"content, {len(hooks)} signed webhook requests: no leak")  # fmt: skip


HOSTILE_SEARCHES = [
    "'",
    '"',
    "%",
    "_",
    "\\",
    "%_%",
    "'; DROP TABLE documents; --",
    '" OR 1=1 --',
    "' OR '1'='1",
    "\\%",
    "a_c",
    "100%",
    "); DELETE FROM documents; --",
    "*",
    "[a-z]",
]


@pytest.mark.skipif(not (REPO / "dashboards" / "queries.py").exists(), reason="dashboards/queries.py not there yet")
def test_dashboard_search_cannot_inject_sql(db_url: str) -> None:
    from dashboards.queries import DocFilter, search_documents
    from monitor.app.batch import BatchProcessor
    from monitor.classify.base import KeywordTestDouble
    from monitor.config import Settings
    from monitor.ingest.source import RawRecord
    from monitor.store.migrate import upgrade
    from monitor.store.repository import Store

    upgrade(db_url)
    engine = make_engine(db_url)
    texts = [*HOSTILE_SEARCHES, "abc", "a_c and axc", "100% sure", "50 percent", "back\\slash", "quote's", 'say "hi"',
             "plain headline", "%%%", "__init__", "DROP TABLE documents"]  # fmt: skip
    rows = [
        json.dumps({"id": f"s{i}", "text": f"story {i}: {t}", "title": f"t{i} {t[::-1]}"}).encode()
        for i, t in enumerate(texts)
    ]
    now = T0 + timedelta(days=1)
    s = Settings(database_url=db_url, model="test-double")  # type: ignore[call-arg]
    BatchProcessor(s, KeywordTestDouble(), Store(engine)).process(
        [RawRecord(v, "news", 0, i, T0) for i, v in enumerate(rows)], now
    )
    with engine.connect() as c:
        all_docs = [
            (r.id, r.text, r.title or "")
            for r in c.execute(select(documents.c.id, documents.c.text, documents.c.title))
        ]
    assert len(all_docs) == len(texts)
    for needle in HOSTILE_SEARCHES:
        got = search_documents(engine, DocFilter(start=T0 - timedelta(days=1), end=now, text=needle, limit=10_000))
        n = needle.strip().lower()
        want = {i for i, t, ti in all_docs if n in t.lower() or n in ti.lower()}
        assert set(got["id"]) == want, (needle, sorted(got["id"]), sorted(want))
        assert "documents" in inspect(engine).get_table_names()
        with engine.connect() as c:
            assert c.execute(select(func.count()).select_from(documents)).scalar_one() == len(texts)
    engine.dispose()


def test_log_redaction_keeps_tracebacks_and_redacts_them() -> None:
    """A crash logged with `log.exception` keeps its traceback (the operator needs the
    frames to debug it); the secrets in the traceback's text are masked."""
    import io

    from monitor.redact import REDACTING_FILTER, register_secrets

    register_secrets(["tb-secret-7f3a9c"])
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(REDACTING_FILTER)
    log = logging.getLogger("finsent.test.traceback")
    log.addHandler(handler)
    log.propagate = False

    def deliver_to_channel() -> None:
        raise RuntimeError("POST https://hooks.example.com/services/T000/B000/tb-secret-7f3a9c?token=abc123xyz failed")

    try:
        try:
            deliver_to_channel()
        except RuntimeError:
            log.exception("sender crashed")
    finally:
        log.removeHandler(handler)
    out = buf.getvalue()
    assert "sender crashed" in out
    assert "Traceback (most recent call last)" in out and "deliver_to_channel" in out  # the frames are kept
    assert "RuntimeError" in out
    assert "tb-secret-7f3a9c" not in out and "abc123xyz" not in out and "/services/T000" not in out
