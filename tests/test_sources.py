"""News feeds in: RSS/Atom parsing on plain values, then polling a real local HTTP server
into the embedded broker, through 304s, 500s, broken XML, redirects, a huge item, duplicate
guids, items without dates and a restart, losing and duplicating nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from monitor.config import FeedSource, Settings
from monitor.ingest.feeds import FeedError, html_to_text, parse

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Markets wire</title><link>http://wire.example/</link>
<item><guid>wire-1</guid><title>Acme cuts guidance</title><link>http://wire.example/1</link>
  <description>&lt;p&gt;Acme &lt;b&gt;cut&lt;/b&gt; its outlook &amp;amp; shares fell.&lt;/p&gt;</description>
  <pubDate>Mon, 03 Jun 2024 09:30:00 GMT</pubDate></item>
<item><guid>wire-2</guid><title>Globex beats estimates</title><link>http://wire.example/2</link>
  <description>Globex results beat estimates.</description><pubDate>Mon, 03 Jun 2024 10:00:00 +0200</pubDate></item>
<item><guid>wire-2</guid><title>Globex beats estimates (repeat)</title><link>http://wire.example/2b</link>
  <description>The same guid again.</description></item>
<item><title>Initech undated note</title><link>http://wire.example/3</link><description>No date on this one.</description></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Desk</title><id>urn:desk</id><updated>2024-06-03T12:00:00Z</updated>
<entry><id>http://wire.example/3</id><title>Initech undated note</title><link href="http://wire.example/3"/>
  <updated>2024-06-03T12:00:00Z</updated><summary>Seen before via its link.</summary></entry>
<entry><id>urn:desk:4</id><title>Umbrella recalls product</title><link href="http://wire.example/4"/>
  <published>2024-06-03T11:00:00Z</published><updated>2024-06-03T11:30:00Z</updated>
  <content type="html">&lt;div&gt;Umbrella &lt;script&gt;x()&lt;/script&gt;recalls its product.&lt;/div&gt;</content></entry>
<entry><id>urn:desk:5</id><title>Huge item</title><link href="http://wire.example/5"/>
  <updated>2024-06-03T11:45:00Z</updated><summary>HUGE</summary></entry>
</feed>"""


# --------------------------------------------------------------------------- parsing
def test_rss_items_as_contract_messages() -> None:
    feed = parse(RSS.encode(), "wire")
    assert feed.kind == "rss" and feed.title == "Markets wire"
    assert [i.id for i in feed.items] == ["wire-1", "wire-2", "http://wire.example/3"]  # the repeat guid once
    first = feed.items[0].message
    assert first["text"] == "Acme cut its outlook & shares fell."
    assert first["title"] == "Acme cuts guidance"
    assert first["url"] == "http://wire.example/1"
    assert first["source"] == "wire" and first["kind"] == "news"
    assert first["published_at"] == "2024-06-03T09:30:00+00:00"
    assert feed.items[1].message["published_at"] == "2024-06-03T08:00:00+00:00"  # +0200 to UTC
    assert "published_at" not in feed.items[2].message  # no date: the record time is used
    assert len({i.message["id"] for i in feed.items}) == 3


def test_atom_and_html_content() -> None:
    feed = parse(ATOM.encode(), "desk")
    assert feed.kind == "atom"
    umbrella = next(i for i in feed.items if i.id == "urn:desk:4").message
    assert umbrella["text"] == "Umbrella recalls its product."  # script dropped, markup out
    assert umbrella["published_at"] == "2024-06-03T11:00:00+00:00"  # published before updated


def test_same_item_same_id_across_sources_differs() -> None:
    a = parse(RSS.encode(), "wire").items[0].message["id"]
    b = parse(RSS.encode(), "other").items[0].message["id"]
    assert a != b and a == parse(RSS.encode(), "wire").items[0].message["id"]


