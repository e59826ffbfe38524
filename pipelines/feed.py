"""A synthetic financial news and comment feed with planted surges, written for this project.

Every text is generated here from our own templates (no third-party text): headlines
and comments about a watchlist of companies and the contract's topics, with a diurnal
volume pattern (US market hours busy, after-hours lull, quiet weekends), busy and sparse
companies, and on request:

* `Surge`: extra *negative* documents about one company (or one topic, e.g. Financials:
  results misses spread over many companies) for a while: what the detector must catch;
* `Decoy`: a burst of near-identical reposts of one headline (neutral by default): a
  volume spike that is not news and must not alert;
* `Outage`: a gap with no documents at all (a collector down): must not alert either.

Deterministic by seed. Each yielded message is a contract message (`id`, `text`,
`published_at`, `source`, `url`, `kind`, `tickers`) plus `planted` (ground truth:
``"surge:<i>"``, ``"decoy:<i>"`` or None), which the pipeline keeps as metadata.

    python -m pipelines.feed --out sample.csv --minutes 2880 --rate 6 \\
        --surge TSLA,2024-05-02T15:00:00Z,30,1.5 --decoy AAPL,2024-05-02T17:00:00Z,20,20
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from models.labels import TOPICS
from monitor.app.options import ignores_config_and_db
from pipelines.feed_zh import COMMENT_SOURCES_ZH, COMPANIES_ZH, NEWS_SOURCES_ZH, REPOST_FORMS_ZH, text_zh

# (symbol, name, relative volume): a few busy names, a middle, and a sparse tail.
COMPANIES: tuple[tuple[str, str, float], ...] = (
    ("AAPL", "Apple", 10.0),
    ("TSLA", "Tesla", 9.0),
    ("NVDA", "Nvidia", 8.0),
    ("MSFT", "Microsoft", 6.0),
    ("AMZN", "Amazon", 6.0),
    ("META", "Meta", 4.0),
    ("GOOGL", "Alphabet", 4.0),
    ("JPM", "JPMorgan", 3.0),
    ("BAC", "Bank of America", 2.0),
    ("XOM", "Exxon Mobil", 2.0),
    ("BA", "Boeing", 2.0),
    ("DIS", "Disney", 1.5),
    ("INTC", "Intel", 1.5),
    ("PFE", "Pfizer", 1.0),
    ("NKE", "Nike", 0.8),
    ("KO", "Coca-Cola", 0.6),
    ("F", "Ford", 0.6),
    ("GE", "General Electric", 0.4),
    ("T", "AT&T", 0.3),
    ("CAT", "Caterpillar", 0.3),
)

NEWS_SOURCES = ("Street Wire", "Market Pulse", "Daily Ledger", "Capital Desk", "Ticker Tape Times")
COMMENT_SOURCES = ("forum", "social", "chatboard")

# Sentiment words follow the keyword test double in monitor/classify.py, so tests can
# label these texts without the model: negative texts carry only negative cue words,
# positive only positive ones, neutral none.
_NEG_NEWS = (
    "{name} shares plunge {pct}% after {neg_event}",
    "{name} stock falls {pct}% as {neg_reason}",
    "{name} faces probe over {issue}, shares drop",
    "Analysts downgrade {name} after {neg_reason}",
    "{name} hit with lawsuit over {issue}",
    "{name} warns of weaker {metric} as {neg_reason}",
    "{name} announces layoffs of {n} staff amid {neg_reason}",
    "{name} misses {metric} estimates, shares slump {pct}%",
    "{name} recall of {n} units widens after {issue} complaints",
    "{name} posts quarterly loss as {neg_reason}",
    "{name} earnings miss estimates as {neg_reason}",
)
_NEG_COMMENT = (
    "${ticker} this is a crash, {neg_reason} and nobody cares",
    "selling my ${ticker}, {neg_event} is a disaster and it will drop more",
    "${ticker} down {pct}% today, {issue} scandal looks bad",
    "{name} guidance cut again? ${ticker} keeps falling",
    "another drop for ${ticker}, the {issue} probe will hurt",
)
_POS_NEWS = (
    "{name} shares soar {pct}% after {pos_event}",
    "{name} beats {metric} estimates on {pos_reason}",
    "Analysts upgrade {name} citing {pos_reason}",
    "{name} hits record high as {pos_reason}",
    "{name} raises {metric} outlook on {pos_reason}",
    "{name} earnings beat expectations on {pos_reason}",
)
_POS_COMMENT = (
    "${ticker} rally is real, {pos_reason}",
    "loading up on ${ticker}, {pos_event} means more gains",
    "${ticker} up {pct}% on {pos_reason}, nice gain",
)
_NEU_NEWS = (
    "{name} to present at {venue} on {day}",
    "{name} schedules {metric} call for {day}",
    "{name} names new {role}",
    "{name} shares little changed ahead of {venue}",
    "{name} files {form} with regulators",
    "What to watch for {name} this week: {venue} and {metric}",
    "{name} earnings date set for {day}",
    "{name} earnings call transcript: {metric} and {venue}",
)
_NEU_COMMENT = (
    "anyone holding ${ticker} into {day}?",
    "${ticker} chart looks sideways, waiting for {venue}",
    "what do you think about {name} and {venue}?",
    "${ticker} volume is normal today",
)
# Negative texts for a *topic* surge, keyed by the contract's topic label. They are worded the
# way the training data files them, so the shipped model puts them under that topic: there,
# per-share results, revenue and profit misses are "Financials", while "Earnings" holds
# earnings-call announcements and transcripts. Each carries a cue the keyword test double
# (monitor/classify.py) also reads as Financials: "EPS", "net income" or "a share".
TOPIC_SURGE_TEXTS: dict[str, tuple[str, ...]] = {
    "Financials": (
        "{name} {quarter} EPS ${eps} misses the ${eps_est} consensus as {neg_reason}",
        "{name} posts {quarter} loss of ${eps} a share as {neg_reason}",
        "{name} {quarter} revenue falls {pct}% to ${rev}B, EPS misses estimates",
        "{name} cuts full-year EPS outlook to ${eps} as {neg_reason}",
        "{name} {quarter} net income drops {pct}% as {neg_reason}",
        "${ticker} {quarter} EPS ${eps} vs ${eps_est} est., revenue ${rev}B misses",
    ),
}

_SLOTS: dict[str, tuple[str, ...]] = {
    "neg_event": (
        "a weak quarterly report", "the chief executive's sudden exit", "a failed product launch",
        "a credit rating cut", "an accounting restatement", "a factory fire", "a data breach disclosure",
        "a guidance reset", "a failed merger", "a regulator's rejection",
    ),
    "neg_reason": (
        "demand slows in China", "margins shrink", "costs climb", "orders dry up", "regulators circle",
        "inventory piles up", "customers defect", "the outlook darkens", "debt mounts", "sales stall in Europe",
    ),
    "issue": (
        "billing practices", "safety defects", "disclosure failures", "antitrust concerns", "emissions data",
        "privacy handling", "export controls", "insider trading", "pricing tactics", "supplier contracts",
    ),
    "pos_event": (
        "a strong quarterly report", "a new partnership", "a successful product launch", "a buyback plan",
        "an index inclusion", "a large government contract", "a new flagship model", "a dividend increase",
    ),
    "pos_reason": (
        "strong cloud demand", "robust holiday sales", "better margins", "new customers", "cost discipline",
        "a solid order book", "growth in services", "higher prices", "a rebound in travel",
    ),
    "metric": ("revenue", "profit", "quarterly", "full-year", "delivery", "subscriber", "margin"),
    "venue": (
        "an investor day", "the industry conference", "the shareholder meeting", "a tech summit",
        "the analyst briefing", "the annual meeting",
    ),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "next week", "month end"),
    "role": ("finance chief", "operations head", "board chair", "general counsel", "head of research"),
    "form": ("an annual report", "a quarterly filing", "a proxy statement", "a shelf registration"),
    "firm": (
        "Harbor Point Research", "Northgate Securities", "Bellweather Capital", "Lindqvist & Co", "Meridian Analytics",
        "Oakridge Partners", "Kestrel Advisors", "Summit Lane", "Graybridge", "Tidewater Equity", "Copperfield Bank",
        "Alder Street", "Pinecrest Markets", "Quayside Brokers",
    ),
    "person": (
        "Dana Ortiz", "Ravi Menon", "Claire Dubois", "Tom Becker", "Aiko Tanaka", "Luis Romero", "Nadia Haddad",
        "Ben Okafor", "Sara Lindgren", "Marco Rossi", "Wei Zhang", "Priya Nair", "Jonas Weber", "Emma Walsh",
    ),
    "city": (
        "New York", "Chicago", "San Francisco", "London", "Frankfurt", "Tokyo", "Austin", "Boston", "Seattle",
        "Toronto", "Singapore", "Zurich", "Dallas", "Atlanta",
    ),
    "session": ("early", "midday", "late", "premarket", "extended", "afternoon"),
    "quarter": ("first-quarter", "second-quarter", "third-quarter", "fourth-quarter", "fiscal-year", "half-year"),
    "month": ("January", "February", "March", "April", "June", "July", "September", "October", "November"),
}  # fmt: skip

# Tails add the variety real streams have (who said it, where, figures), so that
# distinct documents are not near-duplicates of each other. None carries a cue word.
_NEWS_TAILS = (
    "{person} at {firm} said in a note",
    "according to a filing dated {day}",
    "trading volume reached {vol} million shares",
    "the company said in a statement from {city}",
    "shares changed hands at ${price} in {session} trading",
    "people familiar with the matter told {firm}",
    "a spokesperson in {city} declined to comment",
    "{person} of {firm} wrote to clients on {day}",
    "data compiled by {firm} show {vol} million shares traded",
    "options volume hit {vol} thousand contracts",
    "ahead of the {quarter} report due in {month}",
    "per a {firm} survey of {n} investors",
    "{person} reports from {city}",
    "the stock last traded at ${price}",
)
_COMMENT_TAILS = (
    "imo",
    "not advice",
    "holding {n} shares since {month}",
    "my target is ${price}",
    "#{ticker} #stocks",
    "{person} on the {firm} podcast agreed",
    "watching the ${price} level",
    "been in since {month}",
    "thoughts?",
    "{session} session is wild",
    "cost basis ${price}",
    "lol",
    "from {city}, {session} here",
    "{n} shares deep",
    "day {n} of watching this",
    "chart says ${price} next",
    "{firm} note out today",
    "posting from {city}",
    "bag since ${price}",
    "{vol}% of my book",
    "per {person}",
    "{month} calls",
)
_OPENERS = (
    "", "", "ok so", "honestly", "wow", "guys", "update:", "quick take:", "hmm", "fyi", "so", "well", "psa:",
    "not gonna lie", "reminder:", "yikes", "alright", "heads up:",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Surge:
    """`extra_per_minute` additional negative documents about `key`: a company symbol, or a
    topic label from `TOPIC_SURGE_TEXTS` (e.g. "Financials": results misses across companies)."""

    key: str
    start: datetime
    minutes: int
    extra_per_minute: float

    def __post_init__(self) -> None:
        if self.key in TOPICS and self.key not in TOPIC_SURGE_TEXTS:
            raise ValueError(
                f"no surge texts for topic {self.key!r}; topics that can surge: {', '.join(TOPIC_SURGE_TEXTS)}"
            )


@dataclass(frozen=True, slots=True)
class Decoy:
    """`per_minute` near-identical reposts of one headline about `key` (a symbol)."""

    key: str
    start: datetime
    minutes: int
    per_minute: float
    sentiment: str = "neutral"


@dataclass(frozen=True, slots=True)
class Outage:
    start: datetime
    minutes: int


def diurnal(t: datetime) -> float:
    """Relative volume at `t` (UTC): US market hours high, after-hours lull, weekends low."""
    h = t.hour + t.minute / 60
    # Smooth day: peak around 15:00-19:00 UTC (New York morning/afternoon), trough ~05:00.
    day = 0.15 + 0.85 * max(0.0, math.sin(math.pi * (h - 9.0) / 14.0)) ** 1.5 if 9.0 <= h <= 23.0 else 0.15
    if t.weekday() >= 5:
        day *= 0.35
    return day


def _fill(template: str, rng: random.Random, name: str, ticker: str) -> str:
    values = {k: rng.choice(v) for k, v in _SLOTS.items()}
    values.update(
        name=name,
        ticker=ticker,
        pct=f"{rng.uniform(1.5, 14.0):.1f}",
        n=f"{rng.randint(12, 9000)}",
        vol=f"{rng.uniform(1.0, 90.0):.1f}",
        price=f"{rng.uniform(8.0, 900.0):.2f}",
    )
    if "{eps" in template or "{rev}" in template:
        # Results figures, drawn only for the templates that use them, so every other text
        # (and so a seed's whole feed) comes out as it did before they existed.
        eps = rng.uniform(0.05, 4.0)  # a per-share result and a consensus above it (a miss)
        values.update(
            rev=f"{rng.uniform(0.4, 60.0):.1f}", eps=f"{eps:.2f}", eps_est=f"{eps * rng.uniform(1.08, 1.4):.2f}"
        )
    return template.format(**values)


def _text(rng: random.Random, sentiment: str, kind: str, name: str, ticker: str) -> str:
    pool = {
        ("negative", "news"): _NEG_NEWS,
        ("negative", "comment"): _NEG_COMMENT,
        ("positive", "news"): _POS_NEWS,
        ("positive", "comment"): _POS_COMMENT,
        ("neutral", "news"): _NEU_NEWS,
        ("neutral", "comment"): _NEU_COMMENT,
    }[(sentiment, kind)]
    text = _fill(rng.choice(pool), rng, name, ticker)
    if kind == "news":
        return text + ", " + _fill(rng.choice(_NEWS_TAILS), rng, name, ticker)
    parts = [rng.choice(_OPENERS), text]
    parts += [_fill(t, rng, name, ticker) for t in rng.sample(_COMMENT_TAILS, 2)]
    return " ".join(p for p in parts if p)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "Z"


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def generate(
    seed: int = 0,
    start: datetime | None = None,
    minutes: int = 24 * 60,
    rate_per_minute: float = 6.0,
    *,
    companies: Sequence[tuple[str, str, float]] = COMPANIES,
    negative_share: float = 0.2,
    positive_share: float = 0.3,
    comment_share: float = 0.5,
    surges: Sequence[Surge] = (),
    decoys: Sequence[Decoy] = (),
    outages: Sequence[Outage] = (),
    diurnal_pattern: bool = True,
    lang: str = "en",
) -> Iterator[dict[str, Any]]:
    """Yield contract messages in event-time order (ties in generation order).

    `rate_per_minute` is the peak-hour mean volume of organic documents; surges and
    decoys come on top. Every message carries `planted` (ground truth, or None).
    `lang="zh"`: Chinese texts about A-share companies (`pipelines.feed_zh`), named in the
    text only (no ticker list: the entity linker must find them); company surges only.
    """
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
    zh = lang == "zh"
    if zh:
        if companies is COMPANIES:
            companies = COMPANIES_ZH
        topics = [s.key for s in surges if s.key in TOPICS]
        if topics:
            raise ValueError(f"the Chinese feed plants company surges only, not {topics}")

    # Checked above, when called; the messages come from this generator, when iterated.
    def stream(start: datetime | None, companies: Sequence[tuple[str, str, float]]) -> Iterator[dict[str, Any]]:
        start = (start or datetime(2024, 5, 6, tzinfo=UTC)).astimezone(UTC)
        rng = random.Random(seed)
        names = {sym: name for sym, name, _ in companies}
        syms = [c[0] for c in companies]
        weights = [c[2] for c in companies]
        counter = 0
        for m in range(minutes):
            t0 = start + timedelta(minutes=m)
            if any(o.start <= t0 < o.start + timedelta(minutes=o.minutes) for o in outages):
                continue
            batch: list[tuple[float, dict[str, Any]]] = []
            lam = rate_per_minute * (diurnal(t0) if diurnal_pattern else 1.0)
            for _ in range(_poisson(rng, lam)):
                sym = rng.choices(syms, weights)[0]
                u = rng.random()
                sentiment = (
                    "negative"
                    if u < negative_share
                    else "positive"
                    if u < negative_share + positive_share
                    else "neutral"
                )
                kind = "comment" if rng.random() < comment_share else "news"
                batch.append((rng.random(), _message(rng, sentiment, kind, sym, names[sym], None, zh=zh)))
            for i, s in enumerate(surges):
                if s.start <= t0 < s.start + timedelta(minutes=s.minutes):
                    for _ in range(_poisson(rng, s.extra_per_minute)):
                        if s.key in TOPIC_SURGE_TEXTS:
                            sym = rng.choices(syms, weights)[0]
                            text = _fill(rng.choice(TOPIC_SURGE_TEXTS[s.key]), rng, names[sym], sym)
                            text += ", " + _fill(rng.choice(_NEWS_TAILS), rng, names[sym], sym)
                            msg = _message(rng, "negative", "news", sym, names[sym], f"surge:{i}", text=text)
                        else:
                            kind = "comment" if rng.random() < comment_share else "news"
                            msg = _message(rng, "negative", kind, s.key, names.get(s.key, s.key), f"surge:{i}", zh=zh)
                        batch.append((rng.random(), msg))
            for i, d in enumerate(decoys):
                if d.start <= t0 < d.start + timedelta(minutes=d.minutes):
                    d_rng = random.Random(f"{seed}:decoy:{i}")
                    name = names.get(d.key, d.key)
                    headline = (
                        text_zh(d_rng, d.sentiment, "news", name)
                        if zh
                        else _text(d_rng, d.sentiment, "news", name, d.key)
                    )
                    for _ in range(_poisson(rng, d.per_minute)):
                        user = f"@{rng.choice(['fin', 'stock', 'alpha', 'bull', 'desk', 'deal'])}{rng.randint(1, 9999)}"
                        link = f"https://t.example/{rng.getrandbits(40):010x}"
                        forms = (
                            [f.format(user=user[1:], headline=headline, link=link) for f in REPOST_FORMS_ZH]
                            if zh
                            else [f"RT {user}: {headline} {link}", f"{headline} {link}", f"{headline} via {user}"]
                        )
                        text = rng.choice(forms)
                        msg = _message(rng, d.sentiment, "comment", d.key, name, f"decoy:{i}", text=text, zh=zh)
                        batch.append((rng.random(), msg))
            batch.sort(key=lambda x: x[0])
            for frac, msg in batch:
                counter += 1
                msg["id"] = f"s{seed}-{counter:08d}"
                msg["published_at"] = _rfc3339(t0 + timedelta(seconds=int(frac * 60)))
                msg["url"] = (
                    f"https://news.example.com/a/{msg['id']}"
                    if msg["kind"] == "news"
                    else f"https://social.example.com/p/{msg['id']}"
                )
                yield msg

    return stream(start, companies)


def _message(
    rng: random.Random,
    sentiment: str,
    kind: str,
    sym: str,
    name: str,
    planted: str | None,
    text: str | None = None,
    *,
    zh: bool = False,
) -> dict[str, Any]:
    if zh:
        return {
            "text": text or text_zh(rng, sentiment, kind, name),
            "source": rng.choice(NEWS_SOURCES_ZH if kind == "news" else COMMENT_SOURCES_ZH),
            "kind": kind,
            "tickers": [],  # named in the text only
            "planted": planted,
            "about": sym,  # ground truth for tests; not a contract field
        }
    return {
        "text": text or _text(rng, sentiment, kind, name, sym),
        "source": rng.choice(NEWS_SOURCES if kind == "news" else COMMENT_SOURCES),
        "kind": kind,
        "tickers": [sym],
        "planted": planted,
    }


COLUMNS = ("text", "published_at", "entity", "source", "id", "kind", "url", "planted")


def write(path: str | Path, messages: Iterator[dict[str, Any]] | Sequence[dict[str, Any]]) -> int:
    """Write messages as CSV (`.csv`) or JSONL (anything else) with the contract's input columns."""
    p = Path(path)
    n = 0
    rows = ({**m, "entity": ";".join(m.get("tickers") or []), "planted": m.get("planted") or ""} for m in messages)
    with p.open("w", newline="", encoding="utf-8") as fh:
        if p.suffix.lower() == ".csv":
            w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow(r)
                n += 1
        else:
            for r in rows:
                fh.write(json.dumps({k: r.get(k) for k in COLUMNS}) + "\n")
                n += 1
    return n


