"""Labelled CSVs for training and evaluation, read by path (the data never lives in the repo).

Call: ``read_labelled_csv(path, task, text_column="text", label_column="label")`` ->
``(texts, label_ids)`` with ids in the model's label order (``models.labels``).
``default_data_dir()`` is ``../shared/data/twitter-financial-news`` next to the repo root;
``split_path(data_dir, task, split)`` names the files ``{topic,sent}_{train,valid}.csv``.

Labels may be the Twitter Financial News integer ids (sentiment 0 Bearish, 1 Bullish,
2 Neutral; topic = index) or the label names themselves (``negative``, ``Earnings``...).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from models.labels import SENTIMENT_INDEX, TFN_SENTIMENT_IDS, TOPIC_INDEX

REPO_ROOT = Path(__file__).resolve().parents[1]
TASKS = ("topic", "sentiment")
_FILE_PREFIX = {"topic": "topic", "sentiment": "sent"}


def default_data_dir() -> Path:
    return (REPO_ROOT / ".." / "shared" / "data" / "twitter-financial-news").resolve()


def split_path(data_dir: str | Path, task: str, split: str) -> Path:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    return Path(data_dir) / f"{_FILE_PREFIX[task]}_{split}.csv"


def _label_id(raw: str, task: str) -> int:
    value = raw.strip()
    index = TOPIC_INDEX if task == "topic" else SENTIMENT_INDEX
    if value in index:
        return index[value]
    lowered = {k.lower(): v for k, v in index.items()}
    if value.lower() in lowered:
        return lowered[value.lower()]
    if task == "sentiment" and value.lower() in {"bearish", "bullish"}:
        return SENTIMENT_INDEX["negative" if value.lower() == "bearish" else "positive"]
    try:
        number = int(float(value))
    except ValueError:
        raise ValueError(f"unknown {task} label {raw!r}") from None
    if task == "sentiment":
        if number not in TFN_SENTIMENT_IDS:
            raise ValueError(f"sentiment label id {number} is not 0, 1 or 2")
        return SENTIMENT_INDEX[TFN_SENTIMENT_IDS[number]]
    if not 0 <= number < len(TOPIC_INDEX):
        raise ValueError(f"topic label id {number} is outside 0..{len(TOPIC_INDEX) - 1}")
    return number


def read_labelled_csv(
    path: str | Path, task: str, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[int]]:
    """Texts and label ids from a CSV (quoted multi-line cells are fine)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such CSV: {p} (pass --data-dir or the file path)")
    texts: list[str] = []
    labels: list[int] = []
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        for col in (text_column, label_column):
            if col not in fields:
                raise ValueError(f"{p} has no column {col!r} (columns: {', '.join(fields)})")
        for line, row in enumerate(reader, start=2):
            try:
                labels.append(_label_id(row[label_column] or "", task))
            except ValueError as exc:
                raise ValueError(f"{p}: row near line {line}: {exc}") from None
            texts.append(row[text_column] or "")
    return texts, labels


ZH_CORPUS = REPO_ROOT / "pipelines" / "zh_corpus"
ZH_TRAIN_FILES = ("train-a.jsonl", "train-b.jsonl", "train-c.jsonl", "train-d.jsonl")
ZH_TEST_FILE = "test.jsonl"


def read_zh_corpus(path: str | Path, task: str) -> tuple[list[str], list[int]]:
    """Texts and `task` label ids from one of our Chinese JSONL files (pipelines/zh_corpus)."""
    import json

    p = Path(path)
    texts: list[str] = []
    labels: list[int] = []
    key = "topic" if task == "topic" else "sentiment"
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            labels.append(_label_id(str(row[key]), task))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{p}:{n}: {exc}") from None
        texts.append(str(row["text"]))
    return texts, labels


def zh_split(task: str, split: str, corpus: str | Path = ZH_CORPUS) -> tuple[list[str], list[int]]:
    """The Chinese training files together ("train") or the held-out file ("test")."""
    names = ZH_TRAIN_FILES if split == "train" else (ZH_TEST_FILE,)
    texts: list[str] = []
    labels: list[int] = []
    for name in names:
        t, y = read_zh_corpus(Path(corpus) / name, task)
        texts += t
        labels += y
    return texts, labels
