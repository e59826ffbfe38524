"""The shipped artifact loads offline, with the label maps the rest of the product assumes."""

from __future__ import annotations

import json
import os

import pytest
import torch

from models.labels import SENTIMENTS, TOPICS
from models.multitask import (
    FINSENT_CONFIG_FILE,
    SHIPPED_MODEL_DIR,
    WEIGHTS_FILE,
    HeadSpec,
    load_artifact,
    mean_pool,
    weights_version,
)
from pipelines.data import read_labelled_csv
from pipelines.entity_probes import ARTICLE_ENDINGS, article

os.environ.setdefault("HF_HUB_OFFLINE", "1")

shipped = pytest.mark.skipif(
    not (SHIPPED_MODEL_DIR / WEIGHTS_FILE).is_file(), reason="no shipped artifact in models/finsent-minilm"
)


@shipped
def test_shipped_artifact_is_small_fp16_and_versioned() -> None:
    from safetensors import safe_open

    total = sum(p.stat().st_size for p in SHIPPED_MODEL_DIR.rglob("*") if p.is_file())
    assert total <= 60 * 1024 * 1024
    with safe_open(str(SHIPPED_MODEL_DIR / WEIGHTS_FILE), "pt") as fh:
        names = fh.keys()  # a safetensors handle, not a dict
        dtypes = {fh.get_slice(k).get_dtype() for k in names}
    assert dtypes == {"F16"}
    assert (SHIPPED_MODEL_DIR / "MODEL_CARD.md").is_file()
    version = weights_version(SHIPPED_MODEL_DIR / WEIGHTS_FILE)
    assert len(version) == 12
    assert version in (SHIPPED_MODEL_DIR / "MODEL_CARD.md").read_text()


@shipped
def test_loads_offline_with_label_maps_and_temperatures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer, version = load_artifact(SHIPPED_MODEL_DIR)
    assert model.spec.topics == TOPICS and model.spec.sentiments == SENTIMENTS
    assert model.topic_head.out_features == 20 and model.sentiment_head.out_features == 3
    temps = json.loads((SHIPPED_MODEL_DIR / FINSENT_CONFIG_FILE).read_text())["temperature"]
    assert 0.05 <= temps["topic"] <= 20 and 0.05 <= temps["sentiment"] <= 20
    assert torch.allclose(model.temperature, torch.tensor([temps["topic"], temps["sentiment"]]))
    enc = tokenizer(["Fed holds rates steady"], return_tensors="pt")
    with torch.inference_mode():
        t, s = model.probabilities(enc["input_ids"], enc["attention_mask"])
    assert t.shape == (1, 20) and s.shape == (1, 3)
    assert float(t.sum()) == pytest.approx(1.0, abs=1e-5)
    assert version == weights_version(SHIPPED_MODEL_DIR / WEIGHTS_FILE)


def test_missing_artifact_says_how_to_fix(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="finsent train"):
        load_artifact(tmp_path)


def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(mean_pool(hidden, mask), torch.tensor([[2.0, 2.0]]))


def test_head_spec_round_trips() -> None:
    spec = HeadSpec(temperature_topic=1.3, temperature_sentiment=0.9, max_length=96)
    again = HeadSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again.temperature_topic == 1.3 and again.max_length == 96 and again.topics == TOPICS


def test_dataset_label_ids_map_to_model_order(tmp_path) -> None:
    sent = tmp_path / "s.csv"
    sent.write_text('text,label\n"a, quoted\nline",0\nb,1\nc,2\nd,negative\n')
    texts, labels = read_labelled_csv(sent, "sentiment")
    assert texts[0] == "a, quoted\nline"
    # 0 Bearish, 1 Bullish, 2 Neutral in the files; negative, neutral, positive in the model.
    assert [SENTIMENTS[i] for i in labels] == ["negative", "positive", "neutral", "negative"]
    topic = tmp_path / "t.csv"
    topic.write_text("text,label\nx,5\ny,Macro\n")
    assert [TOPICS[i] for i in read_labelled_csv(topic, "topic")[1]] == ["Earnings", "Macro"]
    bad = tmp_path / "b.csv"
    bad.write_text("text,label\nx,7\n")
    with pytest.raises(ValueError, match="sentiment label id 7"):
        read_labelled_csv(bad, "sentiment")


def test_temperature_fit_softens_overconfident_logits() -> None:
    from pipelines.train import fit_temperature

    torch.manual_seed(0)
    labels = torch.randint(0, 3, (400,))
    logits = torch.randn(400, 3)
    logits[torch.arange(400), labels] += 1.0
    assert fit_temperature(logits * 5, labels.tolist()) > 2.0


