"""Which companies a text is about, and where: cashtags, publisher tickers, ticker forms,
the company universe and the watchlist.

Pure logic; the universe is a `Universe` (``monitor.enrich.universe``), the watchlist comes
from settings (``[[entities]]``). Names are found with one Aho-Corasick automaton over every
alias, case-folded, then checked: whole words for Latin script (none needed for Chinese),
then as much evidence as the alias's level asks for. A name that is also a common word
("Apple", "Target") links only with company context: a legal suffix after it, the same
company's ticker in the text, a finance or product word nearby, or a capital letter in the
middle of a sentence that is not Title Case. Short or word-like tickers ("A", "IT", "ALL",
"NOW") link only in a ticker form (``$NOW``, ``(NYSE: NOW)``, ``<NOW.N>``). Where two
mentions overlap the longer wins ("Bank of America" over "America").

A name that is mostly a market's or market talk ("Nasdaq", "Dow", "Bullish", "Click")
links only as the company's own name: a legal suffix or "shares" after it, or its ticker
in the text; so does a name that is a brand of another company (Oculus VisionTech for
"Oculus", Meta's headset; the universe marks it). A renamed company's former ticker
("$FB", Meta's until 2022) links to it in ticker forms, so a backfill of older text counts
one company under one symbol.

Watchlist aliases keep their old meaning: one with a capital letter matches in that case
only, an all-lower-case one in any case. A watchlist entry adds its aliases to the
universe company with the same symbol (an alias the universe already has keeps the
universe's rule) and its name replaces the display name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ahocorasick

from monitor.enrich.universe import LEVEL_CASED, LEVEL_CONTEXT, LEVEL_EXACT, LEVEL_FREE, LEVEL_STRICT, Universe

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:[.\-][A-Za-z]{1,2})?)\b")
_EXCHANGE = re.compile(
    r"\b(?:NYSE(?:\s+(?:American|Arca|MKT))?|NASDAQ(?:GS|GM|CM)?|Nasdaq|AMEX|OTC(?:QX|QB)?|Cboe|CBOE|BATS)"
    r"\s*:\s*([A-Z][A-Za-z0-9]{0,5}(?:[.\-][A-Z]{1,2})?)\b"
)
# Reuters codes of US venues (and the A-share ones, read by _ASHARE): "<AAPL.O>", "<BRKb.N>".
_RIC = re.compile(r"<([A-Z0-9]{1,6})([a-z])?\.(?:N|O|OQ|A|K|P|PK|Z|BATS)>")
_BARE = re.compile(r"(?<![\w$<.&/-])([A-Z][A-Z0-9]{0,5}(?:[.\-][A-Z])?)(?![\w&]|-\w)")
_ASHARE = re.compile(r"(?<![\w.])(?:(SH|SZ|BJ)\.?(\d{6})|(\d{6})\.(SH|SZ|SS|BJ))(?![\w])", re.IGNORECASE)
_ASHARE_BARE = re.compile(r"[(（](\d{6})[)）]")
# A bare six-digit code in Chinese text ("600519跌停了", "关注 000002"): Chinese has no word
# spaces, so the code may touch Chinese characters, but not other digits, Latin letters, a
# decimal point, a currency sign or a counting word ("600000股", "300000元" are amounts).
_ASHARE_IN_CJK = re.compile(
    r"(?<![0-9A-Za-z.,$¥￥%+\-])(\d{6})(?![0-9A-Za-z.,%]|\s*(?:元|万|亿|股|手|只|人|次|辆|台|吨|年|月|日|号|平))"
)
_CJK = re.compile(r"[\u3400-\u9fff]")
# "CAT shares", "AAPL stock" (not "TECH STOCKS", "BANK stocks": a plural is a sector).
_SHARES_AFTER = re.compile(r"\s+(?:shares|stock|share price|options)\b", re.IGNORECASE)
_AMOUNT_BEFORE = frozenset(".,/$€£¥+-~")
_STRICT_AFTER = re.compile(r"\s+shares\b", re.IGNORECASE)  # "Nasdaq shares", not "Dow stock", "Bullish options"
_SUFFIX_AFTER = re.compile(
    r"^(?:,?\s+(?:Inc|Corp|Corporation|Co|Company|Ltd|Plc|PLC|LLC|Group|Holdings|Incorporated|N\.V|S\.A|AG|SE)\b"
    r"|\s*[(<]\s*(?:NYSE|NASDAQ|Nasdaq|[A-Z]{1,5}\.[A-Z]{1,2}>))"
)
_SENTENCE_END = re.compile(r"(?:[.!?:;\n]|^)[\s\"'“‘(\[]*$")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’&.-]*")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# Words that, near a common-word name, say it is the company. General business words;
# product words per company come from the universe's context column.
_FINANCE_WORDS = frozenset(
    [
        "shares",
        "share",
        "stock",
        "stocks",
        "stake",
        "stakes",
        "shareholder",
        "shareholders",
        "investor",
        "investors",
        "earnings",
        "revenue",
        "revenues",
        "profit",
        "profits",
        "sales",
        "quarter",
        "quarterly",
        "results",
        "guidance",
        "outlook",
        "forecast",
        "forecasts",
        "analyst",
        "analysts",
        "ceo",
        "cfo",
        "chief",
        "executive",
        "executives",
        "company",
        "company's",
        "companies",
        "firm",
        "inc",
        "corp",
        "ltd",
        "plc",
        "nyse",
        "nasdaq",
        "ticker",
        "dividend",
        "dividends",
        "buyback",
        "acquisition",
        "acquire",
        "acquires",
        "acquired",
        "deal",
        "merger",
        "takeover",
        "lawsuit",
        "retailer",
        "brand",
        "valuation",
        "billion",
        "downgrade",
        "downgraded",
        "upgrade",
        "upgraded",
        "rating",
        "ipo",
        "listed",
        "market-cap",
        "customers",
        "employees",
        "workers",
        "layoffs",
        "jobs",
        "chipmaker",
        "carmaker",
        "automaker",
        "lender",
        "bank",
        "insurer",
        "maker",
        "announced",
        "reported",
        "reports",
        "said",
        "says",
        "plans",
        "launched",
        "launches",
        "unveiled",
        "recall",
        "recalls",
        "sued",
        "cut",
        "cuts",
        "raised",
        "raises",
        "hired",
        "fired",
        "appointed",
        "valued",
        "value",
        "worth",
        "trillion",
    ]
)
_LIST_JOINS = frozenset({",", "and", ", and", "or", "&", "vs", "vs.", "versus", "/"})
_STOP_CAPS = frozenset(
    ["the", "a", "an", "and", "or", "of", "in", "on", "at", "for", "to", "by", "with", "from", "as", "but"]
)
_WINDOW_WORDS = 8


@dataclass(frozen=True, slots=True)
class WatchEntity:
    symbol: str
    aliases: tuple[str, ...] = ()
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """A company a text is about: its symbol, display name and where the text names it."""

    symbol: str
    name: str  # display name ("Tesla"); the symbol when unknown
    mentions: tuple[tuple[int, int], ...]  # char offsets into the text, end exclusive, sorted


def cashtags(text: str) -> list[str]:
    """`$aapl` and `$BRK.B` style mentions, upper-cased, in order of appearance, unique."""
    seen: list[str] = []
    for m in _CASHTAG.finditer(text):
        sym = m.group(1).upper()
        if sym not in seen:
            seen.append(sym)
    return seen


def _fold(text: str) -> str:
    """Lower case with the same length (offsets stay valid): 'İ' and friends are left as they are."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _norm_ticker(t: str) -> str:
    return t.strip().upper().replace("/", ".").replace("-", ".")


