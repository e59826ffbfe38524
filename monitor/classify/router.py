"""`model = "auto"`: English to the English model, every other language to the multilingual
one, in one call.

A batch is split by language, each part goes through its own engine's batched pass, and
the predictions come back in input order, each with its own `model_version`. English
documents see exactly the English engine (same batches, same results as without the
router). The multilingual engine is loaded on the first non-English document, so an
English-only stream never pays for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from monitor.classify.base import Classifier, DocInput, Prediction, analyse
from monitor.classify.lang import detect

log = logging.getLogger(__name__)

ENGLISH = "en"


class Router:
    """A `Classifier` over two: `english` for English, `other()` (built on first use) for the rest."""

    def __init__(self, english: Classifier, other: Callable[[], Classifier]) -> None:
        self.english = english
        self._make_other = other
        self._other: Classifier | None = None
        self._lock = threading.Lock()
        #: Documents routed so far, per model ("en" / "multilingual").
        self.routed = {"en": 0, "multilingual": 0}

    @property
    def model_version(self) -> str:
        """The English model's version (each prediction carries the version that made it)."""
        return self.english.model_version

    @property
    def other(self) -> Classifier:
        with self._lock:
            if self._other is None:
                log.info("loading the multilingual model (first non-English document)")
                self._other = self._make_other()
            return self._other

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return self.analyse([DocInput(t) for t in texts])

    def analyse(self, docs: Sequence[DocInput]) -> list[Prediction]:
        langs = [d.lang or detect(f"{d.title or ''} {d.text}") for d in docs]
        en = [i for i, lang in enumerate(langs) if lang.split("-")[0].lower() == ENGLISH]
        rest = [i for i, lang in enumerate(langs) if lang.split("-")[0].lower() != ENGLISH]
        out: list[Prediction | None] = [None] * len(docs)
        for idx, model, name in ((en, self.english, "en"), (rest, None, "multilingual")):
            if not idx:
                continue
            clf = model if model is not None else self.other
            for i, p in zip(idx, analyse(clf, [docs[i] for i in idx]), strict=True):
                out[i] = p
            self.routed[name] += len(idx)
        assert all(p is not None for p in out)
        return [p for p in out if p is not None]

    def stats(self) -> dict[str, Any]:
        stats = getattr(self.english, "stats", None)
        base = dict(stats()) if callable(stats) else {}
        base["routed"] = dict(self.routed)
        other_stats = getattr(self._other, "stats", None)
        if callable(other_stats):
            base["multilingual"] = other_stats()
        return base
