"""Company names and search for the dashboard: the shipped universe, the `[[entities]]`
watchlist and the symbols that appear in the data.

Plain Python over ~13k companies (a scan of lowercased names costs a few milliseconds), so
a search needs no database round trip; nothing here imports streamlit or sqlalchemy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.config import Settings
from monitor.enrich.universe import load_universe

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Listing:
    symbol: str
    name: str
    terms: tuple[str, ...]  # casefolded: symbol, tickers, name, aliases


class Directory:
    """Symbol -> display name, and a case-insensitive substring search over symbols, names
    and aliases. Companies earlier in `listings` (the universe is in rank order, larger
    first) win ties."""

    def __init__(self, listings: Iterable[Listing]) -> None:
        self._by_symbol: dict[str, Listing] = {}
        for entry in listings:
            old = self._by_symbol.get(entry.symbol)
            if old is None:
                self._by_symbol[entry.symbol] = entry
            else:  # the watchlist names a universe company and adds aliases; its rank stays
                terms = tuple(dict.fromkeys(old.terms + entry.terms))
                self._by_symbol[entry.symbol] = Listing(old.symbol, entry.name or old.name, terms)
        self._rank = {s: i for i, s in enumerate(self._by_symbol)}

    @classmethod
    def from_settings(cls, settings: Settings) -> Directory:
        return cls.build(
            ((e.symbol, e.name or "", tuple(e.aliases)) for e in settings.entities),
            settings.entity_universe.enabled,
            settings.entity_universe.path,
        )

    @classmethod
    def build(
        cls,
        watchlist: Iterable[tuple[str, str, tuple[str, ...]]],
        universe_enabled: bool = True,
        universe_path: str | None = None,
    ) -> Directory:
        """The universe unless it is off (or its file cannot be read: then the watchlist
        alone, and a warning in the log), with the watchlist's (symbol, name, aliases)
        merged in."""
        universe: list[Listing] = []
        if universe_enabled:
            try:
                uni = load_universe(universe_path)
            except (OSError, ValueError, IndexError) as exc:  # a missing or malformed file
                log.warning("dashboard: company universe not loaded (%s); names come from the watchlist only", exc)
            else:
                universe = [
                    # Former tickers too: an analyst who types "FB" finds Meta.
                    _listing(c.symbol, c.name, (*(t for t, _ in c.tickers), *c.former), tuple(a for a, _ in c.aliases))
                    for c in uni
                ]
        watch = [_listing(sym, name, (), tuple(aliases)) for sym, name, aliases in watchlist if sym.strip()]
        # Universe first so its rank order decides ties; the watchlist's names and aliases merge in.
        return cls([*universe, *watch])

    def __len__(self) -> int:
        return len(self._by_symbol)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def name(self, symbol: str) -> str:
        """The display name, or the symbol itself for a company the directory does not list."""
        entry = self._by_symbol.get(symbol)
        return entry.name if entry and entry.name else symbol

    def search(self, text: str, present: Iterable[str] = (), limit: int = 50) -> list[str]:
        """Symbols whose symbol, ticker, name or alias contains `text` (case-insensitive).

        `present` are the symbols with data (they are searched by symbol even when the
        directory does not list them). Best first: an exact symbol, then an exact name or
        alias, then a prefix, then any substring; within each, companies with data first,
        then by rank."""
        needle = " ".join(text.split()).casefold()
        if not needle:
            return []
        present = set(present)
        scored: list[tuple[int, int, int, str]] = []
        for sym, entry in self._by_symbol.items():
            tier = _tier(needle, sym.casefold(), entry.terms)
            if tier is not None:
                scored.append((tier, 0 if sym in present else 1, self._rank[sym], sym))
        for sym in present - self._by_symbol.keys():
            tier = _tier(needle, sym.casefold(), ())
            if tier is not None:
                scored.append((tier, 0, len(self._rank), sym))
        scored.sort()
        return [s for *_, s in scored[: max(1, limit)]]


def _listing(symbol: str, name: str, tickers: tuple[str, ...], aliases: tuple[str, ...]) -> Listing:
    terms = tuple(dict.fromkeys(t.casefold() for t in (symbol, *tickers, name, *aliases) if t))
    return Listing(symbol, name, terms)


def _tier(needle: str, symbol: str, terms: tuple[str, ...]) -> int | None:
    if needle == symbol:
        return 0
    if needle in terms:
        return 1
    if symbol.startswith(needle) or any(t.startswith(needle) for t in terms):
        return 2
    if needle in symbol or any(needle in t for t in terms):
        return 3
    return None
