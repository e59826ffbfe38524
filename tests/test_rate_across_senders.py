"""The per-channel rate holds across the cluster: senders in several processes (here
threads with their own connections) that tick together must together stay under
`rate_per_minute`, not each of them."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from monitor.config import Channel, Settings
from monitor.notify.sender import send_due
from monitor.store.migrate import upgrade
from monitor.store.schema import make_engine, notifications

RATE = 120.0  # per minute: one send every 0.5 s across the cluster
N = 9


@pytest.mark.parametrize("backend", ["pg"])
def test_three_senders_together_keep_the_channel_rate(pg_url: str, backend: str) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    now = datetime.now(UTC)
    with engine.begin() as c:
        c.execute(
            notifications.insert(),
            [
                {
                    "dedup_key": f"n{i}",
                    "channel": "ding",
                    "kind": "firing",
                    "payload": {"body": {"msgtype": "text", "text": {"content": f"alert {i}"}}},
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for i in range(N)
            ],
        )
    arrivals: list[float] = []
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            arrivals.append(time.monotonic())
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    settings = Settings(
        database_url=pg_url,
        channels=(
            Channel(
                name="ding", type="dingtalk", url="http://ding.invalid/robot/send?access_token=t", rate_per_minute=RATE
            ),
        ),
    )

    def sender() -> None:
        eng = make_engine(pg_url)
        client = httpx.Client(transport=httpx.MockTransport(handler))
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with lock:
                    if len(arrivals) >= N:
                        return
                send_due(eng, settings, client=client)
                time.sleep(0.05)
        finally:
            client.close()
            eng.dispose()

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    engine.dispose()
    arrivals.sort()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    spacing = 60.0 / RATE
    in_any_minute = max(sum(1 for x in arrivals if a <= x < a + 60) for a in arrivals)
    print(f"\n3 senders, rate {RATE:g}/min: {len(arrivals)} sends, smallest gap {min(gaps):.3f}s (spacing {spacing}s)")
    assert len(arrivals) == N
    # Slots are exactly `spacing` apart; arrivals jitter by the threads' wake-ups on a busy
    # machine. Without the shared slots, sends of different senders arrive milliseconds apart.
    assert min(gaps) >= 0.7 * spacing, f"sends {min(gaps):.3f}s apart; the channel's spacing is {spacing}s"
    assert arrivals[-1] - arrivals[0] >= (N - 1) * spacing - 0.15  # the rate over the whole run
    assert in_any_minute <= RATE
