"""`finsent backtest STREAM EVENTS`: replay a real stream and score its alerts against known events.

The events file has the shape of `../shared/data/stocknet-dev/events.json`: lists
`price_drop_days` and `price_rise_days` of ``{"ticker", "date", ...}``. Daily prices
(`prices.csv` beside the events file, or `--prices`: columns ticker, date, return) tell
quiet days from moves. Events and prices name a company by its ticker of the day; both
are counted under the symbol the entity linker gives that ticker now ("FB" in 2014 is
Meta, "META"), as the replayed documents are. The scores, for company alerts only:

* **drop days hit**: a company alert that starts between `--before` hours before the
  day starts and `--after` hours after it (UTC days by default), with the time from the
  day's start to the first such alert;
* **rise days alerted**: the same span on days the price rose (a negative alert there is
  a false alarm unless opinion really turned);
* **quiet-day rate**: company alerts that start on a day with no move of `--quiet-move`
  or more on that day or the next trading day, per company per 30 quiet days.

Each event also gets the evidence a negative-opinion detector had to go on (from the
stored counts): the company's stories, copies and negative stories in the scored span,
and its negative share over the week before. An event is *audible* when the span holds
at least ``min_negative`` negative stories at a share at least ``min_lift`` times that
week's: a day whose tweets did not turn negative is one no negative-surge detector should
hear, and the table says how many drop days (and rise days) were audible, so a miss is
told apart from a silence.

It prints a table (or the JSON report with `--json`; `--report FILE` writes it), and with `--plots DIR` one timeline PNG per
event: the company's documents per hour, its negative share, and the alerts.
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from monitor.app.options import column_options, columns_from, with_settings
from monitor.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    ticker: str
    day: date
    kind: str  # "drop" | "rise"
    key: str = ""  # the symbol the company's alerts are counted under ("META" for FB); the ticker if empty

    @property
    def symbol(self) -> str:
        return self.key or self.ticker


@dataclass(frozen=True, slots=True)
class AlertStart:
    key: str
    started_at: datetime


@dataclass
class Score:
    drops: list[dict[str, Any]] = field(default_factory=list)
    rises: list[dict[str, Any]] = field(default_factory=list)
    quiet_alerts: int = 0
    quiet_company_days: int = 0
    companies: int = 0
    alerts: int = 0
    company_alerts: int = 0

    @property
    def drops_hit(self) -> int:
        return sum(1 for d in self.drops if d["hit"])

    @property
    def rises_alerted(self) -> int:
        return sum(1 for d in self.rises if d["hit"])

    @property
    def drops_audible(self) -> int:
        return sum(1 for d in self.drops if d.get("audible"))

    @property
    def drops_audible_hit(self) -> int:
        return sum(1 for d in self.drops if d.get("audible") and d["hit"])

    @property
    def rises_audible(self) -> int:
        return sum(1 for d in self.rises if d.get("audible"))

    @property
    def quiet_rate(self) -> float:
        """Company alerts per company per 30 quiet days."""
        return self.quiet_alerts / (self.quiet_company_days / 30.0) if self.quiet_company_days else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "drop_days": len(self.drops),
            "drop_days_hit": self.drops_hit,
            "rise_days": len(self.rises),
            "rise_days_alerted": self.rises_alerted,
            "drop_days_audible": self.drops_audible,
            "audible_drop_days_hit": self.drops_audible_hit,
            "rise_days_audible": self.rises_audible,
            "quiet_day_alerts": self.quiet_alerts,
            "quiet_company_days": self.quiet_company_days,
            "quiet_alerts_per_company_per_30_days": round(self.quiet_rate, 4),
            "companies_with_prices": self.companies,
            "alerts": self.alerts,
            "company_alerts": self.company_alerts,
            "drops": self.drops,
            "rises": self.rises,
        }


def load_events(path: str | Path) -> list[Event]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out: list[Event] = []
    for name, kind in (("price_drop_days", "drop"), ("price_rise_days", "rise")):
        for e in data.get(name, []):
            out.append(Event(str(e["ticker"]).upper(), date.fromisoformat(str(e["date"])[:10]), kind))
    if not out:
        raise click.ClickException(f"{path}: no price_drop_days or price_rise_days")
    return out


def load_returns(path: str | Path) -> dict[str, list[tuple[date, float]]]:
    """ticker -> [(trading day, close-to-close return)] in date order."""
    out: dict[str, list[tuple[date, float]]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                out[row["ticker"].upper()].append((date.fromisoformat(row["date"][:10]), float(row["return"])))
            except (KeyError, ValueError):
                continue
    for v in out.values():
        v.sort()
    return dict(out)


def quiet_days(returns: Mapping[str, Sequence[tuple[date, float]]], move: float) -> dict[str, set[date]]:
    """Trading days with |return| < `move` on that day and on the next trading day."""
    out: dict[str, set[date]] = {}
    for t, rows in returns.items():
        days: set[date] = set()
        for i, (d, r) in enumerate(rows):
            nxt = abs(rows[i + 1][1]) if i + 1 < len(rows) else 0.0
            if abs(r) < move and nxt < move:
                days.add(d)
        out[t] = days
    return out


def by_symbol(quiet: Mapping[str, set[date]], resolve: Callable[[str], str]) -> dict[str, set[date]]:
    """Quiet days per symbol the alerts are counted under ("FB" -> "META"); where two price
    tickers are one company, a day is quiet only if it is quiet for both."""
    out: dict[str, set[date]] = {}
    for t, days in quiet.items():
        key = resolve(t)
        out[key] = out[key] & days if key in out else set(days)
    return out


def _label(r: Mapping[str, Any]) -> str:
    """The event's ticker, and the symbol it is counted under when that differs ("FB=META")."""
    return r["ticker"] if r.get("key", r["ticker"]) == r["ticker"] else f"{r['ticker']}={r['key']}"


