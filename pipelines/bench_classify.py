"""Throughput of the inference engine against the naive per-text call and the batched
pipeline a competent user writes, in one run, for tweets and for news articles.

Call: ``bench_classify(texts=None, n=2048, model_dir=None, device="auto", batch_size=256,
threads=None, naive_n=256, int8="compare", data_dir=None, precision="auto", rounds=3) -> dict`` or ``main(argv)`` /
``python -m pipelines.bench_classify --help`` (``--json`` prints the dict).

The naive way is what a first script does with a transformers ``pipeline``: one text per
call, tokenised on its own, a forward pass under ``no_grad`` in fp32, the scores turned into
a dict. It runs on the same weights and threads as the engine, so the ratio measures the
engine (length-bucketed batches, one Rust tokenizer call per batch, ``inference_mode``,
tokenisation overlapped with the forward pass, optional int8), not the hardware.

The batched baseline is what ``transformers.pipeline(..., batch_size=64)`` does with a
model: texts in input order, 64 per call, padded to the longest of each call, truncated
at the model's position limit (512), a forward pass under ``no_grad`` in fp32. (Our
multi-task model is not a ``*ForSequenceClassification``, so the pipeline object itself
cannot load it; this runs its loop on the same weights.) The engine reads a long article
in windows of its ``max_length`` (the whole text; the baseline reads it whole too, in one
512-position pass), so the two do the same reading.

Texts: the validation CSVs (tweets) when they are there, else generated tweet-like lines.
News (``workload`` news or both): articles of about 400 tokens made by joining real news
paragraphs (the FinEntity file, read from its path) in a fixed random order; generated
sentences where that file is absent.
The engine's default precision on CPU is bf16 where the CPU has AMX/AVX512-BF16, else fp32.
With ``int8="compare"`` the fp32 and dynamic-int8 engines are measured too, each with its
label agreement against the default one, so the JSON shows which is faster.

``compute_bound`` puts the engine's rate next to what the hardware allows: the encoder's FLOPs
per text (at the texts' own token lengths) against this device's measured matrix-multiply
rate on the feed-forward shape, in the engine's precision. An engine near that ceiling is
limited by the chip, not by tokenisation, padding or Python.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import torch

from monitor.app.options import ignores_config_and_db
from pipelines.data import default_data_dir, read_labelled_csv, split_path
from pipelines.hardware import cpu_model


def hardware() -> dict[str, Any]:
    cpu = cpu_model()
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    with contextlib.suppress(OSError):
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return info


def _synthetic(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    subjects = ["$AAPL", "Tesla", "The Fed", "Oil prices", "Gold", "JPMorgan", "The euro", "Nvidia", "Bitcoin"]
    verbs = [
        "rises",
        "falls",
        "beats estimates",
        "misses estimates",
        "cuts guidance",
        "raises dividend",
        "is upgraded to buy",
        "faces a probe",
        "holds rates",
    ]
    tails = ["after earnings", "as yields climb", "in early trade", "on China demand", "https://t.co/abc123", ""]
    return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(tails)}".strip() for _ in range(n)]


def load_texts(n: int, data_dir: str | Path | None = None) -> list[str]:
    data = Path(data_dir) if data_dir else default_data_dir()
    texts: list[str] = []
    for task in ("sentiment", "topic"):
        path = split_path(data, task, "valid")
        if path.is_file():
            texts.extend(read_labelled_csv(path, task)[0])
    if not texts:
        texts = _synthetic(n)
    random.Random(0).shuffle(texts)
    while len(texts) < n:
        texts = texts + texts
    return texts[:n]


def _stats(values: Sequence[int]) -> dict[str, float]:
    s = sorted(values)
    return {
        "mean": round(statistics.fmean(s), 1),
        "p50": s[len(s) // 2],
        "p95": s[min(len(s) - 1, int(len(s) * 0.95))],
        "max": s[-1],
    }


def _time_engine(engine: Any, texts: list[str], batch_size: int) -> tuple[float, list[Any]]:
    engine.classify(texts[: min(64, len(texts))])  # warm-up: allocator, oneDNN kernels
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    started = time.perf_counter()
    preds = [p for batch in engine.classify_iter(batches) for p in batch]
    return time.perf_counter() - started, preds


def _naive_runner(model_dir: str | Path | None, device: torch.device, whole: bool = False) -> Any:
    """One text per call, as a transformers text-classification pipeline would run it
    (``whole``: up to the position limit, so a news article is read as far as the engine reads it)."""
    from models.multitask import load_artifact

    model, tokenizer, _ = load_artifact(model_dir)
    model.to(device).eval()
    names = (model.spec.topics, model.spec.sentiments)

    def one(text: str) -> dict[str, Any]:
        limit = int(model.encoder.config.max_position_embeddings) if whole else model.spec.max_length
        enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=limit)
        with torch.no_grad():
            topic, sent = model.probabilities(enc["input_ids"].to(device), enc["attention_mask"].to(device))
        t, s = topic[0].tolist(), sent[0].tolist()
        return {"topic": dict(zip(names[0], t, strict=True)), "sentiment": dict(zip(names[1], s, strict=True))}

    return one


def load_articles(n: int, target_tokens: int = 400, path: str | Path | None = None) -> list[str]:
    """About `target_tokens`-token news articles: real paragraphs joined (FinEntity), else generated."""
    paragraphs: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        from pipelines.finentity import load_paragraphs

        paragraphs = [p.text for p in load_paragraphs(path)]
    if not paragraphs:
        paragraphs = [". ".join(_synthetic(6, seed=i)) + "." for i in range(200)]
    rng = random.Random(1)
    out = []
    for _ in range(n):
        words: list[str] = []
        while len(words) * 1.3 < target_tokens:  # ~1.3 word pieces per English word
            words.extend(rng.choice(paragraphs).split())
        out.append(" ".join(words))
    return out


def _batched_runner(model_dir: str | Path | None, device: torch.device, batch_size: int = 64) -> Any:
    """The transformers pipeline's loop with batch_size=64: input order, padded per call, fp32."""
    from models.multitask import load_artifact

    model, tokenizer, _ = load_artifact(model_dir)
    model.to(device).eval()
    limit = int(model.encoder.config.max_position_embeddings)

    def run(texts: Sequence[str]) -> int:
        n = 0
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(
                list(texts[i : i + batch_size]), return_tensors="pt", padding=True, truncation=True, max_length=limit
            )
            with torch.no_grad():
                topic, sent = model.probabilities(enc["input_ids"].to(device), enc["attention_mask"].to(device))
            n += len([{"topic": t, "sentiment": s} for t, s in zip(topic.tolist(), sent.tolist(), strict=True)])
        return n

    return run


