"""The inference engine: order, batching, bucketing and hostile inputs."""

from __future__ import annotations

import json
import os

import pytest

from models.multitask import SHIPPED_MODEL_DIR, WEIGHTS_FILE
from monitor.classify.base import KeywordTestDouble

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
    from monitor.classify.engine import Engine

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
    # 5,000 words are read whole, in windows; 200,000 characters pass the cap and are cut, with a reason.
    assert engine.truncated - before == 1
    words, xs = preds[2], preds[3]
    assert words.chunks > 10 and not words.cut
    assert "cut" in xs.cut and "200,000" in xs.cut


def test_long_article_is_read_whole_and_each_company_gets_its_own_sentiment(engine) -> None:
    from monitor.classify.base import DocInput, Target

    calm = "The company reported steady results and kept its outlook for the year unchanged. " * 80
    bad = "In other news, GM recalls 400,000 trucks over a braking fault and its shares plunged 9%."
    text = calm + bad
    gm = text.index("GM")
    doc = DocInput(text, title="Carmakers: the week in review", targets=(Target("GM", ((gm, gm + 2),)), Target("F")))
    (p,) = engine.analyse([doc])
    assert p.chunks >= 6 and not p.cut  # title + the body's windows
    by = {e.symbol: e for e in p.entities}
    assert by["GM"].sentiment == "negative" and by["GM"].mentioned
    # A target with no mention read (a publisher ticker) takes the document's sentiment.
    assert not by["F"].mentioned and by["F"].sentiment == p.sentiment


def test_a_text_that_fits_one_window_reads_exactly_as_before(engine) -> None:
    from monitor.classify.base import DocInput

    (a,) = engine.classify([TEXTS[0]])
    (b,) = engine.analyse([DocInput(TEXTS[0])])
    assert a.chunks == b.chunks == 1 and a.probs == b.probs


def test_the_cap_on_windows_says_what_was_read() -> None:
    from monitor.classify.base import DocInput
    from monitor.classify.engine import Engine

    small = Engine(device="cpu", max_chunks=2)
    (p,) = small.analyse([DocInput("Shares fell sharply after the warning. " * 200)])
    assert p.chunks == 2 and p.cut.startswith("read the first") and "2 windows" in p.cut


def test_classify_iter_matches_classify_and_handles_empty_batches(engine) -> None:
    batches = [TEXTS[:3], [], TEXTS[3:]]
    out = list(engine.classify_iter(batches))
    assert [len(b) for b in out] == [3, 0, len(TEXTS) - 3]
    flat = [p.topic for b in out for p in b]
    assert flat == [p.topic for p in engine.classify(TEXTS)]
    assert engine.classify([]) == []


def test_int8_engine_runs() -> None:
    from monitor.classify.engine import Engine

    q = Engine(device="cpu", quantize=True)
    preds = q.classify(TEXTS[:3])
    assert q.quantized and all(_sums_to_one(p) for p in preds)


def test_build_classifier_settings(tmp_path) -> None:
    from monitor.classify.engine import Engine, build_classifier

    assert isinstance(build_classifier("test-double"), KeywordTestDouble)
    with pytest.raises(FileNotFoundError):
        build_classifier(str(tmp_path / "nope"))
    assert isinstance(build_classifier(str(SHIPPED_MODEL_DIR)), Engine)


def test_classify_file_writes_one_line_per_row(tmp_path) -> None:
    import json

    from monitor.classify.engine import classify_file

    src = tmp_path / "in.csv"
    src.write_text('text,id\n"Fed, ECB hold rates",1\n,2\nOil slumps,3\n')
    out = tmp_path / "out.jsonl"
    assert classify_file(src, output=out, batch_size=2) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    assert set(rows[0]) == {
        "topic",
        "topic_score",
        "sentiment",
        "sentiment_score",
        "probs",
        "model_version",
        "chunks",
        "lang",
        "entities",
    }
    with pytest.raises(ValueError, match="no column 'body'"):
        classify_file(src, text_column="body", output=out)
    with pytest.raises(ValueError, match="no column 'headline'"):
        classify_file(src, title_column="headline", output=out)


def test_classify_file_links_companies_with_their_sentiment_and_mentions(tmp_path) -> None:
    import json

    from monitor.classify.engine import classify_file
    from monitor.classify.lang import detect
    from monitor.enrich.entities import build_matcher

    text = "Tesla gains as GM recalls 400,000 trucks"
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"text": text, "headline": "Carmakers"})
        + "\n"
        + json.dumps({"text": "apple pie prices rise at the county fair"})
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    assert classify_file(src, output=out, title_column="headline", matcher=build_matcher(), detect_lang=detect) == 2
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["lang"] == "en"
    ents = {e["symbol"]: e for e in first["entities"]}
    assert set(ents) == {"TSLA", "GM"}
    assert ents["GM"]["name"] and [text[a:b] for a, b in ents["GM"]["mentions"]] == ["GM"]
    assert [text[a:b] for a, b in ents["TSLA"]["mentions"]] == ["Tesla"]
    assert {e["sentiment"] for e in first["entities"]} <= {"negative", "neutral", "positive"}
    assert second["entities"] == []