def test_distillation_loss_blends_hard_and_soft_targets() -> None:
    from torch import nn

    from pipelines.train import NO_LABEL, task_loss

    torch.manual_seed(1)
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 1, 2, 0, NO_LABEL, NO_LABEL])
    ce = nn.CrossEntropyLoss()
    # Without a teacher it is the plain hard loss over the labelled texts.
    assert torch.isclose(task_loss(logits[:4], labels[:4], None, ce, 0.5), ce(logits[:4], labels[:4]))
    # A teacher that agrees exactly with the student adds nothing: only (1 - w) of the hard loss is left,
    # and teacher-only texts cost zero.
    soft = torch.softmax(logits, -1)
    got = task_loss(logits, labels, soft, ce, 0.3)
    assert torch.isclose(got, 0.7 * ce(logits[:4], labels[:4]) * 4 / 6, atol=1e-6)
    # A teacher that disagrees pulls on every text, labelled or not.
    other = torch.softmax(-logits, -1)
    only_teacher = task_loss(logits[4:], labels[4:], other[4:], ce, 0.3)
    assert only_teacher > 0.1


def test_distilled_training_run_writes_a_loadable_artifact(tmp_path) -> None:
    """A tiny end-to-end run: the shipped model teaches, the other task's texts join each head."""
    from models.multitask import default_model_dir, load_artifact, weights_version
    from pipelines.data import default_data_dir
    from pipelines.train import TrainConfig, train

    if not default_data_dir().is_dir():
        pytest.skip(f"labelled data not found at {default_data_dir()}")
    out = tmp_path / "student"
    summary = train(
        TrainConfig(
            out_dir=str(out),
            epochs=1,
            eval_from=1,
            limit=48,
            batch_size=16,
            threads=2,
            distill_from=(str(default_model_dir()),),
            finentity="none",
        )
    )
    assert summary["train_examples"] == {"topic": 96, "sentiment": 96}
    assert summary["train_labelled"] == {"topic": 48, "sentiment": 48}
    assert summary["teachers"] == {str(default_model_dir()): weights_version(default_model_dir() / "model.safetensors")}
    model, _, version = load_artifact(out)
    assert version == summary["model_version"]
    assert model.spec.extra["teachers"] == summary["teachers"]


def test_training_with_finentity_gives_an_entity_head_the_engine_uses(tmp_path) -> None:
    """A tiny run with the FinEntity file: the artifact has an entity head with its own
    temperature, reports the held-out test split, and the engine reads the sentiment
    toward a marked company through it."""
    from models.multitask import load_artifact
    from monitor.classify.base import DocInput, Target
    from monitor.classify.engine import Engine
    from pipelines.data import default_data_dir
    from pipelines.finentity import default_path
    from pipelines.train import TrainConfig, train

    if not default_data_dir().is_dir() or not default_path().is_file():
        pytest.skip("labelled data (tweets, FinEntity) not found next to the repository")
    out = tmp_path / "ent"
    summary = train(TrainConfig(out_dir=str(out), epochs=1, eval_from=1, limit=48, batch_size=16, threads=2))
    assert summary["entity_examples"]["train"] == 48
    assert {"entity_valid", "entity_test"} <= set(summary["valid_metrics"])
    model, _, _ = load_artifact(out)
    assert model.entity_head is not None and model.spec.entity
    engine = Engine(model_dir=out, device="cpu")
    text = "Tesla gains as GM recalls 400,000 trucks"
    (p,) = engine.analyse([DocInput(text, targets=(Target("TSLA", ((0, 5),)), Target("GM", ((15, 17),))))])
    assert [e.symbol for e in p.entities] == ["TSLA", "GM"]
    assert all(abs(sum(e.probs.values()) - 1) < 1e-4 and e.mentioned for e in p.entities)


