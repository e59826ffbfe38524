"""How well the entity matcher finds companies in news, and what it costs per text.

Call: ``evaluate(data_path=None, tweets_path=None) -> dict`` or
``python -m pipelines.evaluate_entities [--data PATH] [--tweets PATH] [--json]``.

On the FinEntity paragraphs (``../shared/data/finentity/finentity_train.json``; spans of
companies, but also of indices, regulators and sectors):

- recall: over the annotated spans that name a company *in the universe*. A span qualifies
  when its text, with a trailing legal suffix ("Inc", "Corp", "& Co", ...) removed, equals
  (ignoring case) an alias or the display name of a universe company, or it is a ticker
  form the matcher reads. A qualifying span is found when a linked mention of that same
  company overlaps it. Spans naming unlisted organisations (Refinitiv, Reuters, the Fed,
  the S&P 500) do not qualify; the count that qualifies is reported.
- precision: over linked mentions in the text; one is correct when it overlaps an annotated
  span, or is a ticker form ("<JNJ.N>", "(NYSE: T)") of a company whose name was linked
  correctly in the same text or that directly follows an annotated span ("Schlumberger <SLB.N>"). FinEntity does not annotate every company a paragraph names,
  so the "wrong" ones are listed for reading (``wrong_sample``).
- speed: the matcher's time per text on the paragraphs and on the tweets of
  ``../shared/data/twitter-financial-news/sent_valid.csv``, with the CPU model.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any

import click

from monitor.enrich.entities import EntityMatcher
from monitor.enrich.universe import load_universe
from pipelines.hardware import cpu_model

REPO_ROOT = Path(__file__).resolve().parents[1]
_SUFFIX = re.compile(
    r"(?:,?\s+(?:Inc|Corp|Corporation|Co|Company|Ltd|Limited|Plc|PLC|LLC|Group|Holdings|SA|AG|SE|NV)\.?"
    r"|\s+&\s+Co\.?)+$"
)


def default_data_path() -> Path:
    return (REPO_ROOT / ".." / "shared" / "data" / "finentity" / "finentity_train.json").resolve()


def default_tweets_path() -> Path:
    return (REPO_ROOT / ".." / "shared" / "data" / "twitter-financial-news" / "sent_valid.csv").resolve()


def _qualifying(span: str, alias_owner: dict[str, str]) -> str | None:
    """The universe company an annotated span names, or None (see the module docstring)."""
    text = span.strip()
    for cand in (text, _SUFFIX.sub("", text)):
        owner = alias_owner.get(cand.casefold())
        if owner:
            return owner
    return None


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate(data_path: Path | None = None, tweets_path: Path | None = None, sample: int = 40) -> dict[str, Any]:
    t0 = time.perf_counter()
    universe = load_universe()
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    matcher = EntityMatcher((), universe)
    build_s = time.perf_counter() - t0

    alias_owner: dict[str, str] = {}
    for c in universe.companies:
        for name in (c.name, *(a for a, _ in c.aliases)):
            alias_owner.setdefault(name.casefold(), c.symbol)

    docs = json.loads((data_path or default_data_path()).read_text(encoding="utf-8"))
    spans_total = qualifying = found = 0
    linked = correct = 0
    wrong: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    times: list[float] = []
    for doc in docs:
        text = doc["content"]
        t = time.perf_counter()
        links = matcher.link(text)
        times.append(time.perf_counter() - t)
        anns = [(a["start"], a["end"]) for a in doc["annotations"]]
        spans_total += len(anns)
        for a in doc["annotations"]:
            sym = _qualifying(a["value"], alias_owner)
            if sym is None:
                continue
            qualifying += 1
            if any(lk.symbol == sym and any(_overlaps(m, (a["start"], a["end"])) for m in lk.mentions) for lk in links):
                found += 1
            else:
                missed.append({"span": a["value"], "symbol": sym, "text": text[:160]})
        for lk in links:
            name_ok = any(any(_overlaps(m, s) for s in anns) for m in lk.mentions)
            for m in lk.mentions:
                linked += 1
                surface = text[m[0] : m[1]]
                is_ticker_form = text[max(0, m[0] - 1) : m[0]] in ("<", "$") or text[max(0, m[0] - 2) : m[0]] == ": "
                after_span = any(0 <= m[0] - e <= 3 for _, e in anns)  # "Schlumberger <SLB.N>"
                if any(_overlaps(m, s) for s in anns) or (is_ticker_form and (name_ok or after_span)):
                    correct += 1
                else:
                    wrong.append({"symbol": lk.symbol, "mention": surface, "text": text[max(0, m[0] - 60) : m[1] + 60]})

    tweet_times: list[float] = []
    tp = tweets_path or default_tweets_path()
    tweets_linked = 0
    if tp.exists():
        with tp.open(newline="", encoding="utf-8") as fh:
            tweets = [r["text"] for r in csv.DictReader(fh)]
        for tw in tweets:
            t = time.perf_counter()
            tweets_linked += bool(matcher.link(tw))
            tweet_times.append(time.perf_counter() - t)

    def ms(xs: list[float]) -> dict[str, float]:
        if not xs:
            return {}
        xs = sorted(xs)
        return {
            "mean_ms": round(1000 * statistics.fmean(xs), 4),
            "p50_ms": round(1000 * xs[len(xs) // 2], 4),
            "p99_ms": round(1000 * xs[min(len(xs) - 1, int(0.99 * len(xs)))], 4),
            "n": len(xs),
        }

    n_aliases = sum(len(c.aliases) for c in universe.companies)
    return {
        "companies": len(universe),
        "aliases": n_aliases,
        "universe_load_s": round(load_s, 3),
        "matcher_build_s": round(build_s, 3),
        "paragraphs": len(docs),
        "spans": spans_total,
        "spans_in_universe": qualifying,
        "recall": round(found / qualifying, 4) if qualifying else None,
        "found": found,
        "linked_mentions": linked,
        "precision": round(correct / linked, 4) if linked else None,
        "correct_mentions": correct,
        "speed_news": ms(times),
        "speed_tweets": ms(tweet_times),
        "tweets_with_a_link": tweets_linked,
        "cpu": cpu_model(),
        "missed_sample": missed[:sample],
        "wrong_sample": wrong[:sample],
        "wrong_count": len(wrong),
    }


@click.command("evaluate-entities")
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--tweets", "tweets_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="The whole report as JSON (with the samples).")
def main(data_path: Path | None, tweets_path: Path | None, as_json: bool) -> None:
    """Company recall, mention precision and matching speed on FinEntity and tweets."""
    path = data_path or default_data_path()
    if not path.exists():
        raise click.ClickException(f"no FinEntity file at {path}; pass --data PATH")
    report = evaluate(path, tweets_path)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    for k, v in report.items():
        if not k.endswith("_sample"):
            click.echo(f"{k}: {v}")


if __name__ == "__main__":
    main()
