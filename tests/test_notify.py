"""Notifier unit tests at the network boundary (httpx.MockTransport): request shape,
signatures, outcome classification, and that no secret reaches an error string."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from monitor.config import Channel
from monitor.notify.delivery import deliver, list_channels, parse_retry_after, send_test
from monitor.notify.render import render_body

SECRET_URL = "https://hooks.example.com/services/T0/B0/verysecrettoken"
SIGNING = "signing-secret-123"


def msg(kind: str = "firing") -> dict:
    return {
        "version": "1",
        "notification_id": "abc:firing:g:1",
        "kind": kind,
        "status": kind,
        "repeat": False,
        "channel": "c",
        "dashboard_url": "http://dash/Alerts?alert=abc",
        "firing_count": 1,
        "resolved_count": 0,
        "group_text": "",
        "alerts": [
            {
                "id": "abc",
                "state": kind,
                "severity": "warning",
                "subject": "company AAPL",
                "key": {"kind": "entity", "value": "AAPL"},
                "started_at": "2026-01-05T10:00:00+00:00",
                "resolved_at": None,
                "window": {"start": "2026-01-05T09:45:00+00:00", "end": "2026-01-05T10:00:00+00:00", "minutes": 15},
                "current": {"negative": 12, "total": 20, "share": 0.6},
                "baseline": {"share": 0.2, "negative": 100, "total": 500},
                "lift": 3.0,
                "p_value": 1e-6,
                "alpha": 0.001,
                "acknowledged_by": None,
                "dashboard_url": "http://dash/Alerts?alert=abc",
                "evidence": [
                    {
                        "source": "wire",
                        "published_at": "2026-01-05T09:50:00+00:00",
                        "headline": "Apple slumps",
                        "url": "https://n/1",
                    }
                ],
            }
        ],
    }


def ch(type_: Any = "webhook", secret: Any = SIGNING, **kw: Any) -> Channel:
    return Channel(name="c", type=type_, url=SecretStr(SECRET_URL), secret=SecretStr(secret) if secret else None, **kw)


def run(channel: Channel, handler, body=None):
    seen: list[httpx.Request] = []

    def h(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return handler(req)

    with httpx.Client(transport=httpx.MockTransport(h)) as client:
        res = deliver(channel, body or render_body(channel.type, msg()), "abc:firing:g:1", client=client)
    return res, seen


def assert_clean(res) -> None:
    text = json.dumps(res.as_dict())
    for s in ("verysecrettoken", SIGNING, "/services/T0"):
        assert s not in text


def test_webhook_body_headers_and_signature():
    res, seen = run(ch(), lambda r: httpx.Response(200, json={"ok": True}))
    assert res.ok and res.status_code == 200
    req = seen[0]
    body = json.loads(req.content)
    assert body["version"] == "1" and body["notification_id"] == "abc:firing:g:1"
    assert body["alerts"][0]["key"] == {"kind": "entity", "value": "AAPL"} and body["title"] and body["text"]
    assert req.headers["x-finsent-notification-id"] == "abc:firing:g:1"
    ts = req.headers["x-finsent-timestamp"]
    # The HMAC covers the timestamp and the body (docs/security.md), so neither can be replayed alone.
    expected = "v1=" + hmac.new(SIGNING.encode(), ts.encode() + b"." + req.content, hashlib.sha256).hexdigest()
    assert req.headers["x-finsent-signature"] == expected
    assert abs(int(ts) - datetime.now(UTC).timestamp()) < 60


def test_webhook_signature_cannot_be_replayed_with_a_new_timestamp():
    from monitor.notify.signing import verify_webhook

    _, seen = run(ch(), lambda r: httpx.Response(200))
    req = seen[0]
    ts, sig = req.headers["x-finsent-timestamp"], req.headers["x-finsent-signature"]
    now = int(ts)
    assert verify_webhook(SIGNING, ts, req.content, sig, now=now)
    assert not verify_webhook(SIGNING, str(now + 600), req.content, sig, now=now + 600)  # re-stamped replay
    assert not verify_webhook(SIGNING, ts, req.content, sig, now=now + 301)  # too old
    assert not verify_webhook(SIGNING, ts, req.content + b" ", sig, now=now)  # body changed
    assert not verify_webhook("other", ts, req.content, sig, now=now)


def test_webhook_without_secret_is_unsigned():
    _, seen = run(ch(secret=None), lambda r: httpx.Response(204))
    assert "x-finsent-signature" not in seen[0].headers


def test_feishu_sign_in_body_and_vendor_error_codes():
    res, seen = run(ch("feishu"), lambda r: httpx.Response(200, json={"code": 0, "msg": "success"}))
    assert res.ok
    body = json.loads(seen[0].content)
    ts = body["timestamp"]
    mac = hmac.new(f"{ts}\n{SIGNING}".encode(), b"", hashlib.sha256).digest()
    assert body["sign"] == base64.b64encode(mac).decode()
    assert body["msg_type"] == "interactive" and body["card"]["header"]["title"]["content"]
    res, _ = run(ch("feishu"), lambda r: httpx.Response(200, json={"code": 19021, "msg": "sign match fail"}))
    assert not res.ok and not res.retryable and "19021" in res.error
    res, _ = run(ch("feishu"), lambda r: httpx.Response(200, json={"code": 11232, "msg": "frequency limited"}))
    assert not res.ok and res.retryable
    res, _ = run(ch("feishu"), lambda r: httpx.Response(400, json={"code": 230020, "msg": "chat rate limit"}))
    assert not res.ok and res.retryable


def test_dingtalk_sign_in_url_and_errcode():
    res, seen = run(ch("dingtalk"), lambda r: httpx.Response(200, json={"errcode": 0, "errmsg": "ok"}))
    assert res.ok
    q = parse_qs(urlsplit(str(seen[0].url)).query)
    ts = q["timestamp"][0]
    mac = hmac.new(SIGNING.encode(), f"{ts}\n{SIGNING}".encode(), hashlib.sha256).digest()
    assert q["sign"][0] == base64.b64encode(mac).decode()  # parse_qs undoes the URL encoding
    assert abs(int(ts) / 1000 - datetime.now(UTC).timestamp()) < 60
    assert json.loads(seen[0].content)["msgtype"] == "markdown"
    res, _ = run(ch("dingtalk"), lambda r: httpx.Response(200, json={"errcode": 130101, "errmsg": "send too fast"}))
    assert not res.ok and res.retryable and res.retry_after == 600
    res, _ = run(ch("dingtalk"), lambda r: httpx.Response(200, json={"errcode": 310000, "errmsg": "sign not match"}))
    assert not res.ok and not res.retryable


def test_slack_and_teams_shapes():
    _, seen = run(ch("slack", None), lambda r: httpx.Response(200, text="ok"))
    body = json.loads(seen[0].content)
    assert body["text"] and body["blocks"][0]["type"] == "header"
    assert any(b["type"] == "section" and "AAPL" in b["text"]["text"] for b in body["blocks"])
    _, seen = run(ch("teams", None), lambda r: httpx.Response(202))
    body = json.loads(seen[0].content)
    assert body["type"] == "message"
    att = body["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert att["content"]["type"] == "AdaptiveCard"
    assert att["content"]["actions"][0]["url"] == "http://dash/Alerts?alert=abc"


@pytest.mark.parametrize(
    "status,retryable",
    [
        (500, True),
        (502, True),
        (503, True),
        (408, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (410, False),
        (301, False),
    ],
)
def test_status_classification(status, retryable):
    res, _ = run(ch(), lambda r: httpx.Response(status, text=f"error at {SECRET_URL}"))
    assert not res.ok and res.retryable is retryable and res.status_code == status
    assert_clean(res)


def test_429_honours_retry_after_seconds_and_date():
    res, _ = run(ch(), lambda r: httpx.Response(429, headers={"Retry-After": "17"}))
    assert res.retryable and res.retry_after == 17
    now = datetime(2026, 1, 1, tzinfo=UTC)
    date = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(date, now) == 90
    assert parse_retry_after("soon", now) is None


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError(f"cannot connect to {SECRET_URL}"),
        httpx.ReadTimeout(f"timed out reading {SECRET_URL}"),
        httpx.RemoteProtocolError(f"peer closed {SECRET_URL}"),
    ],
)
def test_transport_errors_are_retryable_and_redacted(exc):
    def boom(req):
        raise exc

    res, _ = run(ch(), boom)
    assert not res.ok and res.retryable and res.status_code is None
    assert_clean(res)


def test_list_channels_masks_secrets_and_send_test():
    class S:
        channels = (ch(), ch("dingtalk", rate_per_minute=None))
        dashboard_url = "http://dash"

    rows = list_channels(S)
    text = json.dumps(rows)
    assert "verysecrettoken" not in text and SIGNING not in text
    assert rows[0]["url"] == "https://hooks.example.com/***" and rows[0]["secret"] == "**********"
    assert rows[1]["rate_per_minute"] == 20
    seen = []

    def h(req):
        seen.append(req)
        return httpx.Response(200, json={"ok": True})

    with httpx.Client(transport=httpx.MockTransport(h)) as client:
        assert send_test(S, "c", client=client).ok
    assert json.loads(seen[0].content)["kind"] == "test"
    with pytest.raises(ValueError, match="no channel named"):
        send_test(S, "nope")


def test_dingtalk_sign_is_urlencoded_in_raw_url():
    _, seen = run(ch("dingtalk"), lambda r: httpx.Response(200, json={"errcode": 0}))
    raw = str(seen[0].url).split("sign=")[1]
    assert re.fullmatch(r"[A-Za-z0-9%._-]+", raw), raw  # base64's + / = are percent-encoded
    assert base64.b64decode(unquote_plus(raw))


def test_chinese_channels_read_chinese_and_slack_stays_english():
    """`locale = "zh"`: Feishu and DingTalk cards in Chinese, with the company's name and
    code, the topic's Chinese name, the evidence's copies; Slack keeps its English mrkdwn."""
    m = msg()
    a = m["alerts"][0]
    a.update(subject="company 600519.SH", key={"kind": "entity", "value": "600519.SH"}, name="贵州茅台")
    a.update(spread={"stories": 8, "copies": 60}, volume={"expected": 0.4})
    a["evidence"][0].update(headline="茅台经销商暴雷，股价跌停", copies=12, outlets=["股吧", "雪球"])
    body = render_body("feishu", m, locale="zh")
    title = body["card"]["header"]["title"]["content"]
    text = json.dumps(body, ensure_ascii=False)
    assert title == "【告警】贵州茅台（600519.SH）负面舆情激增"
    for part in ("负面占比", "8 条原创，60 条转发", "茅台经销商暴雷", "另有 12 条转发：股吧、雪球", "检验跨度 15 分钟"):
        assert part in text, part
    assert "FIRING" not in text and "Negative share" not in text
    ding = json.dumps(render_body("dingtalk", m, locale="zh"), ensure_ascii=False)
    assert "贵州茅台（600519.SH）" in ding and "负面舆情激增" in ding
    resolved = msg("resolved")
    resolved["alerts"][0].update(key={"kind": "topic", "value": "Earnings"}, subject="topic Earnings")
    resolved["alerts"][0]["resolved_at"] = "2026-01-05T11:00:00+00:00"
    rtitle = render_body("feishu", resolved, locale="zh")["card"]["header"]["title"]["content"]
    assert rtitle == "【已恢复】主题「业绩」负面舆情激增"
    slack = json.dumps(render_body("slack", m, locale="zh"), ensure_ascii=False)
    assert "FIRING" in slack and "负面舆情" not in slack
    assert Channel(name="f", type="feishu", url=SecretStr(SECRET_URL), locale="zh").locale == "zh"
    with pytest.raises(ValueError):
        Channel(name="f", type="feishu", url=SecretStr(SECRET_URL), locale="fr")  # type: ignore[arg-type]
