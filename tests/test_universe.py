"""The company universe and the entity linker, on plain strings."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from monitor.enrich.entities import EntityMatcher, Link, WatchEntity, build_matcher
from monitor.enrich.universe import DEFAULT_PATH, load_universe

COMPANIES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "companies"


@pytest.fixture(scope="module")
def m() -> EntityMatcher:
    return EntityMatcher((), load_universe())


def syms(m: EntityMatcher, text: str) -> list[str]:
    return m.match(text)


def test_legal_names_become_the_names_people_write() -> None:
    pytest.importorskip("wordfreq")
    from pipelines.build_universe import _title, legal_name_forms

    assert _title(legal_name_forms("AMAZON COM INC")[-1]) == "Amazon"
    assert legal_name_forms("Tesla, Inc.")[-1] == "Tesla"
    assert _title(legal_name_forms("JPMORGAN CHASE & CO")[-1]) == "Jpmorgan Chase"
    assert _title(legal_name_forms("BANK OF AMERICA CORP /DE/")[-1]) == "Bank of America"
    assert "Goldman Sachs Group" in [_title(f) for f in legal_name_forms("GOLDMAN SACHS GROUP INC")]


def test_shipped_aliases(m: EntityMatcher) -> None:
    u = {c.symbol: c for c in load_universe()}
    assert u["AMZN"].name == "Amazon" and u["TSLA"].name == "Tesla"
    jpm = {a for a, _ in u["JPM"].aliases}
    assert {"JPMorgan", "JPMorgan Chase"} <= jpm
    assert ("GOOG", False) in u["GOOGL"].tickers or any(t == "GOOG" for t, _ in u["GOOGL"].tickers)
    assert syms(m, "JPMorgan Chase & Co said on Tuesday") == ["JPM"]
    assert syms(m, "Amazon.com Inc raised prices") == ["AMZN"]


def test_apple_the_company_not_the_fruit(m: EntityMatcher) -> None:
    assert syms(m, "Apple's iPhone sales slowed in China") == ["AAPL"]
    assert syms(m, "apple pie prices rose this autumn") == []
    assert syms(m, "Shares of Apple fell 2%") == ["AAPL"]


def test_common_word_names_need_company_context(m: EntityMatcher) -> None:
    assert syms(m, "Target cut its outlook") == ["TGT"]
    assert syms(m, "we missed the target by a mile") == []
    assert syms(m, "Visa and Mastercard shares fell") == ["V", "MA"]
    assert syms(m, "I applied for a visa to travel") == []
    assert syms(m, "Gap Inc reported weaker sales") == ["GAP"]
    assert syms(m, "the gap between rates widened") == []
    assert syms(m, "He moved to Southern California") == []


def test_short_tickers_only_in_ticker_forms(m: EntityMatcher) -> None:
    assert syms(m, "IT stocks rallied and ALL of them are ON NOW, A shares too") == []
    assert syms(m, "ServiceNow (NYSE: NOW) jumped") == ["NOW"]
    assert syms(m, "Allstate (NYSE:ALL) and $ON rose") == ["ALL", "ON"]


def test_ticker_forms_with_offsets(m: EntityMatcher) -> None:
    text = "Johnson & Johnson <JNJ.N> rose; $AAPL up, (NASDAQ: MSFT) flat, NVDA shares fell"
    links = {lk.symbol: lk.mentions for lk in m.link(text)}
    assert links["JNJ"] == ((0, 17), (19, 24))
    assert text[19:24] == "JNJ.N"
    s = text.index("$AAPL")
    assert links["AAPL"] == ((s, s + 5),)
    s = text.index("MSFT")
    assert links["MSFT"] == ((s, s + 4),)
    s = text.index("NVDA")
    assert links["NVDA"] == ((s, s + 4),)


def test_tesla_and_gm(m: EntityMatcher) -> None:
    text = "Tesla gains as GM recalls 400,000 trucks"
    assert m.link(text) == [Link("TSLA", "Tesla", ((0, 5),)), Link("GM", "General Motors", ((15, 17),))]


def test_longest_match_wins(m: EntityMatcher) -> None:
    links = m.link("Bank of America raised its forecast")
    assert [(lk.symbol, lk.mentions) for lk in links] == [("BAC", ((0, 15),))]


def test_publisher_tickers_first_and_unknown_cashtags_kept(m: EntityMatcher) -> None:
    links = m.link("Tesla rose while $ZZZQ fell", ["goog"])
    assert [lk.symbol for lk in links] == ["GOOGL", "TSLA", "ZZZQ"]
    assert links[0].mentions == () and links[2].name == "ZZZQ"


def test_watchlist_adds_and_overrides() -> None:
    u = load_universe()
    m = EntityMatcher(
        [WatchEntity("TSLA", ("Elon Musk's carmaker",), "Tesla Motors"), WatchEntity("ACME", ("acme",))], u
    )
    links = m.link("Elon Musk's carmaker beat ACME and acme")
    assert [(lk.symbol, lk.name) for lk in links] == [("TSLA", "Tesla Motors"), ("ACME", "ACME")]
    assert {"TSLA", "ACME", "AAPL"} <= m.known_symbols()
    # A watchlist "Apple" keeps the universe's rule for that name.
    m2 = EntityMatcher([WatchEntity("AAPL", ("Apple",))], u)
    assert m2.match("apple pie prices") == []


def test_universe_off_is_the_old_matcher() -> None:
    m = build_matcher([WatchEntity("AAPL", ("Apple",))], universe_enabled=False)
    assert m.match("Apple pie and $TSLA and Tesla") == ["AAPL", "TSLA"]  # order of first mention
    assert m.known_symbols() == frozenset({"AAPL"})


def test_chinese_names_and_codes(m: EntityMatcher) -> None:
    assert m.match("贵州茅台(600519)涨停,万科A跌") == ["600519.SH", "000002.SZ"]
    assert m.match("万科公布业绩; SZ000002, 600519.SH") == ["000002.SZ", "600519.SH"]


def test_chinese_traditional_forms_st_prefixes_and_codes_touching_chinese(m: EntityMatcher) -> None:
    # Traditional characters (OpenCC at build time): standard, Taiwan and Hong Kong forms.
    assert m.match("貴州茅臺股價大跌") == ["600519.SH"]
    assert m.match("貴州茅台跌停，萬科A公告虧損") == ["600519.SH", "000002.SZ"]
    assert m.match("中國平安、招商銀行") == ["601318.SH", "600036.SH"]
    # Full-width letters and ST prefixes.
    assert m.match("万科Ａ今日公告") == ["000002.SZ"]
    # A bare code needs no word space in Chinese, but a number of shares or yuan is not a code.
    assert m.match("600519跌停了") == ["600519.SH"]
    assert m.match("关注 000002 明天") == ["000002.SZ"]
    assert m.match("买了600000股，成交300750元") == []
    assert m.match("Revenue was 600519 dollars") == []  # not in Chinese text: no bare codes


def test_the_file_is_small_and_loads() -> None:
    # Its load time (about 0.3 s with the automaton on a 2-core EPYC) is a benchmark
    # figure (`finsent bench classify`), not a unit-test bound.
    assert DEFAULT_PATH.stat().st_size < 1_000_000
    from monitor.enrich import universe

    universe._load.cache_clear()
    u = load_universe()
    EntityMatcher((), u)
    assert len(u) > 12_000


@pytest.mark.skipif(
    not (COMPANIES / "sec_company_tickers.csv").exists(), reason="../shared/data/companies is not present"
)
def test_build_reproduces_the_shipped_file() -> None:
    pytest.importorskip("wordfreq", reason="the dev extra's word lists are needed to build the universe")
    pytest.importorskip("english_words", reason="the dev extra's word lists are needed to build the universe")
    from pipelines.build_universe import build, render

    fresh = gzip.decompress(render(build(COMPANIES.resolve())))
    assert fresh == gzip.decompress(DEFAULT_PATH.read_bytes())


def test_market_names_and_market_talk_are_not_companies(m: EntityMatcher) -> None:
    # The exchange in a ticker form, the index, the hashtag: none of them is Nasdaq, Inc.
    assert syms(m, "$FB Is Facebook Inc (NASDAQ:FB) Becoming An African-Asian Company?") == ["META"]
    assert syms(m, "Sites Set on Nasdaq 5,000: $QQQ") == ["QQQ"]
    assert syms(m, "Should you buy $BOH #NASDAQ") == ["BOH"]
    assert syms(m, "Stocks end higher; the Dow and the Nasdaq gain") == []
    assert syms(m, "#Dow #stocks $UNH Daily:-0.21%") == ["UNH"]
    # The company's own name still links.
    assert syms(m, "Nasdaq Inc shares rose after the exchange operator's results") == ["NDAQ"]
    assert syms(m, "Dow Inc. cut its outlook") == ["DOW"]
    assert syms(m, "$NDAQ Nasdaq beats estimates") == ["NDAQ"]
    # Market talk that is also a company's name.
    assert syms(m, "$CSCO Are you Bullish on these #stocks $FMC") == ["CSCO", "FMC"]
    assert syms(m, "Here are some Stocks to Watch $FDX") == ["FDX"]
    assert syms(m, "Best #Stock Newsletter on $ED Click http://t.co/x") == ["ED"]
    assert syms(m, "Bullish shares jumped in their debut") == ["BLSH"]
    assert syms(m, "Ok out of my $FB 55 Call. Nice profit overnight.") == ["META"]
    assert syms(m, "Bullish options activity today on $AOL") == ["AOL"]
    assert syms(m, "Intel Becomes #2 Most Shorted Dow Stock $INTC") == ["INTC"]
    # Fiscal periods and sector plurals are not names or tickers.
    assert syms(m, "Apple Inc. (AAPL) To Report Strong Q1 Results And Q2 Guidance") == ["AAPL"]
    assert syms(m, "$FB - TECH STOCKS: Tech Stocks Come To Life Late") == ["META"]
    assert syms(m, "CAT shares fell") == ["CAT"]


def test_another_company_s_brand_and_headline_words_are_not_companies(m: EntityMatcher) -> None:
    assert syms(m, "Facebook to buy Oculus VR for about $2 billion. $FB") == ["META"]
    assert syms(m, "$OVTZ Oculus VisionTech rises") == ["OVTZ"]
    assert syms(m, "Google $GOOG Acquires Smart Thermostat Maker #Nest For $3.2 Billion") == ["GOOGL"]
    assert syms(m, "New Apple TV coming out in first half 2014? - GMA News $AAPL") == ["AAPL"]
    assert syms(m, "News Corp cut 200 jobs at its newspapers") == ["NWSA"]
    assert syms(m, "Please @NokiaPilipinas the answer is HIGHWAY HEI$T. PLEASE!") == []
    assert syms(m, "PDF Solutions announces collaboration with SAP") == ["PDFS", "SAP"]
    assert syms(m, "U.S. API WEEKLY CRUDE STOCK ACTUAL: 1.860M VS 4.762M PREVIOUS") == []
    assert syms(m, "Monthly GDP (3M/3M) May: 0.4%; revenue of $27.3M, pays €3M") == []
    assert syms(m, "3M cut its outlook; 3M shares fell") == ["MMM"]
    assert syms(m, "Blue Foundry Bancorp announces a buyback; Crypto lender Genesis; #Gold lower") == []


def test_a_renamed_company_is_one_company_under_its_old_ticker(m: EntityMatcher) -> None:
    assert m.resolve("FB") == "META" and m.resolve("$fb".lstrip("$")) == "META"
    assert m.resolve("PCLN") == "BKNG" and m.resolve("UTX") == "RTX" and m.resolve("RDS.B") == "SHEL"
    assert m.resolve("GOOG") == "GOOGL" and m.resolve("zzzz") == "ZZZZ"
    links = m.link("$FB Facebook faces lawsuit over private messages", ["FB"])
    assert [lk.symbol for lk in links] == ["META"]
    assert links[0].mentions == ((0, 3), (4, 12))
    assert syms(m, "Priceline.com Inc <PCLN.O> beat estimates") == ["BKNG"]
    # Only in ticker forms: a bare "FB" is not Meta.
    assert syms(m, "FB 54.78 today") == []


def test_a_listed_ticker_wins_over_a_former_one() -> None:
    from monitor.enrich.universe import parse

    u = parse("NEWCO\tNewco\tNEWCO|~OLD\tNewco:0\t\nOTHER\tOther Corp\tOLD\tOther Corp:1\t\n")
    assert u.companies[0].former == ("OLD",) and u.companies[0].tickers == (("NEWCO", False),)
    matcher = EntityMatcher((), u)
    assert matcher.resolve("OLD") == "OTHER" and matcher.resolve("NEWCO") == "NEWCO"
    assert matcher.match("$OLD and $NEWCO") == ["OTHER", "NEWCO"]


def test_the_universe_file_round_trips_former_tickers() -> None:
    from monitor.enrich.universe import LEVEL_STRICT, format_row, parse_row

    line = format_row("META", "Meta", [("META", True)], [("Meta", 2), ("Nasdaq", LEVEL_STRICT)], ["Instagram"], ["FB"])
    c = parse_row(line)
    assert c.tickers == (("META", True),) and c.former == ("FB",)
    assert c.aliases == (("Meta", 2), ("Nasdaq", LEVEL_STRICT)) and c.context == ("Instagram",)


def test_link_audit_counts_only_what_names_and_ticker_forms_add(m: EntityMatcher, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipelines.link_audit import audit, main

    rows = [
        {"text": "$FB Facebook faces a lawsuit", "entity": "FB"},  # all given by the cashtag: nothing added
        {"text": "Pfizer raises its bid for AstraZeneca $PFE", "entity": "PFE"},  # AstraZeneca is added
        {"text": "Are you Bullish on these #stocks $FMC", "entity": ""},  # nothing (market talk)
    ]
    got = audit(rows, m, "text", "entity")
    assert got.rows == 3 and got.added == {"AZN": 1}
    assert got.examples["AZN"] == ["Pfizer raises its bid for AstraZeneca $PFE"]
    path = tmp_path / "s.csv"
    path.write_text("text,entity\n" + "\n".join(f'"{r["text"]}",{r["entity"]}' for r in rows) + "\n", encoding="utf-8")
    res = CliRunner().invoke(main, [str(path), "--ticker-column", "entity"])
    assert res.exit_code == 0, res.output
    assert "3 rows" in res.output and "AZN" in res.output
    bad = CliRunner().invoke(main, [str(path), "--text-column", "body"])
    assert bad.exit_code != 0 and "no column body" in bad.output


def test_two_companies_for_the_same_words_go_to_the_one_named_elsewhere(m: EntityMatcher) -> None:
    # "BYD" is BYD Company's name and Boyd Gaming's ticker; the cashtag says which.
    text = "$BYDDF $BYDDY - Goldman Sachs expects BYD Company's profitability to expand in 2H22"
    links = {lk.symbol: lk.mentions for lk in m.link(text)}
    assert "BYD" not in links and links["BYDDF"] == ((0, 6), (38, 41))
