"""The message format (CONTRACT.md) as pure code: bytes in, a Document or a Rejection out.

No I/O here. `now`-like references are passed in (the Kafka record timestamp), so the
same bytes always give the same answer, which is what makes replays idempotent.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.ingest.mapping import FieldMap, Unmappable, apply

KNOWN_FIELDS = ("id", "text", "published_at", "source", "url", "title", "lang", "kind", "tickers")
KINDS = ("news", "comment")
MAX_DEPTH = 32
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-^=:]{0,19}$")
_ID = re.compile(r"^[\x21-\x7e]{1,64}$")


# With no `[input]` settings: the contract's own names, Kafka Connect envelopes unwrapped.
_DEFAULT_MAP = FieldMap()


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    text: str
    published_at: datetime
    source: str | None = None
    url: str | None = None
    title: str | None = None
    lang: str | None = None
    kind: str | None = None
    tickers: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    kafka_topic: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    raw: bytes
    topic: str
    partition: int
    offset: int


class _Invalid(Exception):
    pass


def stable_id(source: str | None, url: str | None, text: str, published_at: datetime) -> str:
    """The id of a message that has none: the same story from the same source at the same time."""
    basis = "\x1f".join([source or "", url or text, published_at.astimezone(UTC).isoformat()])
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def parse_time(value: Any, field_name: str = "published_at") -> datetime:
    """RFC 3339 (or ISO 8601) to an aware UTC datetime; times without a zone are UTC."""
    if isinstance(value, bool) or value is None:
        raise _Invalid(f"{field_name} must be an RFC 3339 time string, got {type(value).__name__}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _Invalid(f"{field_name} is not a finite number")
        # Epoch seconds, or milliseconds when the number is too large to be seconds.
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise _Invalid(f"{field_name} {value!r} is out of range") from None
    if not isinstance(value, str):
        raise _Invalid(f"{field_name} must be an RFC 3339 time string, got {type(value).__name__}")
    s = value.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise _Invalid(f"{field_name} {value[:64]!r} is not an RFC 3339 time (e.g. 2024-05-01T13:45:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        raise _Invalid(f"{field_name} {value[:64]!r} is out of range") from None


def _opt_str(obj: dict[str, Any], name: str, limit: int = 4096) -> str | None:
    v = obj.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _Invalid(f"{name} must be a string, got {type(v).__name__}")
    v = v.replace("\x00", "").strip()
    if len(v) > limit:
        raise _Invalid(f"{name} is {len(v)} characters; the limit is {limit}")
    return v or None


def _tickers(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        v = re.split(r"[;,\s]+", v)
    if not isinstance(v, list):
        raise _Invalid(f"tickers must be a list of symbols, got {type(v).__name__}")
    out: list[str] = []
    for t in v:
        if not isinstance(t, str):
            raise _Invalid(f"tickers must hold strings, got {type(t).__name__}")
        sym = t.strip().lstrip("$").upper()
        if not sym:
            continue
        if not _SYMBOL.match(sym):
            raise _Invalid(f"ticker {t[:24]!r} is not a symbol (letters, digits, . - ^ = :, at most 20)")
        if sym not in out:
            out.append(sym)
    return tuple(out[:50])


def _depth(v: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth, iteratively, so a JSON bomb cannot exhaust the stack here."""
    stack = [(v, 1)]
    deepest = 0
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((x, d + 1) for x in node.values())
        elif isinstance(node, list):
            stack.extend((x, d + 1) for x in node)
    return deepest


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _sanitize(v: Any) -> Any:
    """Strings every database and UTF-8 encoder accepts.

    JSON may escape a lone UTF-16 surrogate (a truncated emoji, "\\ud83d") or a NUL;
    neither can be stored or encoded as UTF-8. Lone surrogates become U+FFFD and NULs are
    dropped, so the post is kept and counted (the original bytes stay in Kafka).
    Recursion is bounded: callers check the nesting depth first.
    """
    if isinstance(v, str):
        return _UNSTORABLE.sub(lambda m: "" if m.group(0) == "\x00" else "\ufffd", v) if _UNSTORABLE.search(v) else v
    if isinstance(v, dict):
        return {_sanitize(k): _sanitize(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_sanitize(x) for x in v]
    return v


def _reject_constant(name: str) -> Any:
    raise _Invalid(f"JSON contains {name}, which is not valid JSON")


def _clean_text(text: str) -> str:
    # NUL cannot be stored by PostgreSQL and means nothing in text; other control and
    # bidi characters are kept (the dashboard escapes them) so nothing is silently lost.
    return text.replace("\x00", "").strip()


def to_document(
    obj: dict[str, Any],
    *,
    record_time: datetime,
    max_future_skew: timedelta,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> Document:
    """Validate a decoded object; raises `_Invalid` with the reason."""
    if _depth(obj) > MAX_DEPTH:
        raise _Invalid(f"JSON is nested deeper than {MAX_DEPTH} levels")
    obj = _sanitize(obj)
    if "text" not in obj:
        raise _Invalid("missing required field 'text'")
    text = obj["text"]
    if not isinstance(text, str):
        raise _Invalid(f"text must be a string, got {type(text).__name__}")
    text = _clean_text(text)
    if not text:
        raise _Invalid("text is empty")
    published = parse_time(obj["published_at"]) if obj.get("published_at") not in (None, "") else record_time
    if published > record_time + max_future_skew:
        raise _Invalid(
            f"published_at {published.isoformat()} is more than {max_future_skew} after the record's time "
            f"{record_time.isoformat()} (setting max_future_skew_seconds)"
        )
    if published.year < 1990:
        raise _Invalid(f"published_at {published.isoformat()} is before 1990")
    kind = _opt_str(obj, "kind", 16)
    if kind is not None:
        kind = kind.lower()
        if kind not in KINDS:
            raise _Invalid(f"kind must be one of {', '.join(KINDS)}, got {kind[:20]!r}")
    source = _opt_str(obj, "source", 200)
    url = _opt_str(obj, "url")
    doc_id: Any = obj.get("id")
    if doc_id is None or doc_id == "":
        doc_id = stable_id(source, url, text, published)
    else:
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
            raise _Invalid(f"id must be a string or integer, got {type(doc_id).__name__}")
        doc_id = str(doc_id).strip()
        if not _ID.match(doc_id):
            # Ids are keys across systems; long or odd ones are hashed rather than rejected.
            doc_id = "h:" + hashlib.sha256(doc_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    meta = {k: v for k, v in obj.items() if k not in KNOWN_FIELDS}
    return Document(
        id=doc_id,
        text=text,
        published_at=published,
        source=source,
        url=url,
        title=_opt_str(obj, "title"),
        lang=_opt_str(obj, "lang", 16),
        kind=kind,
        tickers=_tickers(obj.get("tickers")),
        meta=meta,
        kafka_topic=topic,
        kafka_partition=partition,
        kafka_offset=offset,
    )


def decode(
    raw: bytes | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    record_time: datetime,
    max_bytes: int = 2 * 1024 * 1024,
    max_future_skew: timedelta = timedelta(days=1),
    mapping: FieldMap | None = None,
    key: bytes | None = None,
) -> Document | Rejection:
    """Decode one Kafka record value. Never raises for bad input.

    `mapping` (the `[input]` settings) maps other field names onto the contract and
    unwraps Kafka Connect envelopes; `key` is the record key, an id source if configured.
    """
    raw_b = raw if raw is not None else b""

    def reject(reason: str) -> Rejection:
        return Rejection(reason=reason, raw=raw_b, topic=topic, partition=partition, offset=offset)

    if raw is None or not raw:
        return reject("empty message (no value)")
    if len(raw) > max_bytes:
        return reject(f"message is {len(raw):,} bytes; the limit is {max_bytes:,} (setting max_message_bytes)")
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject(f"value is not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})")
    try:
        obj = json.loads(s, parse_constant=_reject_constant)
    except _Invalid as exc:
        return reject(str(exc))
    except RecursionError:
        return reject(f"JSON is nested deeper than {MAX_DEPTH} levels")
    except json.JSONDecodeError as exc:
        return reject(f"value is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        return reject(f"value is not usable JSON: {str(exc)[:200]}")
    if not isinstance(obj, dict):
        return reject(f"value must be a JSON object, got {type(obj).__name__ if obj is not None else 'null'}")
    if _depth(obj) > MAX_DEPTH:
        return reject(f"JSON is nested deeper than {MAX_DEPTH} levels")
    fmap = mapping if mapping is not None else _DEFAULT_MAP
    try:
        obj = apply(obj, fmap, key)
    except Unmappable as exc:
        return reject(str(exc))
    try:
        return to_document(
            obj,
            record_time=record_time,
            max_future_skew=max_future_skew,
            topic=topic,
            partition=partition,
            offset=offset,
        )
    except _Invalid as exc:
        return reject(str(exc))
