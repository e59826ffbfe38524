"""The Streamlit dashboard under `streamlit.testing.v1.AppTest`, on SQLite and PostgreSQL.

One replayed feed (a planted NVDA surge that fires an entity alert, plus a few hostile
documents: HTML, markdown, bidi overrides, SQL, LIKE wildcards) is seeded once per backend
per session; every page is rendered against it, against empty and missing databases, and
with filter input meant to break SQL or markdown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select

from monitor.classify.base import KeywordTestDouble
from monitor.config import Settings, load_settings
from monitor.store.schema import documents, make_engine
from tests.conftest import drop_pg_database, make_pg_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboards" / "app.py")
PAGES = ("views/overview.py", "views/companies.py", "views/alerts.py", "views/explorer.py", "views/model.py")
T0 = datetime(2024, 5, 6, tzinfo=UTC)
TIMEOUT = 120

HOSTILE = [
    "Zebra Widgets says 100% of its_units were recalled",
    'O\'Brien said "the quote" about Zebra Widgets; DROP TABLE documents; --',
    "Back\\slash C:\\temp\\zebra story about Zebra Widgets",
    "<script>alert('x')</script> **bold** [click](javascript:alert(1)) :red[Zebra Widgets] $x$",
    "Zebra Widgets \u202eevil\u202c reversed \u2066isolate\u2069 text",
]
SEARCHES = [
    "100%",
    "%",
    "_",
    "its_units",
    "\\",
    "C:\\temp",
    "'",
    '"',
    "'; DROP TABLE documents; --",
    "<script>",
    "[click]",
    "\u202e",
    "zebra widgets",
    "no such text anywhere",
]


def _feed(path: Path) -> list[dict[str, Any]]:
    from pipelines.feed import Surge, generate, write

    # Late in the stream, so its alert is still firing when the stream ends (a detector
    # resolves a burst like this one within about an hour and a half).
    surge = Surge("NVDA", T0 + timedelta(hours=18), 30, 3.0)
    msgs = list(generate(14, T0 + timedelta(hours=10), 9 * 60, 6.0, surges=[surge]))
    for i, text in enumerate(HOSTILE):
        msgs.append(
            {
                "id": f"hostile-{i}",
                "text": text,
                "published_at": (T0 + timedelta(hours=12, minutes=i)).isoformat().replace("+00:00", "Z"),
                "source": "Hostile <b>Source</b>" if i == 3 else "Test Wire",
                "kind": "news",
                "url": "javascript:alert(1)" if i == 3 else f"https://news.example.com/h/{i}",
                "tickers": ["ZBRA"],
                "planted": None,
            }
        )
    write(path, msgs)
    return msgs


@pytest.fixture(scope="session")
def feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    path = tmp_path_factory.mktemp("feed") / "feed.csv"
    return path, _feed(path)


def _seed(url: str, path: Path) -> dict[str, Any]:
    from pipelines.replay import replay

    s = Settings(database_url=url, model="test-double")  # type: ignore[call-arg]
    res = replay(path, s, classifier=KeywordTestDouble())
    assert res.fired and res.fired[0][:2] == ("entity", "NVDA"), res.fired
    eng = make_engine(url)
    with eng.connect() as c:
        texts = [(r[0] or "", r[1] or "") for r in c.execute(select(documents.c.text, documents.c.title))]
        from monitor.store.schema import alerts

        alert_id = c.execute(select(alerts.c.id).where(alerts.c.key_value == "NVDA")).scalar_one()
    eng.dispose()
    return {"url": url, "documents": res.documents, "texts": texts, "alert_id": alert_id}


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory, feed: Any) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('dash-sqlite') / 'finsent.db'}"
    return _seed(url, feed[0])


@pytest.fixture(scope="session")
def seeded_pg(pg_admin_url: str, feed: Any) -> Iterator[dict[str, Any]]:
    url, name = make_pg_database(pg_admin_url)
    try:
        yield _seed(url, feed[0])
    finally:
        _dispose_cached_engines()
        drop_pg_database(pg_admin_url, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.getfixturevalue("seeded_sqlite" if request.param == "sqlite" else "seeded_pg")


def _dispose_cached_engines() -> None:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    """A model folder with what the Model page reads (no weights needed)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "finsent.json").write_text(
        json.dumps(
            {
                "training": {
                    "model_version": "abc123def456",
                    "valid_metrics": {"topic": {"accuracy": 0.9, "macro_f1": 0.88}},
                    "label_distribution": {"sentiment": {"negative": 1442, "neutral": 6178, "positive": 1923}},
                }
            }
        )
    )
    (folder / "sentiment_report.json").write_text(
        json.dumps(
            {
                "n": 100,
                "accuracy": 0.8,
                "macro_f1": 0.75,
                "ece": 0.03,
                "confusion_matrix": [[20, 5, 0], [3, 40, 7], [1, 4, 20]],
            }
        )
    )
    (folder / "MODEL_CARD.md").write_text("# test card\n<script>x</script>\n")
    return folder


