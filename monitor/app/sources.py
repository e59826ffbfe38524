"""`finsent sources run`: poll the `[[sources]]` feeds and produce new items to Kafka.

Each source is polled every `interval_seconds` (APScheduler), with a conditional GET
(the last ETag and Last-Modified), redirects followed, and exponential back-off after a
failure (a 5xx, a timeout, a document that is not a feed) up to `max_backoff_seconds`.
New items are produced as the contract's message (title, text, url, source,
published_at, kind = news; key = the document id), and only after the broker acked them
are their ids remembered, in the database's `state` table: so a restart neither loses an
item nor produces it twice (a crash between the two produces it again under the same id,
which the store recognises).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from monitor import __version__
from monitor.config import FeedSource, Settings
from monitor.ingest.feeds import FeedError, parse
from monitor.store.schema import state

log = logging.getLogger(__name__)

REMEMBER = 5000  # item ids kept per source: far more than any feed lists at once
MAX_FEED_BYTES = 20 * 1024 * 1024
MAX_PAGE_BYTES = 5 * 1024 * 1024


@dataclass(slots=True)
class SourceState:
    etag: str | None = None
    last_modified: str | None = None
    seen: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"etag": self.etag, "last_modified": self.last_modified, "seen": self.seen[-REMEMBER:]}

    @classmethod
    def from_json(cls, d: Any) -> SourceState:
        d = d if isinstance(d, dict) else {}
        return cls(d.get("etag"), d.get("last_modified"), list(d.get("seen") or []))


@dataclass(frozen=True, slots=True)
class PollResult:
    status: str  # "new", "unchanged", "not-modified", "failed"
    produced: int = 0
    error: str | None = None


def _key(source: FeedSource) -> str:
    return f"source.{source.name}"[:128]


def load_state(engine: Engine, source: FeedSource) -> SourceState:
    with engine.connect() as conn:
        row = conn.execute(select(state.c.value).where(state.c.name == _key(source))).first()
    return SourceState.from_json(row[0] if row else None)


def save_state(engine: Engine, source: FeedSource, st: SourceState, now: datetime) -> None:
    value = st.to_json()
    with engine.begin() as conn:
        res = conn.execute(update(state).where(state.c.name == _key(source)).values(value=value, updated_at=now))
        if res.rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(insert(state).values(name=_key(source), value=value, updated_at=now))
        except IntegrityError:  # written meanwhile by another poller: take ours
            conn.execute(update(state).where(state.c.name == _key(source)).values(value=value, updated_at=now))


class Producer:
    """The Kafka side: send messages, wait for every ack."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaProducer

        self._p = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            acks="all",
            retries=5,
            max_request_size=max(1_048_576, settings.max_message_bytes + 65_536),
        )

    def send_all(self, topic: str, messages: list[dict[str, Any]]) -> None:
        futures = [
            self._p.send(topic, key=m["id"].encode(), value=json.dumps(m, ensure_ascii=False).encode())
            for m in messages
        ]
        self._p.flush(timeout=60)
        for f in futures:
            f.get(timeout=0)  # raises the delivery error, if any

    def close(self) -> None:
        self._p.close(timeout=5)


