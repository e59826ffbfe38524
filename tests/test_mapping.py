"""`[input]` field mapping, Kafka Connect envelopes and ids from record keys, on plain values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import ConfigError, load_settings
from monitor.ingest.mapping import FieldMap, Unmappable, apply, is_connect_envelope, lookup
from monitor.ingest.schemas import Document, Rejection, decode

REC_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _decode(value: object, mapping: FieldMap | None = None, key: bytes | None = None) -> Document | Rejection:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return decode(raw, topic="t", partition=0, offset=7, record_time=REC_TIME, mapping=mapping, key=key)


CUSTOM = FieldMap(
    paths={
        "text": "payload.body",
        "title": "payload.headline",
        "published_at": "payload.ts",
        "source": "meta.origin.name",
        "url": "links.0",
        "tickers": "payload.symbols",
    }
)


def test_dotted_paths_map_a_custom_schema() -> None:
    rec = {
        "payload": {"body": "Acme cuts guidance", "headline": "Acme warns", "ts": 1714564800, "symbols": ["acme"]},
        "meta": {"origin": {"name": "wire-x"}},
        "links": ["https://example.test/a", "https://example.test/b"],
        "lang_hint": "en",
    }
    doc = _decode(rec, CUSTOM)
    assert isinstance(doc, Document), doc
    assert doc.text == "Acme cuts guidance"
    assert doc.title == "Acme warns"
    assert doc.published_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert doc.source == "wire-x"
    assert doc.url == "https://example.test/a"
    assert doc.tickers == ("ACME",)
    # What the mapping did not consume stays as metadata; the mapped subtrees do not.
    assert doc.meta == {"lang_hint": "en"}


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1714564800, datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),  # epoch seconds
        (1714564800123, datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),  # epoch milliseconds
        ("1714564800123", datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),  # milliseconds as text
        ("1714564800", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),  # seconds as text
        (1714564800.5, datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T11:00:00+00:00", datetime(2024, 5, 1, 11, 0, tzinfo=UTC)),
    ],
)
def test_published_at_epoch_seconds_milliseconds_or_rfc3339(ts: object, expected: datetime) -> None:
    doc = _decode({"payload": {"body": "x happened", "ts": ts}}, CUSTOM)
    assert isinstance(doc, Document), doc
    assert doc.published_at == expected


def test_missing_required_path_is_dead_lettered_naming_the_path() -> None:
    rej = _decode({"payload": {"headline": "no body here"}}, CUSTOM)
    assert isinstance(rej, Rejection)
    assert "'payload.body' (text)" in rej.reason
    assert rej.offset == 7


def test_required_can_include_time() -> None:
    fmap = FieldMap(paths={"text": "body", "published_at": "when.ts"}, required=("text", "published_at"))
    rej = _decode({"body": "hello", "when": {}}, fmap)
    assert isinstance(rej, Rejection) and "'when.ts' (published_at)" in rej.reason
    ok = _decode({"body": "hello", "when": {"ts": 1714564800000}}, fmap)
    assert isinstance(ok, Document) and ok.published_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_optional_mapped_field_missing_falls_back() -> None:
    doc = _decode({"payload": {"body": "only a body"}}, CUSTOM)
    assert isinstance(doc, Document)
    assert doc.title is None and doc.source is None and doc.published_at == REC_TIME


CONNECT = {
    "schema": {
        "type": "struct",
        "fields": [{"field": "text", "type": "string"}, {"field": "published_at", "type": "int64"}],
        "optional": False,
        "name": "news",
    },
    "payload": {"text": "Globex shares plunge", "published_at": 1714564800000, "id": "n-1", "desk": "eq"},
}


def test_connect_envelope_is_unwrapped_without_settings() -> None:
    doc = _decode(CONNECT)  # the default mapping
    assert isinstance(doc, Document), doc
    assert doc.id == "n-1"
    assert doc.text == "Globex shares plunge"
    assert doc.published_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert doc.meta == {"desk": "eq"}  # the schema is not kept


def test_connect_envelope_paths_against_payload_or_envelope() -> None:
    env = {"schema": None, "payload": {"body": "Initech recalls", "ts": 1714564800}}
    for fmap in (
        FieldMap(paths={"text": "body", "published_at": "ts"}),
        FieldMap(paths={"text": "payload.body", "published_at": "payload.ts"}),
    ):
        doc = _decode(env, fmap)
        assert isinstance(doc, Document), doc
        assert doc.text == "Initech recalls"
        assert doc.published_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_connect_string_payload() -> None:
    as_json = {"schema": {"type": "string"}, "payload": json.dumps({"text": "inner json", "id": "s-1"})}
    doc = _decode(as_json)
    assert isinstance(doc, Document) and doc.text == "inner json" and doc.id == "s-1"
    plain = {"schema": {"type": "string"}, "payload": "just a headline"}
    doc = _decode(plain)
    assert isinstance(doc, Document) and doc.text == "just a headline"


def test_connect_string_payload_nested_too_deep_never_raises() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    out = _decode({"schema": {"type": "string"}, "payload": deep})
    assert isinstance(out, Document | Rejection)
    bomb = '{"text": "x", "m": ' + "[" * 60 + "]" * 60 + "}"
    rej = _decode({"schema": {"type": "string"}, "payload": bomb})
    assert isinstance(rej, Rejection) and "nested deeper" in rej.reason


def test_connect_envelope_with_non_object_payload_is_dead_lettered() -> None:
    rej = _decode({"schema": {"type": "array"}, "payload": [1, 2]})
    assert isinstance(rej, Rejection) and "Kafka Connect envelope" in rej.reason


def test_unwrap_can_be_turned_off() -> None:
    rej = _decode(CONNECT, FieldMap(unwrap_envelope=False))
    assert isinstance(rej, Rejection) and "missing required field 'text'" in rej.reason


def test_not_an_envelope_when_other_keys_present() -> None:
    assert not is_connect_envelope({"schema": {}, "payload": {}, "text": "x"})
    assert not is_connect_envelope({"schema": "v1", "payload": {}})
    assert is_connect_envelope({"schema": None, "payload": {"text": "x"}})


def test_id_from_record_key() -> None:
    fmap = FieldMap(id_from_key=True)
    doc = _decode({"text": "keyed", "id": "body-id"}, fmap, key=b"key-42")
    assert isinstance(doc, Document) and doc.id == "key-42"
    # No key: the body's id, else the stable hash.
    doc = _decode({"text": "keyed", "id": "body-id"}, fmap, key=None)
    assert isinstance(doc, Document) and doc.id == "body-id"
    doc = _decode({"text": "keyed"}, fmap, key=b"")
    assert isinstance(doc, Document) and len(doc.id) == 32
    # A required id is satisfied by the key.
    strict = FieldMap(id_from_key=True, required=("text", "id"))
    assert isinstance(_decode({"text": "x"}, strict, key=b"k1"), Document)
    assert isinstance(_decode({"text": "x"}, strict, key=None), Rejection)


def test_same_record_same_id_across_replays() -> None:
    a = _decode(CONNECT, FieldMap(paths={"text": "text"}))
    b = _decode(CONNECT, FieldMap(paths={"text": "text"}))
    assert isinstance(a, Document) and isinstance(b, Document) and a.id == b.id


def test_lookup_paths() -> None:
    obj = {"a": {"b": [{"c": 1}, {"c": 2}]}, "x": None}
    assert lookup(obj, "a.b.1.c") == 2
    assert lookup(obj, "a.b.-1.c") == 2
    assert lookup(obj, "x") is None
    missing = lookup(obj, "a.b.5.c")
    assert missing is lookup(obj, "nope") and missing is not None
    assert lookup(obj, "a.b.c") is missing  # a name into a list


def test_mapped_values_are_still_validated() -> None:
    rej = _decode({"payload": {"body": 42}}, CUSTOM)
    assert isinstance(rej, Rejection) and "text must be a string" in rej.reason
    rej = _decode({"payload": {"body": "x", "ts": 99999999999999}}, CUSTOM)  # far future
    assert isinstance(rej, Rejection) and "published_at" in rej.reason


def test_unknown_fields_in_a_map_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown contract field"):
        FieldMap(paths={"body": "x"})
    with pytest.raises(Unmappable):
        apply({"payload": {}}, FieldMap(paths={"text": "payload.body"}))


def test_input_settings_from_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text(
        '[input]\ntext = "payload.body"\npublished_at = "payload.ts"\nid_from_key = true\n'
        'required = ["text", "published_at"]\n'
    )
    s = load_settings(cfg)
    fmap = FieldMap.from_input(s.input)
    assert fmap.paths == {"text": "payload.body", "published_at": "payload.ts"}
    assert fmap.id_from_key and fmap.unwrap_envelope and fmap.required == ("text", "published_at")
    bad = tmp_path / "bad.toml"
    bad.write_text('[input]\ntext = "payload..body"\n')
    with pytest.raises(ConfigError, match="input.text"):
        load_settings(bad)
    bad.write_text('[input]\nrequired = ["body"]\n')
    with pytest.raises(ConfigError, match="unknown field"):
        load_settings(bad)
    bad.write_text('[input]\nheadline = "x"\n')
    with pytest.raises(ConfigError, match="input.headline"):
        load_settings(bad)


def test_env_override_of_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENT_INPUT__TEXT", "data.msg")
    assert load_settings().input.text == "data.msg"


def test_plain_contract_messages_unchanged() -> None:
    msg = {"id": "p1", "text": "plain", "published_at": "2024-05-01T10:00:00Z", "extra": {"k": 1}}
    doc = _decode(msg)
    assert isinstance(doc, Document)
    assert (doc.id, doc.text, doc.meta) == ("p1", "plain", {"extra": {"k": 1}})
    assert doc.published_at == REC_TIME - timedelta(hours=2)


@pytest.mark.integration
def test_mapped_topic_end_to_end(broker, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real daemon with an `[input]` section: Connect envelopes and a custom schema stored
    with the right text, time and key id; an unmappable record dead-lettered naming the path."""
    from kafka import KafkaProducer
    from sqlalchemy import select

    from monitor.app.broker import create_topics
    from monitor.store.schema import dead_letters, documents, make_engine
    from tests.test_ingest import DaemonProc, _reap_daemons, counts, daemon_env, wait_for  # noqa: F401

    topic = f"mapped-{tmp_path.name[-8:].replace('_', '')}"
    create_topics(broker.bootstrap, [topic, f"{topic}.dlq"], partitions=3)
    cfg = tmp_path / "finsent.toml"
    cfg.write_text(
        '[input]\ntext = "payload.body"\ntitle = "payload.headline"\npublished_at = "payload.ts"\nid_from_key = true\n'
    )
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    sent: dict[str, tuple[str, datetime]] = {}
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for n in range(30):
        when = t0 + timedelta(minutes=n)
        value: dict[str, Any]
        if n % 2:  # Kafka Connect JsonConverter, schemas enabled, time as epoch milliseconds
            value = {
                "schema": {"type": "struct", "fields": [{"field": "body", "type": "string"}], "optional": False},
                "payload": {"body": f"connect item {n}", "headline": f"h{n}", "ts": int(when.timestamp() * 1000)},
            }
        else:  # a custom schema, time as epoch seconds, other fields kept
            value = {"payload": {"body": f"custom item {n}", "ts": int(when.timestamp())}, "desk": "fx"}
        key = f"key-{n}"
        sent[key] = (value["payload"]["body"], when)
        p.send(topic, value=json.dumps(value).encode(), key=key.encode())
    p.send(topic, value=json.dumps({"payload": {"headline": "no body"}}).encode(), key=b"bad-1")
    p.flush(30)
    p.close()

    d = DaemonProc(
        {**daemon_env(sqlite_url, broker.bootstrap, topic, f"g-{topic}"), "FINSENT_CONFIG": str(cfg)},
        tmp_path / "daemon.log",
    )
    d.start()
    wait_for(lambda: counts(sqlite_url) == (len(sent), 1), 90, "mapped records stored", [d])
    assert d.terminate() == 0
    eng = make_engine(sqlite_url)
    with eng.connect() as c:
        rows = {r.id: r for r in c.execute(select(documents))}
        reasons = [r.reason for r in c.execute(select(dead_letters))]
    eng.dispose()
    assert set(rows) == set(sent)
    for key, (text, when) in sent.items():
        assert rows[key].text == text
        assert rows[key].published_at.replace(tzinfo=UTC) == when
    assert rows["key-1"].title == "h1"
    assert rows["key-0"].meta == {"desk": "fx"}
    assert reasons == ["input mapping: path 'payload.body' (text) is missing from the record"]