def day_start(d: date, tz: ZoneInfo) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)


def score(
    events: Iterable[Event],
    alerts: Iterable[AlertStart],
    quiet: Mapping[str, set[date]],
    *,
    before_h: float = 6.0,
    after_h: float = 30.0,
    tz: ZoneInfo | None = None,
    total_alerts: int | None = None,
) -> Score:
    """Pure scoring of company alert starts against events and quiet days."""
    tz = tz or ZoneInfo("UTC")
    by_key: dict[str, list[datetime]] = defaultdict(list)
    alerts = list(alerts)
    for a in alerts:
        by_key[a.key.upper()].append(a.started_at)
    for v in by_key.values():
        v.sort()
    sc = Score(alerts=total_alerts if total_alerts is not None else len(alerts), company_alerts=len(alerts))
    for e in events:
        start = day_start(e.day, tz)
        lo, hi = start - timedelta(hours=before_h), start + timedelta(hours=after_h)
        hits = [t for t in by_key.get(e.symbol, []) if lo <= t <= hi]
        row = {
            "ticker": e.ticker,
            "key": e.symbol,
            "date": e.day.isoformat(),
            "hit": bool(hits),
            "first_alert": hits[0].isoformat() if hits else None,
            "hours_from_day_start": round((hits[0] - start).total_seconds() / 3600, 2) if hits else None,
        }
        (sc.drops if e.kind == "drop" else sc.rises).append(row)
    sc.companies = len(quiet)
    sc.quiet_company_days = sum(len(v) for v in quiet.values())
    for key, times in by_key.items():
        days = quiet.get(key)
        if not days:
            continue
        sc.quiet_alerts += sum(1 for t in times if t.astimezone(tz).date() in days)
    return sc