@pytest.mark.parametrize(
    "doc",
    [
        RSS[: len(RSS) // 2],  # truncated mid-document
        "<html><body><p>Not a feed</p></body></html>",
        "",
        "<rss version='2.0'><channel><item><title>x</title></item></channel>",  # unclosed
    ],
)
def test_broken_or_non_feed_documents_are_refused_whole(doc: str) -> None:
    with pytest.raises(FeedError):
        parse(doc.encode(), "wire")


def test_huge_item_is_clipped() -> None:
    feed = parse(ATOM.replace("HUGE", "word " * 200_000).encode(), "desk", max_text_chars=5000)
    huge = next(i for i in feed.items if i.id == "urn:desk:5").message
    assert len(huge["text"]) <= 5000 and huge["text"].endswith("…")


def test_item_without_guid_or_link_is_identified_by_content() -> None:
    doc = "<rss version='2.0'><channel><title>t</title><item><title>Only a title</title></item></channel></rss>"
    [item] = parse(doc.encode(), "wire").items
    assert item.id.startswith("sha256:") and item.message["text"] == "Only a title"


def test_html_to_text() -> None:
    assert html_to_text("<p>a&amp;b</p><p>c <i>d</i></p>") == "a&b\nc d"
    assert html_to_text("plain") == "plain"


def test_sources_settings(tmp_path: Path) -> None:
    from monitor.config import ConfigError, load_settings

    cfg = tmp_path / "f.toml"
    cfg.write_text('[[sources]]\nname = "w"\nurl = "https://wire.example/rss"\ninterval_seconds = 60\n')
    [src] = load_settings(cfg).sources
    assert (src.name, src.topic, src.interval_seconds, src.type) == ("w", "news", 60, "rss")
    cfg.write_text('[[sources]]\nname = "w"\nurl = "ftp://x"\n')
    with pytest.raises(ConfigError, match="http"):
        load_settings(cfg)
    cfg.write_text('[[sources]]\nname = "w"\nurl = "http://a"\n[[sources]]\nname = "w"\nurl = "http://b"\n')
    with pytest.raises(ConfigError, match="unique"):
        load_settings(cfg)


# --------------------------------------------------------------------------- a real server
class FeedServer:
    """Serves scripted responses per path; records each request's headers."""

    def __init__(self) -> None:
        self.script: dict[str, deque[tuple[int, dict[str, str], bytes]]] = {}
        self.default: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                srv.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                q = srv.script.get(self.path)
                status, headers, body = q.popleft() if q else srv.default.get(self.path, (404, {}, b"missing"))
                etag = {k.lower(): v for k, v in headers.items()}.get("etag")
                if status == 200 and etag and self.headers.get("If-None-Match") == etag:
                    status, body = 304, b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def push(self, path: str, *responses: tuple[int, dict[str, str], bytes]) -> None:
        self.script.setdefault(path, deque()).extend(responses)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    s = FeedServer()
    yield s
    s.stop()


def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 30) -> list[dict[str, Any]]:
    from kafka import KafkaConsumer, TopicPartition

    tps = [TopicPartition(topic, p) for p in range(3)]
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    c.assign(tps)
    c.seek_to_beginning(*tps)
    out: list[dict[str, Any]] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = c.poll(500)
        for recs in got.values():
            for r in recs:
                msg = json.loads(r.value)
                assert r.key.decode() == msg["id"]
                out.append(msg)
        if len(out) >= expect and not got:
            break
    c.close()
    return out


