"""One batch through decode -> companies linked -> classify -> novelty -> store.

Companies are linked before the model runs, so it reads the sentiment toward each of them
(the mentions are its input) in the same batched pass as the documents' own labels.

Shared by the Kafka daemon and `finsent replay`, so both count, dead-letter and
deduplicate identically. The Kafka offsets of a batch are committed by the caller only
after `process_batch` returns (i.e. after the batch's transaction committed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from monitor.classify.base import Classifier, DocInput, Prediction, Target, analyse
from monitor.classify.lang import detect as detect_lang
from monitor.config import Settings
from monitor.enrich.entities import EntityMatcher, Link, WatchEntity, build_matcher
from monitor.ingest.mapping import FieldMap
from monitor.ingest.schemas import Document, Rejection, decode
from monitor.ingest.source import RawRecord
from monitor.store.repository import BatchResult, Classified, Store

log = logging.getLogger(__name__)


# A plain headline any working classifier labels: when it fails too, the fault is ours.
PROBE_TEXT = "Acme Corp shares rose 3% after quarterly earnings beat analyst estimates."


class ClassifierUnavailable(RuntimeError):
    """The classifier fails on a known-good text as well as on the batch (out of memory, an
    unreadable model file, a lost device): a fault of ours, not of the input. The caller
    keeps the batch uncommitted and retries it; nothing is dead-lettered for it."""


@dataclass(slots=True)
class Timings:
    decode_s: float = 0.0
    classify_s: float = 0.0
    store_s: float = 0.0


def _bands_fn(settings: Settings) -> Callable[[str], Sequence[str]]:
    if settings.detect.novelty_horizon_minutes <= 0:
        return lambda _text: ()
    from monitor.enrich import novelty

    threshold = settings.detect.novelty_threshold
    return lambda text: novelty.bands(text, threshold)


def matcher_for(settings: Settings) -> EntityMatcher:
    """The company matcher: `[[entities]]` plus the shipped universe unless `[entity_universe]` is off."""
    return build_matcher(
        (WatchEntity(e.symbol, e.aliases, e.name) for e in settings.entities),
        settings.entity_universe.enabled,
        settings.entity_universe.path,
    )


class BatchProcessor:
    """Holds what is built once (matcher, novelty bands, store) and processes batches."""

    def __init__(self, settings: Settings, classifier: Classifier, store: Store) -> None:
        self.settings = settings
        self.classifier = classifier
        self.store = store
        self.matcher = matcher_for(settings)
        self.bands = _bands_fn(settings)
        self.max_future_skew = timedelta(seconds=settings.max_future_skew_seconds)
        self.mapping = FieldMap.from_input(settings.input)
        # Called with a stored batch's items and result, before the caller commits offsets
        # (the daemon publishes scored results with it; see monitor.app.outputs).
        self.on_stored: Callable[[Sequence[Classified], BatchResult], object] | None = None
        self.timings = Timings()

    def decode(self, records: Sequence[RawRecord]) -> tuple[list[Document], list[Rejection]]:
        docs: list[Document] = []
        rejected: list[Rejection] = []
        for r in records:
            out = decode(
                r.value,
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                record_time=r.timestamp,
                max_bytes=self.settings.max_message_bytes,
                max_future_skew=self.max_future_skew,
                mapping=self.mapping,
                key=r.key,
            )
            (docs if isinstance(out, Document) else rejected).append(out)  # type: ignore[arg-type]
        return docs, rejected

    def links(self, doc: Document) -> dict[str, tuple[str, Target]]:
        """The companies of a document: {symbol: (name, its mentions in text and title)}."""
        links: dict[str, Link] = {link.symbol: link for link in self.matcher.link(doc.text, doc.tickers)}
        title_links = {link.symbol: link for link in self.matcher.link(doc.title)} if doc.title else {}
        for sym in title_links:
            if sym not in links and len(links) < 20:
                links[sym] = Link(sym, title_links[sym].name, ())
        return {
            sym: (link.name, Target(sym, link.mentions, title_links[sym].mentions if sym in title_links else ()))
            for sym, link in links.items()
        }

    def targets(self, doc: Document) -> tuple[Target, ...]:
        return tuple(t for _, t in self.links(doc).values())

    def _analyse(self, docs: Sequence[Document], targets: Sequence[tuple[Target, ...]]) -> list[Prediction]:
        return analyse(
            self.classifier, [DocInput(d.text, d.title, t, d.lang) for d, t in zip(docs, targets, strict=True)]
        )

    def classify(
        self, docs: Sequence[Document], targets: Sequence[tuple[Target, ...]] | None = None
    ) -> tuple[list[tuple[Document, Prediction]], list[Rejection]]:
        """Classify in one call; on failure retry once, then tell a record fault from a
        systemic one: bisect to the bad records only while a known-good probe text still
        classifies, else raise `ClassifierUnavailable`."""
        if not docs:
            return [], []
        docs = [d if d.lang else replace(d, lang=detect_lang(f"{d.title or ''} {d.text}")) for d in docs]
        found = (
            [self.links(d) for d in docs] if targets is None else [{t.symbol: ("", t) for t in ts} for ts in targets]
        )
        tg = [tuple(t for _, t in f.values()) for f in found]
        ok, bad = self._classify(docs, tg)
        by_doc = {id(d): f for d, f in zip(docs, found, strict=True)}
        return [(d, _named(p, by_doc.get(id(d), {}))) for d, p in ok], bad

    def _classify(
        self, docs: Sequence[Document], tg: Sequence[tuple[Target, ...]]
    ) -> tuple[list[tuple[Document, Prediction]], list[Rejection]]:
        try:
            return list(zip(docs, self._analyse(docs, tg), strict=True)), []
        except Exception as exc:
            log.warning("classifier failed on a batch of %d: %s; retrying", len(docs), exc)
        try:
            return list(zip(docs, self._analyse(docs, tg), strict=True)), []
        except Exception as exc:
            self._require_probe(exc)
        return self._bisect(docs, tg)

    def _require_probe(self, cause: Exception) -> None:
        try:
            self.classifier.classify([PROBE_TEXT])
        except Exception as probe_exc:
            raise ClassifierUnavailable(
                f"the classifier fails on a known-good text too ({type(probe_exc).__name__}: {probe_exc}); "
                f"batch error: {type(cause).__name__}: {cause}"[:500]
            ) from cause

    def _bisect(
        self, docs: Sequence[Document], targets: Sequence[tuple[Target, ...]]
    ) -> tuple[list[tuple[Document, Prediction]], list[Rejection]]:
        try:
            return list(zip(docs, self._analyse(docs, targets), strict=True)), []
        except Exception as exc:
            if len(docs) == 1:
                self._require_probe(exc)  # the classifier may have broken meanwhile
                d = docs[0]
                log.error(
                    "classifier fails on %s[%s]@%s; sent to dead letters",
                    d.kafka_topic,
                    d.kafka_partition,
                    d.kafka_offset,
                )
                raw = d.text.encode("utf-8", "replace")
                return [], [
                    Rejection(
                        f"classifier failed: {type(exc).__name__}: {exc}"[:500],
                        raw,
                        d.kafka_topic or "",
                        d.kafka_partition or 0,
                        d.kafka_offset or 0,
                    )
                ]
        mid = len(docs) // 2
        a_ok, a_bad = self._bisect(docs[:mid], targets[:mid])
        b_ok, b_bad = self._bisect(docs[mid:], targets[mid:])
        return a_ok + b_ok, a_bad + b_bad

    def enrich(self, pairs: Sequence[tuple[Document, Prediction]]) -> list[Classified]:
        return [
            Classified(
                doc=d,
                pred=p,
                entities=tuple(e.symbol for e in p.entities)
                if p.entities
                else tuple(self.matcher.match(d.text, d.tickers)),
                bands=tuple(self.bands(d.text)),
            )
            for d, p in pairs
        ]

    def process(self, records: Sequence[RawRecord], now: datetime) -> BatchResult:
        t0 = time.perf_counter()
        docs, rejected = self.decode(records)
        t1 = time.perf_counter()
        pairs, poison = self.classify(docs)
        t2 = time.perf_counter()
        by_coord = {(r.topic, r.partition, r.offset): r for r in records}
        items = self.enrich(pairs)
        result = self.process_classified(items, rejected + poison, now, by_coord)
        if self.on_stored is not None:
            self.on_stored(items, result)
        t3 = time.perf_counter()
        self.timings.decode_s += t1 - t0
        self.timings.classify_s += t2 - t1
        self.timings.store_s += t3 - t2
        return result

    def process_documents(self, docs: Sequence[Document], rejected: Sequence[Rejection], now: datetime) -> BatchResult:
        """For callers that build Documents themselves (replay of CSV/JSONL rows)."""
        pairs, poison = self.classify(docs)
        return self.process_classified(self.enrich(pairs), [*rejected, *poison], now)

    def process_classified(
        self,
        items: Sequence[Classified],
        rejected: Sequence[Rejection],
        now: datetime,
        records: Mapping[tuple[str, int, int], RawRecord] | None = None,
    ) -> BatchResult:
        """Store a batch; a record the database refuses is isolated into the dead letters.

        Connection problems (OperationalError, InterfaceError) propagate: the caller waits
        and retries the whole batch. Any other database error is about the data, so the
        batch is bisected (each half in its own transaction; writes are idempotent) until
        the offending record is found and dead-lettered with the database's reason.
        """
        try:
            return self.store.write_batch(items, rejected, now, records)
        except (OperationalError, InterfaceError):
            raise
        except DBAPIError as exc:
            if len(items) <= 1:
                if not items:
                    raise
                d = items[0].doc
                reason = (
                    f"database refused the record: {type(exc.orig).__name__}: {str(exc.orig).splitlines()[0][:300]}"
                )
                log.error("%s[%s]@%s: %s", d.kafka_topic, d.kafka_partition, d.kafka_offset, reason)
                bad = Rejection(
                    reason,
                    d.text.encode("utf-8", "replace")[:100_000],
                    d.kafka_topic or "",
                    d.kafka_partition or 0,
                    d.kafka_offset or 0,
                )
                return self.store.write_batch([], [*rejected, bad], now, records)
            log.warning(
                "database refused a batch of %d (%s); bisecting to find the record", len(items), type(exc.orig).__name__
            )
        mid = len(items) // 2
        a = self.process_classified(items[:mid], rejected, now, records)
        b = self.process_classified(items[mid:], [], now, records)
        return BatchResult(
            inserted=a.inserted + b.inserted,
            duplicates=a.duplicates + b.duplicates,
            near_duplicates=a.near_duplicates + b.near_duplicates,
            dead_letters=a.dead_letters + b.dead_letters,
            inserted_ids=a.inserted_ids + b.inserted_ids,
            rejections=a.rejections + b.rejections,
        )


def _named(p: Prediction, links: Mapping[str, tuple[str, Target]]) -> Prediction:
    """The prediction with each company's name and mentions in the text from the linker
    (the classifier deals in symbols)."""
    if not p.entities:
        return p
    out = []
    for e in p.entities:
        name, target = links.get(e.symbol, ("", Target(e.symbol)))
        out.append(replace(e, name=name or e.name or e.symbol, mentions=target.spans))
    return replace(p, entities=tuple(out))
