"""Shared test helpers for alerting: a real HTTP receiver and fresh databases.

The receiver is a `ThreadingHTTPServer` on 127.0.0.1 that records every request (path,
query, headers, raw body) and answers from a per-path script (status, body, headers,
delay), falling back to each vendor's success reply. Databases: a fresh SQLite file, or a
uniquely named PostgreSQL database on the local server, created and dropped per test.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"

# Tokens that stand in for real credentials; tests assert they never leak.
SECRETS = {
    "webhook_path": "hook-tok-7f3a9c1e5d",
    "webhook_secret": "whsec-Q2x9LmN4pR8s",
    "slack_path": "T0SECRET1/B0SECRET2/xoxbSlackTok3n",
    "teams_path": "workflows-sig-Zk81Yq3vT0",
    "feishu_path": "feishu-hook-8c2e4b6d",
    "feishu_secret": "fssec-Wm3Kp9Qz7",
    "dingtalk_token": "dtaccess0c9b8a7f6e",
    "dingtalk_secret": "SECdingtalk5u4i3o2p1",
}


@dataclass
class Action:
    status: int = 200
    body: Any = None  # dict -> JSON, str -> text, None -> vendor default
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Recorded:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


def _default_reply(path: str) -> Action:
    if path.startswith("/feishu"):
        return Action(200, {"code": 0, "msg": "success", "data": {}})
    if path.startswith("/dingtalk"):
        return Action(200, {"errcode": 0, "errmsg": "ok"})
    if path.startswith("/teams"):
        return Action(202, "")
    if path.startswith("/slack"):
        return Action(200, "ok")
    return Action(200, {"ok": True})


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: dict[str, deque[Action]] = defaultdict(deque)
        self.lock = threading.Lock()
        self.got_request = threading.Event()
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                u = urlsplit(self.path)
                rec = Recorded(
                    u.path, parse_qs(u.query), {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                with recv.lock:
                    recv.requests.append(rec)
                    q = next((recv.script[p] for p in recv.script if u.path.startswith(p) and recv.script[p]), None)
                    act = q.popleft() if q else _default_reply(u.path)
                recv.got_request.set()
                if act.delay:
                    time.sleep(act.delay)
                body_out = act.body if act.body is not None else _default_reply(u.path).body
                if isinstance(body_out, dict | list):
                    data = json.dumps(body_out).encode()
                    ctype = "application/json"
                else:
                    data = str(body_out).encode()
                    ctype = "text/plain"
                rec.status = act.status
                try:
                    self.send_response(act.status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in act.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def push(self, path: str, *actions: Action) -> None:
        with self.lock:
            self.script[path].extend(actions)

    def on(self, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path)]

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def channel_urls(base: str) -> dict[str, str]:
    s = SECRETS
    return {
        "hook": f"{base}/webhook/{s['webhook_path']}",
        "slack": f"{base}/slack/services/{s['slack_path']}",
        "teams": f"{base}/teams/workflows/{s['teams_path']}",
        "feishu": f"{base}/feishu/open-apis/bot/v2/hook/{s['feishu_path']}",
        "ding": f"{base}/dingtalk/robot/send?access_token={s['dingtalk_token']}",
    }


def make_settings(base: str, *, routes: tuple[Any, ...] = (), channels: tuple[str, ...] | None = None, **alerting: Any):
    from pydantic import SecretStr

    from monitor.config import AlertSettings, Channel, Settings

    urls = channel_urls(base)
    s = SECRETS
    all_channels = [
        Channel(
            name="hook",
            type="webhook",
            url=SecretStr(urls["hook"]),
            secret=SecretStr(s["webhook_secret"]),
            timeout_seconds=1.0,
        ),
        Channel(name="slack", type="slack", url=SecretStr(urls["slack"]), timeout_seconds=1.0, rate_per_minute=0),
        Channel(name="teams", type="teams", url=SecretStr(urls["teams"]), timeout_seconds=1.0),
        Channel(
            name="feishu",
            type="feishu",
            url=SecretStr(urls["feishu"]),
            secret=SecretStr(s["feishu_secret"]),
            timeout_seconds=1.0,
        ),
        Channel(
            name="ding",
            type="dingtalk",
            url=SecretStr(urls["ding"]),
            secret=SecretStr(s["dingtalk_secret"]),
            timeout_seconds=1.0,
        ),
    ]
    if channels is not None:
        all_channels = [c for c in all_channels if c.name in channels]
    defaults: dict[str, Any] = {"group_wait_seconds": 0, "group_interval_seconds": 60, "repeat_interval_seconds": 3600}
    defaults.update(alerting)
    return Settings(
        channels=tuple(all_channels),
        routes=routes,
        alerting=AlertSettings(**defaults),
        dashboard_url="http://dash.example:8501",
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, migrated database: SQLite file or a new PostgreSQL database (dropped after).

    PostgreSQL comes from the shared `pg_admin_url` fixture: the local server when one
    answers, else a throwaway embedded one, so these tests never silently skip.
    """
    from monitor.store.migrate import upgrade
    from tests.conftest import drop_pg_database, make_pg_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'alerts.db'}"
        upgrade(url)
        yield url
        return
    admin = request.getfixturevalue("pg_admin_url")
    url, name = make_pg_database(admin)
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(admin, name)


@pytest.fixture
def engine(db_url):
    from monitor.store.schema import make_engine

    eng = make_engine(db_url)
    yield eng
    eng.dispose()
