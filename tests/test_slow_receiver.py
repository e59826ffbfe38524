"""A receiver slower than the claim lease must not be paged twice: the whole request (not
each phase of it) is bounded by the channel's `timeout_seconds`, which is below the lease,
so no other sender can claim the notification while the first request is still running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitor.config import Channel
from monitor.notify.delivery import deliver
from monitor.notify.sender import LEASE_MARGIN_SECONDS


class _Trickle(BaseHTTPRequestHandler):
    """Answers 200 at once, then sends its body one byte a second: no single read ever
    waits longer than a second, so a per-phase timeout never fires."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "40")
        self.end_headers()
        for _ in range(40):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(1)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def trickle_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def test_whole_request_is_bounded_by_the_channel_timeout(trickle_url: str) -> None:
    ch = Channel(name="slow", type="webhook", url=trickle_url, timeout_seconds=2)
    t0 = time.monotonic()
    res = deliver(ch, {"text": "hello"}, "n-1")
    took = time.monotonic() - t0
    print(f"\ntrickling receiver: deliver returned after {took:.1f}s: {res}")
    assert took < ch.timeout_seconds + 1.5, f"the request ran {took:.0f}s, past its {ch.timeout_seconds}s bound"
    assert not res.ok and res.retryable and "timed out" in (res.error or "")
    assert took < ch.timeout_seconds + LEASE_MARGIN_SECONDS  # below the claim lease
