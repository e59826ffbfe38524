# ruff: noqa: F811  (fixtures imported from tests/_alerts_fixtures.py are re-bound as arguments)
"""Alerts to chat end to end: real database (SQLite and PostgreSQL), real HTTP receiver.

Signatures are checked with independent implementations of each vendor's documented
algorithm (hmac/hashlib/base64 here, never monitor.notify.signing).
"""

from __future__ import annotations

import base64
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

import pytest
from sqlalchemy import select, text

from monitor.alerting.queries import acknowledge, list_alerts
from monitor.alerting.service import apply_signals, digest
from monitor.alerting.silences import add_silence, expire_silence, list_silences
from monitor.detect.signals import Key, Signal
from monitor.notify.sender import IN_FLIGHT, send_due
from monitor.store.schema import document_entities, documents, minute_counts, notification_attempts, notifications
from tests._alerts_fixtures import (  # noqa: F401  (fixtures)
    SECRETS,
    Action,
    Recorded,
    db_url,
    engine,
    make_settings,
    receiver,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]
AAPL = Key("entity", "AAPL")
DASH = "http://dash.example:8501"


def spike(key: Key, at: datetime, **kw) -> Signal:
    numbers = {
        "window_minutes": 15,
        "window_negative": 14,
        "window_total": 20,
        "share": 0.7,
        "baseline_negative": 120,
        "baseline_total": 600,
        "baseline_share": 0.2,
        "lift": 3.5,
        "p_value": 2.5e-7,
        "alpha": 0.001,
        "corrected_alpha": 0.0001,
    }
    return Signal(key, at, at - timedelta(minutes=15), True, False, numbers, severity=kw.get("severity", "warning"))


def calm(key: Key, at: datetime) -> Signal:
    return Signal(key, at, at - timedelta(minutes=15), False, True, {"window_negative": 1, "window_total": 20})


def seed_documents(engine, symbol: str, at: datetime, n: int = 7) -> list[str]:
    """n negative documents in the window, one neutral, one near-duplicate; returns the
    headlines ordered most negative first."""
    rows, ents, heads = [], [], []
    for i in range(n):
        score = 0.99 - i * 0.05
        h = f"{symbol} headline {i} score {score:.2f}"
        heads.append(h)
        rows.append(
            dict(
                id=f"{symbol}-{i}",
                text=h,
                title=h,
                source=f"wire{i}",
                url=f"https://news.example/{symbol}/{i}",
                published_at=at - timedelta(minutes=10 - i),
                ingested_at=at,
                topic="Earnings",
                sentiment="negative",
                sentiment_score=score,
                duplicate_of=None,
            )
        )
    rows.append(
        {
            **rows[0],
            "id": f"{symbol}-dup",
            "title": "DUPLICATE",
            "text": "DUPLICATE",
            "sentiment_score": 0.999,
            "duplicate_of": f"{symbol}-0",
        }
    )
    rows.append(
        {
            **rows[0],
            "id": f"{symbol}-neu",
            "title": "NEUTRAL",
            "text": "NEUTRAL",
            "sentiment": "neutral",
            "sentiment_score": 0.999,
        }
    )
    for r in rows:
        ents.append(dict(document_id=r["id"], entity=symbol, published_at=r["published_at"]))
    with engine.begin() as c:
        c.execute(documents.insert(), rows)
        c.execute(document_entities.insert(), ents)
    return heads


def rows(engine, table=notifications):
    with engine.connect() as c:
        return [dict(r) for r in c.execute(select(table).order_by(table.c.id)).mappings()]


# --- independent verification ------------------------------------------------------------


def verify_signature(rec: Recorded) -> None:
    if rec.path.startswith("/webhook"):
        ts = rec.headers["x-finsent-timestamp"].encode()
        mac = hmac.new(SECRETS["webhook_secret"].encode(), ts + b"." + rec.body, hashlib.sha256).hexdigest()
        assert rec.headers["x-finsent-signature"] == f"v1={mac}"
        assert abs(int(rec.headers["x-finsent-timestamp"]) - time.time()) < 300
    elif rec.path.startswith("/feishu"):
        body = rec.json()
        ts = body["timestamp"]
        key = f"{ts}\n{SECRETS['feishu_secret']}".encode()
        assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        assert abs(int(ts) - time.time()) < 300
    elif rec.path.startswith("/dingtalk"):
        ts = rec.query["timestamp"][0]
        sec = SECRETS["dingtalk_secret"]
        want = base64.b64encode(hmac.new(sec.encode(), f"{ts}\n{sec}".encode(), hashlib.sha256).digest()).decode()
        assert rec.query["sign"][0] == want
        assert rec.query["access_token"] == [SECRETS["dingtalk_token"]]
        assert abs(int(ts) / 1000 - time.time()) < 300
    assert rec.headers["x-finsent-notification-id"]


