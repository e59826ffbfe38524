"""Which companies a text is about: cashtags, publisher tickers and watchlist aliases.

Pure logic; the watchlist comes from settings (`[[entities]]`). Aliases match as whole
words. An alias with a capital letter matches case-sensitively ("Apple" the company, not
"apple pie"); an all-lowercase alias matches any case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:[.\-][A-Za-z]{1,2})?)\b")


@dataclass(frozen=True, slots=True)
class Link:
    """A company found in a text: its symbol, display name and where it is mentioned
    (character offsets into the text, end exclusive; none for a publisher ticker)."""

    symbol: str
    name: str
    mentions: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class WatchEntity:
    symbol: str
    aliases: tuple[str, ...] = ()


def cashtags(text: str) -> list[str]:
    """`$aapl` and `$BRK.B` style mentions, upper-cased, in order of appearance, unique."""
    seen: list[str] = []
    for m in _CASHTAG.finditer(text):
        sym = m.group(1).upper()
        if sym not in seen:
            seen.append(sym)
    return seen


class EntityMatcher:
    """Compiled once from the watchlist; `match` is called per document on the hot path."""

    def __init__(self, watchlist: Iterable[WatchEntity] = ()) -> None:
        self._by_alias: dict[str, str] = {}
        sensitive: list[str] = []
        insensitive: list[str] = []
        for ent in watchlist:
            for alias in ent.aliases:
                alias = alias.strip()
                if not alias:
                    continue
                if alias.lower() == alias:
                    self._by_alias[alias.lower()] = ent.symbol
                    insensitive.append(re.escape(alias))
                else:
                    self._by_alias[alias] = ent.symbol
                    sensitive.append(re.escape(alias))
        # Longest first so "Bank of America" wins over "America".
        self._sensitive = self._compile(sensitive, 0)
        self._insensitive = self._compile(insensitive, re.IGNORECASE)

    @staticmethod
    def _compile(aliases: list[str], flags: int) -> re.Pattern[str] | None:
        if not aliases:
            return None
        body = "|".join(sorted(set(aliases), key=len, reverse=True))
        return re.compile(rf"(?<!\w)(?:{body})(?!\w)", flags)

    def link(self, text: str, tickers: Sequence[str] = ()) -> list[Link]:
        """Companies the text is about: publisher tickers first, then cashtags, then aliases."""
        found: dict[str, list[tuple[int, int]]] = {}

        def add(sym: str, span: tuple[int, int] | None = None) -> None:
            if not sym:
                return
            spans = found.setdefault(sym, [])
            if span is not None:
                spans.append(span)

        for t in tickers:
            add(t.upper())
        for m in _CASHTAG.finditer(text):
            add(m.group(1).upper(), (m.start(), m.end()))
        if self._sensitive is not None:
            for m in self._sensitive.finditer(text):
                add(self._by_alias.get(m.group(0), ""), (m.start(), m.end()))
        if self._insensitive is not None:
            for m in self._insensitive.finditer(text):
                add(self._by_alias.get(m.group(0).lower(), ""), (m.start(), m.end()))
        return [Link(sym, sym, tuple(sorted(spans))) for sym, spans in list(found.items())[:20]]

    def match(self, text: str, tickers: Sequence[str] = ()) -> list[str]:
        """Symbols the text is about: publisher tickers first, then cashtags, then aliases."""
        return [link.symbol for link in self.link(text, tickers)]