def _time_batched(run: Any, texts: list[str]) -> float:
    run(texts[:8])
    started = time.perf_counter()
    run(texts)
    return time.perf_counter() - started


def _time_naive(one: Any, texts: list[str]) -> float:
    for text in texts[:8]:
        one(text)
    started = time.perf_counter()
    for text in texts:
        one(text)
    return time.perf_counter() - started


def encoder_flops_per_text(config: Any, token_lengths: Sequence[int]) -> float:
    """Mean forward FLOPs of a BERT-style encoder per text, each text at its own length.

    Per layer and token: the Q, K, V and output projections (4·h² multiply-adds) and the
    feed-forward pair (2·h·i); per layer and text: scores and weighted values (2·T²·h).
    A multiply-add is two FLOPs. Embedding look-ups, norms and the small heads are left out.
    """
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    if not token_lengths:
        return 0.0
    total = sum(layers * (2 * t * (4 * h * h + 2 * h * i) + 4 * t * t * h) for t in token_lengths)
    return total / len(token_lengths)


def matmul_gflops(
    device: torch.device, dtype: torch.dtype, rows: int, hidden: int, inner: int, seconds: float = 0.5
) -> float:
    """Sustained GFLOP/s of this device on the encoder's feed-forward GEMM shape."""
    a = torch.randn(rows, hidden, device=device).to(dtype)
    b = torch.randn(hidden, inner, device=device).to(dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        for _ in range(3):
            a @ b
        sync()
        runs, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            a @ b
            runs += 1
        sync()
        elapsed = time.perf_counter() - started
    return 2.0 * rows * hidden * inner * runs / elapsed / 1e9


def compute_ceiling(engine: Any, token_lengths: Sequence[int]) -> dict[str, Any] | None:
    """How many texts/s the hardware could do if the encoder ran its GEMMs at full speed:
    the FLOPs per text against the measured matrix-multiply rate in the engine's precision.
    None for int8 (its kernels are not plain GEMMs)."""
    from monitor.classify.engine import PRECISION_DTYPES

    dtype = PRECISION_DTYPES.get(engine.precision)
    if dtype is None:
        return None
    config = engine.model.encoder.config
    flops = encoder_flops_per_text(config, token_lengths)
    # The machine's sustained rate on a large feed-forward GEMM (the engine may use smaller
    # buckets, which run a little below it but waste less on padding).
    rows = max(4096, min(engine.max_tokens, 8192))
    gflops = matmul_gflops(engine.device, dtype, rows, config.hidden_size, config.intermediate_size)
    return {
        "gflop_per_text": round(flops / 1e9, 4),
        "matmul_gflops": round(gflops, 1),
        "matmul_shape": [rows, config.hidden_size, config.intermediate_size],
        "ceiling_texts_per_s": round(gflops * 1e9 / flops, 1) if flops else None,
    }


def bench_classify(
    texts: Sequence[str] | None = None,
    n: int = 2048,
    model_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 256,
    threads: int | None = None,
    naive_n: int = 256,
    int8: str = "compare",
    data_dir: str | Path | None = None,
    precision: str = "auto",
    rounds: int = 3,
    workload: str = "tweets",
    articles: int = 128,
) -> dict[str, Any]:
    """Measure engine vs naive vs batched-pipeline texts/s on the same texts (medians of
    `rounds` alternating rounds); ``int8`` is compare|on|off; ``workload`` tweets|news|both
    (news: `articles` articles of ~400 tokens, under the "news" key when both)."""
    if workload == "news":
        return _bench_news(model_dir, device, batch_size, threads, articles, rounds, precision)
    if workload == "languages":
        return bench_languages(n, device, batch_size, threads, rounds, data_dir, precision)
    result = _bench_tweets(texts, n, model_dir, device, batch_size, threads, naive_n, int8, data_dir, precision, rounds)
    if workload == "both":
        result["news"] = _bench_news(model_dir, device, batch_size, threads, articles, rounds, precision)
    return result


def bench_languages(
    n: int = 1024,
    device: str = "auto",
    batch_size: int = 256,
    threads: int | None = None,
    rounds: int = 3,
    data_dir: str | Path | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """`model = "auto"` on English tweets, Chinese sentences and a 50/50 shuffle of both, in
    calls of `batch_size` texts (the daemon's poll batches): texts/s, medians of `rounds`,
    next to each model alone on its own language."""

    from models.multitask import MULTILINGUAL_MODEL_DIR
    from monitor.classify.engine import Engine
    from monitor.classify.router import Router
    from pipelines.data import zh_split

    if threads:
        torch.set_num_threads(threads)
    half = max(1, n // 2)
    english = load_texts(half, data_dir)
    zh_texts = zh_split("sentiment", "test")[0] + zh_split("sentiment", "train")[0]
    chinese = (zh_texts * (half // len(zh_texts) + 1))[:half]
    mixed = english + chinese
    random.Random(0).shuffle(mixed)
    kw: dict[str, Any] = {"device": device, "batch_size": batch_size, "precision": precision}
    en_engine = Engine(**kw)
    ml_engine = Engine(model_dir=MULTILINGUAL_MODEL_DIR, **kw)
    router = Router(en_engine, lambda: ml_engine)

    def rate(clf: Any, texts: list[str]) -> float:
        clf.classify(texts[:batch_size])  # warm-up
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            for i in range(0, len(texts), batch_size):
                clf.classify(texts[i : i + batch_size])
            times.append(time.perf_counter() - t)
        return round(len(texts) / statistics.median(times), 1)

    return {
        "texts": {"english": len(english), "chinese": len(chinese), "mixed": len(mixed)},
        "batch_size": batch_size,
        "models": {"english": en_engine.model_version, "multilingual": ml_engine.model_version},
        "english_model_on_english_texts_per_s": rate(en_engine, english),
        "multilingual_model_on_chinese_texts_per_s": rate(ml_engine, chinese),
        "multilingual_model_on_english_texts_per_s": rate(ml_engine, english),
        "auto_english_texts_per_s": rate(router, english),
        "auto_chinese_texts_per_s": rate(router, chinese),
        "auto_mixed_texts_per_s": rate(router, mixed),
        "hardware": hardware(),
    }


def _bench_news(
    model_dir: str | Path | None,
    device: str,
    batch_size: int,
    threads: int | None,
    n: int,
    rounds: int,
    precision: str,
) -> dict[str, Any]:
    from monitor.classify.base import DocInput, Target
    from monitor.classify.engine import Engine
    from monitor.enrich.entities import build_matcher

    if threads:
        torch.set_num_threads(threads)
    items = load_articles(n)
    engine = Engine(model_dir=model_dir, device=device, batch_size=batch_size, precision=precision)
    # What the daemon does with an article: link its companies (the shipped universe), then
    # read it whole with the sentiment toward each of them.
    matcher = build_matcher()
    matcher.link(items[0])  # build the automaton outside the timing
    t0 = time.perf_counter()
    links = [matcher.link(text) for text in items]
    match_s = time.perf_counter() - t0
    docs = [
        DocInput(text, None, tuple(Target(lk.symbol, lk.mentions) for lk in ls))
        for text, ls in zip(items, links, strict=True)
    ]

    def with_companies() -> float:
        t = time.perf_counter()
        for i in range(0, len(docs), batch_size):
            engine.analyse(docs[i : i + batch_size])
        return time.perf_counter() - t

    token_lengths = [len(e.ids) for e in engine._tok.encode_batch(items)]
    batched = _batched_runner(model_dir, engine.device)
    naive = _naive_runner(model_dir, engine.device, whole=True)
    naive_items = items[: max(1, min(16, len(items)))]
    e_runs, c_runs, b_runs, n_runs = [], [], [], []
    for _ in range(max(1, rounds)):
        e_runs.append(len(items) / _time_engine(engine, items, batch_size)[0])
        c_runs.append(len(items) / with_companies())
        b_runs.append(len(items) / _time_batched(batched, items))
        n_runs.append(len(naive_items) / _time_naive(naive, naive_items))
    e, b, nv = statistics.median(e_runs), statistics.median(b_runs), statistics.median(n_runs)
    c = statistics.median(c_runs)
    return {
        "texts": len(items),
        "text_tokens": _stats(token_lengths),
        "engine_precision": engine.precision,
        "engine_max_length": engine.max_length,
        "engine_texts_per_s": round(e, 1),
        "engine_rounds_texts_per_s": [round(x, 1) for x in e_runs],
        "batched_pipeline_texts_per_s": round(b, 1),
        "batched_rounds_texts_per_s": [round(x, 1) for x in b_runs],
        "naive_texts": len(naive_items),
        "naive_texts_per_s": round(nv, 1),
        "ratio": round(e / nv, 2),
        "ratio_vs_batched": round(e / b, 2),
        "companies_per_article": round(sum(len(ls) for ls in links) / len(items), 2),
        "engine_with_companies_texts_per_s": round(c, 1),
        "engine_with_companies_rounds_texts_per_s": [round(x, 1) for x in c_runs],
        "ratio_vs_batched_with_companies": round(c / b, 2),
        "matching_ms_per_article": round(1000 * match_s / len(items), 3),
        "matching_share_of_classification": round((match_s / len(items)) * c, 4),
        "hardware": hardware(),
    }


def _bench_tweets(
    texts: Sequence[str] | None,
    n: int,
    model_dir: str | Path | None,
    device: str,
    batch_size: int,
    threads: int | None,
    naive_n: int,
    int8: str,
    data_dir: str | Path | None,
    precision: str,
    rounds: int,
) -> dict[str, Any]:
    from monitor.classify.engine import Engine

    if threads:
        torch.set_num_threads(threads)
    items = list(texts) if texts is not None else load_texts(n, data_dir)
    fp32 = Engine(
        model_dir=model_dir, device=device, batch_size=batch_size, precision="int8" if int8 == "on" else precision
    )
    tok = fp32._tok
    token_lengths = [len(e.ids) for e in tok.encode_batch(items)]
    # Engine and naive rounds alternate and the medians are reported: a shared machine's
    # speed drifts by a third within minutes, which would skew one-shot timings either way.
    naive_items = items[: max(1, min(naive_n, len(items)))]
    naive = _naive_runner(model_dir, fp32.device)
    batched = _batched_runner(model_dir, fp32.device)
    engine_runs: list[float] = []
    naive_runs: list[float] = []
    batched_runs: list[float] = []
    preds: list[Any] = []
    for _ in range(max(1, rounds)):
        engine_seconds, preds = _time_engine(fp32, items, batch_size)
        engine_runs.append(len(items) / engine_seconds)
        naive_runs.append(len(naive_items) / _time_naive(naive, naive_items))
        batched_runs.append(len(items) / _time_batched(batched, items))
    engine_rate, naive_rate = statistics.median(engine_runs), statistics.median(naive_runs)
    batched_rate = statistics.median(batched_runs)
    seconds = len(items) / engine_rate
    result: dict[str, Any] = {
        "texts": len(items),
        "model_version": fp32.model_version,
        "device": str(fp32.device),
        "batch_size": batch_size,
        "max_tokens_per_forward": fp32.max_tokens,
        "max_length": fp32.max_length,
        "text_chars": _stats([len(t) for t in items]),
        "text_tokens": _stats(token_lengths),
        "truncated": fp32.truncated,
        "rounds": max(1, rounds),
        "engine_texts_per_s": round(engine_rate, 1),
        "engine_rounds_texts_per_s": [round(x, 1) for x in engine_runs],
        "engine_precision": fp32.precision,
        "engine_quantized": fp32.quantized,
    }
    ceiling = compute_ceiling(fp32, token_lengths)
    if ceiling and ceiling["ceiling_texts_per_s"]:
        ceiling["engine_share"] = round(result["engine_texts_per_s"] / ceiling["ceiling_texts_per_s"], 3)
    result["compute_bound"] = ceiling
    if int8 == "compare" and fp32.device.type == "cpu":
        # The other CPU precisions on the same texts, with label agreement against the default.
        for other in ("fp32", "int8"):
            if other == fp32.precision:
                continue
            q = Engine(model_dir=model_dir, device="cpu", batch_size=batch_size, precision=other)
            q_seconds, q_preds = _time_engine(q, items, batch_size)
            agree_t = sum(a.topic == b.topic for a, b in zip(preds, q_preds, strict=True)) / len(items)
            agree_s = sum(a.sentiment == b.sentiment for a, b in zip(preds, q_preds, strict=True)) / len(items)
            result[other] = {
                "texts_per_s": round(len(items) / q_seconds, 1),
                "speed_vs_engine": round(seconds / q_seconds, 2),
                "topic_label_agreement": round(agree_t, 4),
                "sentiment_label_agreement": round(agree_s, 4),
            }
            del q
    result["naive_texts"] = len(naive_items)
    result["naive_texts_per_s"] = round(naive_rate, 1)
    result["naive_rounds_texts_per_s"] = [round(x, 1) for x in naive_runs]
    result["ratio"] = round(result["engine_texts_per_s"] / result["naive_texts_per_s"], 2)
    result["batched_pipeline_texts_per_s"] = round(batched_rate, 1)
    result["batched_rounds_texts_per_s"] = [round(x, 1) for x in batched_runs]
    result["ratio_vs_batched"] = round(engine_rate / batched_rate, 2)
    for other in ("fp32", "int8"):
        if other in result:
            result[other]["ratio_vs_naive"] = round(result[other]["texts_per_s"] / result["naive_texts_per_s"], 2)
    result["hardware"] = hardware()
    return result


@click.command("classify")
@click.option("--model", "model_dir", default=None, help="Artifact folder (default: the shipped model).")
@click.option("--data-dir", default=None, help="Folder with the validation CSVs used as texts.")
@click.option("-n", "--texts", "n", type=int, default=2048, show_default=True, help="Texts for the engine.")
@click.option("--naive-texts", "naive_n", type=int, default=256, show_default=True, help="Texts for the naive loop.")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option(
    "--int8",
    type=click.Choice(["compare", "on", "off"]),
    default="compare",
    show_default=True,
    help="compare: also time fp32 and int8 engines; on: the engine itself is int8.",
)
@click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16", "int8"]), default="auto", show_default=True
)
@click.option(
    "--rounds", type=int, default=3, show_default=True, help="Alternating engine/naive rounds; medians are reported."
)
@click.option(
    "--workload",
    type=click.Choice(["tweets", "news", "both", "languages"]),
    default="both",
    show_default=True,
    help="Tweets (validation CSVs) and/or news articles of ~400 tokens; languages: model = auto on English, "
    "Chinese and mixed batches.",
)
@click.option("--articles", type=int, default=128, show_default=True, help="News articles to time.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@ignores_config_and_db
def command(as_json: bool, **kw: Any) -> None:
    """Classifier alone: engine vs the transformers pipeline, once per text and batched by 64."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    r = bench_classify(**kw)
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    if kw.get("workload") == "news":
        _echo_news(r)
        return
    if kw.get("workload") == "languages":
        hw = r["hardware"]
        click.echo(f"hardware: {hw['cpu']}, {hw['cpu_cores']} cores, {hw['torch_threads']} torch threads")
        click.echo(f"texts: {r['texts']}, calls of {r['batch_size']}, models {r['models']}")
        for k, v in r.items():
            if k.endswith("_texts_per_s"):
                click.echo(f"  {k[: -len('_texts_per_s')].replace('_', ' ')}: {v} texts/s")
        return
    hw = r["hardware"]
    click.echo(f"hardware: {hw['cpu']}, {hw['cpu_cores']} cores, {hw['torch_threads']} torch threads, gpu {hw['gpu']}")
    click.echo(
        f"texts: {r['texts']}, tokens mean {r['text_tokens']['mean']} p95 {r['text_tokens']['p95']}, "
        f"batch {r['batch_size']}, max tokens/forward {r['max_tokens_per_forward']}"
    )
    click.echo(f"engine ({r['engine_precision']}): {r['engine_texts_per_s']} texts/s")
    for other in ("fp32", "int8"):
        if other in r:
            q = r[other]
            click.echo(
                f"engine {other}: {q['texts_per_s']} texts/s, label agreement with the engine: "
                f"topic {q['topic_label_agreement']}, sentiment {q['sentiment_label_agreement']}"
            )
    click.echo(f"naive per-text: {r['naive_texts_per_s']} texts/s; ratio x{r['ratio']}")
    click.echo(
        f"batched pipeline (64 per call, fp32): {r['batched_pipeline_texts_per_s']} texts/s; "
        f"ratio x{r['ratio_vs_batched']}"
    )
    c = r.get("compute_bound")
    if c and c.get("ceiling_texts_per_s"):
        click.echo(
            f"compute bound: {c['gflop_per_text']} GFLOP per text; matrix multiply {c['matmul_gflops']} GFLOP/s "
            f"({r['engine_precision']}, {'x'.join(map(str, c['matmul_shape']))}) -> at most "
            f"{c['ceiling_texts_per_s']} texts/s; the engine runs at {c['engine_share']:.0%} of that"
        )
    if "news" in r:
        _echo_news(r["news"])


def _echo_news(r: dict[str, Any]) -> None:
    hw = r["hardware"]
    click.echo(f"news: {r['texts']} articles, tokens mean {r['text_tokens']['mean']} (hardware: {hw['cpu']})")
    click.echo(f"  engine ({r['engine_precision']}, windows of {r['engine_max_length']}): {r['engine_texts_per_s']}/s")
    click.echo(f"  batched pipeline: {r['batched_pipeline_texts_per_s']}/s; ratio x{r['ratio_vs_batched']}")
    click.echo(
        f"  engine with the sentiment toward each linked company ({r['companies_per_article']} per article): "
        f"{r['engine_with_companies_texts_per_s']}/s; ratio x{r['ratio_vs_batched_with_companies']} vs the batched "
        f"pipeline; matching {r['matching_ms_per_article']} ms/article "
        f"({r['matching_share_of_classification']:.1%} of classification)"
    )
    click.echo(f"  naive per-text: {r['naive_texts_per_s']}/s; ratio x{r['ratio']}")


if __name__ == "__main__":  # `python -m pipelines.bench_classify`, the same as `finsent bench classify`
    command(prog_name="finsent bench classify")
