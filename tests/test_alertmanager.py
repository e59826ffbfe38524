"""The `alertmanager` channel: unit tests of its body, and a real Alertmanager.

The integration test starts Debian's `prometheus-alertmanager` on a free loopback port
with a temporary config whose receiver is a local HTTP server, drives finsent's alert
stages and outbox sender on a real SQLite database, and checks in Alertmanager's own API
and in what it notifies: the alert firing with its labels, kept alive by re-posts,
resolved after; a silence set in Alertmanager suppresses a second alert there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from monitor.alerting.service import apply_signals
from monitor.app.broker import free_port
from monitor.config import AlertSettings, Channel, DetectSettings, Settings
from monitor.detect.signals import Key, Signal
from monitor.notify.channels import alertmanager as am
from monitor.notify.repost import firing_bodies, repost_firing
from monitor.notify.sender import send_due
from monitor.store.schema import make_engine
from tests._alerts_fixtures import Receiver

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
NUMBERS = {
    "window_minutes": 15,
    "window_negative": 14,
    "window_total": 20,
    "share": 0.7,
    "baseline_share": 0.2,
    "lift": 3.5,
    "p_value": 2.5e-7,
}


def _view(**kw: Any) -> dict[str, Any]:
    view = {
        "id": "a1",
        "state": "firing",
        "severity": "critical",
        "key": {"kind": "entity", "value": "TSLA"},
        "subject": "company TSLA",
        "topic": "Stock Movement",
        "summary": "Negative surge in company TSLA: 14/20",
        "fired_at": "2026-03-02T13:58:00+00:00",
        "started_at": "2026-03-02T13:57:00+00:00",
        "resolved_at": None,
        "window": {"minutes": 15},
        "current": {"negative": 14, "total": 20, "share": 0.7},
        "baseline": {"share": 0.2},
        "lift": 3.5,
        "p_value": 2.5e-7,
        "evidence": [
            {"headline": "Tesla recalls 1M cars", "source": "wire", "url": "https://news.example/1"},
            {"headline": "Tesla shares slide", "source": "blog", "url": None},
        ],
        "dashboard_url": "http://dash.example:8501/Alerts?alert=a1",
    }
    view.update(kw)
    return view


def test_body_labels_annotations_and_times() -> None:
    body = am.render({"kind": "firing", "alerts": [_view()]}, "title", "the **markdown** text")
    [sent] = am.to_send(body, NOW)
    assert sent["labels"] == {
        "alertname": "FinsentNegativeSurge",
        "kind": "entity",
        "key": "TSLA",
        "topic": "Stock Movement",
        "severity": "critical",
    }
    ann = sent["annotations"]
    assert ann["summary"] == "Negative surge in company TSLA: 14/20"
    assert ann["numbers"] == "14 of 20 negative (70%) in 15 min, baseline 20%, lift 3.5x, p=2.5e-07"
    assert ann["dashboard"] == "http://dash.example:8501/Alerts?alert=a1"
    assert ann["evidence"].splitlines() == [
        "- Tesla recalls 1M cars (wire) https://news.example/1",
        "- Tesla shares slide (blog)",
    ]
    assert ann["description"] == "the **markdown** text"
    assert sent["startsAt"] == "2026-03-02T13:58:00+00:00"
    assert sent["endsAt"] == (NOW + am.FIRING_HOLD).isoformat()
    assert sent["generatorURL"] == "http://dash.example:8501/Alerts?alert=a1"
    assert not any(k.startswith("x_finsent") for k in sent)


def test_resolved_alert_ends_when_it_resolved_and_topic_alert_has_no_topic_label() -> None:
    view = _view(
        state="resolved",
        resolved_at="2026-03-02T14:20:00+00:00",
        topic=None,
        key={"kind": "topic", "value": "Earnings"},
    )
    [sent] = am.to_send(am.render({"kind": "resolved", "alerts": [view]}, "t", "x"), NOW)
    assert sent["endsAt"] == "2026-03-02T14:20:00+00:00"
    assert sent["labels"] == {
        "alertname": "FinsentNegativeSurge",
        "kind": "topic",
        "key": "Earnings",
        "severity": "critical",
    }


def test_later_posts_keep_the_labels_of_the_first_post() -> None:
    """Alertmanager identifies an alert by its labels: a resolution whose severity changed
    since the first post must still carry the first post's labels, or it resolves a new
    alert and leaves the first one listed as active."""
    fired = _view(severity="warning")
    first = {"a1": am.render({"kind": "firing", "alerts": [fired]}, "t", "x")["alerts"][0]["labels"]}
    resolved = _view(severity="critical", state="resolved", resolved_at="2026-03-02T14:20:00+00:00")
    other = _view(id="a2", key={"kind": "entity", "value": "NVDA"})
    message = {"kind": "resolved", "alerts": [resolved, other]}
    body = am.render(message, "t", "x")
    assert body["alerts"][0]["labels"]["severity"] == "critical"
    pinned = am.pin_labels(body, message, first)
    [sent, untouched] = am.to_send(pinned, NOW)
    assert sent["labels"]["severity"] == "warning" and sent["labels"]["key"] == "TSLA"
    assert sent["endsAt"] == "2026-03-02T14:20:00+00:00"
    assert untouched["labels"] == am.labels_for(other)  # no first post known: its own labels
    assert body["alerts"][0]["labels"]["severity"] == "critical"  # the stored body is not changed


def test_endsat_is_fixed_at_send_time_not_render_time() -> None:
    body = am.render({"kind": "firing", "alerts": [_view()]}, "t", "x")
    later = NOW + timedelta(minutes=7)
    assert am.to_send(body, later)[0]["endsAt"] == (later + am.FIRING_HOLD).isoformat()


def test_prepare_posts_to_api_v2_with_optional_bearer() -> None:
    body = am.render({"kind": "firing", "alerts": [_view()]}, "t", "x")
    p = am.prepare("http://am.example:9093/", None, body, NOW)
    assert p.url == "http://am.example:9093/api/v2/alerts"
    assert isinstance(json.loads(p.content), list) and "Authorization" not in p.headers
    p = am.prepare("http://am.example:9093/api/v2/alerts", "tok", body, NOW)
    assert p.url == "http://am.example:9093/api/v2/alerts" and p.headers["Authorization"] == "Bearer tok"


def test_channel_test_message_is_a_short_lived_alert() -> None:
    [sent] = am.to_send(
        am.render({"kind": "test", "channel": "am", "created_at": NOW.isoformat(), "alerts": []}, "t", "x"), NOW
    )
    assert sent["labels"] == {"alertname": "FinsentChannelTest", "channel": "am"}
    assert sent["endsAt"] == (NOW + timedelta(minutes=1)).isoformat()


# --- a real Alertmanager ----------------------------------------------------------------


def _am_binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


class RealAlertmanager:
    def __init__(self, binary: str, workdir: Path, hook_url: str) -> None:
        self.port = free_port()
        cfg = workdir / "alertmanager.yml"
        cfg.write_text(
            "route:\n"
            "  receiver: hook\n"
            "  group_by: [alertname, key]\n"
            "  group_wait: 1s\n"
            "  group_interval: 1s\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            "  - name: hook\n"
            "    webhook_configs:\n"
            f"      - url: {hook_url}\n"
            "        send_resolved: true\n"
        )
        self.log = (workdir / "alertmanager.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no gossip: a single, private instance
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Alertmanager did not start: {(workdir / 'alertmanager.log').read_text()[-2000:]}")
            time.sleep(0.2)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.base}/api/v2/alerts", timeout=5).json())

    def silence(self, name: str, value: str, start: datetime, end: datetime) -> str:
        resp = httpx.post(
            f"{self.base}/api/v2/silences",
            json={
                "matchers": [{"name": name, "value": value, "isRegex": False, "isEqual": True}],
                "startsAt": start.isoformat(),
                "endsAt": end.isoformat(),
                "createdBy": "test",
                "comment": "known issue",
            },
            timeout=5,
        )
        resp.raise_for_status()
        return str(resp.json()["silenceID"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def real_am(tmp_path: Path, hook: Receiver) -> Iterator[RealAlertmanager]:
    binary = _am_binary()
    if binary is None:
        pytest.skip(
            "Alertmanager is not installed (Debian: apt-get install prometheus-alertmanager; .ci/run installs it)"
        )
    server = RealAlertmanager(binary, tmp_path, f"{hook.base}/am-hook")
    yield server
    server.stop()


def _spike(key: Key, at: datetime) -> Signal:
    return Signal(key, at, at - timedelta(minutes=15), True, False, dict(NUMBERS), severity="critical")


def _calm(key: Key, at: datetime) -> Signal:
    return Signal(key, at, at - timedelta(minutes=15), False, True, {"window_negative": 1, "window_total": 20})


def _notified(hook: Receiver) -> list[tuple[str, str, str]]:
    """(webhook status, alert status, key label) for every alert Alertmanager notified."""
    out = []
    for r in hook.on("/am-hook"):
        payload = r.json()
        for a in payload["alerts"]:
            out.append((payload["status"], a["status"], a["labels"].get("key", "")))
    return out


def _wait(pred: Any, what: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.integration
def test_real_alertmanager_firing_repost_silence_resolved(
    real_am: RealAlertmanager, hook: Receiver, tmp_path: Path
) -> None:
    from monitor.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'am.db'}"
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(
        channels=(Channel(name="am", type="alertmanager", url=SecretStr(real_am.base), timeout_seconds=5),),
        alerting=AlertSettings(
            group_wait_seconds=0, group_interval_seconds=0, repeat_interval_seconds=3600, alertmanager_repost_seconds=30
        ),
        detect=DetectSettings(resolve_minutes=0),  # type: ignore[call-arg]
        dashboard_url="http://dash.example:8501",
    )
    aapl, tsla = Key("entity", "AAPL"), Key("entity", "TSLA")
    wall = datetime.now(UTC).replace(microsecond=0)
    t0 = wall - timedelta(minutes=5)

    # 1. AAPL fires: Alertmanager lists it with finsent's labels and notifies its receiver.
    apply_signals(engine, settings, [_spike(aapl, t0)], t0)
    assert send_due(engine, settings, wall).sent == 1
    [listed] = real_am.alerts()
    assert listed["labels"] == {
        "alertname": "FinsentNegativeSurge",
        "kind": "entity",
        "key": "AAPL",
        "severity": "critical",
    }
    assert listed["status"]["state"] == "active"
    assert listed["annotations"]["numbers"].startswith("14 of 20 negative (70%)")
    assert listed["annotations"]["dashboard"].startswith("http://dash.example:8501/Alerts?alert=")
    assert listed["annotations"]["summary"]
    assert datetime.fromisoformat(listed["startsAt"].replace("Z", "+00:00")) == t0
    first_end = datetime.fromisoformat(listed["endsAt"].replace("Z", "+00:00"))
    assert first_end >= wall + am.FIRING_HOLD - timedelta(seconds=5)
    _wait(lambda: ("firing", "firing", "AAPL") in _notified(hook), "Alertmanager to notify AAPL firing")

    # 2. Re-posted while firing: a fresh endsAt; not again within the re-post interval.
    later = wall + timedelta(seconds=40)
    res = repost_firing(engine, settings, later)
    assert res["am"].ok, res
    [listed] = real_am.alerts()
    assert datetime.fromisoformat(listed["endsAt"].replace("Z", "+00:00")) > first_end
    assert repost_firing(engine, settings, later + timedelta(seconds=5)) == {}

    # 3. A silence set in Alertmanager: TSLA reaches it, is suppressed there, never notified.
    silence_id = real_am.silence("key", "TSLA", wall - timedelta(minutes=10), wall + timedelta(hours=1))
    t1 = t0 + timedelta(minutes=1)
    apply_signals(engine, settings, [_spike(aapl, t1), _spike(tsla, t1)], t1)
    assert send_due(engine, settings, wall).sent == 1
    by_key = {a["labels"]["key"]: a for a in real_am.alerts()}
    assert set(by_key) == {"AAPL", "TSLA"}
    assert by_key["TSLA"]["status"]["state"] == "suppressed"
    assert by_key["TSLA"]["status"]["silencedBy"] == [silence_id]
    assert by_key["AAPL"]["status"]["state"] == "active"

    # 4. AAPL resolves: endsAt is its resolution time; Alertmanager stops listing it and
    #    notifies the resolution. TSLA stays, and only TSLA is re-posted from now on.
    t2 = t0 + timedelta(minutes=2)
    apply_signals(engine, settings, [_calm(aapl, t2), _spike(tsla, t2)], t2)
    assert send_due(engine, settings, wall).sent == 1
    _wait(lambda: {a["labels"]["key"] for a in real_am.alerts()} == {"TSLA"}, "AAPL to leave the active list")
    _wait(lambda: ("resolved", "resolved", "AAPL") in _notified(hook), "Alertmanager to notify AAPL resolved")
    assert [e["labels"]["key"] for e in firing_bodies(engine, "am", timedelta(days=1), wall)] == ["TSLA"]
    time.sleep(2.5)  # more than Alertmanager's group wait and interval: TSLA would have been sent by now
    assert all(key != "TSLA" for _status, _a, key in _notified(hook)), _notified(hook)

    # 5. `finsent channels test am` reaches the same Alertmanager.
    from monitor.notify.delivery import send_test

    assert send_test(settings, "am").ok
    assert "FinsentChannelTest" in {a["labels"]["alertname"] for a in real_am.alerts()}
    engine.dispose()


def test_scheduler_registers_the_repost_job_only_with_an_alertmanager_channel() -> None:
    from types import SimpleNamespace

    from monitor.app.scheduler import register_jobs

    class Recorder:
        def __init__(self) -> None:
            self.jobs: list[tuple[str, float | None]] = []

        def add_job(self, fn: Any, trigger: Any, **kw: Any) -> str:
            self.jobs.append((kw["id"], kw.get("seconds")))
            return str(kw["id"])

    hook_only = Settings(channels=(Channel(name="h", type="webhook", url=SecretStr("http://x.example/")),))
    with_am = Settings(
        channels=(Channel(name="am", type="alertmanager", url=SecretStr("http://am.example:9093")),),
        alerting=AlertSettings(alertmanager_repost_seconds=45),
    )
    for settings, expected in ((hook_only, None), (with_am, 45.0)):
        rec = Recorder()
        register_jobs(rec, SimpleNamespace(settings=settings))  # type: ignore[arg-type]
        got = dict(rec.jobs).get("finsent-alertmanager-repost", None)
        assert got == expected, rec.jobs


@pytest.mark.integration
def test_replay_with_a_planted_surge_posts_to_a_real_alertmanager(real_am: RealAlertmanager, tmp_path: Path) -> None:
    """`finsent replay --notify` with an alertmanager channel: the surge still firing at the
    end of the stream is listed by Alertmanager with finsent's labels; the one that resolved
    within the stream was delivered as firing, then resolved, and is not listed."""
    import os
    import sys

    from sqlalchemy import select

    from monitor.store.schema import notifications
    from pipelines.feed import Surge, generate, write

    t0 = datetime(2024, 5, 6, 10, 0, tzinfo=UTC)
    feed = tmp_path / "feed.csv"
    minutes = 9 * 60
    write(
        feed,
        generate(
            14,
            t0,
            minutes,
            6.0,
            surges=[
                Surge("NVDA", t0 + timedelta(hours=4), 30, 3.0),
                Surge("TSLA", t0 + timedelta(minutes=minutes - 25), 25, 4.0),
            ],
        ),
    )
    cfg = tmp_path / "finsent.toml"
    # Horizons up to an hour, so the first surge's alert resolves well inside the 9-hour stream.
    cfg.write_text(
        f'[detect]\nextra_windows_minutes = [60]\n\n[[channels]]\nname = "am"\ntype = "alertmanager"\nurl = "{real_am.base}"\n'
    )
    db = f"sqlite:///{tmp_path / 'replay.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    r = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "replay", str(feed), "--notify", "--model", "test-double", "--json"],
        env={**env, "FINSENT_CONFIG": str(cfg), "FINSENT_DATABASE_URL": db},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    fired = {f["value"] for f in out["fired"]}
    assert {"NVDA", "TSLA"} <= fired, out["fired"]

    listed = {a["labels"]["key"]: a for a in real_am.alerts() if a["labels"].get("alertname") == "FinsentNegativeSurge"}
    # NVDA resolved within the stream: its resolution (under the labels of its first post,
    # whatever its severity became) ended it in Alertmanager; TSLA still fires.
    assert sorted(listed) == ["TSLA"], sorted(listed)
    tsla = listed["TSLA"]
    assert tsla["labels"]["kind"] == "entity" and tsla["labels"]["severity"]
    assert tsla["status"]["state"] == "active"
    assert tsla["annotations"]["summary"] and tsla["annotations"]["numbers"]
    assert datetime.fromisoformat(tsla["startsAt"].replace("Z", "+00:00")) > t0 + timedelta(minutes=minutes - 30)

    engine = make_engine(db)
    with engine.connect() as c:
        rows = c.execute(
            select(notifications.c.kind, notifications.c.status, notifications.c.payload).where(
                notifications.c.channel == "am"
            )
        ).all()
    engine.dispose()
    nvda = [(k, s) for k, s, p in rows if any(a["key"]["value"] == "NVDA" for a in p["message"]["alerts"])]
    assert ("firing", "sent") in nvda and ("resolved", "sent") in nvda, nvda