def test_entity_layer_training_leaves_tweets_exactly_as_they_were(tmp_path) -> None:
    """`finsent train --entity-layer-only`: a tiny run adds the target-marked entity layer
    over the frozen shipped model; topic and sentiment probabilities of tweets are exactly
    the shipped model's, and the engine reads each company through the marked layer."""
    from monitor.classify.base import DocInput, Target
    from monitor.classify.engine import Engine
    from pipelines.data import default_data_dir
    from pipelines.finentity import default_path
    from pipelines.train import TrainConfig, train_entity_layer

    if not default_data_dir().is_dir() or not default_path().is_file():
        pytest.skip("labelled data (tweets, FinEntity) not found next to the repository")
    out = tmp_path / "el"
    summary = train_entity_layer(
        TrainConfig(out_dir=str(out), init_from=str(SHIPPED_MODEL_DIR), epochs=1, limit=48, threads=2)
    )
    assert {"entity_valid", "entity_test"} <= set(summary["valid_metrics"])
    model, _, _ = load_artifact(out)
    assert model.spec.entity_layers == 1 and model.entity_block is not None
    tweets = ["$AAPL beats on earnings, shares up 5%", "Fed holds rates steady", "GM recalls 400,000 trucks"]
    before = Engine(device="cpu", precision="fp32").classify(tweets)
    after_engine = Engine(model_dir=out, device="cpu", precision="fp32")
    after = after_engine.classify(tweets)
    assert [p.probs for p in after] == [p.probs for p in before]
    text = "Tesla gains as GM recalls 400,000 trucks"
    (p,) = after_engine.analyse([DocInput(text, targets=(Target("TSLA", ((0, 5),)), Target("GM", ((15, 17),))))])
    assert [e.symbol for e in p.entities] == ["TSLA", "GM"] and all(e.mentioned for e in p.entities)
    assert all(abs(sum(e.probs.values()) - 1) < 1e-4 for e in p.entities)


# --- the shipped model on news: the sentiment toward each company ---------------------------

# The long article (pipelines/entity_probes.py): routine paragraphs naming Boeing without
# opinion, then one paragraph of news about Boeing.
# Written before the entity branch was trained; it reads this one as neutral toward Boeing,
# see the xfail below.
_BAD_NEWS = ARTICLE_ENDINGS[-1][0]
# Written after: the same news with Boeing as the subject of the bad news.
_BAD_NEWS_DIRECT = (
    "Late on Friday, Boeing shares plunged 12% in after-hours trading after regulators "
    "grounded its entire 737 MAX fleet again, and Boeing said it would halt deliveries "
    "indefinitely and cut 10,000 jobs."
)


def _article(last: str = _BAD_NEWS) -> str:
    return article(last)


def _toward(text: str, title: str | None = None) -> dict[str, str]:
    from monitor.classify.base import DocInput, Target
    from monitor.classify.engine import Engine
    from monitor.enrich.entities import build_matcher

    links = build_matcher().link(text)
    engine = Engine(device="cpu")
    (p,) = engine.analyse([DocInput(text, title, tuple(Target(lk.symbol, lk.mentions) for lk in links))])
    return {e.symbol: e.sentiment for e in p.entities}


@shipped
def test_shipped_model_gives_each_company_its_own_sentiment() -> None:
    assert _toward("Tesla gains as GM recalls 400,000 trucks") == {"TSLA": "positive", "GM": "negative"}


@shipped
def test_shipped_model_reads_bad_news_in_the_last_paragraph_of_a_long_article() -> None:
    """The whole article is read, and the one polar paragraph about Boeing decides: the
    verdict is the last paragraph's own, not outvoted by the routine mentions."""
    text = _article(_BAD_NEWS_DIRECT)
    assert len(text.split()) >= 1000
    assert _BAD_NEWS_DIRECT not in text[:4000]  # far past the 256-token window of one pass
    assert _toward(_BAD_NEWS_DIRECT) == {"BA": "negative"}
    assert _toward(text, "Aviation industry gathers in Toulouse") == {"BA": "negative"}


@shipped
@pytest.mark.xfail(
    strict=True,
    reason="known miss (issue 16): the entity branch reads 'Boeing said regulators had ordered its fleet "
    "grounded ...' as neutral toward Boeing, standalone and in the article; so does every entity-branch "
    "variant trained on 2026-12-07 (models/card-notes.md): the sentiment training tweets label 3 of their "
    "4 groundings neutral",
)
def test_shipped_model_reads_reported_bad_news_about_a_company_as_negative() -> None:
    assert _toward(_article(), "Aviation industry gathers in Toulouse") == {"BA": "negative"}


