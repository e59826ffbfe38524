"""Which companies the entity linker adds to a stream beyond its own cashtags and tickers.

Call: ``audit(rows, matcher) -> Audit`` or
``python -m pipelines.link_audit STREAM [--text-column text] [--ticker-column entity] [--top 40] [--json]``
(STREAM: CSV or JSONL, read as `finsent replay` reads it; a ticker cell may hold several
symbols separated by ';' or ',').

On a tweet stream most companies come as ``$CASHTAG`` or as a publisher ticker; the names
and ticker forms the linker finds besides those are where its false friends show ("Are
you Bullish on these #stocks" as Bullish, "(NASDAQ:INTC)" as Nasdaq, Inc.). The audit
counts, per symbol, the links that no cashtag of the text and no publisher ticker of the
row gave, with a few example texts, so a person can read down the list and judge. Used
for the "Links on a real tweet stream" table in ``docs/entities.md`` (StockNet dev stream).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from monitor.enrich.entities import EntityMatcher, cashtags
from monitor.ingest.inputs import read_records, split_entity_cell


@dataclass
class Audit:
    rows: int = 0
    links: int = 0
    added: Counter[str] = field(default_factory=Counter)  # symbol -> links no cashtag or ticker gave
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def as_dict(self, top: int, per: int = 3) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "links": self.links,
            "added_links": sum(self.added.values()),
            "top": [
                {"symbol": s, "links": n, "examples": self.examples[s][:per]} for s, n in self.added.most_common(top)
            ],
        }


def audit(
    rows: Iterable[Mapping[str, Any]],
    matcher: EntityMatcher,
    text_column: str = "text",
    ticker_column: str | None = None,
    keep: int = 3,
) -> Audit:
    out = Audit()
    for row in rows:
        text = str(row.get(text_column) or "")
        out.rows += 1
        tickers = split_entity_cell(row.get(ticker_column)) if ticker_column else []
        given = {matcher.resolve(t) for t in [*cashtags(text), *tickers]}
        for link in matcher.link(text, tickers):
            out.links += 1
            if link.symbol in given:
                continue
            out.added[link.symbol] += 1
            if len(out.examples[link.symbol]) < keep:
                out.examples[link.symbol].append(" ".join(text.split())[:160])
    return out


@click.command("link-audit")
@click.argument("stream", type=click.Path(exists=True, dir_okay=False))
@click.option("--text-column", default="text", show_default=True)
@click.option("--ticker-column", default=None, help="A publisher ticker column (its links are not counted).")
@click.option("--top", default=40, show_default=True, help="Symbols to list.")
@click.option("--json", "as_json", is_flag=True)
def main(stream: str, text_column: str, ticker_column: str | None, top: int, as_json: bool) -> None:
    """Links the names and ticker forms add to STREAM (CSV or JSONL), by symbol, with examples."""
    from monitor.app.batch import matcher_for
    from monitor.config import load_settings
    from monitor.ingest.inputs import InputError

    matcher = matcher_for(load_settings())
    try:
        rows = (row for _n, row, _err in read_records(stream) if row is not None)
        first = next(rows, None)
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    if first is not None:
        missing = [c for c in (text_column, ticker_column) if c and c not in first]
        if missing:
            raise click.ClickException(f"{stream}: no column {', '.join(missing)} (columns: {sorted(first)})")
    result = audit(itertools.chain([first] if first is not None else [], rows), matcher, text_column, ticker_column)
    report = result.as_dict(top)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    click.echo(f"{report['rows']} rows, {report['links']} links, {report['added_links']} from names and ticker forms")
    for t in report["top"]:
        click.echo(f"{t['links']:>6}  {t['symbol']:<10} {' || '.join(t['examples'])[:200]}")


if __name__ == "__main__":
    main()