def table(sc: Score) -> str:
    lines = ["event      ticker    date        alerted  from day start  stories  negative      week before   audible"]
    for kind, rows in (("drop", sc.drops), ("rise", sc.rises)):
        for r in rows:
            h = "" if r["hours_from_day_start"] is None else f"{r['hours_from_day_start']:+.1f} h"
            line = f"{kind:<10} {_label(r):<9} {r['date']}  {'yes' if r['hit'] else 'no':<7}  {h:<14}"
            if "stories" in r:
                line += (
                    f"  {r['stories']:>7}  {r['negative_stories']:>3} {_pct(r['share']):>5}"
                    f"  {r['week_negative']:>3}/{r['week_stories']:<4} {_pct(r['week_share']):>5}"
                    f"   {'yes' if r['audible'] else 'no'}"
                )
            lines.append(line.rstrip())
    lines.append("")
    lines.append(f"price-drop days alerted:  {sc.drops_hit} of {len(sc.drops)}")
    if any("audible" in r for r in sc.drops):
        lines.append(
            f"  audible (the tweets turned negative): {sc.drops_audible}, of which alerted {sc.drops_audible_hit}"
        )
    lines.append(f"price-rise days alerted:  {sc.rises_alerted} of {len(sc.rises)}")
    if any("audible" in r for r in sc.rises):
        lines.append(f"  audible (the tweets turned negative): {sc.rises_audible}")
    lines.append(
        f"quiet days:               {sc.quiet_alerts} company alerts on {sc.quiet_company_days} company-days "
        f"= {sc.quiet_rate:.3f} per company per 30 days"
    )
    lines.append(f"alerts:                   {sc.alerts} ({sc.company_alerts} company alerts)")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def audible(
    negative: int, stories: int, week_negative: int, week_stories: int, min_negative: int, min_lift: float
) -> bool:
    """Whether opinion about the company turned negative in the span: at least
    `min_negative` negative stories, at a share at least `min_lift` times the week
    before's (a week without a negative story counts as half of one, so a first few
    negatives after a clean week still need the share to stand out; a company nobody wrote
    about that week has no share to beat)."""
    if stories <= 0 or negative < min_negative:
        return False
    week = max(week_negative, 0.5) / week_stories if week_stories else 0.0
    return negative / stories >= min_lift * week


def attach_evidence(
    engine: Any,
    sc: Score,
    tz: ZoneInfo,
    before_h: float,
    after_h: float,
    min_negative: int,
    min_lift: float,
    week_days: float = 7.0,
) -> None:
    """Add to each event row the company's counts in the scored span and the week before (see the module docstring)."""
    from sqlalchemy import and_, func, select

    from monitor.store.schema import minute_counts as mc

    sums = (func.sum(mc.c.novel_total), func.sum(mc.c.novel_negative), func.sum(mc.c.total))
    with engine.connect() as conn:

        def counts(ticker: str, lo: datetime, hi: datetime) -> tuple[int, int, int]:
            row = conn.execute(
                select(*sums).where(
                    and_(mc.c.key_kind == "entity", mc.c.key_value == ticker, mc.c.minute >= lo, mc.c.minute < hi)
                )
            ).one()
            return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)

        for rows in (sc.drops, sc.rises):
            for r in rows:
                start = day_start(date.fromisoformat(r["date"]), tz)
                lo, hi = start - timedelta(hours=before_h), start + timedelta(hours=after_h)
                st, neg, tot = counts(r["key"], lo, hi)
                wst, wneg, _ = counts(r["key"], lo - timedelta(days=week_days), lo)
                r.update(
                    stories=st,
                    copies=tot - st,
                    negative_stories=neg,
                    share=round(neg / st, 4) if st else None,
                    week_stories=wst,
                    week_negative=wneg,
                    week_share=round(wneg / wst, 4) if wst else None,
                    audible=audible(neg, st, wneg, wst, min_negative, min_lift),
                )