def test_two_company_joins_keep_each_mention_and_its_own_label() -> None:
    """The entity head's augmentation: joins of one-company texts with different
    sentiments keep every mention at the right offsets, each with its own label; a
    sentence of a one-company text that names it becomes a short text of its own."""
    from pipelines.finentity import TargetExample, composites, sentence_units

    units = [
        TargetExample("Tesla gains on record deliveries.", ((0, 5),), 2),
        TargetExample("GM recalls 400,000 trucks. GM shares slip.", ((0, 2), (27, 29)), 0),
        TargetExample("Ford holds its dividend.", ((0, 4),), 1),
    ]
    joins = composites(units, 40, seed=1)
    assert len(joins) == 80
    names = {"Tesla", "GM", "Ford"}
    for a, b in zip(joins[::2], joins[1::2], strict=True):
        assert a.text == b.text and a.label != b.label
        for ex in (a, b):
            assert {ex.text[s:e] for s, e in ex.spans} <= names and len({ex.text[s:e] for s, e in ex.spans}) == 1
    assert any(" as " in j.text or " while " in j.text for j in joins)  # joins inside one sentence too
    pieces = sentence_units(units)
    assert [(p.text, [p.text[s:e] for s, e in p.spans], p.label) for p in pieces] == [
        ("GM recalls 400,000 trucks.", ["GM"], 0),
        ("GM shares slip.", ["GM"], 0),
    ]


def test_reported_speech_retellings_keep_the_company_marked_and_its_label() -> None:
    """The entity branch's reported-speech examples (an opt-in training option): the
    company becomes the speaker, the news about it hangs on "it"/"its", its later mentions
    stay marked at the right offsets; texts that would not read as the company's own verb
    (headline passives, verbless headlines, a company not first, a cashtag) are left out."""
    from pipelines.finentity import TargetExample, reported

    units = [
        TargetExample("GM recalls 400,000 trucks; GM shares slip.", ((0, 2), (27, 29)), 0),
        TargetExample("Tesla's deliveries rose 20%.", ((0, 5),), 2),
        TargetExample("Boeing posted a wider loss in the quarter.", ((0, 6),), 0),
        TargetExample("AT&T shares sink after a downgrade", ((0, 4),), 0),
        TargetExample("AT&T downgraded to sell at MoffettNathanson", ((0, 4),), 0),  # passive headline
        TargetExample("Evolent down 6% on loss of key contract", ((0, 7),), 0),  # verbless
        TargetExample("Lyft and Peloton rally", ((0, 4),), 2),
        TargetExample("Shares of Ford fell 3%.", ((10, 14),), 0),  # not the first word
        TargetExample("$F falls 3%", ((0, 2),), 0),  # a cashtag is no speaker
    ]
    out = reported(units, seed=3)
    assert len(out) == 4
    tails = [
        "it recalls 400,000 trucks; GM shares slip.",
        "its deliveries rose 20%.",
        "it posted a wider loss in the quarter.",
        "its shares sink after a downgrade",
    ]
    for ex, unit, tail in zip(out, units[:4], tails, strict=True):
        name = unit.text[: unit.spans[0][1]]
        assert ex.text.endswith(tail) and (" said " in ex.text or " told investors that " in ex.text)
        assert ex.label == unit.label
        assert [ex.text[a:b] for a, b in ex.spans] == [name] * len(unit.spans)
    assert out[0].text.index("GM") < out[0].text.index(" it recalls")


def test_name_targets_take_tweets_naming_one_company_in_words() -> None:
    from pipelines.finentity import name_targets

    texts = ["Boeing cuts 10,000 jobs", "$BA falls after Boeing cuts jobs", "Fed holds rates", "GM and Ford slip"]
    found = {"Boeing cuts 10,000 jobs": ((0, 6),), "GM and Ford slip": None}
    out = name_targets(texts, [0, 0, 1, 0], lambda t: found.get(t))
    assert [(ex.text, ex.spans, ex.label) for ex in out] == [("Boeing cuts 10,000 jobs", ((0, 6),), 0)]


@shipped
def test_entity_probes_score_every_written_label() -> None:
    from click.testing import CliRunner

    from pipelines.entity_probes import ARTICLE_ENDINGS, REPORTED, THIRD_PARTY, main

    result = CliRunner().invoke(main, ["--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["reported"]["total"] == sum(len(want) for _, want in REPORTED) == 20
    assert out["articles"]["total"] == len(ARTICLE_ENDINGS) == 7
    assert out["third_party"]["total"] == len(THIRD_PARTY) == 12
    for part in ("reported", "articles", "third_party"):
        assert out[part]["right"] + len(out[part]["misses"]) == out[part]["total"]
    # The two-company sentence the shipped-model test above checks is not among the misses.
    assert not any(m["text"].startswith("Tesla gains as GM") for m in out["reported"]["misses"])
