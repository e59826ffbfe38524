"""The message format as a table of good and bad messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.schemas import Document, Rejection, decode, stable_id

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def dec(raw: bytes | None) -> Document | Rejection:
    return decode(raw, topic="news", partition=1, offset=42, record_time=T0)


def js(obj: object) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("raw", "check"),
    [
        (js({"text": "Apple beats estimates"}), lambda d: d.published_at == T0 and d.text == "Apple beats estimates"),
        (
            js({"text": " padded ", "published_at": "2024-05-01T10:00:00Z"}),
            lambda d: d.text == "padded" and d.published_at.hour == 10,
        ),
        (
            js({"text": "x", "published_at": "2024-05-01T12:00:00+02:00"}),
            lambda d: d.published_at == datetime(2024, 5, 1, 10, tzinfo=UTC),
        ),
        (
            js({"text": "x", "published_at": "2024-05-01 09:30:00"}),
            lambda d: d.published_at == datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        ),
        (js({"text": "x", "id": "abc-1"}), lambda d: d.id == "abc-1"),
        (js({"text": "x", "id": 17}), lambda d: d.id == "17"),
        (js({"text": "x", "tickers": ["aapl", "$MSFT", "AAPL"]}), lambda d: d.tickers == ("AAPL", "MSFT")),
        (js({"text": "x", "tickers": "TSLA;NVDA"}), lambda d: d.tickers == ("TSLA", "NVDA")),
        (
            js({"text": "x", "kind": "Comment", "source": "reddit", "extra": {"a": 1}}),
            lambda d: d.kind == "comment" and d.meta == {"extra": {"a": 1}},
        ),
        (js({"text": "中国平安 利润下滑 😱 \u202eevil"}), lambda d: "中国平安" in d.text),
        (js({"text": "a" * 1_000_000}), lambda d: len(d.text) == 1_000_000),
        (js({"text": "x", "id": "y" * 500}), lambda d: d.id.startswith("h:") and len(d.id) <= 64),
        (js({"text": "'; DROP TABLE documents; --"}), lambda d: d.text.startswith("'")),
    ],
)
def test_good_messages(raw: bytes, check) -> None:  # type: ignore[no-untyped-def]
    d = dec(raw)
    assert isinstance(d, Document), d
    assert check(d)
    assert (d.kafka_topic, d.kafka_partition, d.kafka_offset) == ("news", 1, 42)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty message"),
        (b"", "empty message"),
        (b'\xff\xfe{"text": 1}', "not valid UTF-8"),
        (b'{"text": "caf\xc3"}', "not valid UTF-8"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"just a string"', "must be a JSON object, got str"),
        (b"null", "got null"),
        (js({"title": "no text"}), "missing required field 'text'"),
        (js({"text": ""}), "text is empty"),
        (js({"text": "   \n\t "}), "text is empty"),
        (js({"text": 5}), "text must be a string"),
        (js({"text": "x", "published_at": "yesterday"}), "not an RFC 3339 time"),
        (js({"text": "x", "published_at": "2024-13-45T00:00:00Z"}), "not an RFC 3339 time"),
        (js({"text": "x", "published_at": "2999-01-01T00:00:00Z"}), "after the record's time"),
        (js({"text": "x", "published_at": "1970-01-01T00:00:00Z"}), "before 1990"),
        (js({"text": "x", "published_at": True}), "must be an RFC 3339 time string"),
        (b'{"text": "x", "published_at": NaN}', "NaN"),
        (js({"text": "x", "kind": "tweetstorm"}), "kind must be one of"),
        (js({"text": "x", "tickers": 5}), "tickers must be a list"),
        (js({"text": "x", "tickers": ["not a symbol!"]}), "is not a symbol"),
        (js({"text": "x", "source": ["a"]}), "source must be a string"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b'{"text": "x", "meta": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}", "nested deeper"),
        (js({"text": "a" * (3 * 1024 * 1024)}), "limit is"),
    ],
)
def test_bad_messages_have_reasons(raw: bytes | None, reason: str) -> None:
    r = dec(raw)
    assert isinstance(r, Rejection), r
    assert reason in r.reason
    assert r.raw == (raw or b"")
    assert (r.topic, r.partition, r.offset) == ("news", 1, 42)


def test_stable_id_rule() -> None:
    a = dec(js({"text": "same story", "source": "wire", "published_at": "2024-05-01T10:00:00Z"}))
    b = dec(js({"text": "same story", "source": "wire", "published_at": "2024-05-01T12:00:00+02:00"}))
    c = dec(js({"text": "same story", "source": "other", "published_at": "2024-05-01T10:00:00Z"}))
    d = dec(js({"text": "other text", "source": "wire", "url": "https://x/1", "published_at": "2024-05-01T10:00:00Z"}))
    e = dec(js({"text": "edited text", "source": "wire", "url": "https://x/1", "published_at": "2024-05-01T10:00:00Z"}))
    assert isinstance(a, Document) and isinstance(b, Document) and isinstance(c, Document)
    assert a.id == b.id != c.id
    assert isinstance(d, Document) and isinstance(e, Document) and d.id == e.id  # the url identifies the story
    assert a.id == stable_id("wire", None, "same story", datetime(2024, 5, 1, 10, tzinfo=UTC))


def test_missing_time_uses_record_time() -> None:
    later = T0 + timedelta(hours=1)
    d = decode(js({"text": "x"}), topic="news", partition=0, offset=1, record_time=later)
    assert isinstance(d, Document) and d.published_at == later


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    out = dec(raw)
    assert isinstance(out, Document | Rejection)
    if isinstance(out, Rejection):
        assert out.reason


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["text", "id", "published_at", "tickers", "kind", "source", "x"]),
        st.one_of(
            st.none(),
            st.text(max_size=50),
            st.integers(),
            st.floats(allow_nan=False),
            st.lists(st.text(max_size=5), max_size=3),
        ),
    )
)
def test_random_objects_never_raise(obj: dict) -> None:  # type: ignore[type-arg]
    out = dec(js(obj))
    assert isinstance(out, Document | Rejection)


@pytest.mark.parametrize(
    ("raw", "expect"),
    [
        (b'{"text": "lone \\ud800 surrogate", "title": "\\udc00", "m": {"k\\u0000": "\\ud800"}}', "document"),
        (b'{"text": "x", "n": ' + b"9" * 5000 + b"}", "usable JSON"),
        (b'{"text": "x", "published_at": "9999-12-31T23:59:59-23:59"}', "out of range"),
        (b'{"text": "x", "published_at": "0001-01-01T00:00:00+14:00"}', "out of range"),
    ],
)
def test_edge_values_never_raise(raw: bytes, expect: str) -> None:
    out = dec(raw)
    if expect == "document":
        assert isinstance(out, Document)
        # Every string is now encodable and storable: lone surrogates became U+FFFD, NULs went.
        for s in (out.text, out.title or "", json.dumps(out.meta, ensure_ascii=False)):
            s.encode("utf-8")
            assert "\x00" not in s
        assert "\ufffd" in out.text
    else:
        assert isinstance(out, Rejection) and expect in out.reason
