"""`finsent backtest`: the scoring on plain values, and the command end to end on a
generated stream with a planted company surge (test-double classifier, SQLite)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta

from click.testing import CliRunner

from monitor.cli.group import main
from pipelines.backtest import AlertStart, Event, audible, by_symbol, quiet_days, score, table
from pipelines.feed import Surge, generate, write

T0 = datetime(2024, 5, 6, tzinfo=UTC)


def test_quiet_days_need_a_quiet_next_day_too() -> None:
    returns = {"ACME": [(date(2024, 5, 6), 0.01), (date(2024, 5, 7), -0.05), (date(2024, 5, 8), 0.0)]}
    assert quiet_days(returns, 0.03) == {"ACME": {date(2024, 5, 8)}}


def test_score_spans_rise_days_and_the_quiet_rate() -> None:
    events = [
        Event("ACME", date(2024, 5, 7), "drop"),
        Event("BETA", date(2024, 5, 7), "drop"),
        Event("ACME", date(2024, 5, 9), "rise"),
    ]
    quiet = {"ACME": {date(2024, 5, d) for d in range(10, 25)}, "BETA": {date(2024, 5, d) for d in range(10, 25)}}
    alerts = [
        AlertStart("ACME", datetime(2024, 5, 6, 20, tzinfo=UTC)),  # 4 h before the day: counts
        AlertStart("BETA", datetime(2024, 5, 8, 7, tzinfo=UTC)),  # 31 h after: too late
        AlertStart("ACME", datetime(2024, 5, 12, 9, tzinfo=UTC)),  # a quiet day
    ]
    sc = score(events, alerts, quiet)
    assert [d["hit"] for d in sc.drops] == [True, False]
    assert sc.drops[0]["hours_from_day_start"] == -4.0
    assert sc.rises_alerted == 0
    assert sc.quiet_alerts == 1 and sc.quiet_company_days == 30
    assert sc.quiet_rate == 1.0  # one alert in 30 company-days


def test_events_of_a_renamed_company_count_its_alerts_under_the_symbol_of_now() -> None:
    resolve = {"FB": "META", "GOOG": "GOOGL", "GOOGL": "GOOGL"}.get
    quiet = by_symbol(
        {"FB": {date(2014, 5, 12)}, "GOOG": {date(2014, 5, 12), date(2014, 5, 13)}, "GOOGL": {date(2014, 5, 13)}},
        lambda t: resolve(t) or t,
    )
    assert quiet == {"META": {date(2014, 5, 12)}, "GOOGL": {date(2014, 5, 13)}}  # one company: quiet for both
    events = [Event("FB", date(2014, 5, 7), "drop", key="META")]
    alerts = [
        AlertStart("META", datetime(2014, 5, 7, 15, tzinfo=UTC)),
        AlertStart("META", datetime(2014, 5, 12, 9, tzinfo=UTC)),
    ]
    sc = score(events, alerts, quiet)
    assert sc.drops[0]["hit"] and sc.drops[0]["ticker"] == "FB" and sc.drops[0]["key"] == "META"
    assert sc.quiet_alerts == 1
    assert "FB=META" in table(sc)


def test_an_event_is_audible_only_when_the_tweets_turned_negative() -> None:
    # StockNet dev shapes: a drop day with 6 of 39 negative after 1 of 32 the week before is
    # audible; 8 of 50 after 6 of 41 (the same share), or 0 of 7, is not; nor are two
    # negatives after a clean week (too few to be a surge of anything).
    assert audible(6, 39, 1, 32, min_negative=3, min_lift=1.5)
    assert not audible(8, 50, 6, 41, min_negative=3, min_lift=1.5)
    assert not audible(0, 7, 0, 0, min_negative=3, min_lift=1.5)
    assert not audible(2, 4, 0, 20, min_negative=3, min_lift=1.5)
    assert audible(3, 10, 0, 0, min_negative=3, min_lift=1.5)  # a company nobody tweeted about before


def test_backtest_command_scores_a_planted_surge(tmp_path) -> None:
    surge_at = T0 + timedelta(days=1, hours=15)
    stream = tmp_path / "stream.csv"
    write(stream, generate(3, T0 + timedelta(hours=10), 36 * 60, 4.0, surges=[Surge("NVDA", surge_at, 30, 3.0)]))
    events = tmp_path / "events.json"
    events.write_text(
        json.dumps(
            {
                "price_drop_days": [{"ticker": "NVDA", "date": surge_at.date().isoformat()}],
                "price_rise_days": [{"ticker": "AAPL", "date": surge_at.date().isoformat()}],
            }
        )
    )
    with (tmp_path / "prices.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ticker", "date", "close", "return"])
        for t in ("NVDA", "AAPL", "KO"):
            for d in range(6, 10):
                w.writerow([t, f"2024-05-{d:02d}", 100, -0.06 if (t, d) == ("NVDA", 7) else 0.001])
    report = tmp_path / "report.json"
    plots = tmp_path / "plots"
    res = CliRunner().invoke(
        main,
        [
            "backtest",
            str(stream),
            str(events),
            "--model",
            "test-double",
            "--report",
            str(report),
            "--plots",
            str(plots),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert "price-drop days alerted:  1 of 1" in res.output
    data = json.loads(report.read_text())
    assert data["drop_days_hit"] == 1 and data["rise_days_alerted"] == 0
    assert 0 < data["drops"][0]["hours_from_day_start"] <= 24
    # The evidence each event had: the planted surge is audible, the quiet AAPL day is not.
    drop, rise = data["drops"][0], data["rises"][0]
    assert drop["audible"] and drop["negative_stories"] >= 3 and drop["share"] > drop["week_share"]
    assert not rise["audible"] and rise["stories"] > 0
    assert data["drop_days_audible"] == 1 and data["audible_drop_days_hit"] == 1 and data["rise_days_audible"] == 0
    assert "audible (the tweets turned negative): 1, of which alerted 1" in res.output
    assert sorted(p.name for p in plots.iterdir()) == [
        f"drop_NVDA_{surge_at.date()}.png",
        f"rise_AAPL_{surge_at.date()}.png",
    ]
    assert (plots / f"drop_NVDA_{surge_at.date()}.png").read_bytes()[:4] == b"\x89PNG"
    # --json prints the same report
    res = CliRunner().invoke(main, ["backtest", str(stream), str(events), "--model", "test-double", "--json"])
    assert json.loads(res.output)["drop_days_hit"] == 1


def test_backtest_says_where_prices_are_missing(tmp_path) -> None:
    stream = tmp_path / "s.csv"
    stream.write_text("text,published_at\nhello,2024-05-06T00:00:00Z\n")
    events = tmp_path / "events.json"
    events.write_text(json.dumps({"price_drop_days": [{"ticker": "X", "date": "2024-05-06"}]}))
    res = CliRunner().invoke(main, ["backtest", str(stream), str(events), "--model", "test-double"])
    assert res.exit_code != 0
    assert "prices" in res.output