# --- the classifier benchmark -------------------------------------------------------------


def test_encoder_flops_follow_the_modules_of_a_real_encoder():
    """The FLOP count's per-layer weights are exactly the encoder's Linear layers."""
    from torch import nn
    from transformers import BertConfig, BertModel

    from pipelines.bench_classify import encoder_flops_per_text

    config = BertConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4)
    layers = BertModel(config).encoder
    weights = sum(m.weight.numel() for m in layers.modules() if isinstance(m, nn.Linear))
    lengths = [10, 30]
    attention = [4 * t * t * 64 * 3 for t in lengths]  # scores and weighted values, per layer
    expected = sum(2 * t * weights + a for t, a in zip(lengths, attention, strict=True)) / 2
    assert encoder_flops_per_text(config, lengths) == pytest.approx(expected)
    assert encoder_flops_per_text(config, []) == 0.0


def test_bench_classify_reports_engine_naive_and_the_compute_ceiling():
    from click.testing import CliRunner

    from pipelines.bench_classify import command

    args = ["-n", "48", "--naive-texts", "4", "--int8", "off", "--workload", "both", "--articles", "4", "--json"]
    run = CliRunner().invoke(command, args)
    assert run.exit_code == 0, run.output
    r = json.loads(run.output)
    assert r["texts"] == 48 and r["naive_texts"] == 4
    assert r["engine_texts_per_s"] > 0 and r["naive_texts_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["engine_texts_per_s"] / r["naive_texts_per_s"], rel=0.01)
    c = r["compute_bound"]
    assert c["matmul_gflops"] > 0 and 0.1 < c["gflop_per_text"] < 10  # MiniLM-L6 on tweets: ~1 GFLOP
    assert c["ceiling_texts_per_s"] == pytest.approx(c["matmul_gflops"] / c["gflop_per_text"], rel=0.01)
    assert c["engine_share"] == pytest.approx(r["engine_texts_per_s"] / c["ceiling_texts_per_s"], rel=0.01)
    assert r["hardware"]["cpu_cores"] >= 1
    # three alternating rounds, each reported; the headline numbers are their medians
    assert r["rounds"] == 3 and len(r["engine_rounds_texts_per_s"]) == len(r["naive_rounds_texts_per_s"]) == 3
    assert r["engine_texts_per_s"] == sorted(r["engine_rounds_texts_per_s"])[1]
    assert r["naive_texts_per_s"] == sorted(r["naive_rounds_texts_per_s"])[1]
    # the batched pipeline (64 per call) is the second baseline, for tweets and for news
    # (ratios come from unrounded rates; the rates are rounded to 0.1, so allow for that)
    assert r["ratio_vs_batched"] == pytest.approx(r["engine_texts_per_s"] / r["batched_pipeline_texts_per_s"], rel=0.05)
    news = r["news"]
    assert news["texts"] == 4 and 300 < news["text_tokens"]["mean"] < 600
    assert news["ratio_vs_batched"] == pytest.approx(
        news["engine_texts_per_s"] / news["batched_pipeline_texts_per_s"], rel=0.05
    )


def test_polar_chunks_decide_the_sentiment_toward_a_company() -> None:
    """Routine mentions abstain when some chunks are clearly polar toward the company; with
    none, the plain mean; good and bad news weigh against each other."""
    import torch

    from monitor.classify.engine import _toward_target

    neutral = torch.tensor([0.07, 0.76, 0.17])  # negative, neutral, positive
    bad, good = torch.tensor([0.91, 0.04, 0.05]), torch.tensor([0.10, 0.10, 0.80])
    weak = torch.tensor([0.45, 0.30, 0.25])  # polar argmax, but not clearly
    p = _toward_target(torch.stack([neutral] * 20 + [bad]), 1)
    assert int(p.argmax()) == 0 and torch.allclose(p, bad)
    assert torch.allclose(_toward_target(torch.stack([neutral, weak]), 1), (neutral + weak) / 2)
    assert torch.allclose(_toward_target(torch.stack([neutral, bad, good]), 1), (bad + good) / 2)
    assert torch.allclose(_toward_target(bad[None], 1), bad)
