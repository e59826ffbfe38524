"""The synthetic feed: deterministic, labelled as planted, realistic shape, readable by replay."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from monitor.classify.base import KeywordTestDouble
from monitor.ingest.inputs import Columns, read_records, to_message
from monitor.ingest.schemas import parse_time
from pipelines.feed import Decoy, Outage, Surge, generate, write
from tests.doubles import first_duplicates

T0 = datetime(2024, 5, 6, tzinfo=UTC)  # a Monday


def test_deterministic_by_seed() -> None:
    a = list(generate(7, T0, 300, 5.0))
    b = list(generate(7, T0, 300, 5.0))
    c = list(generate(8, T0, 300, 5.0))
    assert a == b and a != c


def test_contract_fields_and_order() -> None:
    msgs = list(generate(1, T0, 600, 6.0))
    times = [parse_time(m["published_at"]) for m in msgs]
    assert times == sorted(times)
    assert len({m["id"] for m in msgs}) == len(msgs)
    for m in msgs:
        assert m["kind"] in ("news", "comment") and m["tickers"] and m["url"].startswith("https://")
        assert m["published_at"].endswith("Z")


def test_sentiment_cues_match_the_test_double() -> None:
    st = T0 + timedelta(hours=14)
    msgs = list(generate(2, T0, 1440, 6.0, surges=[Surge("TSLA", st, 60, 3.0)], decoys=[Decoy("AAPL", st, 30, 10)]))
    preds = KeywordTestDouble().classify([m["text"] for m in msgs])
    by = collections.Counter(
        (m["planted"] or "organic").split(":")[0] + "/" + p.sentiment for m, p in zip(msgs, preds, strict=True)
    )
    assert by["surge/negative"] > 100 and not by["surge/neutral"] and not by["surge/positive"]
    assert by["decoy/neutral"] > 100 and not by["decoy/negative"]
    organic = sum(v for k, v in by.items() if k.startswith("organic"))
    assert 0.12 < by["organic/negative"] / organic < 0.3
    assert 0.2 < by["organic/positive"] / organic < 0.4


def test_topic_surge_spreads_over_companies_and_the_double_files_it_under_its_topic() -> None:
    st = T0 + timedelta(hours=14)
    msgs = list(generate(4, T0, 1440, 6.0, surges=[Surge("Financials", st, 60, 3.0)]))
    surge = [m for m in msgs if m["planted"] == "surge:0"]
    assert len(surge) > 100
    assert len({m["tickers"][0] for m in surge}) >= 5  # results misses across the watchlist, not one name
    preds = KeywordTestDouble().classify([m["text"] for m in surge])
    assert {(p.topic, p.sentiment) for p in preds} == {("Financials", "negative")}
    organic = KeywordTestDouble().classify([m["text"] for m in msgs if m["planted"] is None])
    assert sum(p.topic == "Financials" for p in organic) / len(organic) < 0.15  # a baseline to rise above


def test_a_topic_without_surge_texts_is_refused() -> None:
    with pytest.raises(ValueError, match="no surge texts for topic 'Macro'.*Financials"):
        Surge("Macro", T0, 10, 2.0)


def test_diurnal_weekend_busy_and_sparse_companies() -> None:
    msgs = list(generate(3, T0, 7 * 1440, 6.0))
    per_hour = collections.Counter(
        parse_time(m["published_at"]).hour for m in msgs if parse_time(m["published_at"]).weekday() < 5
    )
    assert per_hour[17] > 4 * per_hour[4]  # market hours vs the small hours
    weekday = sum(1 for m in msgs if parse_time(m["published_at"]).weekday() < 5) / 5
    weekend = sum(1 for m in msgs if parse_time(m["published_at"]).weekday() >= 5) / 2
    assert weekend < 0.5 * weekday
    per_co = collections.Counter(m["tickers"][0] for m in msgs)
    assert per_co["AAPL"] > 15 * per_co["CAT"] > 0


def test_outage_is_a_gap_and_decoy_is_near_duplicates() -> None:
    gap = Outage(T0 + timedelta(hours=15), 120)
    dec = Decoy("AAPL", T0 + timedelta(hours=18), 20, 15)
    msgs = list(generate(4, T0, 1440, 6.0, outages=[gap], decoys=[dec]))
    inside = [
        m for m in msgs if gap.start <= parse_time(m["published_at"]) < gap.start + timedelta(minutes=gap.minutes)
    ]
    assert inside == []
    texts = [m["text"] for m in msgs]
    dups = first_duplicates(texts)
    decoy_idx = [i for i, m in enumerate(msgs) if m["planted"] == "decoy:0"]
    assert len(decoy_idx) > 200
    assert sum(dups[i] is None for i in decoy_idx) <= 2  # counted once (or nearly)
    organic = [i for i, m in enumerate(msgs) if not m["planted"]]
    assert sum(dups[i] is not None for i in organic) / len(organic) < 0.12


def test_write_csv_and_jsonl_readable_by_inputs(tmp_path) -> None:
    msgs = list(generate(5, T0, 120, 6.0))
    for name in ("f.csv", "f.jsonl"):
        path = tmp_path / name
        assert write(path, msgs) == len(msgs)
        rows = [to_message(r, Columns()) for _, r, _ in read_records(path)]
        assert [r["text"] for r in rows] == [m["text"] for m in msgs]
        assert [r["tickers"] for r in rows] == [m["tickers"] for m in msgs]
        assert [r["id"] for r in rows] == [m["id"] for m in msgs]


def test_cli(tmp_path) -> None:
    out = tmp_path / "s.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "pipelines.feed", "--out", str(out), "--minutes", "90", "--surge", "TSLA,2024-05-06T00:30:00Z,10,2"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "wrote" in r.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert any(row["planted"] == "surge:0" for row in rows)
    h = subprocess.run([sys.executable, "-m", "pipelines.feed", "--help"], capture_output=True, text=True, check=True)
    assert "--surge" in h.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "pipelines.feed", "--out", str(out), "--surge", "x"], capture_output=True, text=True
    )
    assert bad.returncode != 0


# --- the Chinese feed (finsent demo --lang zh) ---------------------------------------------


def test_chinese_feed_names_a_shares_in_the_text_and_the_universe_links_them() -> None:
    from monitor.classify.lang import detect
    from monitor.enrich.entities import build_matcher

    surge = Surge("600519.SH", T0 + timedelta(hours=15), 20, 3.0)
    msgs = list(generate(3, T0 + timedelta(hours=13), 180, 5.0, surges=[surge], lang="zh"))
    assert msgs == list(generate(3, T0 + timedelta(hours=13), 180, 5.0, surges=[surge], lang="zh"))
    assert len(msgs) > 400
    matcher = build_matcher()
    clf = KeywordTestDouble()
    for m in msgs:
        assert m["tickers"] == []  # the companies are in the text only
        assert detect(m["text"]) == "zh", m["text"]
        assert [link.symbol for link in matcher.link(m["text"])] == [m["about"]], m["text"]
    planted = [m for m in msgs if m["planted"] == "surge:0"]
    assert len(planted) > 30
    assert all("贵州茅台" in m["text"] for m in planted)
    assert {p.sentiment for p in clf.classify([m["text"] for m in planted])} == {"negative"}
    shares = collections.Counter(p.sentiment for p in clf.classify([m["text"] for m in msgs if not m["planted"]]))
    assert shares["negative"] < shares["positive"] < shares["neutral"] + shares["positive"]
    assert {m["source"] for m in msgs} >= {"股吧", "雪球", "财经快讯"}


def test_chinese_reposts_are_near_copies_and_chinese_stories_are_not() -> None:
    dec = Decoy("002594.SZ", T0 + timedelta(hours=15), 20, 10)
    msgs = list(generate(8, T0 + timedelta(hours=12), 360, 6.0, decoys=[dec], lang="zh"))
    dups = first_duplicates([m["text"] for m in msgs])
    decoy_idx = [i for i, m in enumerate(msgs) if m["planted"] == "decoy:0"]
    assert len(decoy_idx) > 100
    assert sum(dups[i] is None for i in decoy_idx) <= 2  # 转发, emoji and links added: still one post
    organic = [i for i, m in enumerate(msgs) if not m["planted"]]
    assert sum(dups[i] is not None for i in organic) / len(organic) < 0.12


def test_chinese_feed_refuses_a_topic_surge_and_an_unknown_language() -> None:
    with pytest.raises(ValueError, match="company surges only"):
        generate(0, T0, 60, surges=[Surge("Financials", T0, 10, 2.0)], lang="zh")
    with pytest.raises(ValueError, match="lang"):
        generate(0, T0, 60, lang="fr")