def text_of(rec: Recorded) -> str:
    b = rec.json()
    if rec.path.startswith("/webhook"):
        return b["title"] + "\n" + b["text"]
    if rec.path.startswith("/slack"):
        return "\n".join(
            blk.get("text", {}).get("text", "") for blk in b["blocks"] if blk["type"] in ("header", "section")
        ) + json.dumps(b["blocks"])
    if rec.path.startswith("/teams"):
        card = b["attachments"][0]["content"]
        return "\n".join(x["text"] for x in card["body"]) + json.dumps(card.get("actions", []))
    if rec.path.startswith("/feishu"):
        card = b["card"]
        return card["header"]["title"]["content"] + "\n" + json.dumps(card["elements"], ensure_ascii=False)
    if rec.path.startswith("/dingtalk"):
        return b["markdown"]["title"] + "\n" + b["markdown"]["text"]
    raise AssertionError(rec.path)


def check_vendor_shape(rec: Recorded) -> None:
    b = rec.json()
    if rec.path.startswith("/webhook"):
        assert b["version"] == "1" and b["notification_id"] == rec.headers["x-finsent-notification-id"]
        assert b["alerts"][0]["key"] == {"kind": "entity", "value": "AAPL"}
    elif rec.path.startswith("/slack"):
        assert b["blocks"][0]["type"] == "header" and b["text"]
    elif rec.path.startswith("/teams"):
        assert b["type"] == "message"
        assert b["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert b["attachments"][0]["content"]["type"] == "AdaptiveCard"
    elif rec.path.startswith("/feishu"):
        assert b["msg_type"] == "interactive" and "card" in b
    elif rec.path.startswith("/dingtalk"):
        assert b["msgtype"] == "markdown"


VENDOR_PATHS = ("/webhook", "/slack", "/teams", "/feishu", "/dingtalk")


# --- tests ---------------------------------------------------------------------------------


def test_firing_and_resolved_message_per_channel_with_valid_signatures(engine, receiver):
    s = make_settings(receiver.base)
    heads = seed_documents(engine, "AAPL", T0)
    res = apply_signals(engine, s, [spike(AAPL, T0)], T0)
    assert [k for k, _ in res.transitions] == ["fired"] and len(res.enqueued) == 5
    alert_id = res.transitions[0][1]
    stats = send_due(engine, s, T0)
    assert stats.sent == 5 and stats.failed == 0
    for path in VENDOR_PATHS:
        (rec,) = receiver.on(path)
        verify_signature(rec)
        check_vendor_shape(rec)
        t = text_of(rec)
        assert "AAPL" in t and "Firing" in t and "FIRING" in t
        assert alert_id in t and f"{DASH}/Alerts?alert={alert_id}" in t
        assert "70.0%" in t and "20.0%" in t and "14 of 20" in t and "2.5e-07" in t  # current vs baseline, p
        assert "15 min" in t
        # the 5 most negative novel headlines, most negative first; never the duplicate or neutral one
        found = [h for h in heads if h in t]
        assert found == heads[:5], (path, found)
        assert "DUPLICATE" not in t and "NEUTRAL" not in t
        assert "wire0" in t and "https://news.example/AAPL/0" in t

    # calm -> resolved message on every channel (after group_interval)
    t1 = T0 + timedelta(minutes=20)
    res = apply_signals(engine, s, [calm(AAPL, t1)], t1)
    assert [k for k, _ in res.transitions] == ["resolved"] and len(res.enqueued) == 5
    assert send_due(engine, s, t1).sent == 5
    for path in VENDOR_PATHS:
        first, second = receiver.on(path)
        verify_signature(second)
        t = text_of(second)
        assert "Resolved" in t and "RESOLVED" in t and alert_id in t
        assert first.headers["x-finsent-notification-id"] != second.headers["x-finsent-notification-id"]
    assert {r["status"] for r in rows(engine)} == {"sent"}
    assert all(a["ok"] and a["status_code"] in (200, 202) for a in rows(engine, notification_attempts))
    (listed,) = list_alerts(engine)
    assert (
        listed["id"] == alert_id
        and listed["state"] == "resolved"
        and listed["key"] == {"kind": "entity", "value": "AAPL"}
    )
    assert listed["negative"] == 14 and listed["baseline_share"] == 0.2


def test_replay_of_the_same_signals_sends_nothing_the_second_time(engine, receiver):
    s = make_settings(receiver.base, channels=("hook", "slack"))
    stream = [
        (T0, [spike(AAPL, T0)]),
        (T0 + timedelta(minutes=1), [spike(AAPL, T0 + timedelta(minutes=1))]),
        (T0 + timedelta(minutes=30), [calm(AAPL, T0 + timedelta(minutes=30))]),
    ]
    for now, sigs in stream:
        apply_signals(engine, s, sigs, now)
        send_due(engine, s, now)
    before = len(receiver.requests)
    n_rows, n_alerts = len(rows(engine)), len(list_alerts(engine, include_unfired=True))
    assert before == 4  # firing + resolved, two channels
    for now, sigs in stream:  # replay the whole stream
        res = apply_signals(engine, s, sigs, now)
        assert res.changes == [] and res.enqueued == []
        assert send_due(engine, s, now).due == 0
    assert len(receiver.requests) == before
    assert len(rows(engine)) == n_rows and len(list_alerts(engine, include_unfired=True)) == n_alerts


def test_replay_without_notify_records_suppressed_rows_and_sends_nothing(engine, receiver):
    s = make_settings(receiver.base, channels=("hook",))
    apply_signals(engine, s, [spike(AAPL, T0)], T0, notify=False)
    (r,) = rows(engine)
    assert r["status"] == "suppressed" and r["payload"]["body"]["alerts"][0]["key"]["value"] == "AAPL"
    assert send_due(engine, s, T0 + timedelta(hours=1)).due == 0
    assert receiver.requests == []


def _tick_until_done(engine, s, now, max_ticks=20):
    """Advance an injected clock to each row's next attempt and send."""
    for _ in range(max_ticks):
        pending = [r for r in rows(engine) if r["status"] == "pending"]
        if not pending:
            return now
        now = max(now, min(r["next_attempt_at"] for r in pending))
        send_due(engine, s, now)
    raise AssertionError("did not finish")


def test_receiver_errors_timeouts_and_429_then_recovery(engine, receiver):
    s = make_settings(receiver.base, channels=("hook",))
    receiver.push(
        "/webhook",
        Action(500, {"error": "boom"}),
        Action(503, "unavailable"),
        Action(200, {"ok": True}, delay=2.5),  # longer than the 1 s channel timeout
        Action(429, "slow down", headers={"Retry-After": "42"}),
        Action(200, {"ok": True}),
    )
    apply_signals(engine, s, [spike(AAPL, T0)], T0)
    now = T0
    send_due(engine, s, now)
    waits = []
    for _ in range(4):
        (r,) = rows(engine)
        assert r["status"] == "pending"
        waits.append((r["next_attempt_at"] - now).total_seconds())
        now = r["next_attempt_at"]
        assert send_due(engine, s, now - timedelta(seconds=1)).due == 0  # not before it is due
        send_due(engine, s, now)
    (r,) = rows(engine)
    assert r["status"] == "sent" and r["attempts"] == 5
    att = rows(engine, notification_attempts)
    assert [a["status_code"] for a in att] == [500, 503, None, 429, 200]
    assert [a["ok"] for a in att] == [False, False, False, False, True]
    assert all(a["retryable"] for a in att[:4]) and "timed out" in att[2]["error"]
    assert waits[3] == 42  # Retry-After honoured exactly
    assert 10 <= waits[0] <= 20 and 20 <= waits[1] <= 30 and 40 <= waits[2] <= 50  # exp back-off + jitter
    ids = [q.headers["x-finsent-notification-id"] for q in receiver.on("/webhook")]
    assert len(set(ids)) == 1 and [q.status for q in receiver.on("/webhook")][-1] == 200


def test_other_4xx_fails_at_once_and_retryable_errors_stop_at_max_attempts(engine, receiver):
    s = make_settings(receiver.base, channels=("hook", "feishu"), max_attempts=3)
    receiver.push("/webhook", Action(400, "bad payload"))
    receiver.push("/feishu", *[Action(200, {"code": 11232, "msg": "frequency limited"})] * 3)
    apply_signals(engine, s, [spike(AAPL, T0)], T0)
    _tick_until_done(engine, s, T0)
    by = {r["channel"]: r for r in rows(engine)}
    assert by["hook"]["status"] == "failed" and by["hook"]["attempts"] == 1 and "HTTP 400" in by["hook"]["last_error"]
    assert by["feishu"]["status"] == "failed" and by["feishu"]["attempts"] == 3
    assert "gave up after 3 attempts" in by["feishu"]["last_error"] and "11232" in by["feishu"]["last_error"]
    assert len(receiver.on("/webhook")) == 1 and len(receiver.on("/feishu")) == 3


SENDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    from monitor.config import load_settings
    from monitor.store.schema import make_engine
    from monitor.notify.sender import send_due
    settings = load_settings(sys.argv[1], database_url=sys.argv[2])
    send_due(make_engine(sys.argv[2]), settings, datetime.fromisoformat(sys.argv[3]))
    print("finished", flush=True)
    """
)


def test_outage_then_sender_killed_mid_flight_then_restart_delivers_each_notification_once(
    db_url, engine, receiver, tmp_path
):
    """Receiver fails (500s, a timeout), the sender process is SIGKILLed while a request is
    in flight, a new sender starts, the receiver recovers: every notification reaches the
    receiver, and a receiver that drops repeated notification ids accepts each once."""
    s = make_settings(receiver.base, channels=("hook",))
    keys = [Key("entity", k) for k in ("AAPL", "MSFT", "TSLA")]
    apply_signals(engine, s, [spike(k, T0) for k in keys], T0)
    assert len(rows(engine)) == 3
    # Outage: every first attempt fails (two 500s and a timeout).
    receiver.push("/webhook", Action(500, "down"), Action(500, "down"), Action(200, {"ok": True}, delay=2.5))
    st = send_due(engine, s, T0)
    assert st.retrying == 3 and st.sent == 0
    # Then the receiver holds the next request; the sender process is killed meanwhile.
    receiver.got_request.clear()
    receiver.push("/webhook", Action(200, {"ok": True}, delay=15), Action(503, "still warming up"))
    hook = s.channels[0]
    cfg = tmp_path / "finsent.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            dashboard_url = "{DASH}"
            [alerting]
            group_wait_seconds = 0
            [[channels]]
            name = "hook"
            type = "webhook"
            url = "{hook.url.get_secret_value()}"
            secret = "{hook.secret.get_secret_value()}"
            timeout_seconds = 30
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    env["PYTHONPATH"] = str(REPO)
    t1 = T0 + timedelta(hours=1)
    proc = subprocess.Popen(
        [sys.executable, "-c", SENDER_SCRIPT, str(cfg), db_url, t1.isoformat()],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert receiver.got_request.wait(60), proc.stderr.read().decode() if proc.poll() is not None else "no request"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL and b"finished" not in proc.stdout.read()

    state = rows(engine)
    inflight = [r for r in state if r["attempts"] == 2]
    assert len(inflight) == 1 and all(r["status"] == "pending" for r in state)
    last = rows(engine, notification_attempts)[-1]
    assert last["error"] == IN_FLIGHT and last["status_code"] is None

    # Restarted sender: the claimed row waits for its lease (timeout 30 s + 30 s); the
    # others go now (one meets a 503 and backs off), then everything is delivered.
    st = send_due(engine, s, t1 + timedelta(seconds=5))
    assert st.sent == 1 and st.retrying == 1
    end = _tick_until_done(engine, s, t1 + timedelta(seconds=5))
    assert end >= t1 + timedelta(seconds=60)  # the in-flight row only after its lease
    assert {r["status"] for r in rows(engine)} == {"sent"}

    got = receiver.on("/webhook")
    want = {r["dedup_key"] for r in rows(engine)}
    assert len(want) == 3 and {q.headers["x-finsent-notification-id"] for q in got} == want
    # A receiver that keeps the first successful request per id and drops repeats:
    accepted: dict[str, Recorded] = {}
    for q in got:
        if 200 <= q.status < 300:
            accepted.setdefault(q.headers["x-finsent-notification-id"], q)
    assert set(accepted) == want
    # Ids processed twice can only be the one in flight when the sender died and the one
    # whose request timed out (an unknown outcome, so it is retried): the two windows.
    by_id = {r["id"]: r["dedup_key"] for r in rows(engine)}
    timed_out = {
        by_id[a["notification_id"]] for a in rows(engine, notification_attempts) if "timed out" in (a["error"] or "")
    }
    assert len(timed_out) == 1
    ok_ids = [q.headers["x-finsent-notification-id"] for q in got if 200 <= q.status < 300]
    assert {i for i in ok_ids if ok_ids.count(i) > 1} <= {inflight[0]["dedup_key"], *timed_out}
    assert len(ok_ids) <= 5
    for q in got:
        verify_signature(q)
    # the webhook body carries the same id, for receivers that dedup on the body
    assert all(q.json()["notification_id"] == q.headers["x-finsent-notification-id"] for q in got)


def test_apply_signals_is_one_transaction(engine, receiver, monkeypatch):
    """A failure while building messages leaves neither alert rows nor notifications."""
    import monitor.alerting.repository as repository

    s = make_settings(receiver.base, channels=("hook",))

    def boom(*a, **k):
        raise RuntimeError("crash while enqueuing")

    monkeypatch.setattr(repository, "enqueue", boom)
    with pytest.raises(RuntimeError):
        apply_signals(engine, s, [spike(AAPL, T0)], T0)
    assert list_alerts(engine, include_unfired=True) == [] and rows(engine) == []
    monkeypatch.undo()
    # inside a caller's transaction, the caller's rollback undoes it too
    with engine.connect() as conn:
        tx = conn.begin()
        apply_signals(conn, s, [spike(AAPL, T0)], T0)
        tx.rollback()
    assert rows(engine) == []
    res = apply_signals(engine, s, [spike(AAPL, T0)], T0)
    assert len(res.enqueued) == 1 and len(rows(engine)) == 1


def test_concurrent_workers_apply_the_same_tick_once(engine, receiver):
    """Several detector workers applying the same tick at once: one alert, one message."""
    import threading

    s = make_settings(receiver.base, channels=("hook", "slack"))
    sigs = [spike(Key("entity", k), T0) for k in ("AAPL", "MSFT")]
    errors, results = [], []
    barrier = threading.Barrier(4)

    def worker():
        try:
            barrier.wait()
            results.append(apply_signals(engine, s, sigs, T0))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(len(r.enqueued) for r in results) == 4 and len(rows(engine)) == 4
    assert sum(len(r.transitions) for r in results) == 2 and len(list_alerts(engine)) == 2


def test_concurrent_senders_deliver_each_notification_once(engine, receiver):
    import threading

    s = make_settings(receiver.base, channels=("hook",))
    apply_signals(engine, s, [spike(Key("entity", f"K{i}"), T0) for i in range(12)], T0)
    receiver.push("/webhook", *[Action(200, {"ok": True}, delay=0.05)] * 12)
    barrier = threading.Barrier(3)
    errors = []

    def worker():
        try:
            barrier.wait()
            send_due(engine, s, T0)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    _tick_until_done(engine, s, T0)  # anything a busy SQLite writer left for the next tick
    ids = [q.headers["x-finsent-notification-id"] for q in receiver.on("/webhook")]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert all(r["status"] == "sent" and r["attempts"] == 1 for r in rows(engine))


def test_silences_repeat_interval_and_ack_with_injected_clock(engine, receiver):
    s = make_settings(receiver.base, channels=("hook",), group_interval_seconds=60, repeat_interval_seconds=3600)
    m = lambda minutes: T0 + timedelta(minutes=minutes)  # noqa: E731

    def tick(minutes, sigs=()):
        apply_signals(engine, s, list(sigs), m(minutes))
        send_due(engine, s, m(minutes))

    def sent_keys():
        return [
            (q.json()["alerts"][0]["key"]["value"], q.json()["kind"], q.json()["repeat"])
            for q in receiver.on("/webhook")
        ]

    tick(0, [spike(AAPL, m(0))])
    assert sent_keys() == [("AAPL", "firing", False)]
    for minute in (5, 30, 59):
        tick(minute, [spike(AAPL, m(minute))])
    assert len(sent_keys()) == 1  # nothing new before repeat_interval
    tick(61)
    assert sent_keys()[-1] == ("AAPL", "firing", True)

    sil = add_silence(engine, ["key_value=~AAPL|TSLA"], now=m(62), duration=timedelta(hours=2), created_by="ann")
    assert [x.id for x in list_silences(engine, m(62))] == [sil.id]
    tick(63, [spike(Key("entity", "MSFT"), m(63)), spike(Key("entity", "TSLA"), m(63))])
    assert sent_keys()[-1] == ("MSFT", "firing", False) and len(sent_keys()) == 3  # TSLA silenced
    silenced = [r for r in rows(engine) if r["status"] == "silenced"]
    assert len(silenced) == 1 and silenced[0]["payload"]["message"]["reasons"] == [f"silence:{sil.id}"]
    tick(122)  # AAPL's repeat would be due (last sent at 61): silenced
    assert len(sent_keys()) == 3

    assert expire_silence(engine, sil.id, m(130)) and not expire_silence(engine, sil.id, m(130))
    assert list_silences(engine, m(130)) == []
    tick(131)  # silence over: AAPL and TSLA are notified again (one message each); MSFT repeats
    assert sorted(k for k, _, rep in sent_keys()[3:] if not rep) == ["AAPL", "TSLA"]
    assert [k for k, _, rep in sent_keys()[3:] if rep] == ["MSFT"]

    # acknowledged alerts do not repeat; unacknowledged ones still do
    aapl = next(a for a in list_alerts(engine) if a["key"]["value"] == "AAPL")
    assert acknowledge(engine, aapl["id"], "ann", m(132))
    n = len(sent_keys())
    tick(131 + 61)
    repeated = [k for k, kind, rep in sent_keys()[n:] if rep]
    assert "AAPL" not in repeated and "TSLA" in repeated


def test_inhibit_entity_by_topic_and_routes(engine, receiver):
    from monitor.config import Route

    routes = (Route(channels=("hook",), key_kind="entity"), Route(channels=("slack",), key_kind="topic"))
    s = make_settings(receiver.base, channels=("hook", "slack"), routes=routes, inhibit_entity_by_topic=True)
    earn = Key("topic", "Earnings")
    ent = Signal(AAPL, T0, T0 - timedelta(minutes=15), True, False, {"share": 0.7}, topic="Earnings")
    other = Signal(
        Key("entity", "XOM"), T0, T0 - timedelta(minutes=15), True, False, {"share": 0.7}, topic="Energy | Oil"
    )
    apply_signals(engine, s, [spike(earn, T0), ent, other], T0)
    send_due(engine, s, T0)
    assert [q.json()["alerts"][0]["key"]["value"] for q in receiver.on("/webhook")] == ["XOM"]  # AAPL inhibited
    slack = receiver.on("/slack")
    assert len(slack) == 1 and "Earnings" in text_of(slack[0])


def seed_topic_window(engine, topic: str, at: datetime, counts: dict[str, tuple[int, int]]) -> None:
    """Novel documents of `topic` in the 15 minutes before `at`: counts[symbol] = (documents,
    negatives); plus, per symbol, one negative near-duplicate that must not count."""
    docs, ents = [], []
    for sym, (n, neg) in counts.items():
        for i in range(n + 1):
            dup = i == n
            doc_id = f"{topic[:5]}-{sym}-{i}"
            docs.append(
                dict(
                    id=doc_id,
                    text=f"{sym} story {i} on {topic}",
                    published_at=at - timedelta(minutes=14, seconds=-i),
                    ingested_at=at,
                    topic=topic,
                    sentiment="negative" if i < neg or dup else "neutral",
                    sentiment_score=0.9,
                    duplicate_of=f"{topic[:5]}-{sym}-0" if dup else None,
                )
            )
            ents.append(dict(document_id=doc_id, entity=sym, published_at=docs[-1]["published_at"]))
    with engine.begin() as c:
        c.execute(documents.insert(), docs)
        c.execute(document_entities.insert(), ents)


def test_topic_alert_echoing_a_company_alert_is_inhibited_until_the_company_resolves(engine, receiver):
    from monitor.config import Route

    routes = (Route(channels=("hook",), key_kind="entity"), Route(channels=("slack",), key_kind="topic"))
    # Both inhibitions on: the echoed topic must not in turn mute the company that explains it.
    s = make_settings(
        receiver.base,
        channels=("hook", "slack"),
        routes=routes,
        inhibit_topic_by_entity=True,
        inhibit_entity_by_topic=True,
    )
    earn, moves, macro = Key("topic", "Earnings"), Key("topic", "Stock Movement"), Key("topic", "Macro")

    def sig(key: Key, at: datetime, neg: int, total: int, topic: str | None = None) -> Signal:
        numbers = {
            "window_negative": neg,
            "window_total": total,
            "share": neg / total,
            "shrunk_baseline": 0.1,
            "baseline_share": 0.1,
            "lift": 3.0,
            "p_value": 1e-7,
        }
        return Signal(key, at, at - timedelta(minutes=15), True, False, numbers, topic=topic)

    # Earnings: 60 novel documents, 24 negative (6 expected, excess 18). The 20 naming AAPL
    # hold 14 negatives; without them 10 of 40 (4 expected, excess 6): AAPL carries 12 of 18.
    seed_topic_window(engine, "Earnings", T0, {"AAPL": (20, 14), "MSFT": (40, 10)})
    # Stock Movement: AAPL's alert is filed under Earnings, but its documents here carry the
    # surge too: 8 of 20 negative (excess 6), 6 of them AAPL's (without: 2 of 12, excess 0.8).
    seed_topic_window(engine, "Stock Movement", T0, {"AAPL": (8, 6), "KO": (12, 2)})
    # Macro surges on its own: 15 of 30 negative, none naming AAPL.
    seed_topic_window(engine, "Macro", T0, {"JPM": (30, 15)})
    signals = [
        sig(earn, T0, 24, 60),
        sig(moves, T0, 8, 20),
        sig(macro, T0, 15, 30),
        sig(AAPL, T0, 20, 28, topic="Earnings"),
    ]
    apply_signals(engine, s, signals, T0)
    send_due(engine, s, T0)
    assert [q.json()["alerts"][0]["key"]["value"] for q in receiver.on("/webhook")] == ["AAPL"]
    slack = receiver.on("/slack")
    assert len(slack) == 1 and "Macro" in text_of(slack[0])
    assert "Earnings" not in text_of(slack[0]) and "Stock Movement" not in text_of(slack[0])
    muted = {
        r["payload"]["message"]["alert_id"]: r["payload"]["message"]["reasons"]
        for r in rows(engine)
        if r["status"] == "silenced"
    }
    by_key = {a["key"]["value"]: a["id"] for a in list_alerts(engine)}
    assert muted == {by_key["Earnings"]: ["inhibited:entity=AAPL"], by_key["Stock Movement"]: ["inhibited:entity=AAPL"]}

    # AAPL resolves while Earnings keeps surging: the topic alert is now its own news.
    t1 = T0 + timedelta(minutes=20)
    apply_signals(
        engine, s, [sig(earn, t1, 40, 200), sig(moves, t1, 8, 20), sig(macro, t1, 15, 30), calm(AAPL, t1)], t1
    )
    states = {a["key"]["value"]: a["state"] for a in list_alerts(engine)}
    assert states == {"Earnings": "firing", "Stock Movement": "firing", "Macro": "firing", "AAPL": "resolved"}
    send_due(engine, s, t1)
    later = " ".join(text_of(r) for r in receiver.on("/slack")[1:])
    assert "Earnings" in later and "Stock Movement" in later


def test_entity_alert_topic_comes_from_its_documents_when_the_detector_gives_none(engine, receiver):
    from monitor.config import Route

    s = make_settings(
        receiver.base, channels=("hook", "slack"), routes=(Route(channels=("slack",), topic=("Earnings",)),)
    )
    seed_documents(engine, "AAPL", T0)  # negative documents about AAPL, topic Earnings
    apply_signals(engine, s, [spike(AAPL, T0)], T0)  # Signal.topic is None
    (a,) = list_alerts(engine)
    assert a["topic"] == "Earnings"
    send_due(engine, s, T0)
    assert len(receiver.on("/slack")) == 1 and receiver.on("/webhook") == []


def test_per_channel_rate_limit_spreads_sends_over_minutes(engine, receiver):
    from monitor.config import AlertSettings, Channel, Settings

    base = make_settings(receiver.base, channels=("ding",))
    ding = base.channels[0].model_copy(update={"rate_per_minute": 2.0})
    s = Settings(
        channels=(Channel(**{**ding.model_dump(), "url": ding.url, "secret": ding.secret}),),
        alerting=AlertSettings(group_wait_seconds=0),
    )
    apply_signals(engine, s, [spike(Key("entity", f"K{i}"), T0) for i in range(5)], T0)
    sleeps = []
    st = send_due(engine, s, T0, sleep=sleeps.append)
    assert st.sent == 2 and st.deferred == 3 and len(sleeps) == 1 and 0 < sleeps[0] <= 30
    # Slots 30 s apart, held in the database for every sender: T0, T0+30 (waited for),
    # T0+60 (waited for from the T0+30 tick), T0+90 (from T0+61), then T0+122.
    assert send_due(engine, s, T0 + timedelta(seconds=30), sleep=sleeps.append).sent == 1
    assert send_due(engine, s, T0 + timedelta(seconds=61), sleep=sleeps.append).sent == 1
    assert send_due(engine, s, T0 + timedelta(seconds=122), sleep=sleeps.append).sent == 1
    assert sleeps == [30.0, 30.0, 29.0]
    for q in receiver.on("/dingtalk"):
        verify_signature(q)


def test_429_pauses_the_channel_for_the_tick(engine, receiver):
    s = make_settings(receiver.base, channels=("slack",))
    receiver.push("/slack", Action(429, "rate_limited", headers={"Retry-After": "5"}))
    apply_signals(engine, s, [spike(Key("entity", f"K{i}"), T0) for i in range(3)], T0)
    st = send_due(engine, s, T0)
    assert st.retrying == 1 and st.deferred == 2 and len(receiver.on("/slack")) == 1
    st = send_due(engine, s, T0 + timedelta(seconds=5))
    assert st.sent == 3


def test_no_secret_in_logs_errors_or_database(engine, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "monitor"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    s = make_settings(receiver.base, max_attempts=2)
    echo = f"no such hook {receiver.base}/webhook/{SECRETS['webhook_path']} token={SECRETS['dingtalk_token']}"
    receiver.push("/webhook", Action(500, echo), Action(404, echo))
    receiver.push("/slack", Action(200, "ok", delay=2))  # timeout
    receiver.push(
        "/dingtalk", Action(200, {"errcode": 310000, "errmsg": f"sign not match {SECRETS['dingtalk_secret']}"})
    )
    receiver.push("/feishu", Action(400, {"code": 19021, "msg": "sign match fail"}))
    apply_signals(engine, s, [spike(AAPL, T0)], T0)
    _tick_until_done(engine, s, T0)
    # and a channel that cannot be reached at all
    from monitor.config import Channel, Settings

    dead = Settings(
        channels=(
            Channel(
                name="dead",
                type="dingtalk",
                url=f"http://127.0.0.1:9/robot/send?access_token={SECRETS['dingtalk_token']}",
                secret=SECRETS["dingtalk_secret"],
                timeout_seconds=1,
            ),
        )
    )
    from monitor.notify.delivery import send_test

    r = send_test(dead, "dead")
    assert not r.ok and r.retryable
    assert any(rec.name.startswith("httpx") for rec in caplog.records)  # httpx did log its requests

    logged = caplog.text + "\n".join(str(rec.__dict__) for rec in caplog.records)
    with engine.connect() as c:
        dump = ""
        for t in ("alerts", "notifications", "notification_attempts", "state", "silences"):
            dump += json.dumps([list(map(str, row)) for row in c.execute(text(f"SELECT * FROM {t}"))])
    statuses = {x["channel"]: x["status"] for x in rows(engine)}
    assert statuses["hook"] == "failed" and statuses["teams"] == "sent"
    for secret in SECRETS.values():
        for part in {secret, *secret.split("/")}:
            if len(part) >= 6:
                assert part not in logged, f"secret {part!r} logged"
                assert part not in dump, f"secret {part!r} in the database"
                assert part not in json.dumps(r.as_dict())


def test_daily_digest_is_enqueued_once_per_day_and_delivered(engine, receiver):
    s = make_settings(receiver.base, channels=("hook", "slack"), digest_channel="slack")
    with engine.begin() as c:
        c.execute(
            minute_counts.insert(),
            [
                dict(
                    key_kind="topic",
                    key_value="Earnings",
                    minute=T0 - timedelta(hours=2),
                    total=50,
                    negative=30,
                    neutral=10,
                    positive=10,
                    novel_total=50,
                    novel_negative=30,
                ),
                dict(
                    key_kind="topic",
                    key_value="Macro",
                    minute=T0 - timedelta(hours=3),
                    total=40,
                    negative=4,
                    neutral=30,
                    positive=6,
                    novel_total=40,
                    novel_negative=4,
                ),
                dict(
                    key_kind="entity",
                    key_value="AAPL",
                    minute=T0 - timedelta(hours=1),
                    total=20,
                    negative=12,
                    neutral=4,
                    positive=4,
                    novel_total=20,
                    novel_negative=12,
                ),
                dict(
                    key_kind="entity",
                    key_value="OLD",
                    minute=T0 - timedelta(hours=30),
                    total=99,
                    negative=99,
                    neutral=0,
                    positive=0,
                    novel_total=99,
                    novel_negative=99,
                ),
            ],
        )
    key = digest(engine, s, T0)
    assert key == "digest:2026-03-02:slack"
    assert digest(engine, s, T0 + timedelta(minutes=5)) is None  # once per day
    assert send_due(engine, s, T0).sent == 1
    (q,) = receiver.on("/slack")
    t = text_of(q)
    assert "daily digest" in t and "Earnings" in t and "60.0%" in t and "AAPL" in t and "OLD" not in t
    assert t.index("Earnings") < t.index("Macro")


def test_register_jobs_on_a_background_scheduler(engine, receiver):
    from apscheduler.schedulers.background import BackgroundScheduler

    from monitor.app.scheduler import register_jobs
    from monitor.app.wiring import build

    s = make_settings(receiver.base, channels=("hook",), digest_channel="hook", digest_cron="0 18 * * *")
    sched = BackgroundScheduler(timezone="UTC")
    jobs = register_jobs(sched, build(s, engine), now=lambda: T0)
    assert {j.id for j in jobs} == {"finsent-sender", "finsent-digest"}
    apply_signals(engine, s, [spike(AAPL, T0)], T0)
    sched.get_job("finsent-sender").func()  # run one tick as the scheduler would
    assert len(receiver.on("/webhook")) == 1
    sched.get_job("finsent-digest").func()
    assert any(r["kind"] == "digest" for r in rows(engine))
