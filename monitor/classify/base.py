"""The classifier interface the daemon, replay and `finsent classify` depend on.

Ingest needs "documents in, one prediction per document out, in the same order": a
document is a text, an optional title and the companies linked in it (`Target`: where
each is mentioned); its prediction carries the topic and sentiment of the whole document
and the sentiment toward each target. `classify(texts)` is the plain form (no title, no
targets). Keeping that behind a small protocol lets the unit and broker tests run without
torch while the real engine (`monitor.classify.engine`) is used everywhere else;
`analyse(classifier, docs)` gives any classifier the document form.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from models.labels import SENTIMENTS, TOPICS

Span = tuple[int, int]  # character offsets, end exclusive


@dataclass(frozen=True, slots=True)
class Target:
    """A company linked in a document: where it is mentioned in the text and the title."""

    symbol: str
    spans: tuple[Span, ...] = ()
    title_spans: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class DocInput:
    text: str
    title: str | None = None
    targets: tuple[Target, ...] = ()
    lang: str | None = None  # ISO 639-1 when known (the message's, or detected); routes `model = "auto"`


@dataclass(frozen=True, slots=True)
class EntitySentiment:
    """The sentiment toward one company. `mentioned` is False when no mention of it was
    read (a publisher ticker, a mention past the length cap): the document's sentiment
    stands in."""

    symbol: str
    sentiment: str
    sentiment_score: float
    probs: dict[str, float] = field(default_factory=dict)
    mentioned: bool = True
    # Filled in by the pipeline from the linker: the company's name, its mentions in the text.
    name: str = ""
    mentions: tuple[Span, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "name": self.name or self.symbol,
            "sentiment": self.sentiment,
            "sentiment_score": self.sentiment_score,
            "mentions": [list(m) for m in self.mentions],
        }


@dataclass(frozen=True, slots=True)
class Prediction:
    topic: str
    topic_score: float
    sentiment: str
    sentiment_score: float
    # {"topic": {label: p, ...}, "sentiment": {label: p, ...}}
    probs: dict[str, dict[str, float]] = field(default_factory=dict)
    model_version: str = ""
    chunks: int = 1  # model windows the document was read in (title included)
    cut: str = ""  # why part of the text was not read (the length cap); "" when read whole
    entities: tuple[EntitySentiment, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "topic_score": self.topic_score,
            "sentiment": self.sentiment,
            "sentiment_score": self.sentiment_score,
            "probs": self.probs,
            "model_version": self.model_version,
            "chunks": self.chunks,
            **({"cut": self.cut} if self.cut else {}),
        }

    def entity(self, symbol: str) -> EntitySentiment | None:
        return next((e for e in self.entities if e.symbol == symbol), None)


class Classifier(Protocol):
    """Anything that labels a batch of texts, preserving order."""

    @property
    def model_version(self) -> str: ...

    def classify(self, texts: Sequence[str]) -> list[Prediction]: ...


def joined_text(doc: DocInput) -> str:
    """Title and text as one string, for classifiers that read one text per document."""
    return f"{doc.title.strip()}\n{doc.text}" if doc.title and doc.title.strip() else doc.text


def analyse(classifier: Classifier, docs: Sequence[DocInput]) -> list[Prediction]:
    """Documents through any classifier: its own `analyse` when it has one (the engine:
    chunks, title weight, target-aware sentiment), else one text per document with the
    document's sentiment standing in for every company's."""
    own = getattr(classifier, "analyse", None)
    if callable(own):
        return list(own(docs))
    preds = classifier.classify([joined_text(d) for d in docs])
    return [
        replace(p, entities=tuple(stand_in(t.symbol, p) for t in d.targets)) for d, p in zip(docs, preds, strict=True)
    ]


def stand_in(symbol: str, p: Prediction) -> EntitySentiment:
    return EntitySentiment(symbol, p.sentiment, p.sentiment_score, dict(p.probs.get("sentiment", {})), mentioned=False)


_NEG = re.compile(
    r"\b(plunge|plunges|slump|slumps|fraud|probe|lawsuit|downgrade[sd]?|miss(es|ed)?|cut[s]?|"
    r"warn(s|ing)?|loss(es)?|fall(s)?|drop(s|ped)?|crash|scandal|recall|layoff[s]?|bankrupt\w*)\b",
    re.I,
)
# Results wording (per-share figures, net income) is "Financials" in the training data.
_FINANCIALS = re.compile(r"\b(EPS|net income|a share)\b", re.I)
_POS = re.compile(r"\b(beat[s]?|soar[s]?|surge[s]?|upgrade[sd]?|record|rall(y|ies)|raise[sd]?|gain[s]?)\b", re.I)
# Chinese cue words (no word boundaries in Chinese text), for the Chinese demo feed.
_NEG_ZH = re.compile(
    r"跌停|大跌|暴跌|下跌|下降|下滑|下调|亏损|亏麻|暴雷|利空|割肉|清仓|减持|减值|立案|警示|失败|不及预期"
)
_POS_ZH = re.compile(r"涨停|大涨|增长|上调|增持|利好|加仓|创新高|超预期")


class KeywordTestDouble:
    """A deterministic, torch-free stand-in for the model, for tests and benchmarks only.

    It is *not* a classifier anyone should deploy: it looks for a handful of words. The
    daemon uses it only when the model setting is the literal string ``test-double``.
    """

    model_version = "test-double-1"

    def __init__(self, fail_on: str | None = None) -> None:
        # A text containing `fail_on` makes the whole batch raise: used to test poison isolation.
        self._fail_on = fail_on

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        out: list[Prediction] = []
        for text in texts:
            if self._fail_on is not None and self._fail_on in text:
                raise RuntimeError("test double asked to fail on this batch")
            neg = len(_NEG.findall(text)) + len(_NEG_ZH.findall(text))
            pos = len(_POS.findall(text)) + len(_POS_ZH.findall(text))
            sentiment = "negative" if neg > pos else "positive" if pos > neg else "neutral"
            topic = (
                "Financials"
                if _FINANCIALS.search(text)
                else "Earnings"
                if "earnings" in text.lower()
                else TOPICS[len(text) % len(TOPICS)]
            )
            s_probs = {s: (0.8 if s == sentiment else 0.1) for s in SENTIMENTS}
            t_probs = {t: (0.81 if t == topic else 0.01) for t in TOPICS}
            out.append(
                Prediction(topic, 0.81, sentiment, 0.8, {"topic": t_probs, "sentiment": s_probs}, self.model_version)
            )
        return out

    def analyse(self, docs: Sequence[DocInput]) -> list[Prediction]:
        """The document reads as title + text; a company's sentiment is that of the
        sentences that mention it (the same keyword rule), else the document's."""
        preds = self.classify([joined_text(d) for d in docs])
        out = []
        for d, p in zip(docs, preds, strict=True):
            ents = []
            for t in d.targets:
                sentences = [_sentence_at(d.text, s) for s in t.spans] + [
                    _sentence_at(d.title or "", s) for s in t.title_spans
                ]
                if not sentences:
                    ents.append(stand_in(t.symbol, p))
                    continue
                q = self.classify([" ".join(dict.fromkeys(sentences))])[0]
                ents.append(EntitySentiment(t.symbol, q.sentiment, q.sentiment_score, dict(q.probs["sentiment"])))
            out.append(replace(p, entities=tuple(ents)))
        return out


_SENTENCE_END = re.compile(r"[.!?;]\s+|\n+")


def _sentence_at(text: str, span: Span) -> str:
    """The sentence (or clause) around a mention: from the last break before it to the next after."""
    start = 0
    for m in _SENTENCE_END.finditer(text, 0, span[0]):
        start = m.end()
    after = _SENTENCE_END.search(text, span[1])
    return text[start : after.start() if after else len(text)]