def _app(monkeypatch: pytest.MonkeyPatch, url: str, **env: str) -> Any:
    from streamlit.testing.v1 import AppTest

    for k in list(os.environ):
        if k.startswith("FINSENT_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("FINSENT_DATABASE_URL", url)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    _dispose_cached_engines()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    return at


def _ok(at: Any) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _all_data(at: Any) -> Any:
    at.run()
    at.selectbox(key="range").set_value("All data")
    return at.run()


def _markdown_text(at: Any) -> str:
    return "\n".join(str(m.value) for m in at.markdown) + "\n".join(str(m.value) for m in at.caption)


# --- every page on a seeded database -----------------------------------------------------


def test_pages_render_seeded(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch, fake_model: Path) -> None:
    at = _all_data(_app(monkeypatch, seeded["url"], FINSENT_MODEL=str(fake_model)))
    _ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Documents"] == f"{seeded['documents']:,}"
    assert metrics["Firing alerts"] == "1"
    assert metrics["Dead letters"] == "0"
    assert any(t.value == "Overview" for t in at.title)
    movers = at.dataframe[0].value
    assert {"kind", "key", "window_share", "baseline_share"} <= set(movers.columns)

    at.switch_page("views/companies.py").run()
    _ok(at)
    companies = at.dataframe[0].value
    assert "NVDA" in set(companies["key"]) and "ZBRA" in set(companies["key"])
    # A document may name several companies; an unlisted symbol's first sighting is not
    # linked yet (bounded keys), hence one document per company may be missing.
    assert companies["total"].sum() + len(companies) >= seeded["documents"]
    docs = at.dataframe[1].value
    assert len(docs) == min(
        500, int(companies.loc[companies["key"] == at.selectbox(key="co_symbol").value, "total"].iloc[0])
    )

    at.switch_page("views/alerts.py").run()
    _ok(at)
    table = at.dataframe[0].value
    assert list(table["key"]) == ["NVDA"] and list(table["state"]) == ["firing"]
    assert at.selectbox(key="al_pick").value == seeded["alert_id"]

    at.switch_page("views/explorer.py").run()
    _ok(at)
    assert len(at.dataframe[0].value) == min(1000, seeded["documents"])
    assert any(b.label == "Download CSV" for b in at.get("download_button"))

    at.switch_page("views/model.py").run()
    _ok(at)
    assert {m.label: m.value for m in at.metric}["Model version"] == "abc123def456"
    evaluation = at.dataframe[0].value
    assert set(evaluation["task"]) == {"topic", "sentiment"}
    assert any("training set's label distribution" in c.value for c in at.caption)
    assert "<script>" not in _markdown_text(at)


def test_alert_deep_link_shows_numbers_and_evidence(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, seeded["url"])
    at.run()
    at.query_params["alert"] = seeded["alert_id"]
    at.switch_page("views/alerts.py").run()
    _ok(at)
    assert at.selectbox(key="al_pick").value == seeded["alert_id"]
    frames = [d.value for d in at.dataframe]
    evidence = next(f for f in frames if "kafka_offset" in f.columns)
    assert len(evidence) >= 5
    assert set(evidence["kafka_topic"]) == {"replay"}
    assert evidence["kafka_offset"].notna().all() and evidence["source"].notna().all()
    numbers = next(f for f in frames if list(f.columns) == ["number", "value"])
    assert {"negative", "total"} <= set(numbers["number"]) or len(numbers) > 0
    # An unknown id is a warning, not a crash; a hostile id is shown as inert text.
    at.query_params["alert"] = "'; DROP TABLE alerts; -- <script>"
    at.run()
    _ok(at)
    assert any("no alert with id" in w.value for w in at.warning)


def test_acknowledge_silence_and_expire(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.alerting import queries, silences

    at = _app(monkeypatch, seeded["url"])
    at.run()
    next(t for t in at.text_input if t.label.startswith("Your name")).set_value("tester")
    at.query_params["alert"] = seeded["alert_id"]
    at.switch_page("views/alerts.py").run()
    _ok(at)
    eng = make_engine(seeded["url"])
    try:
        if not queries.get_alert(eng, seeded["alert_id"])["acknowledged_by"]:
            at.button(key="al_ack").click().run()
            _ok(at)
            assert any("Acknowledged by tester" in s.value for s in at.success)
        assert queries.get_alert(eng, seeded["alert_id"])["acknowledged_by"] == "tester"

        # A malformed extra matcher is refused with its reason.
        at.text_input(key="al_sil_extra").set_value("colour=red")
        at.button(key="al_sil_go").click().run()
        assert not at.exception
        assert any("unknown label" in e.value for e in at.error)

        before = {s.id for s in silences.list_silences(eng, datetime.now(UTC))}
        at.text_input(key="al_sil_extra").set_value("")
        at.text_input(key="al_sil_comment").set_value("looking into it <b>now</b>")
        at.button(key="al_sil_go").click().run()
        _ok(at)
        new = [s for s in silences.list_silences(eng, datetime.now(UTC)) if s.id not in before]
        assert len(new) == 1 and new[0].created_by == "tester"
        assert {str(m) for m in new[0].matchers} == {"key_kind=entity", "key_value=NVDA"}

        at.selectbox(key="al_sil_pick").set_value(new[0].id)
        at.button(key="al_sil_expire").click().run()
        _ok(at)
        assert new[0].id not in {s.id for s in silences.list_silences(eng, datetime.now(UTC))}
    finally:
        eng.dispose()


# --- hostile input -------------------------------------------------------------------------


@pytest.mark.parametrize("needle", SEARCHES)
def test_explorer_text_search_is_literal(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch, needle: str) -> None:
    at = _all_data(_app(monkeypatch, seeded["url"]))
    at.switch_page("views/explorer.py").run()
    at.number_input(key="ex_limit").set_value(50_000)
    at.text_input(key="ex_text").set_value(needle)
    at.button(key="ex_go").click().run()
    _ok(at)
    n = needle.lower()
    expected = sum(1 for text, title in seeded["texts"] if n in text.lower() or n in title.lower())
    got = len(at.dataframe[0].value) if at.dataframe else 0
    assert got == expected, (needle, got, expected)
    if expected == 0:
        assert any("No documents match" in i.value for i in at.info)
    eng = make_engine(seeded["url"])
    try:
        assert "documents" in inspect(eng).get_table_names()
        with eng.connect() as c:
            assert c.execute(select(func.count()).select_from(documents)).scalar_one() == seeded["documents"]
    finally:
        eng.dispose()


def test_hostile_text_is_inert(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _all_data(_app(monkeypatch, seeded["url"]))
    at.switch_page("views/explorer.py").run()
    at.text_input(key="ex_text").set_value("zebra")
    at.button(key="ex_go").click().run()
    _ok(at)
    df = at.dataframe[0].value
    assert len(df) == len(HOSTILE)
    joined = " ".join(df["text"])
    assert "\u202e" not in joined and "<U+202E>" in joined and "<U+2066>" in joined
    assert df.loc[df["id"] == "hostile-3", "url"].isna().all()  # javascript: links are dropped
    assert "<script>" not in _markdown_text(at) and "<b>" not in _markdown_text(at)
    # Same documents through the company drill-down.
    at.switch_page("views/companies.py").run()
    at.selectbox(key="co_symbol").set_value("ZBRA")
    at.run()
    _ok(at)
    # ZBRA (Zebra Technologies) is in the shipped universe, a known key from its first
    # sighting on: every hostile document is linked to it.
    assert len(at.dataframe[1].value) == len(HOSTILE)


@pytest.mark.parametrize("key_text", ["%", "_", "\\", "'; DROP TABLE alerts; --", "nvd", "NVDA"])
def test_alert_filters(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch, key_text: str) -> None:
    at = _all_data(_app(monkeypatch, seeded["url"]))
    at.switch_page("views/alerts.py").run()
    at.text_input(key="al_key").set_value(key_text)
    at.multiselect(key="al_state").set_value(["firing", "resolved"])
    at.multiselect(key="al_kind").set_value(["entity"])
    at.run()
    _ok(at)
    if "nvda" in key_text.lower() or key_text.lower() == "nvd":
        assert list(at.dataframe[0].value["key"]) == ["NVDA"]
    else:
        assert any("No alerts match" in i.value for i in at.info)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York"])
@pytest.mark.parametrize("resolution", ["minute", "5 min", "hour", "day"])
def test_overview_resolutions_and_zones(
    seeded_sqlite: dict[str, Any], monkeypatch: pytest.MonkeyPatch, zone: str, resolution: str
) -> None:
    at = _all_data(_app(monkeypatch, seeded_sqlite["url"]))
    at.selectbox(key="tz").set_value(zone)
    at.selectbox(key="ov_resolution").set_value(resolution)
    at.run()
    _ok(at)
    assert {m.label: m.value for m in at.metric}["Documents"] == f"{seeded_sqlite['documents']:,}"
    at.switch_page("views/explorer.py").run()
    _ok(at)
    assert str(at.dataframe[0].value["published_at"].dt.tz) == zone


@pytest.mark.parametrize("choice", ["Last hour", "Last 6 hours", "Last 7 days", "Custom"])
def test_time_ranges(seeded_sqlite: dict[str, Any], monkeypatch: pytest.MonkeyPatch, choice: str) -> None:
    at = _app(monkeypatch, seeded_sqlite["url"])
    at.run()
    at.selectbox(key="range").set_value(choice)
    at.run()
    for page in PAGES:
        at.switch_page(page).run()
        _ok(at)


def test_wall_clock_anchor_shows_empty_state(seeded_sqlite: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, seeded_sqlite["url"])
    at.run()
    at.checkbox(key="anchor_now").check()
    at.run()
    _ok(at)
    assert {m.label: m.value for m in at.metric}["Documents"] == "0"
    assert any("No documents in this time range" in i.value for i in at.info)


# --- empty and missing databases -------------------------------------------------------------


@pytest.fixture(
    params=["sqlite-missing", "sqlite-migrated", "sqlite-unmigrated", "postgresql-migrated", "postgresql-unmigrated"]
)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    from monitor.store.migrate import upgrade

    kind = request.param
    if kind.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / ('missing.db' if kind == 'sqlite-missing' else 'empty.db')}"
        if kind == "sqlite-migrated":
            upgrade(url)
        elif kind == "sqlite-unmigrated":
            make_engine(url).connect().close()
        yield url
        return
    admin = request.getfixturevalue("pg_admin_url")
    url, name = make_pg_database(admin)
    if kind == "postgresql-migrated":
        upgrade(url)
    try:
        yield url
    finally:
        _dispose_cached_engines()
        drop_pg_database(admin, name)


def test_empty_database_renders_every_page(empty_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _app(monkeypatch, empty_db, FINSENT_MODEL=str(tmp_path / "no-model-here"))
    at.run()
    _ok(at)
    for page in PAGES:
        at.switch_page(page).run()
        _ok(at)
        assert at.info, f"{page}: an empty database needs an explanation"
    if empty_db.endswith("/missing.db"):
        assert not Path(empty_db.removeprefix("sqlite:///")).exists()  # read-only: no file is created


def test_model_page_without_training_distribution(
    seeded_sqlite: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "finsent.json").write_text(json.dumps({"training": {"model_version": "v0"}}))
    at = _all_data(_app(monkeypatch, seeded_sqlite["url"], FINSENT_MODEL=str(folder)))
    at.switch_page("views/model.py").run()
    _ok(at)
    assert any("No evaluation metrics yet" in i.value for i in at.info)
    assert any("first week of stored data" in c.value for c in at.caption)


def test_test_double_model_is_named(seeded_sqlite: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, seeded_sqlite["url"], FINSENT_MODEL="test-double")
    at.run()
    at.switch_page("views/model.py").run()
    assert not at.exception
    assert any("keyword test double" in w.value for w in at.warning)


# --- access and configuration --------------------------------------------------------------


def test_password_gate(seeded_sqlite: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, seeded_sqlite["url"], FINSENT_DASHBOARD_PASSWORD="s3cret-pw")
    at.run()
    assert not at.exception
    assert not at.metric and [t.value for t in at.title] == ["finsent"]
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error) and not at.metric
    at.text_input[0].input("s3cret-pw")
    at.button[0].click().run()
    _ok(at)
    assert any(t.value == "Overview" for t in at.title)


def test_bad_configuration_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, "mysql://nope/x")
    at.run()
    assert not at.exception
    assert any("cannot read its configuration" in e.value and "sqlite or postgresql" in e.value for e in at.error)


def test_serve_passes_effective_settings(tmp_path: Path) -> None:
    from monitor.app import dashboard as dashboard_cmd

    toml = tmp_path / "f.toml"
    toml.write_text(
        'database_url = "sqlite:///from-file.db"\n[detect]\nwindow_minutes = 30\n'
        '[[entities]]\nsymbol = "aapl"\naliases = ["Apple"]\n'
        '[[channels]]\nname = "desk"\ntype = "webhook"\nurl = "https://example.com/h"\n'
    )
    s = load_settings(toml, database_url="sqlite:///flag.db", dashboard_password="pw")
    env = dashboard_cmd.settings_env(s, {"PATH": "/bin", "FINSENT_DATABASE_URL": "sqlite:///stale.db"})
    assert env["FINSENT_CONFIG"] == str(toml.resolve()) and env["PATH"] == "/bin"
    assert env["FINSENT_DATABASE_URL"] == "sqlite:///flag.db"
    again = _load_with_env(env)
    assert again.model_dump() == s.model_dump()
    cmd = dashboard_cmd.command("127.0.0.1", 8765)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("dashboards/app.py")
    for flag, value in [
        ("--server.address", "127.0.0.1"),
        ("--server.port", "8765"),
        ("--server.headless", "true"),
        ("--browser.gatherUsageStats", "false"),
    ]:
        assert cmd[cmd.index(flag) + 1] == value


def _load_with_env(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- queries (no Streamlit) ----------------------------------------------------------------


def test_sql_buckets_match_pandas(seeded: dict[str, Any]) -> None:
    import pandas as pd

    from dashboards import queries as q
    from monitor.store.schema import minute_counts

    eng = make_engine(seeded["url"])
    try:
        lo, hi = q.data_bounds(eng)
        assert lo is not None and hi is not None
        end = hi + timedelta(minutes=1)
        with eng.connect() as c:
            raw = pd.DataFrame(
                c.execute(
                    select(minute_counts.c.minute, minute_counts.c.total).where(
                        minute_counts.c.key_kind == "all", minute_counts.c.minute >= lo
                    )
                ).all(),
                columns=["minute", "total"],
            )
        raw["minute"] = pd.to_datetime(raw["minute"], utc=True)
        for step, offset in [(300, 0), (3600, 0), (3600, 19800), (86400, -14400)]:
            got = q.series(eng, "all", lo, end, step, offset_seconds=offset)
            shifted = raw["minute"] + pd.Timedelta(seconds=offset)
            ref = raw.groupby(shifted.dt.floor(f"{step}s") - pd.Timedelta(seconds=offset))["total"].sum()
            assert got.set_index("bucket")["total"].to_dict() == ref.to_dict(), (step, offset)
            assert got["total"].sum() == q.kpis(eng, lo, end)["documents"] == seeded["documents"]
    finally:
        eng.dispose()


def test_csv_export_neutralises_formulas() -> None:
    import pandas as pd

    from dashboards.ui import csv_bytes, safe_md, safe_text

    out = csv_bytes(pd.DataFrame({"text": ["=HYPERLINK(1)", "+1", "plain", "@x"], "n": [1, 2, 3, 4]})).decode()
    assert "'=HYPERLINK(1)" in out and "'+1" in out and "'@x" in out and "\nplain," in out
    assert safe_text("a\u202eb\x00c") == "a<U+202E>bc"
    assert "\\*\\*" in safe_md("**x**") and "\\:red\\[" in safe_md(":red[x]")


def test_cli_dashboard_serves_and_stops(seeded_sqlite: dict[str, Any], tmp_path: Path) -> None:
    """`finsent dashboard --host --port --db` answers health checks and stops on SIGTERM."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    log = (tmp_path / "dash.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "dashboard", "--host", "127.0.0.1", "--port", str(port),
         "--db", seeded_sqlite["url"]],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (log.seek(0), log.read())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "no health answer within 90 s"
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/Alerts?alert=x", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    assert rc in (0, -signal.SIGTERM), rc


def test_oidc_guard_when_auth_is_configured(seeded_sqlite: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, seeded_sqlite["url"])
    at.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x"}
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert not at.metric and any(b.label == "Sign in" for b in at.button)
    at.user = {"is_logged_in": True, "email": "analyst@example.com"}
    at.run()
    _ok(at)
    assert any(t.value == "Overview" for t in at.title)


# --- Companies: ranking, search, formats ---------------------------------------------------

R0 = datetime(2024, 3, 1, tzinfo=UTC)  # the stream's first minute
R_START = R0 + timedelta(days=10)  # the range: one day, after ten days of baseline data
R_END = R_START + timedelta(days=1)
# symbol: (range total, range negative, baseline total, baseline negative)
RANK_ROWS = {
    "AAA": (20, 10, 100, 10),  # 10 % -> 50 %: lift 5.0x; norm 10 a day: volume 2.0x
    "BBB": (10, 5, 40, 0),  # a zero baseline: "from 0 of 40"
    "CCC": (10, 2, 100, 20),  # no lift, but an entity alert is firing: first
    "DDD": (2, 2, 50, 5),  # 10x on two items: after every company with enough items
    "EEE": (6, 1, 0, 0),  # new: no baseline, volume "new"
}


@pytest.fixture(params=["sqlite", "postgresql"])
def ranking_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    from monitor.store.migrate import upgrade
    from monitor.store.schema import alerts, count_rollups, minute_counts

    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rank.db'}"
    else:
        admin = request.getfixturevalue("pg_admin_url")
        url, name = make_pg_database(admin)
    upgrade(url)
    zero = {"neutral": 0, "positive": 0, "novel_total": 0, "novel_negative": 0}
    mc = [{"key_kind": "all", "key_value": "*", "minute": R0, "total": 1, "negative": 0, **zero}]
    rollups = []
    for sym, (tot, neg, btot, bneg) in RANK_ROWS.items():
        mc.append({"key_kind": "entity", "key_value": sym, "minute": R_START + timedelta(hours=3), "total": tot,
                   "negative": neg, **zero})  # fmt: skip
        if btot and sym == "AAA":  # part of a baseline lives on in the roll-ups only
            rollups.append({"grain": "day", "key_kind": "entity", "key_value": sym, "bucket": R0 + timedelta(days=2),
                            "total": 40, "negative": 4, **zero})  # fmt: skip
            btot, bneg = btot - 40, bneg - 4
        if btot:
            mc.append({"key_kind": "entity", "key_value": sym, "minute": R0 + timedelta(days=5), "total": btot,
                       "negative": bneg, **zero})  # fmt: skip
    # Outside every window: counts nothing.
    mc.append({"key_kind": "entity", "key_value": "AAA", "minute": R_END + timedelta(hours=1), "total": 99,
               "negative": 99, **zero})  # fmt: skip

    def alert(key: str, state: str) -> dict[str, Any]:
        return {"id": f"a-{key}-{state}", "fingerprint": f"f-{key}", "rule": "negative_surge", "key_kind": "entity",
                "key_value": key, "severity": "warning", "state": state, "started_at": R_START,
                "fired_at": R_START, "updated_at": R_START, "numbers": {}}  # fmt: skip

    eng = make_engine(url)
    with eng.begin() as c:
        c.execute(minute_counts.insert(), mc)
        c.execute(count_rollups.insert(), rollups)
        c.execute(alerts.insert(), [alert("CCC", "firing"), alert("AAA", "resolved")])
    eng.dispose()
    try:
        yield url
    finally:
        if name is not None:
            _dispose_cached_engines()
            drop_pg_database(request.getfixturevalue("pg_admin_url"), name)


def test_company_ranking_lift_norm_and_order(ranking_db: str) -> None:
    from dashboards import fmt
    from dashboards import queries as q

    eng = make_engine(ranking_db)
    try:
        rank = q.company_ranking(eng, R_START, R_END, timedelta(days=30))
    finally:
        eng.dispose()
    # Firing first, then the biggest (tempered) lift among companies with enough items;
    # the two-item company last although its raw lift is the largest.
    assert list(rank["key"]) == ["CCC", "BBB", "AAA", "EEE", "DDD"]
    r = rank.set_index("key")
    for sym, (tot, neg, btot, bneg) in RANK_ROWS.items():
        assert (r.loc[sym, "total"], r.loc[sym, "negative"]) == (tot, neg), sym
        assert (r.loc[sym, "baseline_total"], r.loc[sym, "baseline_negative"]) == (btot, bneg), sym
    assert r.loc["CCC", "firing"] == 1 and r.loc["AAA", "firing"] == 0  # a resolved alert is not firing
    assert r.loc["AAA", "lift"] == pytest.approx(5.0)
    # The baseline is clipped to the data: ten days before the range, not thirty.
    assert r.loc["AAA", "norm"] == pytest.approx(10.0) and r.loc["AAA", "volume_ratio"] == pytest.approx(2.0)
    assert r.loc["BBB", "norm"] == pytest.approx(4.0)
    assert pd_isna(r.loc["BBB", "lift"]) and pd_isna(r.loc["EEE", "baseline_share"])

    table = fmt.ranking_table(rank, {"AAA": "Alpha Corp"}.get).set_index("key")
    assert table.loc["AAA", "name"] == "Alpha Corp"
    assert table.loc["AAA", "lift"] == "5.0x" and table.loc["AAA", "volume"] == "2.0x"
    assert table.loc["BBB", "lift"] == "from 0 of 40" and table.loc["BBB", "volume"] == "2.5x"
    assert table.loc["EEE", "lift"] == "no baseline" and table.loc["EEE", "volume"] == "new"
    assert table.loc["CCC", "alert"] == "firing" and table.loc["AAA", "alert"] == ""
    assert table.loc["AAA", "negative_share"] == pytest.approx(50.0)  # points, shown with SHARE_FORMAT
    assert str(table["total"].dtype) == "int64"

    by_volume = q.sort_ranking(rank, "volume against norm")
    assert list(by_volume["key"][:3]) == ["EEE", "BBB", "AAA"]  # new first, then 2.5x, 2.0x
    assert list(q.sort_ranking(rank, "symbol")["key"]) == sorted(RANK_ROWS)
    assert list(q.sort_ranking(rank, "items")["key"][:1]) == ["AAA"]

    # A range with no counts at all: the firing company is still listed, first.
    eng = make_engine(ranking_db)
    try:
        later = q.company_ranking(eng, R_END + timedelta(days=60), R_END + timedelta(days=61), timedelta(days=7))
    finally:
        eng.dispose()
    assert list(later["key"]) == ["CCC"] and later["total"].tolist() == [0] and later["last_seen"].isna().all()


def test_company_ranking_many_companies_one_query(tmp_path: Path) -> None:
    """Thousands of companies cost one grouped query, not one per company."""
    import time

    from sqlalchemy import event

    from dashboards import queries as q
    from monitor.store.migrate import upgrade
    from monitor.store.schema import minute_counts

    url = f"sqlite:///{tmp_path / 'many.db'}"
    upgrade(url)
    zero = {"neutral": 0, "positive": 0, "novel_total": 0, "novel_negative": 0}
    rows = [{"key_kind": "all", "key_value": "*", "minute": R0, "total": 1, "negative": 0, **zero}]
    for i in range(5000):
        for day in (3, 10):
            rows.append({"key_kind": "entity", "key_value": f"S{i:05d}", "minute": R0 + timedelta(days=day, minutes=i % 1400),
                         "total": 1 + i % 7, "negative": i % 3, **zero})  # fmt: skip
    eng = make_engine(url)
    with eng.begin() as c:
        c.execute(minute_counts.insert(), rows)
    statements: list[str] = []
    event.listen(eng, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        t0 = time.perf_counter()
        rank = q.company_ranking(eng, R_START, R_END, timedelta(days=30))
        took = time.perf_counter() - t0
    finally:
        eng.dispose()
    assert len(rank) == 5000 and (rank["total"] > 0).all()
    assert len(statements) <= 4, statements  # counts, firing alerts, the data's bounds
    assert took < 5.0, took


def pd_isna(x: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(x))


def test_readable_formats() -> None:
    import pandas as pd

    from dashboards import fmt

    assert fmt.pct(0.125) == "12.5 %" and fmt.pct(0.0) == "0.0 %" and fmt.pct(None) == "-"
    assert fmt.pct(float("nan")) == "-"
    assert fmt.SHARE_FORMAT % 12.5 == "12.5 %" and fmt.SHARE_FORMAT % 0 == "0.0 %"
    assert fmt.count(1234.0) == "1,234"
    assert fmt.lift(0.5, 10, 100) == "5.0x" and fmt.lift(0.5, 0, 40) == "from 0 of 40"
    assert fmt.lift(0.5, 0, 0) == "no baseline" and fmt.lift(0.9, 1, 1000) == "900x"
    assert fmt.volume(32, 10.0) == "3.2x" and fmt.volume(3, 0.0) == "new" and fmt.volume(0, float("nan")) == "-"
    pts = fmt.as_points(pd.DataFrame({"s": [0.125, None], "n": [1, 2]}), "s", "missing")
    assert pts["s"].iloc[0] == pytest.approx(12.5) and pts["n"].tolist() == [1, 2]


def test_directory_search() -> None:
    from dashboards.directory import Directory

    d = Directory.build([("AAPL", "Apple", ("iPhone maker",)), ("ACME", "Acme Widgets", ())])
    assert len(d) > 10_000  # the shipped universe, with the watchlist merged in
    assert d.search("tesla")[0] == "TSLA"
    assert d.search("TSLA")[0] == "TSLA"
    assert d.search("tsla")[0] == "TSLA"
    assert d.search("JPMorgan")[0] == "JPM" and d.search("jp morgan")[0] == "JPM"
    assert d.search("iphone maker") == ["AAPL"]
    assert d.search("FB")[0] == "META" and d.search("pcln")[0] == "BKNG"  # a former ticker finds the company
    assert d.search("acme widg") == ["ACME"] and d.name("ACME") == "Acme Widgets"
    assert d.name("TSLA") == "Tesla" and d.name("NOT-LISTED") == "NOT-LISTED"
    # A symbol in the data but in no list is found by its symbol, before listed companies.
    assert d.search("zqx9", present={"ZQX9"}) == ["ZQX9"]
    assert d.search("nvid", present={"NVDA"})[0] == "NVDA"
    assert d.search("") == [] and d.search("   ") == []
    assert d.search("%") == [] or all("%" in s or "%" in d.name(s) for s in d.search("%"))
    assert len(d.search("a", limit=7)) == 7
    # The universe off: the watchlist alone.
    small = Directory.build([("AAPL", "Apple", ())], universe_enabled=False)
    assert len(small) == 1 and small.search("tesla") == []


def test_companies_page_ranks_and_searches(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _all_data(_app(monkeypatch, seeded["url"]))
    at.switch_page("views/companies.py").run()
    _ok(at)
    table = at.dataframe[0].value
    assert {"key", "name", "alert", "lift", "volume", "negative_share"} <= set(table.columns)
    assert table["key"].iloc[0] == "NVDA" and table["alert"].iloc[0] == "firing"  # the firing alert heads it
    assert table.loc[table["key"] == "NVDA", "name"].iloc[0] == "Nvidia"
    assert table["negative_share"].max() <= 100  # percentage points
    assert at.selectbox(key="co_symbol").value == "NVDA"
    docs = at.dataframe[1].value
    assert {"company_sentiment", "sentiment"} <= set(docs.columns)

    for text in ("nvidia", "NVDA", "nvd"):
        at.text_input(key="co_find").set_value(text)
        at.run()
        _ok(at)
        assert at.dataframe[0].value["key"].iloc[0] == "NVDA", text
        assert at.selectbox(key="co_symbol").value == "NVDA"

    # In the universe but not in the data: found, and said to have no items.
    at.text_input(key="co_find").set_value("JPMorgan")
    at.run()
    _ok(at)
    assert at.selectbox(key="co_symbol").value == "JPM"
    at.text_input(key="co_find").set_value("costco")
    at.run()
    _ok(at)
    assert at.selectbox(key="co_symbol").value == "COST"
    assert any("no items in range" in i.value for i in at.info)

    at.text_input(key="co_find").set_value("no company is called this")
    at.run()
    _ok(at)
    assert any("No company matches" in i.value for i in at.info)

    at.text_input(key="co_find").set_value("")
    at.selectbox(key="co_sort").set_value("symbol")
    at.run()
    _ok(at)
    keys = list(at.dataframe[0].value["key"])
    assert keys == sorted(keys)


def test_company_documents_use_the_company_sentiment(seeded: dict[str, Any]) -> None:
    """The drill-down's sentiment filter and column read the sentiment toward the company;
    a row without one (stored before it existed) falls back to the document's."""
    from sqlalchemy import update

    from dashboards import queries as q
    from monitor.store.schema import document_entities

    eng = make_engine(seeded["url"])
    try:
        lo, hi = q.data_bounds(eng)
        assert lo is not None and hi is not None
        end = hi + timedelta(minutes=1)
        docs = q.company_documents(eng, "NVDA", lo, end, (), 100_000)
        neg = q.company_documents(eng, "NVDA", lo, end, ("negative",), 100_000)
        assert len(docs) and set(neg["company_sentiment"]) == {"negative"}
        assert len(neg) == (docs["company_sentiment"] == "negative").sum()
        # Counts and documents agree: minute counts hold the company's sentiment too.
        totals = q.key_totals(eng, "entity", lo, end).set_index("key")
        assert totals.loc["NVDA", "total"] == len(docs) and totals.loc["NVDA", "negative"] == len(neg)
        differ = docs[docs["company_sentiment"] != docs["sentiment"]]
        if not differ.empty:  # the keyword double reads the sentence about the company
            assert set(differ["id"]) <= set(docs["id"])
        # A NULL company sentiment: the document's applies.
        one = docs["id"].iloc[0]
        with eng.begin() as c:
            old = c.execute(
                select(document_entities.c.sentiment, document_entities.c.sentiment_score).where(
                    document_entities.c.document_id == one, document_entities.c.entity == "NVDA"
                )
            ).one()
            c.execute(
                update(document_entities)
                .where(document_entities.c.document_id == one, document_entities.c.entity == "NVDA")
                .values(sentiment=None, sentiment_score=None)
            )
        try:
            again = q.company_documents(eng, "NVDA", lo, end, (), 100_000).set_index("id")
            assert again.loc[one, "company_sentiment"] == again.loc[one, "sentiment"]
            assert again.loc[one, "company_score"] == again.loc[one, "sentiment_score"]
        finally:
            with eng.begin() as c:
                c.execute(
                    update(document_entities)
                    .where(document_entities.c.document_id == one, document_entities.c.entity == "NVDA")
                    .values(sentiment=old[0], sentiment_score=old[1])
                )
    finally:
        eng.dispose()


def test_model_page_under_auto_shows_both_models(
    seeded_sqlite: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`model = "auto"` (the default) is the shipped pair: the English model's page, and the
    multilingual model's version and Chinese figures when it is installed."""
    from models.multitask import MULTILINGUAL_MODEL_DIR

    at = _all_data(_app(monkeypatch, seeded_sqlite["url"], FINSENT_MODEL="auto"))
    at.switch_page("views/model.py").run()
    _ok(at)
    assert not any("No model folder" in i.value for i in at.info)
    labels = {m.label for m in at.metric}
    assert "Model version" in labels
    if (MULTILINGUAL_MODEL_DIR / "finsent.json").is_file():
        assert "Multilingual model version" in labels and "Chinese sentiment macro-F1 (validation)" in labels