@dataclass(frozen=True, slots=True)
class _Alias:
    symbol: str
    level: int
    exact: str  # the alias as written (LEVEL_EXACT compares against it)
    cjk: bool


class EntityMatcher:
    """Compiled once from the universe and the watchlist; `link` runs per document."""

    def __init__(self, watchlist: Iterable[WatchEntity] = (), universe: Universe | None = None) -> None:
        self._names: dict[str, str] = {}
        self._tickers: dict[str, tuple[str, bool]] = {}  # normalised ticker -> (symbol, ambiguous)
        self._context: dict[str, tuple[str, ...]] = {}
        aliases: dict[str, _Alias] = {}
        if universe is not None:
            for c in universe.companies:
                self._names.setdefault(c.symbol, c.name)
                for t, amb in c.tickers:
                    self._tickers.setdefault(_norm_ticker(t), (c.symbol, amb))
                if c.context:
                    self._context[c.symbol] = tuple(w.lower() for w in c.context)
                for a, level in c.aliases:
                    key = _fold(a)
                    if key not in aliases:
                        aliases[key] = _Alias(c.symbol, level, a, bool(_CJK.search(a)))
            # A renamed company's old ticker ("$FB" for Meta) in ticker forms only, and only
            # where no listed company has it now.
            for c in universe.companies:
                for t in c.former:
                    self._tickers.setdefault(_norm_ticker(t), (c.symbol, True))
        self._watch: set[str] = set()
        for ent in watchlist:
            sym = ent.symbol.strip().upper()
            if not sym:
                continue
            self._watch.add(sym)
            if ent.name:
                self._names[sym] = ent.name
            self._tickers.setdefault(_norm_ticker(sym), (sym, True))
            for alias in (*ent.aliases, *([ent.name] if ent.name else [])):
                alias = alias.strip()
                if not alias:
                    continue
                key = _fold(alias)
                have = aliases.get(key)
                if have is not None and have.symbol == sym:
                    continue  # the universe already knows this name for this company: keep its rule
                level = LEVEL_FREE if alias == key else LEVEL_EXACT
                aliases[key] = _Alias(sym, level, alias, bool(_CJK.search(alias)))
        self._aliases = aliases
        self._symbols = frozenset(self._names) | frozenset(self._watch)
        self._automaton: ahocorasick.Automaton | None = None
        if aliases:
            auto = ahocorasick.Automaton()
            for key in aliases:
                auto.add_word(key, key)
            auto.make_automaton()
            self._automaton = auto
        self._any_tickers = universe is not None

    def display_name(self, symbol: str) -> str | None:
        """The company's display name ("贵州茅台" for 600519.SH), None when unknown."""
        return self._names.get(symbol)

    def known_symbols(self) -> frozenset[str]:
        """Universe and watchlist symbols (the store's bounded keys admit these at once)."""
        return self._symbols

    def match(self, text: str, tickers: Sequence[str] = ()) -> list[str]:
        """Symbols the text is about: publisher tickers first, then in order of first mention."""
        return [link.symbol for link in self.link(text, tickers)]

    def _resolve(self, ticker: str) -> str | None:
        hit = self._tickers.get(_norm_ticker(ticker))
        return hit[0] if hit else None

    def resolve(self, ticker: str) -> str:
        """The symbol a ticker is counted under: a share class or a former ticker gives the
        company's primary symbol ("GOOG" -> "GOOGL", "FB" -> "META"); unknown ones are kept,
        upper-cased."""
        return self._resolve(ticker) or ticker.strip().upper()

    def link(self, text: str, tickers: Sequence[str] = ()) -> list[Link]:
        """Companies the text is about with their mentions; publisher tickers first (with the
        mentions found in the text, if any), then in order of first mention; at most 20."""
        found: list[tuple[int, int, str]] = []  # (start, end, symbol), accepted
        by_ticker: set[str] = set()
        for m in _CASHTAG.finditer(text):
            sym = self._resolve(m.group(1)) or m.group(1).upper()
            found.append((m.start(), m.end(), sym))
            by_ticker.add(sym)
        if self._any_tickers:
            self._ticker_forms(text, found, by_ticker)
        publisher = [self._resolve(t) or t.strip().upper() for t in tickers if t and t.strip()]
        if self._automaton is not None:
            self._names_in(text, found, by_ticker | set(publisher))
        chosen = _longest_first(found, publisher)
        out: dict[str, list[tuple[int, int]]] = {}
        for sym in publisher:
            out.setdefault(sym, [])
        for start, end, sym in sorted(chosen):
            out.setdefault(sym, []).append((start, end))
        return [Link(sym, self._names.get(sym, sym), tuple(sorted(ms))) for sym, ms in list(out.items())[:20]]

    def _ticker_forms(self, text: str, found: list[tuple[int, int, str]], by_ticker: set[str]) -> None:
        for m in _EXCHANGE.finditer(text):
            sym = self._resolve(m.group(1))
            if sym:
                found.append((m.start(1), m.end(1), sym))
                by_ticker.add(sym)
        for m in _RIC.finditer(text):
            sym = self._resolve(m.group(1) + ("." + m.group(2).upper() if m.group(2) else ""))
            sym = sym or self._resolve(m.group(1))
            if sym:
                found.append((m.start() + 1, m.end() - 1, sym))
                by_ticker.add(sym)
        shouting = _mostly_upper(text)
        for m in _BARE.finditer(text):
            hit = self._tickers.get(_norm_ticker(m.group(1)))
            if hit is None:
                continue
            sym, ambiguous = hit
            base = re.sub(r"[.\-].*$", "", m.group(1))
            if ambiguous:
                # "CAT shares" is Caterpillar; "IT shares", "A shares" are not Gartner or Agilent.
                if len(base) < 3 or not _SHARES_AFTER.match(text, m.end()):
                    continue
            elif shouting and not _SHARES_AFTER.match(text, m.end()):
                continue
            found.append((m.start(1), m.end(1), sym))
            by_ticker.add(sym)
        for m in _ASHARE.finditer(text):
            code, market = (m.group(2), m.group(1)) if m.group(2) else (m.group(3), m.group(4))
            market = "SH" if market.upper() == "SS" else market.upper()
            sym = f"{code}.{market}"
            if sym in self._names:
                found.append((m.start(), m.end(), sym))
                by_ticker.add(sym)
        bare = list(_ASHARE_BARE.finditer(text))
        if _CJK.search(text):
            bare += _ASHARE_IN_CJK.finditer(text)
        for m in bare:
            code = m.group(1)
            for market in ("SH", "SZ", "BJ"):
                if f"{code}.{market}" in self._names:
                    found.append((m.start(1), m.end(1), f"{code}.{market}"))
                    break

    def _names_in(self, text: str, found: list[tuple[int, int, str]], ticker_syms: set[str]) -> None:
        assert self._automaton is not None
        folded = _fold(text)
        n = len(text)
        pending: list[tuple[int, int, str]] = []
        for end_idx, key in self._automaton.iter(folded):
            alias = self._aliases[key]
            end = end_idx + 1
            start = end - len(key)
            if not alias.cjk and (
                (start > 0 and _is_word_char(text[start - 1])) or (end < n and _is_word_char(text[end]))
            ):
                continue
            # A name that starts with a digit ("3M") is not part of an amount or a ratio:
            # "$27.3M", "€3M", "(3M/3M)".
            if key[:1].isdigit() and (
                (start > 0 and text[start - 1] in _AMOUNT_BEFORE) or (end < n and text[end] == "/")
            ):
                continue
            level = alias.level
            surface = text[start:end]
            if level == LEVEL_FREE:
                found.append((start, end, alias.symbol))
            elif level == LEVEL_EXACT:
                if surface == alias.exact:
                    found.append((start, end, alias.symbol))
            elif surface.islower():
                continue
            elif level == LEVEL_CASED:
                found.append((start, end, alias.symbol))
            elif level == LEVEL_CONTEXT:
                pending.append((start, end, alias.symbol))
            elif level == LEVEL_STRICT:
                # "Nasdaq, Inc.", "Bullish shares", or the company's own ticker in the text;
                # never "(NASDAQ: AAPL)", "#NASDAQ", "Nasdaq 100", "Dow stock" (one of the
                # Dow's) or "Bullish options".
                tail = text[end : end + 24]
                if alias.symbol in ticker_syms or _SUFFIX_AFTER.match(tail) or _STRICT_AFTER.match(tail):
                    found.append((start, end, alias.symbol))
        if not pending:
            return
        sure = list(found)
        for start, end, sym in pending:
            if sym in ticker_syms or self._has_context(text, start, end, sym, sure):
                found.append((start, end, sym))

    def _has_context(self, text: str, start: int, end: int, sym: str, sure: list[tuple[int, int, str]]) -> bool:
        """Company context for a common-word name at text[start:end] (already capitalised)."""
        if _SUFFIX_AFTER.match(text[end : end + 24]):
            return True
        lo, hi = max(0, start - 80), min(len(text), end + 80)
        # Part of a longer capitalised name ("Bill Adams", "Southern California", "Colin Angle").
        prev_words = _WORD.findall(text[lo:start])
        next_words = _WORD.findall(text[end:hi])
        joined_prev = prev_words and not re.search(r"[.!?:;,\n\"“(]", text[max(0, start - 3) : start])
        if next_words and _titled(next_words[0]) and text[end : end + 1] == " ":
            return False
        if joined_prev and _titled(prev_words[-1]) and prev_words[-1].lower() not in _STOP_CAPS:
            return False
        before = _WORD.findall(text[lo:start])[-_WINDOW_WORDS:]
        after = _WORD.findall(text[end:hi])[:_WINDOW_WORDS]
        near = [w.lower().strip(".'’") for w in (*before, *after)]
        if any(w in _FINANCE_WORDS or w.removesuffix("'s") in _FINANCE_WORDS for w in near):
            return True
        context = self._context.get(sym)
        if context:
            low = _fold(text)
            if any(c in low for c in context):
                return True
        # Another company named beside it in a list ("Visa and Mastercard", "Gap, Target").
        for s_start, s_end, s in sure:
            gap = text[end:s_start] if s_start >= end else text[s_end:start]
            if s != sym and gap.strip().lower() in _LIST_JOINS:
                return True
        # A capital in the middle of a sentence, the name standing alone (not Title Case,
        # not part of a longer capitalised name like "Southern California"). A word in
        # capitals ("the answer is HIGHWAY HEI$T") is emphasis, not a capital letter; a short
        # one ("collaboration with SAP") is how acronym names are written.
        if _SENTENCE_END.search(text[max(0, start - 4) : start]) or (end - start > 4 and text[start:end].isupper()):
            return False
        return not _title_case([*before, *after])


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _titled(word: str) -> bool:
    """Title-case ("Adams"), not an acronym ("CEO") nor lower case."""
    return word[:1].isupper() and any(c.islower() for c in word[1:])


