"""`finsent evaluate`: reports per language, through what `model = "auto"` uses."""

from __future__ import annotations

import csv
from pathlib import Path

from monitor.classify.base import KeywordTestDouble
from pipelines.evaluate import evaluate, evaluate_chinese

# The Twitter Financial News sentiment ids: 0 bearish, 1 bullish, 2 neutral.
EN = [
    ("Tesla shares plunge after recall", 0),
    ("Apple earnings beat estimates, shares soar", 1),
    ("Nvidia to present at the industry conference", 2),
]
ZH = [
    ("贵州茅台暴雷，股价跌停", 0),
    ("宁德时代业绩超预期，股价涨停", 1),
    ("比亚迪将于周五召开业绩说明会", 2),
]


def test_a_mixed_file_is_reported_per_language(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for i in range(10):
            for text, label in EN + ZH:
                w.writerow([f"{text} {i}", label])
    report = evaluate(path, "sentiment", engine=KeywordTestDouble())
    assert report["n"] == 60
    assert set(report["by_lang"]) == {"en", "zh"}
    assert report["by_lang"]["zh"]["n"] == 30 and report["by_lang"]["en"]["n"] == 30
    assert report["by_lang"]["zh"]["accuracy"] == 1.0 and report["by_lang"]["en"]["accuracy"] == 1.0
    assert report["model_versions"] == ["test-double-1"]


def test_the_chinese_test_split_is_reported_for_both_tasks(tmp_path: Path) -> None:
    out = evaluate_chinese(KeywordTestDouble(), out_dir=tmp_path)
    assert set(out) == {"topic", "sentiment"}
    assert out["sentiment"]["n"] == 800 and out["topic"]["n"] == 800
    assert set(out["sentiment"]["by_lang"]) == {"zh"}
    assert (tmp_path / "zh_sentiment_report.json").is_file()
    # The keyword double knows a few Chinese cue words: better than chance on sentiment, no more.
    assert 0.34 < out["sentiment"]["accuracy"] < 0.9