def _time(s: str) -> datetime:
    dt = datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@click.command("feed")
@click.option("--out", required=True, help="Output file (.csv or .jsonl).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--start", default="2024-05-06T00:00:00Z", show_default=True, help="First minute (RFC 3339).")
@click.option("--minutes", type=int, default=24 * 60, show_default=True)
@click.option("--rate", type=float, default=6.0, show_default=True, help="Peak-hour documents per minute.")
@click.option(
    "--surge",
    multiple=True,
    metavar="KEY,START,MINUTES,EXTRA_PER_MIN",
    help="Extra negative documents per minute about KEY: a company symbol, or one of the topics "
    + ", ".join(TOPIC_SURGE_TEXTS),
)
@click.option("--decoy", multiple=True, metavar="KEY,START,MINUTES,PER_MIN")
@click.option("--outage", multiple=True, metavar="START,MINUTES")
@click.option(
    "--lang",
    type=click.Choice(["en", "zh"]),
    default="en",
    show_default=True,
    help="en: English news and comments about US companies; zh: Chinese (中文) about A-shares (company surges only).",
)
@ignores_config_and_db
def command(
    out: str,
    seed: int,
    start: str,
    minutes: int,
    rate: float,
    surge: tuple[str, ...],
    decoy: tuple[str, ...],
    outage: tuple[str, ...],
    lang: str,
) -> None:
    """Write the generated demo feed (planted surges, decoys, outages) to a CSV or JSONL file."""
    try:
        surges = [Surge(k, _time(s), int(m), float(x)) for k, s, m, x in (v.split(",") for v in surge)]
        decoys = [Decoy(k, _time(s), int(m), float(x)) for k, s, m, x in (v.split(",") for v in decoy)]
        outages = [Outage(_time(s), int(m)) for s, m in (v.split(",") for v in outage)]
        first = _time(start)
    except ValueError as exc:
        raise click.UsageError(f"bad --surge/--decoy/--outage/--start value ({exc})") from None
    try:
        messages = generate(seed, first, minutes, rate, surges=surges, decoys=decoys, outages=outages, lang=lang)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    n = write(out, messages)
    click.echo(f"wrote {n} messages to {out}")


if __name__ == "__main__":  # `python -m pipelines.feed`, the same as `finsent feed`
    command(prog_name="finsent feed")