def _mostly_upper(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 12 and sum(c.isupper() for c in letters) > 0.6 * len(letters)


def _title_case(words: Sequence[str]) -> bool:
    content = [w for w in words if len(w) > 3 and w.lower() not in _STOP_CAPS]
    if len(content) < 2:
        return False
    return sum(w[:1].isupper() for w in content) >= 0.6 * len(content)


def _longest_first(found: Iterable[tuple[int, int, str]], publisher: Iterable[str] = ()) -> list[tuple[int, int, str]]:
    """Non-overlapping mentions, longer ones first ("Bank of America" over "America"). Two
    companies for the same words ("BYD": BYD Company's name, Boyd Gaming's ticker) go to the
    one the text names elsewhere too (or its publisher ticker), then to the first found:
    the same choice in every process, whatever the string hashing."""
    unique = list(dict.fromkeys(found))
    support = Counter(sym for _, _, sym in unique)
    support.update(set(publisher))
    taken: list[tuple[int, int, str]] = []
    for start, end, sym in sorted(unique, key=lambda f: (f[0] - f[1], f[0], -support[f[2]])):
        if all(end <= s or start >= e for s, e, _ in taken):
            taken.append((start, end, sym))
    return taken


def build_matcher(
    watchlist: Iterable[WatchEntity] = (), universe_enabled: bool = True, universe_path: str | None = None
) -> EntityMatcher:
    """The matcher the settings ask for: the watchlist, plus the universe unless it is off."""
    from monitor.enrich.universe import load_universe

    return EntityMatcher(watchlist, load_universe(universe_path) if universe_enabled else None)