@pytest.mark.integration
def test_polling_edge_cases_lose_and_duplicate_nothing(broker: Any, feeds: FeedServer, tmp_path: Path) -> None:
    from monitor.app.broker import create_topics
    from monitor.app.sources import SourcePoller
    from monitor.store.migrate import upgrade
    from monitor.store.schema import make_engine

    topic = f"feeds-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic], partitions=3)
    url = f"sqlite:///{tmp_path / 's.db'}"
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url, kafka_bootstrap=broker.bootstrap, max_message_bytes=64 * 1024)
    src = FeedSource(name="wire", url=f"{feeds.base}/rss", topic=topic, interval_seconds=10, max_text_chars=1_000_000)
    clock = [datetime(2026, 1, 5, 9, 0, tzinfo=UTC)]
    poller = SourcePoller(settings, engine, now=lambda: clock[0])
    rss_headers = {
        "Content-Type": "application/rss+xml",
        "ETag": '"v1"',
        "Last-Modified": "Mon, 03 Jun 2024 10:00:00 GMT",
    }
    huge_atom = ATOM.replace("HUGE", "Umbrella and Initech news. " * 40_000).encode()  # ~1 MB item
    feeds.push(
        "/rss",
        (200, rss_headers, RSS.encode()),  # 1. three items (a repeated guid, an undated one)
        (200, rss_headers, RSS.encode()),  # 2. the server answers 304 to the conditional GET
        (500, {}, b"oops"),  # 3. a server error: back off
        (200, {"Content-Type": "application/rss+xml"}, RSS[:300].encode()),  # 4. broken XML
        (301, {"Location": "/atom"}, b""),  # 5. moved: follow it
    )
    feeds.default["/atom"] = (200, {"Content-Type": "application/atom+xml"}, huge_atom)

    r1 = poller.poll(src)
    assert (r1.status, r1.produced) == ("new", 3)
    r2 = poller.poll(src)
    assert r2.status == "not-modified"
    assert feeds.requests[1][1].get("if-none-match") == '"v1"'
    assert feeds.requests[1][1].get("if-modified-since") == "Mon, 03 Jun 2024 10:00:00 GMT"
    r3 = poller.poll(src)
    assert r3.status == "failed" and "500" in (r3.error or "")
    assert not poller.due(src)  # backing off: 10 s after one failure
    clock[0] = clock[0].replace(second=11)
    assert poller.due(src)
    r4 = poller.poll(src)
    assert r4.status == "failed" and "well-formed" in (r4.error or "")
    assert poller.retry_at["wire"] - clock[0] == timedelta(seconds=20)  # doubled
    clock[0] = clock[0].replace(minute=5)
    r5 = poller.poll(src)  # redirected to the Atom feed: one item seen before (by link), two new
    assert (r5.status, r5.produced) == ("new", 2)
    poller.close()

    # A restart: a new poller on the same database remembers what was produced.
    again = SourcePoller(settings, engine, now=lambda: clock[0])
    feeds.push("/rss", (200, {"Content-Type": "application/rss+xml"}, RSS.encode()))
    assert again.poll(src).produced == 0
    assert again.poll(src).produced == 0  # (the redirect's target again)
    again.close()
    engine.dispose()

    got = read_all(broker.bootstrap, topic, expect=5)
    by_guid = {m["guid"]: m for m in got}
    assert len(got) == 5 and set(by_guid) == {"wire-1", "wire-2", "http://wire.example/3", "urn:desk:4", "urn:desk:5"}
    assert all(m["kind"] == "news" and m["source"] == "wire" for m in got)
    assert by_guid["wire-1"]["published_at"] == "2024-06-03T09:30:00+00:00"
    assert "published_at" not in by_guid["http://wire.example/3"]
    huge = by_guid["urn:desk:5"]
    assert len(json.dumps(huge).encode()) <= settings.max_message_bytes and huge["text"].endswith("…")

    # The daemon's decoder takes every produced message.
    from monitor.ingest.schemas import Document, decode

    for m in got:
        doc = decode(json.dumps(m).encode(), topic=topic, partition=0, offset=0, record_time=clock[0])
        assert isinstance(doc, Document), doc


