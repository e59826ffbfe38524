"""The classifier interface the daemon, replay and `finsent classify` depend on.

Ingest only needs "texts in, one prediction per text out, in the same order". Keeping
that behind a small protocol lets the unit and broker tests run without torch while the
real engine (`monitor.classify.engine`) is used everywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from models.labels import SENTIMENTS, TOPICS


@dataclass(frozen=True, slots=True)
class Prediction:
    topic: str
    topic_score: float
    sentiment: str
    sentiment_score: float
    # {"topic": {label: p, ...}, "sentiment": {label: p, ...}}
    probs: dict[str, dict[str, float]] = field(default_factory=dict)
    model_version: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "topic_score": self.topic_score,
            "sentiment": self.sentiment,
            "sentiment_score": self.sentiment_score,
            "probs": self.probs,
            "model_version": self.model_version,
        }


class Classifier(Protocol):
    """Anything that labels a batch of texts, preserving order."""

    @property
    def model_version(self) -> str: ...

    def classify(self, texts: Sequence[str]) -> list[Prediction]: ...


_NEG = re.compile(
    r"\b(plunge|plunges|slump|slumps|fraud|probe|lawsuit|downgrade[sd]?|miss(es|ed)?|cut[s]?|"
    r"warn(s|ing)?|loss(es)?|fall(s)?|drop(s|ped)?|crash|scandal|recall|layoff[s]?|bankrupt\w*)\b",
    re.I,
)
# Results wording (per-share figures, net income) is "Financials" in the training data.
_FINANCIALS = re.compile(r"\b(EPS|net income|a share)\b", re.I)
_POS = re.compile(r"\b(beat[s]?|soar[s]?|surge[s]?|upgrade[sd]?|record|rall(y|ies)|raise[sd]?|gain[s]?)\b", re.I)


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
            neg, pos = len(_NEG.findall(text)), len(_POS.findall(text))
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
