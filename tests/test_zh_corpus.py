"""The Chinese sentences we wrote (pipelines/zh_corpus): valid labels, every topic and
sentiment present, and the held-out test file sharing no text with the training files."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

from models.labels import SENTIMENTS, TOPICS

CORPUS = Path(__file__).resolve().parent.parent / "pipelines" / "zh_corpus"
KINDS = {"news", "announcement", "forum", "weibo"}


def _rows(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (CORPUS / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _key(text: str) -> str:
    """Text without punctuation, spaces or case: near-identical lines compare equal."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text)).lower()


def test_every_line_is_labelled_and_the_test_file_is_apart() -> None:
    train = [r for name in ("train-a.jsonl", "train-b.jsonl", "train-c.jsonl", "train-d.jsonl") for r in _rows(name)]
    test = _rows("test.jsonl")
    for r in (*train, *test):
        assert set(r) == {"text", "topic", "sentiment", "kind"}, r
        assert r["topic"] in TOPICS and r["sentiment"] in SENTIMENTS and r["kind"] in KINDS, r
        assert 2 <= len(r["text"]) <= 400
    assert len(train) >= 2800 and len(test) >= 750
    for rows in (train, test):
        assert set(Counter(r["topic"] for r in rows)) == set(TOPICS)
        shares = Counter(r["sentiment"] for r in rows)
        assert min(shares.values()) >= 0.25 * len(rows)  # no sentiment left thin
    train_keys = {_key(r["text"]) for r in train}
    assert len(train_keys) >= 0.99 * len(train)
    assert not [r["text"] for r in test if _key(r["text"]) in train_keys]