class SourcePoller:
    """Polls sources one at a time; `poll(source)` is safe to call from scheduler threads."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        producer: Any = None,
        client: httpx.Client | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.producer = producer if producer is not None else Producer(settings)
        self.client = client or httpx.Client(
            follow_redirects=True,
            max_redirects=5,
            headers={"User-Agent": f"finsent/{__version__} (+feed poller)"},
        )
        self.now = now or (lambda: datetime.now(UTC))
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def _fetch(self, source: FeedSource, st: SourceState) -> tuple[int, httpx.Headers, bytes]:
        headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
        if st.etag:
            headers["If-None-Match"] = st.etag
        if st.last_modified:
            headers["If-Modified-Since"] = st.last_modified
        with self.client.stream("GET", source.url, headers=headers, timeout=source.timeout_seconds) as resp:
            body = bytearray()
            if resp.status_code == 200:
                for chunk in resp.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_FEED_BYTES:
                        raise FeedError(f"feed is larger than {MAX_FEED_BYTES // (1024 * 1024)} MiB")
            return resp.status_code, resp.headers, bytes(body)

    def due(self, source: FeedSource) -> bool:
        at = self.retry_at.get(source.name)
        return at is None or self.now() >= at

    def _failed(self, source: FeedSource, error: str) -> PollResult:
        n = self.failures.get(source.name, 0) + 1
        self.failures[source.name] = n
        wait = min(source.max_backoff_seconds, source.interval_seconds * 2 ** (n - 1))
        self.retry_at[source.name] = self.now() + timedelta(seconds=wait)
        log.warning("source %s: %s; next try in %.0fs (failure %d)", source.name, error, wait, n)
        return PollResult("failed", error=error)

    def poll(self, source: FeedSource) -> PollResult:
        with self._lock:
            return self._poll(source)

    def _poll(self, source: FeedSource) -> PollResult:
        st = load_state(self.engine, source)
        try:
            status, headers, content = self._fetch(source, st)
        except FeedError as exc:
            return self._failed(source, str(exc))
        except httpx.HTTPError as exc:
            return self._failed(source, f"{type(exc).__name__}: {str(exc)[:200]}")
        if status == 304:
            self._ok(source)
            return PollResult("not-modified")
        if status != 200:
            return self._failed(source, f"HTTP {status}")
        try:
            feed = parse(
                content,
                source.name,
                content_type=headers.get("Content-Type"),
                max_text_chars=source.max_text_chars,
            )
        except FeedError as exc:
            return self._failed(source, str(exc))
        seen = set(st.seen)
        new = [item for item in feed.items if item.id not in seen]
        if new:
            messages = (
                [self._with_article(source, i.message) for i in new]
                if source.extract_text
                else [i.message for i in new]
            )
            self.producer.send_all(source.topic, [self._fit(m) for m in messages])
            st.seen.extend(i.id for i in new)
        st.etag = headers.get("ETag") or None
        st.last_modified = headers.get("Last-Modified") or None
        save_state(self.engine, source, st, self.now())
        self._ok(source)
        if new:
            log.info("source %s: %d new item(s) to %s", source.name, len(new), source.topic)
        return PollResult("new" if new else "unchanged", produced=len(new))

    def _with_article(self, source: FeedSource, message: dict[str, Any]) -> dict[str, Any]:
        """The item's page's article text instead of the feed's summary, when one is found.

        A page that cannot be fetched or read keeps the summary: the item is not held back.
        """
        from monitor.ingest.feeds import article_text

        url = message.get("url")
        if not url:
            return message
        try:
            with self.client.stream("GET", url, timeout=source.timeout_seconds) as resp:
                if resp.status_code != 200:
                    return message
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_PAGE_BYTES:
                        return message
                page = bytes(body).decode(resp.encoding or "utf-8", "replace")
            text = article_text(page, url)
        except Exception as exc:  # httpx errors, undecodable pages, extractor failures
            log.debug("source %s: no article text from %s: %s", source.name, url, exc)
            return message
        if not text or len(text) <= len(message["text"]):
            return message
        if len(text) > source.max_text_chars:
            text = text[: source.max_text_chars - 1].rstrip() + "…"
        return {**message, "text": text}

    def _ok(self, source: FeedSource) -> None:
        self.failures.pop(source.name, None)
        self.retry_at.pop(source.name, None)

    def _fit(self, message: dict[str, Any]) -> dict[str, Any]:
        """Keep a message under `max_message_bytes`: a huge item's text is cut, not dropped."""
        limit = self.settings.max_message_bytes - 4096
        while len(json.dumps(message, ensure_ascii=False).encode()) > limit and len(message["text"]) > 100:
            message = {**message, "text": message["text"][: len(message["text"]) // 2].rstrip() + "…"}
        return message

    def close(self) -> None:
        self.client.close()
        self.producer.close()


def run(settings: Settings, stop: threading.Event, engine: Engine | None = None) -> int:
    """Poll every source on its interval until `stop` is set; returns an exit status."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from monitor.store.migrate import upgrade
    from monitor.store.schema import make_engine

    if not settings.sources:
        log.error("no [[sources]] in the configuration; nothing to poll")
        return 2
    if any(s.extract_text for s in settings.sources):
        try:
            import trafilatura  # noqa: F401
        except ImportError:
            log.error("extract_text needs trafilatura: pip install 'finsent[extract]'")
            return 2
    engine = engine or make_engine(settings.database_url)
    for attempt in range(1, 6):  # another process (the daemon) may be migrating the same database
        try:
            upgrade(settings.database_url, engine)
            break
        except Exception as exc:
            if attempt == 5 or stop.wait(2.0 * attempt):
                raise
            log.warning("database not ready (%s); retrying", str(exc).splitlines()[0][:200])
    poller = SourcePoller(settings, engine)
    sched = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})

    def job(source: FeedSource) -> None:
        if stop.is_set() or not poller.due(source):
            return
        try:
            poller.poll(source)
        except Exception as exc:  # e.g. Kafka unavailable: nothing remembered, the next poll retries
            poller._failed(source, f"{type(exc).__name__}: {str(exc)[:200]}")

    for src in settings.sources:
        sched.add_job(
            job,
            "interval",
            args=[src],
            seconds=src.interval_seconds,
            id=f"source-{src.name}",
            next_run_time=datetime.now(UTC),
        )
        log.info("polling %s every %.0fs into %s", src.name, src.interval_seconds, src.topic)
    sched.start()
    try:
        stop.wait()
    finally:
        sched.shutdown(wait=True)
        poller.close()
        engine.dispose()
    return 0
