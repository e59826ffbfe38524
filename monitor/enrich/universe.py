"""The default company universe: listed companies, their names, aliases and tickers.

Pure data: read from the compact file shipped in ``monitor/enrich/data`` (built by
``python -m pipelines.build_universe`` from the company lists; PROVENANCE.md beside it),
or from another file of the same format. One line per company, tab-separated:
``symbol  name  tickers  aliases  context``, where tickers are ``T`` or ``T*`` (``*``: a short
or word-like ticker that links only in a ticker form) or ``~T`` (a former ticker of the
company, "~FB" for Meta: it links only in a ticker form and only where no listed company
has it now), aliases are ``alias:level`` and
context words are product or business words that place a common-word name as the company.
Lists are ``|``-separated. Lines are in rank order (larger companies first).

An alias's level says how much evidence it needs before it links (``EntityMatcher``):
``LEVEL_FREE`` any case ("tesla"), ``LEVEL_CASED`` capitalised ("General Motors"),
``LEVEL_CONTEXT`` capitalised and with company context ("Apple", "Target"),
``LEVEL_EXACT`` exactly as written ("GM", "IBM"), ``LEVEL_STRICT`` a name that is mostly
a market's, not the company's ("Nasdaq", "Dow"): only as the company's own name, that is
followed by a legal suffix or "shares", or with the company's ticker in the text.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

LEVEL_FREE = 0
LEVEL_CASED = 1
LEVEL_CONTEXT = 2
LEVEL_EXACT = 3
LEVEL_STRICT = 4

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "universe.tsv.gz"


@dataclass(frozen=True, slots=True)
class Company:
    symbol: str
    name: str
    tickers: tuple[tuple[str, bool], ...] = ()  # (ticker, ambiguous): all share classes, primary first
    aliases: tuple[tuple[str, int], ...] = ()  # (alias, level)
    context: tuple[str, ...] = ()
    former: tuple[str, ...] = ()  # tickers the company had before ("FB" for Meta), ticker forms only


@dataclass(frozen=True)
class Universe:
    companies: tuple[Company, ...]
    symbols: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbols", frozenset(c.symbol for c in self.companies))

    def __len__(self) -> int:
        return len(self.companies)

    def __iter__(self) -> Iterator[Company]:
        return iter(self.companies)


def _clean(s: str) -> str:
    return s.replace("\t", " ").replace("|", "/").replace("\n", " ").strip()


def format_row(
    symbol: str,
    name: str,
    tickers: Iterable[tuple[str, bool]],
    aliases: Iterable[tuple[str, int]],
    context: Iterable[str] = (),
    former: Iterable[str] = (),
) -> str:
    """One line of the universe file (the inverse of `parse_row`)."""
    return "\t".join(
        (
            _clean(symbol),
            _clean(name),
            "|".join([*(_clean(t) + ("*" if amb else "") for t, amb in tickers), *("~" + _clean(t) for t in former)]),
            "|".join(f"{_clean(a)}:{lvl}" for a, lvl in aliases),
            "|".join(_clean(c) for c in context),
        )
    )


def parse_row(line: str) -> Company:
    parts = line.rstrip("\n").split("\t")
    parts += [""] * (5 - len(parts))
    symbol, name, tickers, aliases, context = parts[:5]
    return Company(
        symbol=symbol,
        name=name or symbol,
        tickers=tuple((t.rstrip("*"), t.endswith("*")) for t in tickers.split("|") if t and not t.startswith("~")),
        aliases=tuple((a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in aliases.split("|") if a),
        context=tuple(c for c in context.split("|") if c),
        former=tuple(t[1:] for t in tickers.split("|") if t.startswith("~") and len(t) > 1),
    )


def parse(text: str) -> Universe:
    return Universe(tuple(parse_row(line) for line in text.splitlines() if line and not line.startswith("#")))


def load_universe(path: str | Path | None = None) -> Universe:
    """The shipped universe (default) or the one in `path` (.gz or plain text); cached per path."""
    return _load(str(Path(path).resolve()) if path else str(DEFAULT_PATH))


@functools.lru_cache(maxsize=4)
def _load(path: str) -> Universe:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"company universe file {p} not found; rebuild it with `python -m pipelines.build_universe` "
            "or set [entity_universe] enabled = false"
        )
    raw = p.read_bytes()
    text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode("utf-8")
    return parse(text)