def alerts_from_db(engine: Any) -> tuple[list[AlertStart], int]:
    """Company alert starts (fired occurrences) and the count of all alerts, from the alerts table."""
    from sqlalchemy import func, select

    from monitor.store.schema import alerts

    with engine.connect() as conn:
        rows = conn.execute(
            select(alerts.c.key_value, alerts.c.started_at)
            .where(alerts.c.key_kind == "entity")
            .where(alerts.c.fired_at.is_not(None))
        ).fetchall()
        total = conn.execute(select(func.count()).select_from(alerts).where(alerts.c.fired_at.is_not(None))).scalar()
    return [AlertStart(r[0], _aware(r[1])) for r in rows], int(total or 0)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def plot_events(
    engine: Any,
    sc: Score,
    alerts: Sequence[AlertStart],
    out_dir: Path,
    tz: ZoneInfo,
    before_h: float = 6.0,
    after_h: float = 30.0,
) -> list[Path]:
    """One PNG per event: the company's hourly documents and negative share over five days, alert marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.dates import date2num
    from sqlalchemy import and_, select

    from monitor.store.schema import minute_counts as mc

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    by_key: dict[str, list[datetime]] = defaultdict(list)
    for al in alerts:
        by_key[al.key.upper()].append(al.started_at)
    for kind, rows in (("drop", sc.drops), ("rise", sc.rises)):
        for r in rows:
            d = date.fromisoformat(r["date"])
            start = day_start(d, tz)
            lo, hi = start - timedelta(days=3), start + timedelta(days=2)
            with engine.connect() as conn:
                q = select(mc.c.minute, mc.c.novel_total, mc.c.novel_negative, mc.c.total).where(
                    and_(mc.c.key_kind == "entity", mc.c.key_value == r["key"], mc.c.minute >= lo, mc.c.minute < hi)
                )
                data = conn.execute(q).fetchall()
            hours = int((hi - lo).total_seconds() // 3600)
            stories, negs, copies = [0] * hours, [0] * hours, [0] * hours
            for m, nt, nn, tt in data:
                i = int((_aware(m) - lo).total_seconds() // 3600)
                if 0 <= i < hours:
                    stories[i] += int(nt or 0)
                    negs[i] += int(nn or 0)
                    copies[i] += int((tt or 0) - (nt or 0))
            xs = [float(date2num(lo + timedelta(hours=i))) for i in range(hours)]
            fig, ax = plt.subplots(figsize=(9, 3.2))
            ax.bar(xs, stories, width=1 / 24, color="#9db4d0", label="stories / hour", align="edge")
            ax.bar(xs, negs, width=1 / 24, color="#c0392b", label="negative stories", align="edge")
            ax.bar(xs, copies, width=1 / 24, bottom=stories, color="#d5dbe3", label="copies", align="edge")
            ax.set_ylabel("documents per hour")
            ax2 = ax.twinx()
            share = []
            for i in range(hours):  # negative share over the trailing 24 hours
                first = max(0, i - 23)
                s, n = sum(stories[first : i + 1]), sum(negs[first : i + 1])
                share.append(n / s if s else float("nan"))
            ax2.plot(xs, share, color="#2c3e50", lw=1.2, label="negative share (24 h)")
            ax2.set_ylim(0, 1)
            ax2.set_ylabel("negative share")
            ax.legend(loc="upper left", fontsize=7)
            ax.axvspan(
                float(date2num(start - timedelta(hours=before_h))),
                float(date2num(start + timedelta(hours=after_h))),
                color="#f6e58d",
                alpha=0.25,
            )
            for t in by_key.get(r["key"], []):
                if lo <= t < hi:
                    ax.axvline(float(date2num(t)), color="#e67e22", lw=2)
            ax.xaxis_date()
            ax.set_title(
                f"{_label(r)} {kind} day {r['date']}: {'alerted' if r['hit'] else 'no alert'} "
                "(orange lines: alerts; band: scored span)"
            )
            fig.autofmt_xdate()
            fig.tight_layout()
            path = out_dir / f"{kind}_{r['ticker']}_{r['date']}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
            written.append(path)
    return written


@click.command("backtest")
@click.argument("stream", type=click.Path(exists=True, dir_okay=False))
@click.argument("events", type=click.Path(exists=True, dir_okay=False))
@column_options
@click.option(
    "--prices", type=click.Path(exists=True, dir_okay=False), help="Daily returns (default: prices.csv beside EVENTS)."
)
@click.option(
    "--before", "before_h", type=float, default=6.0, show_default=True, help="Hours before the day an alert counts."
)
@click.option(
    "--after",
    "after_h",
    type=float,
    default=30.0,
    show_default=True,
    help="Hours after the day starts an alert counts.",
)
@click.option(
    "--quiet-move",
    type=float,
    default=0.03,
    show_default=True,
    help="A quiet day moves less than this, and so does the next.",
)
@click.option("--timezone", "tz_name", default="UTC", show_default=True, help="Time zone the event dates are days of.")
@click.option("--model", default=None, help="Model directory, or 'test-double' (FINSENT_MODEL).")
@click.option("--batch-size", type=int, default=None, help="Documents per pipeline batch (does not change the alerts).")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON instead of the table.")
@click.option(
    "--report", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write the JSON report here."
)
@click.option(
    "--plots", "plots", type=click.Path(file_okay=False), default=None, help="Write a timeline PNG per event here."
)
@with_settings(model="model")
def command(
    settings: Settings,
    stream: str,
    events: str,
    prices: str | None,
    before_h: float,
    after_h: float,
    quiet_move: float,
    tz_name: str,
    batch_size: int | None,
    as_json: bool,
    json_out: str | None,
    plots: str | None,
    **kw: Any,
) -> None:
    """Replay STREAM and score its company alerts against the EVENTS file.

    Without --db the replay goes to a temporary SQLite database (the default database is
    left alone). Notifications are never sent.
    """
    from pipelines.replay import replay

    evs = load_events(events)
    price_path = Path(prices) if prices else Path(events).with_name("prices.csv")
    if not price_path.exists():
        raise click.ClickException(
            f"no daily prices at {price_path}; pass --prices PATH (columns ticker, date, return)"
        )
    try:
        tz = ZoneInfo(tz_name)
    except Exception as exc:
        raise click.ClickException(f"unknown --timezone {tz_name!r}") from exc
    returns = load_returns(price_path)
    # Events and prices name a company by its ticker of the day ("FB" in 2014); alerts are
    # counted under the symbol the linker gives it now ("META").
    from monitor.app.batch import matcher_for

    resolve = matcher_for(settings).resolve
    evs = [replace(e, key=resolve(e.ticker)) for e in evs]
    quiet = by_symbol(quiet_days(returns, quiet_move), resolve)
    cols = columns_from(kw)
    tmp = None
    if not _db_given(settings):
        tmp = tempfile.TemporaryDirectory(prefix="finsent-backtest-")
        settings = settings.model_copy(update={"database_url": f"sqlite:///{tmp.name}/backtest.db"})
    t0 = time.perf_counter()
    res = replay(stream, settings, columns=cols, notify=False, batch_size=batch_size)
    from monitor.store.schema import make_engine

    engine = make_engine(settings.database_url)
    try:
        starts, total = alerts_from_db(engine)
        sc = score(evs, starts, quiet, before_h=before_h, after_h=after_h, tz=tz, total_alerts=total)
        det = settings.detect
        attach_evidence(engine, sc, tz, before_h, after_h, det.min_negative, det.min_lift)
        wall = time.perf_counter() - t0
        rate = res.documents / res.wall_s if res.wall_s else 0.0
        say = (lambda _s: None) if as_json else click.echo
        say(table(sc))
        say(f"replayed {res.rows} rows in {res.wall_s:.1f} s ({rate:.0f} documents/s); scored in {wall:.1f} s")
        report = {
            **sc.as_dict(),
            "replay": res.as_dict(),
            "settings": {
                "before_hours": before_h,
                "after_hours": after_h,
                "quiet_move": quiet_move,
                "timezone": tz_name,
            },
        }
        if plots:
            paths = plot_events(engine, sc, starts, Path(plots), tz, before_h, after_h)
            report["plots"] = [str(p) for p in paths]
            say(f"wrote {len(paths)} timelines to {plots}")
        if json_out:
            Path(json_out).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
            say(f"wrote {json_out}")
        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
    finally:
        engine.dispose()
        if tmp is not None:
            tmp.cleanup()


def _db_given(settings: Settings) -> bool:
    import os

    return bool(os.environ.get("FINSENT_DATABASE_URL")) or settings.database_url != "sqlite:///finsent.db"


if __name__ == "__main__":  # `python -m pipelines.backtest STREAM EVENTS`, the same as `finsent backtest`
    command(prog_name="finsent backtest")
