"""The inference engine: order, batching, bucketing and hostile inputs."""

from __future__ import annotations

import os

import pytest

from models.multitask import SHIPPED_MODEL_DIR, WEIGHTS_FILE
from monitor.classify import KeywordTestDouble

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.skipif(
    not (SHIPPED_MODEL_DIR / WEIGHTS_FILE).is_file(), reason="no shipped artifact in models/finsent-minilm"
)

TEXTS = [
    "$AAPL beats earnings estimates, raises dividend",
    "Fed holds rates steady, signals two cuts next year",
    "Oil slumps as OPEC+ output rises",
    "Goldman downgrades Tesla to sell",
    "BREAKING: bank shares plunge after fraud probe widens into the lending unit and regulators",
    "ok",
    "Treasury yields climb to a 16-year high as investors weigh a longer period of elevated rates",
    "Company names new chief financial officer",
]
HOSTILE = [
    "",
    "   ",
    "word " * 5000,
    "x" * 200_000,
    "日本株が大幅上昇、日経平均は最高値",
    "📈🚀🔥💸",
    "Ölpreis fällt stark",
    "\x00\ufffd",
]


@pytest.fixture(scope="module")
def engine():
    from monitor.engine import Engine

    return Engine(device="cpu", batch_size=4, max_tokens=256)


def _sums_to_one(pred) -> bool:
    return all(abs(sum(pred.probs[t].values()) - 1.0) < 1e-4 for t in ("topic", "sentiment"))


def test_batch_gives_same_labels_as_one_by_one(engine) -> None:
    batch = engine.classify(TEXTS)
    single = [engine.classify([t])[0] for t in TEXTS]
    assert [p.topic for p in batch] == [p.topic for p in single]
    assert [p.sentiment for p in batch] == [p.sentiment for p in single]
    # bf16 (the CPU default with AMX) rounds differently with different padding: ~3 digits.
    tol = 2e-2 if engine.precision in {"bf16", "fp16"} else 1e-4
    for a, b in zip(batch, single, strict=True):
        assert a.topic_score == pytest.approx(b.topic_score, abs=tol)


def test_bucketing_keeps_input_order(engine) -> None:
    forward = engine.classify(TEXTS)
    backward = engine.classify(list(reversed(TEXTS)))
    assert [p.topic for p in reversed(backward)] == [p.topic for p in forward]
    assert [p.sentiment_score for p in reversed(backward)] == pytest.approx(
        [p.sentiment_score for p in forward], abs=1e-3
    )


def test_hostile_texts_do_not_crash_and_probabilities_sum_to_one(engine) -> None:
    before = engine.truncated
    preds = engine.classify(HOSTILE + [None])  # type: ignore[list-item]
    assert len(preds) == len(HOSTILE) + 1
    for p in preds:
        assert _sums_to_one(p)
        assert p.model_version == engine.model_version and p.model_version
        assert 0.0 < p.topic_score <= 1.0 and p.topic == max(p.probs["topic"], key=p.probs["topic"].get)
    assert engine.truncated - before == 2  # the two huge strings


def test_classify_iter_matches_classify_and_handles_empty_batches(engine) -> None:
    batches = [TEXTS[:3], [], TEXTS[3:]]
    out = list(engine.classify_iter(batches))
    assert [len(b) for b in out] == [3, 0, len(TEXTS) - 3]
    flat = [p.topic for b in out for p in b]
    assert flat == [p.topic for p in engine.classify(TEXTS)]
    assert engine.classify([]) == []


def test_int8_engine_runs() -> None:
    from monitor.engine import Engine

    q = Engine(device="cpu", quantize=True)
    preds = q.classify(TEXTS[:3])
    assert q.quantized and all(_sums_to_one(p) for p in preds)


def test_build_classifier_settings(tmp_path) -> None:
    from monitor.engine import Engine, build_classifier

    assert isinstance(build_classifier("test-double"), KeywordTestDouble)
    with pytest.raises(FileNotFoundError):
        build_classifier(str(tmp_path / "nope"))
    assert isinstance(build_classifier(str(SHIPPED_MODEL_DIR)), Engine)


def test_classify_file_writes_one_line_per_row(tmp_path) -> None:
    import json

    from monitor.engine import classify_file

    src = tmp_path / "in.csv"
    src.write_text('text,id\n"Fed, ECB hold rates",1\n,2\nOil slumps,3\n')
    out = tmp_path / "out.jsonl"
    assert classify_file(src, output=out, batch_size=2) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    assert set(rows[0]) == {"topic", "topic_score", "sentiment", "sentiment_score", "probs", "model_version"}
    with pytest.raises(ValueError, match="no column 'body'"):
        classify_file(src, text_column="body", output=out)
