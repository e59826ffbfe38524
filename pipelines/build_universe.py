"""Build the default company universe shipped in ``monitor/enrich/data/universe.tsv.gz``.

Call: ``build(companies_dir) -> list[Row]``, ``write(rows, out_path)``, or
``python -m pipelines.build_universe [--companies DIR] [--out FILE]``.

Inputs (read by path, never copied into the repo; see ``../shared/data/companies/README.md``):
``sec_company_tickers.csv`` (cik, ticker, exchange, name; rows ordered by size, so the row
order is the rank used to settle shared aliases) and ``ashare_codes.csv`` (A-share codes
with Chinese short names).

What a row becomes: a primary symbol (a company's first non-OTC ticker, else its first;
the other share classes stay as ticker aliases), a display name ("AMAZON COM INC" ->
"Amazon"), aliases derived from the legal name, and how much context each alias and
ticker needs before it may link (``LEVEL_*`` in ``monitor.enrich.universe``):

- an alias that is a common English word ("Apple", "Target", "Visa", "Gap") needs company
  context. "Common word" = its lower-case form is a lower-case entry of Webster's Second
  (the ``web2`` list of the PyPI package ``english-words``, public domain) *and* frequent
  in English (``wordfreq`` Zipf >= 3.3). The dictionary tells a word from a name (it lists
  "apple" but only "Amazon"), the frequency drops rare words ("chevron").
- an alias made only of dictionary words ("General Motors", "Home Depot"), a rarer single
  word ("Caterpillar") or a very frequent proper noun ("Amazon") must be capitalised.
- anything else ("Tesla", "Nvidia") links in any case. Acronyms ("GM", "IBM") in their case only.
- a ticker of one or two letters, or one that is a word or a frequent token (Zipf >= 2.5:
  "CAT", "NOW", "ALL"), links only in a ticker form (``$CAT``, ``(NYSE: CAT)``,
  ``<CAT.N>``); others also as a bare upper-case word ("AAPL").

A-shares: the short name (NFKC, spaces removed), without its ST / *ST prefix, without a
trailing share-class letter (万科A -> 万科), and each of those in traditional characters
(OpenCC s2t, s2tw, s2hk); all link in any context (Chinese names are not English words).

Both word lists and OpenCC are build-time only (the ``dev`` extra); the shipped file holds the result.
A short hand-written table adds the names people use that no legal name gives ("Google",
"Facebook", "BofA", "Citi"), a few product words that count as company context, the former
tickers of renamed filers (FB for Meta, PCLN for Booking: the same SEC CIK), brands that
are another company's name ("Oculus" for Meta: Oculus VisionTech is ``LEVEL_STRICT``) and the names
that are mostly a market's ("Nasdaq", "Dow"), which link only as ``LEVEL_STRICT``, like
market talk that is also a name ("Bullish", "Click", "Here"). Fiscal periods ("Q2", "H1",
"FY") are never a name.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from monitor.enrich.universe import LEVEL_CASED, LEVEL_CONTEXT, LEVEL_EXACT, LEVEL_FREE, LEVEL_STRICT, format_row

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "monitor" / "enrich" / "data" / "universe.tsv.gz"


def default_companies_dir() -> Path:
    return (REPO_ROOT / ".." / "shared" / "data" / "companies").resolve()


# Trailing words that say what kind of legal person a name is, not which one.
_SUFFIXES = {
    "INC", "INCORPORATED", "CORP", "CORPORATION", "CO", "COMPANY", "COS", "COMPANIES", "LTD", "LIMITED",
    "PLC", "LLC", "LP", "L.P.", "LLP", "NV", "N.V.", "SA", "S.A.", "AG", "SE", "ASA", "A/S", "AB", "OYJ",
    "SPA", "S.P.A.", "N.A.", "NA", "BHD", "TBK", "KK", "AKTIENGESELLSCHAFT", "ADR", "ADS", "SAB", "DE", "CV",
    "S.A.B.", "C.V.", "PTY", "GMBH", "HOLDINGS", "HOLDING", "GROUP", "THE", "TRUST", "CL", "CLASS", "/ADR",
}  # fmt: skip
# Words that make a suffix-stripped name too generic to stand alone.
# A trailing word that says what a company does; dropped once ("MICRON TECHNOLOGY" -> "Micron")
# when what is left is still a distinctive name.
_DESCRIPTORS = {
    "TECHNOLOGY", "TECHNOLOGIES", "SYSTEMS", "INTERNATIONAL", "INDUSTRIES", "ENTERPRISES", "BANCORP",
    "BANCSHARES", "FINANCIAL", "PHARMACEUTICALS", "PHARMACEUTICAL", "THERAPEUTICS", "BIOSCIENCES", "ENERGY",
    "RESOURCES", "PLATFORMS", "BRANDS", "SOLUTIONS", "SEMICONDUCTOR", "NETWORKS", "SOFTWARE", "COMMUNICATIONS",
    "MOTORS", "AIRLINES", "WORLDWIDE", "HEALTHCARE", "HEALTH", "LABORATORIES", "INSTRUMENTS", "ENTERTAINMENT", "MEDIA",
}  # fmt: skip
_CALENDAR = {
    "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY", "JANUARY", "FEBRUARY", "MARCH",
    "APRIL", "MAY", "JUNE", "JULY", "AUGUST", "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER", "JAN", "FEB", "MAR",
    "APR", "JUN", "JUL", "AUG", "SEP", "SEPT", "OCT", "NOV", "DEC", "Q1", "Q2", "Q3", "Q4", "H1", "H2", "FY",
}  # fmt: skip
_GENERIC = _CALENDAR | {
    "THE", "AND", "&", "OF", "NEW", "FIRST", "UNITED", "AMERICAN", "NATIONAL", "GENERAL", "GLOBAL",
    "NEWS", "MILLION", "BILLION", "TRILLION",  # "ABC News", "For $3.2 Billion" in Title Case headlines
    "BANCORP", "CITY",  # the last word of many bank names; "the City" of London
}  # fmt: skip
_STATE_TAG = re.compile(r"\s*/[A-Z ]{1,12}/?\s*$")  # "BANK OF AMERICA CORP /DE/", "TOYOTA MOTOR CORP/"
_DOTCOM = re.compile(r"(?i)(?:\.|\s)COM$")

# Names people write that no legal name gives, and words that place a common-word name as
# the company. Hand-listed for large, often-named companies; documented in PROVENANCE.md.
CURATED: dict[str, dict[str, Sequence[str] | str]] = {
    "AAPL": {"name": "Apple", "context": ("iPhone", "iPad", "iPhones", "MacBook", "iOS", "App Store", "Tim Cook")},
    "GOOGL": {"name": "Alphabet", "aliases": ("Google", "Alphabet"), "context": ("YouTube", "Android")},
    "META": {"name": "Meta", "aliases": ("Facebook", "Meta Platforms"), "context": ("Facebook", "Instagram", "WhatsApp", "Zuckerberg"), "brands": ("Oculus",), "former": ("FB",)},
    "AMZN": {"name": "Amazon", "aliases": ("Amazon.com", "Amazon"), "context": ("AWS", "Bezos", "Prime")},
    "MSFT": {"name": "Microsoft"},
    "TSLA": {"name": "Tesla"},
    "BA": {"name": "Boeing"},
    "EBAY": {"name": "eBay"},
    "NKE": {"name": "Nike"},
    "SBUX": {"name": "Starbucks"},
    "NVDA": {"name": "Nvidia"},
    "JPM": {"name": "JPMorgan Chase", "aliases": ("JPMorgan", "JP Morgan", "J.P. Morgan", "JPMorgan Chase")},
    "BAC": {"name": "Bank of America", "aliases": ("BofA", "Bank of America")},
    "C": {"name": "Citigroup", "aliases": ("Citi", "Citigroup", "Citibank")},
    "GS": {"name": "Goldman Sachs", "aliases": ("Goldman", "Goldman Sachs")},
    "MS": {"name": "Morgan Stanley"},
    "WFC": {"name": "Wells Fargo"},
    "XOM": {"name": "Exxon Mobil", "aliases": ("Exxon", "ExxonMobil", "Exxon Mobil")},
    "CVX": {"name": "Chevron"},
    "GM": {"name": "General Motors", "aliases": ("GM",)},
    "F": {"name": "Ford", "aliases": ("Ford Motor",), "context": ("F-150", "Mustang", "carmaker", "automaker")},
    "BRK-B": {"name": "Berkshire Hathaway", "aliases": ("Berkshire", "Berkshire Hathaway"), "context": ("Buffett",)},
    "JNJ": {"name": "Johnson & Johnson", "aliases": ("J&J",)},
    "PG": {"name": "Procter & Gamble", "aliases": ("P&G",)},
    "KO": {"name": "Coca-Cola", "aliases": ("Coca-Cola", "Coca Cola")},
    "IBM": {"name": "IBM", "aliases": ("IBM",)},
    "AMD": {"name": "AMD", "aliases": ("AMD",)},
    "HPQ": {"name": "HP", "aliases": ("HP",)},
    "HPE": {"name": "Hewlett Packard Enterprise"},
    "GE": {"name": "GE Aerospace", "aliases": ("GE", "General Electric")},
    "T": {"name": "AT&T", "aliases": ("AT&T",)},
    "WMT": {"name": "Walmart", "aliases": ("Wal-Mart", "Walmart")},
    "TGT": {"name": "Target", "context": ("retailer", "Walmart", "stores")},
    "V": {"name": "Visa", "context": ("Mastercard", "payments", "card")},
    "MA": {"name": "Mastercard"},
    "GAP": {"name": "Gap", "context": ("Old Navy", "Banana Republic", "retailer", "apparel")},
    "XYZ": {"name": "Block", "context": ("Square", "Cash App", "Dorsey", "payments")},
    "SNAP": {"name": "Snap", "context": ("Snapchat",)},
    "UNH": {"name": "UnitedHealth", "aliases": ("UnitedHealth",)},
    "UAL": {"name": "United Airlines"},
    "AAL": {"name": "American Airlines"},
    "DAL": {"name": "Delta Air Lines", "aliases": ("Delta Air Lines", "Delta Airlines")},
    "LUV": {"name": "Southwest Airlines"},
    "DIS": {"name": "Disney", "aliases": ("Walt Disney", "Disney")},
    "MCD": {"name": "McDonald's", "aliases": ("McDonald's", "McDonalds")},
    "HD": {"name": "Home Depot"},
    "LLY": {"name": "Eli Lilly", "aliases": ("Eli Lilly",)},
    "TSM": {"name": "TSMC", "aliases": ("TSMC",)},
    "BABA": {"name": "Alibaba"},
    "TM": {"name": "Toyota"},
    "SHEL": {"name": "Shell", "aliases": ("Royal Dutch Shell",), "context": ("oil", "gas", "energy", "BP"), "former": ("RDS.A", "RDS.B")},
    "BP": {"name": "BP", "aliases": ("BP",)},
    "UBS": {"name": "UBS", "aliases": ("UBS",)},
    "DB": {"name": "Deutsche Bank"},
    "HSBC": {"name": "HSBC", "aliases": ("HSBC",)},
    "CRM": {"name": "Salesforce"},
    "ORCL": {"name": "Oracle"},
    "SAP": {"name": "SAP"},
    "CSCO": {"name": "Cisco"},
    "INTC": {"name": "Intel"},
    "NFLX": {"name": "Netflix"},
    "PYPL": {"name": "PayPal"},
    "COIN": {"name": "Coinbase"},
    "UBER": {"name": "Uber"},
    "ABNB": {"name": "Airbnb"},
    "MRNA": {"name": "Moderna"},
    "PFE": {"name": "Pfizer"},
    "NWSA": {"name": "News Corp", "aliases": ("News Corp", "News Corporation")},
    # Renamed filers (the same SEC CIK under its old name and ticker; Shell and Meta above
    # too): a backfill of older text names them the old way, and must count them as the
    # same company.
    "BKNG": {"name": "Booking Holdings", "aliases": ("Priceline", "Priceline.com"), "former": ("PCLN",)},
    "RTX": {"aliases": ("United Technologies", "Raytheon Technologies"), "former": ("UTX",)},
    "TTE": {"former": ("TOT",)},
    # Names that are mostly a market's or an index's, not the company's ("Nasdaq 100",
    # "#NASDAQ", "(NASDAQ: AAPL)", "the Dow"): LEVEL_STRICT.
    "NDAQ": {"strict": ("Nasdaq",)},
    "DOW": {"strict": ("Dow",)},
}  # fmt: skip

# Market talk that is also a company's name ("Are you Bullish on these #stocks", "Click
# here", "Here are the stocks to watch"): in finance text these words are the talk itself,
# and finance words are always near them, so as names they link only as LEVEL_STRICT
# ("Bullish Inc", "Bullish shares", or with the company's ticker in the text).
_MARKET_TALK = {
    "bullish", "bearish", "click", "here", "watch", "alert", "alerts", "rally", "breakout", "momentum", "upside",
    "downside", "dip", "chart", "charts", "research", "premarket", "trending", "winners", "losers", "movers",
    "nice", "honest", "post",  # "Nice profit overnight", "the most HONEST stocks", "NEW POST: market recap"
    "crypto", "gold",  # "Crypto lender Genesis", "#Gold lower as #dollar gains"
}  # fmt: skip

# Finance acronyms that are also tickers somewhere: never a company as a bare word.
_ACRONYMS = {
    "CEO", "CFO", "COO", "CTO", "IPO", "ETF", "GDP", "CPI", "PPI", "PMI", "EPS", "ECB", "FED", "FOMC", "IMF", "SEC",
    "FTC", "FDA", "FAA", "DOJ", "EU", "UK", "US", "USA", "UAE", "AI", "EV", "EVS", "ESG", "OPEC", "NYSE", "API",
    "USD", "EUR", "GBP", "JPY", "CNY", "YOY", "QOQ", "ATH", "IMO", "LOL", "CEOS", "NASA", "BOJ", "BOE", "RBI",
    "PBOC", "WTO", "WHO", "NATO", "OTC", "IRS", "SPX", "NDX", "DJIA", "VIX", "REIT", "LNG", "ICE", "NBA", "NFL",
    "VS", "NFT", "NFTS", "DEFI", "DAO", "MOM",
}  # fmt: skip


@dataclass
class Row:
    symbol: str
    name: str
    tickers: list[tuple[str, bool]]  # (ticker, ambiguous)
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> level
    context: tuple[str, ...] = ()
    former: tuple[str, ...] = ()  # the company's earlier tickers (ticker forms only)


class _Words:
    """The two word lists, loaded once (they are build-time dependencies only)."""

    def __init__(self) -> None:
        try:
            from english_words import get_english_words_set
            from wordfreq import zipf_frequency
        except ImportError as exc:  # pragma: no cover - the dev extra installs both
            raise click.ClickException(
                f"building the universe needs the word lists: pip install 'finsent[dev]' ({exc.name} is missing)"
            ) from None
        web2 = get_english_words_set(["web2"], lower=False, alpha=True)
        self.lower_words = {w for w in web2 if w.islower()}
        self.any_case = {w.lower() for w in web2}
        self.proper = {w.lower() for w in web2 if w[:1].isupper()}
        self._zipf = zipf_frequency

    def zipf(self, word: str) -> float:
        return float(self._zipf(word.lower(), "en"))

    def is_common(self, word: str) -> bool:
        w = word.lower()
        return w in self.lower_words and self.zipf(w) >= 3.3

    def is_rare_word(self, word: str) -> bool:
        """A lower-case dictionary word that is neither frequent nor also a proper name ("micron")."""
        w = word.lower()
        return w in self.lower_words and w not in self.proper and self.zipf(w) < 3.3

    def is_dictionary(self, word: str) -> bool:
        """A lower-case dictionary word, inflected forms included ("customers", "packaging")."""
        w = word.lower()
        if w in self.lower_words or w in {"of", "and", "&", "the", "a"}:
            return True
        stems = [w[:-1], w[:-2], w[:-3], w[:-3] + "y", w[:-3] + "e", w[:-2] + "e"]
        return any(
            len(x) >= 3 and x in self.lower_words for x in stems if w.endswith(("s", "es", "ies", "ing", "ed", "er"))
        )


def _title(name: str) -> str:
    """SEC upper-case names to title case; mixed-case names are left as written."""
    if any(c.islower() for c in name):
        return name

    def word(w: str) -> str:
        if any(c.isdigit() for c in w) or "&" in w or (len(w) <= 3 and not re.search(r"[AEIOUY]", w)):
            return w
        if w in {"OF", "AND", "THE", "FOR", "DE", "DU", "LA"}:
            return w.lower()
        return "-".join(p[:1] + p[1:].lower() for p in w.split("-"))

    out = " ".join(word(w) for w in name.split())
    return out[:1].upper() + out[1:]


def legal_name_forms(name: str) -> list[str]:
    """The names a legal name is written as, longest first: "JPMORGAN CHASE & CO" ->
    ["JPMORGAN CHASE", ...]; the last one is the display name. Case is kept."""
    n = unicodedata.normalize("NFKC", name).strip()
    n = _STATE_TAG.sub("", n)
    n = re.sub(r"\s*\((?:the|The|THE)\)\s*$", "", n)
    n = re.sub(r"\s*/\s*ADR$", "", n, flags=re.I)
    n = re.sub(r"\s+", " ", n).strip(" ,.")
    forms: list[str] = []
    cur = n
    while True:
        cur = re.sub(r"[\s,]+$", "", cur)
        if _DOTCOM.search(cur) and len(cur) > 4:
            forms.append(cur[:-4] + "." + cur[-3:])  # "AMAZON COM" -> "AMAZON.COM"
            cur = _DOTCOM.sub("", cur)
            continue
        parts = cur.split(" ")
        last = parts[-1].upper().strip(",")
        if len(parts) > 1 and (last.rstrip(".") in _SUFFIXES or last in _SUFFIXES):
            if last.rstrip(".") in {"HOLDINGS", "GROUP", "HOLDING", "TRUST"}:
                forms.append(cur)
            cur = " ".join(parts[:-1])
            cur = re.sub(r"\s*(?:&|AND)$", "", cur, flags=re.I)  # "& CO"
            continue
        break
    if cur.upper().startswith("THE ") and len(cur) > 8:
        forms.append(cur)
        cur = cur[4:]
    forms.append(cur)
    seen: list[str] = []
    for f in forms:
        f = f.strip(" ,.-")
        if f and f not in seen:
            seen.append(f)
    return seen


def _alias_level(alias: str, words: _Words, vetted: bool = False) -> int:
    """`vetted`: a hand-listed brand name ("Amazon", "Tesla"): frequent, but rarely anything else."""
    letters = re.sub(r"[^A-Za-z]", "", alias)
    if alias.isupper() and 1 < len(letters) <= 4 and " " not in alias:
        return LEVEL_EXACT
    tokens = [t for t in re.split(r"[\s\-]+", alias) if t]
    if len(tokens) == 1:
        w = re.sub(r"['’]s$", "", tokens[0])
        if w.lower() in _MARKET_TALK:
            return LEVEL_STRICT
        if words.is_common(w) or (words.is_dictionary(w) and words.zipf(w) >= 3.3):
            return LEVEL_CONTEXT
        z = words.zipf(w)
        if not vetted and (z >= 3.5 or (w.lower() in words.proper and z >= 3.0)):
            return LEVEL_CONTEXT  # frequent words and first names / places: "Crypto", "Garrett", "Northern"
        if words.is_dictionary(w) or w.lower() in words.proper or z >= 3.0:
            return LEVEL_CASED
        return LEVEL_FREE
    if all(words.is_dictionary(t) or words.zipf(t) >= 4.0 for t in tokens):
        return LEVEL_CASED
    return LEVEL_FREE


def _usable(alias: str, words: _Words) -> bool:
    letters = [c for c in alias if c.isalnum()]
    if len(letters) < 2:
        return False
    if alias.upper() in _GENERIC or alias.upper() in _ACRONYMS:
        return False
    return not (len(alias) <= 2 and not alias.isupper())


def _ticker_ambiguous(ticker: str, words: _Words) -> bool:
    base = re.sub(r"[.\-/].*$", "", ticker)
    return (
        len(base) <= 2
        or base in _ACRONYMS
        or base.lower() in words.any_case
        or words.zipf(base) >= 2.5
        or not base.isalpha()
    )


def read_sec(path: Path) -> list[tuple[str, list[tuple[str, str]], str]]:
    """(cik, [(ticker, exchange), ...], name) per company, in file (rank) order."""
    by_cik: dict[str, tuple[list[tuple[str, str]], str]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            cik, ticker = r["cik"].strip(), r["ticker"].strip().upper()
            if not ticker:
                continue
            entry = by_cik.setdefault(cik, ([], r["name"].strip()))
            entry[0].append((ticker, r["exchange"].strip()))
    return [(cik, t, n) for cik, (t, n) in by_cik.items()]


def _primary(tickers: Sequence[tuple[str, str]]) -> str:
    listed = [t for t, ex in tickers if ex and ex.upper() != "OTC"]
    return (listed or [t for t, _ in tickers])[0]


def build_us(sec_csv: Path, words: _Words) -> list[Row]:
    rows: list[Row] = []
    first_words: dict[str, int] = {}
    parsed = []
    for _cik, tickers, legal in read_sec(sec_csv):
        forms = [_title(f) for f in legal_name_forms(legal)]
        parsed.append((tickers, forms))
        first = forms[-1].split(" ")[0].lower()
        first_words[first] = first_words.get(first, 0) + 1
    for tickers, forms in parsed:
        symbol = _primary(tickers)
        cur = CURATED.get(symbol, {})
        display = str(cur.get("name") or forms[-1])
        row = Row(
            symbol=symbol,
            name=display,
            tickers=[(t, _ticker_ambiguous(t, words)) for t in dict.fromkeys([symbol, *(t for t, _ in tickers)])],
            context=tuple(dict.fromkeys([*cur.get("context", ()), *cur.get("brands", ())])),
            former=tuple(cur.get("former", ())),
        )
        candidates = [display, *cur.get("aliases", ()), *forms]
        toks = forms[-1].split(" ")
        if len(toks) >= 2 and toks[-1].upper() in _DESCRIPTORS:
            rest = " ".join(toks[:-1])
            if len(rest) >= 4 and (_alias_level(rest, words) == LEVEL_FREE or words.is_rare_word(rest)):
                candidates.append(rest)
        for f in list(candidates):
            if " & " in f:
                candidates.append(f.replace(" & ", " and "))
        # "JPMorgan Chase" -> "JPMorgan": a distinctive first word that only this company starts with.
        if len(toks) >= 2:
            w = toks[0]
            if (
                len(w) >= 5
                and w.isalpha()
                and first_words.get(w.lower(), 0) == 1
                and w.lower() not in words.any_case
                and words.zipf(w) < 4.0
            ):
                candidates.append(w)
        folded: set[str] = set()
        for a in candidates:
            a = a.strip()
            if _usable(a, words) and a.casefold() not in folded:
                folded.add(a.casefold())
                row.aliases[a] = (
                    LEVEL_STRICT
                    if a in cur.get("strict", ())
                    else _alias_level(a, words, vetted=bool(cur) and (a == display or a in cur.get("aliases", ())))
                )
        rows.append(row)
    return rows


_ST_PREFIX = re.compile(r"^(?:\*?ST|PT|S\*ST|SST|S)(?=[\u4e00-\u9fff])")


def ashare_symbol(code: str) -> str | None:
    code = code.strip().zfill(6)
    if not re.fullmatch(r"\d{6}", code):
        return None
    market = {"6": "SH", "9": "SH", "0": "SZ", "2": "SZ", "3": "SZ", "4": "BJ", "8": "BJ"}.get(code[0])
    return f"{code}.{market}" if market else None


def _traditional_forms() -> list[Any]:
    """OpenCC converters from simplified to the traditional forms text uses: standard
    (貴州茅臺), Taiwan and Hong Kong (貴州茅台) characters; names are converted character by
    character, without phrase substitution, so a name stays the same name."""
    try:
        import opencc
    except ImportError as exc:  # a build-time dependency (the dev extra)
        raise SystemExit(
            "pipelines.build_universe needs OpenCC: pip install -e '.[dev]' (or pip install opencc)"
        ) from exc
    return [opencc.OpenCC(cfg) for cfg in ("s2t", "s2tw", "s2hk")]


def build_ashares(path: Path) -> list[Row]:
    rows: list[Row] = []
    converters = _traditional_forms()
    with path.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            symbol = ashare_symbol(r["stock_code"])
            if symbol is None or not (r.get("list_date2") or "").strip():
                continue  # no listing date: delisted or never listed
            name = re.sub(r"\s+", "", unicodedata.normalize("NFKC", r["short_name"]))
            base = _ST_PREFIX.sub("", name)
            variants = [name, base]
            for v in (name, base):
                if re.search(r"[\u4e00-\u9fff][AB]$", v):
                    variants.append(v[:-1])
            variants += [c.convert(v) for v in list(variants) for c in converters]
            row = Row(symbol=symbol, name=name, tickers=[])
            for v in variants:
                if len(v) >= 2 and v not in row.aliases:
                    row.aliases[v] = LEVEL_FREE
            rows.append(row)
    return rows


def build(companies_dir: Path) -> list[Row]:
    words = _Words()
    rows = build_us(companies_dir / "sec_company_tickers.csv", words)
    ashare = companies_dir / "ashare_codes.csv"
    if ashare.exists():
        rows.extend(build_ashares(ashare))
    # A brand of one company that is another company's name ("Oculus": Meta's headset,
    # Oculus VisionTech's name) links that other company only as LEVEL_STRICT.
    brands = {b.casefold(): sym for sym, cur in CURATED.items() for b in cur.get("brands", ())}
    for row in rows:
        for a in row.aliases:
            if brands.get(a.casefold(), row.symbol) != row.symbol:
                row.aliases[a] = LEVEL_STRICT
    # A former ticker stays only where no company has it now (a listed ticker wins).
    current = {t for row in rows for t, _ in row.tickers}
    for row in rows:
        row.former = tuple(t for t in row.former if t not in current)
    # An alias names the highest-ranked company that has it; lower-ranked ones lose it.
    owner: dict[str, str] = {}
    for row in rows:
        for a in list(row.aliases):
            key = a.casefold()
            if key in owner and owner[key] != row.symbol:
                del row.aliases[a]
            else:
                owner[key] = row.symbol
    return rows


def render(rows: Iterable[Row]) -> bytes:
    buf = io.StringIO()
    buf.write("# finsent company universe: symbol, name, tickers, aliases, context. See PROVENANCE.md.\n")
    for r in rows:
        buf.write(format_row(r.symbol, r.name, r.tickers, r.aliases.items(), r.context, r.former) + "\n")
    # mtime=0 and no file name: the same inputs give the same bytes.
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue().encode("utf-8"))
    return out.getvalue()


def write(rows: Iterable[Row], out_path: Path) -> int:
    data = render(rows)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(data)
    return len(data)


@click.command("build-universe")
@click.option(
    "--companies",
    "companies_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder with sec_company_tickers.csv and ashare_codes.csv (default: ../shared/data/companies).",
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None, show_default=True)
def main(companies_dir: Path | None, out_path: Path | None) -> None:
    """Build the shipped company universe from the company lists."""
    src = companies_dir or default_companies_dir()
    if not (src / "sec_company_tickers.csv").exists():
        raise click.ClickException(f"no sec_company_tickers.csv in {src}; pass --companies DIR")
    rows = build(src)
    dest = out_path or DEFAULT_OUT
    size = write(rows, dest)
    n_aliases = sum(len(r.aliases) for r in rows)
    click.echo(f"{len(rows)} companies, {n_aliases} aliases -> {dest} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
