"""`finsent demo`: the whole product on embedded defaults, on one command.

It starts the embedded broker, writes a synthetic sample feed (a day of history ending
now, with a negative surge about one company in the last minutes, a surge on a topic,
and a burst of near-identical neutral reposts as a decoy; with `--lang zh` the feed is
Chinese, about A-shares, and the surge is about 贵州茅台), starts the daemon and the
dashboard as child processes, sends the feed to the broker and prints the dashboard URL.
A local RSS feed of its own (`monitor.app.demo_feeds`) is polled by a `finsent sources
run` child, so news items also arrive the way a real feed's would.
Ctrl-C (or SIGTERM) stops all of it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.config import Settings

if TYPE_CHECKING:
    from monitor.app.demo_feeds import DemoFeedServer

log = logging.getLogger(__name__)


def write_sample_feed(path: Path, minutes: int, now: datetime, seed: int = 7, lang: str = "en") -> dict[str, object]:
    """History ending at `now` with planted surges near the end; returns what was planted.

    `lang="zh"`: the Chinese feed (A-shares named in Chinese text), with a negative surge
    about 贵州茅台 (600519.SH) and a repost storm of a neutral 比亚迪 post as the decoy.
    """
    from pipelines.feed import Decoy, Surge, generate, write

    start = (now - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    surge_start = start + timedelta(minutes=minutes - 25)
    if lang == "zh":
        surges = [Surge("600519.SH", surge_start, 25, 4.0)]
        decoys = [Decoy("002594.SZ", start + timedelta(minutes=minutes - 90), 20, 8.0)]
    else:
        surges = [Surge("TSLA", surge_start, 25, 4.0), Surge("Financials", surge_start + timedelta(minutes=5), 20, 3.0)]
        decoys = [Decoy("AAPL", start + timedelta(minutes=minutes - 90), 20, 8.0)]
    n = write(path, generate(seed, start, minutes, 8.0, surges=surges, decoys=decoys, lang=lang))
    return {"messages": n, "surges": [(s.key, s.start.isoformat()) for s in surges], "decoys": [d.key for d in decoys]}


def _child_env(settings: Settings, bootstrap: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FINSENT_KAFKA_BOOTSTRAP=bootstrap,
        FINSENT_DATABASE_URL=settings.database_url,
        FINSENT_KAFKA_TOPICS=",".join(settings.kafka_topics),
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
    )
    if settings.model:
        env["FINSENT_MODEL"] = settings.model
    toml_file = settings.model_config.get("toml_file")  # set by load_settings for --config
    if toml_file:
        env["FINSENT_CONFIG"] = str(Path(str(toml_file)).resolve())  # the children read it too
    return env


def _start_news_feeds(
    settings: Settings, env: dict[str, str], workdir: Path, children: list[subprocess.Popen[bytes]]
) -> DemoFeedServer:
    """A local RSS feed we write, polled into the first topic by `finsent sources run`."""
    from monitor.app.demo_feeds import DemoFeedServer

    feeds = DemoFeedServer(datetime.now(UTC)).start()
    log_file = (workdir / "sources.log").open("ab")
    children.append(
        subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "sources", "run"],
            env={**env, "FINSENT_SOURCES": feeds.sources_json(settings.kafka_topics[0])},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    )
    print(f"news feed   {feeds.url} -> finsent sources run (log: {workdir / 'sources.log'})", flush=True)
    return feeds


def run_demo(
    settings: Settings, *, port: int | None, minutes: int, rate: float, dashboard: bool = True, lang: str = "en"
) -> int:
    from monitor.app.broker import EmbeddedBroker
    from monitor.ingest.inputs import Columns
    from monitor.ingest.produce import produce_file

    stop = threading.Event()

    # Ctrl-C and SIGTERM only raise a flag: a KeyboardInterrupt raised in the middle of
    # starting a child or of the clean-up would leave children behind. A second signal
    # during the clean-up makes it kill instead of waiting.
    def on_signal(_signum: int, _frame: object) -> None:
        if stop.is_set():
            hurry.set()
        stop.set()

    hurry = threading.Event()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix="finsent-demo-"))
    feeds: DemoFeedServer | None = None
    broker = EmbeddedBroker(port=port, topics=settings.kafka_topics, partitions=3)
    try:
        broker.start()
        print(f"broker      {broker.bootstrap} (embedded tansu, in memory)", flush=True)
        env = _child_env(settings, broker.bootstrap)
        run_log = (workdir / "daemon.log").open("ab")
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", "run"],
                env=env,
                stdout=run_log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        )
        print(f"daemon      finsent run (log: {workdir / 'daemon.log'})", flush=True)
        if dashboard:
            dash_log = (workdir / "dashboard.log").open("ab")
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "monitor.cli", "dashboard"],
                    env=env,
                    stdout=dash_log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                )
            )
            url = f"http://{settings.dashboard_host}:{settings.dashboard_port}"
            print(f"dashboard   {url}  (log: {workdir / 'dashboard.log'})", flush=True)
        feeds = _start_news_feeds(settings, env, workdir, children)
        feed = workdir / "sample-feed.jsonl"
        planted = write_sample_feed(feed, minutes, datetime.now(UTC), lang=lang)
        print(
            f"sample feed {planted['messages']} messages, planted surges {planted['surges']}, decoy {planted['decoys']}",
            flush=True,
        )
        print(
            f"database    {settings.database_url}   (watch: finsent stats --json --db {settings.database_url})",
            flush=True,
        )
        print("Ctrl-C stops everything.", flush=True)
        producer = threading.Thread(
            target=lambda: produce_file(
                settings.model_copy(update={"kafka_bootstrap": broker.bootstrap}),
                feed,
                settings.kafka_topics[0],
                Columns(),
                rate=rate,
                progress=False,
            ),
            name="demo-feed",
            daemon=True,
        )
        producer.start()
        while not stop.is_set():
            for c in children:
                if c.poll() is not None:
                    print(f"a demo process exited with code {c.returncode}; see the logs in {workdir}", file=sys.stderr)
                    return 1
            stop.wait(1.0)
        return 0
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return 0
    finally:
        _stop_children(children, settings.stop_timeout_seconds + 2, hurry)
        broker.stop()
        if feeds is not None:
            feeds.stop()
        print("demo stopped", flush=True)
        # Everything is stopped: a late Ctrl-C must not turn the exit into a crash (Python
        # puts the default handlers back while it shuts down).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """The child gets SIGTERM when the demo dies, however it dies (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_children(children: list[subprocess.Popen[bytes]], timeout_s: float, hurry: threading.Event) -> None:
    """SIGTERM each child, wait at most `timeout_s` for all (less if `hurry` is set), then SIGKILL."""
    for c in children:
        if c.poll() is None:
            c.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(c.poll() is None for c in children) and time.monotonic() < deadline and not hurry.is_set():
        time.sleep(0.1)
    for c in children:
        if c.poll() is None:
            c.kill()
            c.wait(5)