@pytest.mark.integration
def test_finsent_sources_run_in_the_foreground(broker: Any, feeds: FeedServer, tmp_path: Path) -> None:
    from monitor.app.broker import create_topics

    topic = f"feeds-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic], partitions=3)
    feeds.default["/rss"] = (200, {"Content-Type": "application/rss+xml", "ETag": '"x"'}, RSS.encode())
    cfg = tmp_path / "finsent.toml"
    cfg.write_text(f'[[sources]]\nname = "wire"\nurl = "{feeds.base}/rss"\ntopic = "{topic}"\ninterval_seconds = 1\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    env.update(FINSENT_KAFKA_BOOTSTRAP=broker.bootstrap, PYTHONUNBUFFERED="1")
    log = (tmp_path / "sources.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "sources",
            "run",
            "--config",
            str(cfg),
            "--db",
            f"sqlite:///{tmp_path / 'x.db'}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and len(feeds.requests) < 4:
            time.sleep(0.2)
        assert len(feeds.requests) >= 4, (tmp_path / "sources.log").read_text()
        assert any(h.get("if-none-match") == '"x"' for _p, h in feeds.requests[1:])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "sources.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    got = read_all(broker.bootstrap, topic, expect=3)
    assert sorted(m["guid"] for m in got) == ["http://wire.example/3", "wire-1", "wire-2"]


ARTICLE = """<!doctype html><html><head><title>Acme cuts guidance</title></head><body>
<nav><a href="/">Home</a> | <a href="/markets">Markets</a> | Subscribe now</nav>
<article><h1>Acme cuts guidance</h1>
<p>Acme Corp lowered its full-year revenue outlook on Monday, citing weaker demand in its
industrial segment and higher input costs across its European plants.</p>
<p>Shares of the company fell eight percent in early trading as analysts questioned whether
the new targets were conservative enough, and two brokers cut their price targets.</p>
<p>The chief financial officer said the company would accelerate its cost programme and
expected margins to recover in the second half of next year.</p>
</article><footer>Copyright Wire Example. All rights reserved. Cookie settings.</footer></body></html>"""


@pytest.mark.integration
def test_article_text_extraction(broker: Any, feeds: FeedServer, tmp_path: Path) -> None:
    pytest.importorskip("trafilatura", reason="trafilatura (the `extract` extra) is not installed")
    from monitor.app.broker import create_topics
    from monitor.app.sources import SourcePoller
    from monitor.store.migrate import upgrade
    from monitor.store.schema import make_engine

    topic = f"feeds-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic], partitions=3)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    engine = make_engine(url)
    doc = RSS.replace("http://wire.example/1", f"{feeds.base}/article/1").replace(
        "http://wire.example/2", f"{feeds.base}/article/missing"
    )
    feeds.default["/rss"] = (200, {"Content-Type": "application/rss+xml"}, doc.encode())
    feeds.default["/article/1"] = (200, {"Content-Type": "text/html; charset=utf-8"}, ARTICLE.encode())
    src = FeedSource(name="wire", url=f"{feeds.base}/rss", topic=topic, extract_text=True)
    poller = SourcePoller(Settings(database_url=url, kafka_bootstrap=broker.bootstrap), engine)
    assert poller.poll(src).produced == 3
    poller.close()
    engine.dispose()
    by_guid = {m["guid"]: m for m in read_all(broker.bootstrap, topic, expect=3)}
    extracted = by_guid["wire-1"]["text"]
    assert "lowered its full-year revenue outlook" in extracted and "second half of next year" in extracted
    assert "Cookie settings" not in extracted and "Subscribe now" not in extracted
    assert by_guid["wire-2"]["text"] == "Globex results beat estimates."  # page 404: the summary stays


def test_demo_feed_server_publishes_items_as_their_time_comes() -> None:
    import httpx

    from monitor.app.demo_feeds import DemoFeedServer

    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    server = DemoFeedServer(start).start()
    clock = [start]
    server.now = lambda: clock[0]
    try:
        r1 = httpx.get(server.url)
        first = parse(r1.content, "demo")
        assert r1.status_code == 200 and 0 < len(first.items) < len(server.items)
        assert all(datetime.fromisoformat(i.message["published_at"]) <= start for i in first.items)
        assert httpx.get(server.url, headers={"If-None-Match": r1.headers["ETag"]}).status_code == 304
        clock[0] = start + timedelta(hours=1)
        r2 = httpx.get(server.url, headers={"If-None-Match": r1.headers["ETag"]})
        assert r2.status_code == 200 and len(parse(r2.content, "demo").items) == len(server.items)
    finally:
        server.stop()


@pytest.mark.integration
def test_demo_news_feed_reaches_the_database(tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from monitor.store.schema import documents, make_engine

    db = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    env.update(FINSENT_MODEL="test-double", FINSENT_METRICS_PORT="0", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "demo", "--no-dashboard", "--minutes", "60", "--db", db],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def from_feed() -> int:
        eng = make_engine(db)
        try:
            with eng.connect() as c:
                n = c.execute(select(func.count()).select_from(documents).where(documents.c.source == "demo-wire"))
                return int(n.scalar_one())
        except Exception:
            return 0
        finally:
            eng.dispose()

    try:
        end = time.monotonic() + 150
        while time.monotonic() < end and from_feed() < 10:
            time.sleep(2)
        assert from_feed() >= 10, "the demo's news feed did not reach the database"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    assert "news feed" in out, out
    assert proc.returncode == 0, out
