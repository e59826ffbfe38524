"""`finsent bench replay FILE`: a backfill's rate next to the classifier's own, on the same texts.

A replay (classify -> store -> near-duplicates -> minute counts -> detector ticks at
every event-time minute -> alert lifecycle) should be bound by the classifier, not by
detection. This runs, in one process on the same machine:

1. the classifier alone over the file's texts, in the replay's batch size, doing the
   classification work the pipeline does: the companies of each text linked (the same
   matcher, the row's tickers included) and read with the sentiment toward each, through
   the same classifier (`model = "auto"`: each language's model); nothing stored. The
   rate without the companies is printed beside it;
2. the whole replay of the same file into a temporary SQLite database;

and prints both rates, their ratio, the detector's share of the replay, and the hardware.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from typing import Any

import click

from monitor.app.options import column_options, columns_from, with_settings
from monitor.config import Settings
from pipelines.hardware import cpu_model


def run(path: str, settings: Settings, columns: Any, batch_size: int, limit: int | None) -> dict[str, Any]:
    import torch

    from monitor.app.batch import matcher_for
    from monitor.app.wiring import build_classifier
    from monitor.classify.base import DocInput, Target, analyse
    from monitor.classify.lang import detect
    from monitor.ingest.inputs import read_records, to_message
    from pipelines.replay import replay

    texts: list[str] = []
    tickers: list[list[str]] = []
    for _n, row, _err in read_records(path):
        if row is None:
            continue
        msg = to_message(row, columns)
        if isinstance(msg.get("text"), str):
            texts.append(msg["text"])
            tickers.append([t for t in msg.get("tickers") or [] if isinstance(t, str)])
        if limit and len(texts) >= limit:
            break
    clf = build_classifier(settings)
    clf.classify(texts[: min(64, len(texts))])  # warm-up (first-call allocations, lazy init)
    # Both models loaded before the clock starts, as in a running daemon.
    other = next((t for t in texts if detect(t) != "en"), None)
    if other is not None:
        clf.classify([other])
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        clf.classify(texts[i : i + batch_size])
    plain_s = time.perf_counter() - t0
    matcher = matcher_for(settings)
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        docs = [
            DocInput(text, None, tuple(Target(lk.symbol, lk.mentions) for lk in matcher.link(text, tk)))
            for text, tk in zip(texts[i : i + batch_size], tickers[i : i + batch_size], strict=True)
        ]
        analyse(clf, docs)
    classify_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="finsent-bench-replay-") as tmp:
        src = path
        if limit:
            src = os.path.join(tmp, "head" + os.path.splitext(path)[1])
            _head(path, src, limit)
        s = settings.model_copy(update={"database_url": f"sqlite:///{tmp}/replay.db"})
        res = replay(src, s, columns=columns, classifier=clf, batch_size=batch_size)
    classify_rate = len(texts) / classify_s if classify_s else 0.0
    replay_rate = res.documents / res.wall_s if res.wall_s else 0.0
    return {
        "texts": len(texts),
        "batch_size": batch_size,
        "classify_s": round(classify_s, 2),
        "classify_texts_per_s": round(classify_rate, 1),
        "classify_without_companies_texts_per_s": round(len(texts) / plain_s, 1) if plain_s else None,
        "replay_s": round(res.wall_s, 2),
        "replay_docs_per_s": round(replay_rate, 1),
        "ratio": round(replay_rate / classify_rate, 3) if classify_rate else None,
        "detector_runs": res.detector_runs,
        "ticks": res.ticks,
        "alerts_fired": len(res.fired),
        "hardware": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
    }


def _head(path: str, out: str, rows: int) -> None:
    """The first `rows` data rows of a CSV (with its header) or JSONL file."""
    with open(path, encoding="utf-8", newline="") as src, open(out, "w", encoding="utf-8", newline="") as dst:
        if path.lower().endswith((".jsonl", ".ndjson", ".json")):
            for i, line in enumerate(src):
                if i >= rows:
                    break
                dst.write(line)
            return
        import csv

        reader = csv.reader(src)
        writer = csv.writer(dst)
        for i, rec in enumerate(reader):
            if i > rows:
                break
            writer.writerow(rec)


@click.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@column_options
@click.option("--model", default=None, help="Model directory, or 'test-double' (FINSENT_MODEL).")
@click.option("--batch-size", type=int, default=512, show_default=True, help="Texts per batch, in both runs.")
@click.option("--limit", type=int, default=None, help="Only the first N rows.")
@click.option("--json", "as_json", is_flag=True)
@with_settings(model="model")
def command(settings: Settings, file: str, batch_size: int, limit: int | None, as_json: bool, **kw: Any) -> None:
    """A replay's rate next to the classifier's standalone rate on the same texts."""
    res = run(file, settings, columns_from(kw), batch_size, limit)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    hw = res["hardware"]
    click.echo(f"{res['texts']:,} texts, batches of {res['batch_size']}")
    click.echo(
        f"  classifier alone: {res['classify_texts_per_s']:.1f} texts/s ({res['classify_s']:.1f} s) with the "
        f"sentiment toward each linked company, as the pipeline reads them; "
        f"{res['classify_without_companies_texts_per_s']} texts/s without"
    )
    click.echo(
        f"  whole replay:     {res['replay_docs_per_s']:.1f} documents/s ({res['replay_s']:.1f} s, "
        f"{res['detector_runs']:,} detector runs over {res['ticks']:,} ticks, {res['alerts_fired']} alerts)"
    )
    click.echo(f"  ratio: {res['ratio']} (target >= 0.70)")
    click.echo(
        f"  hardware: {hw['cpu']}, {hw['cores']} cores, {hw['torch_threads']} torch threads, load {hw['load_average']}"
    )


if __name__ == "__main__":  # `python -m pipelines.bench_replay FILE`, the same as `finsent bench replay FILE`
    command(prog_name="finsent bench replay")
