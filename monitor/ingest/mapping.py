"""Topics as they are: a decoded record's fields mapped onto the message contract.

Real topics rarely use finsent's field names. The `[input]` settings name, for each
contract field, a dotted path into the record (`text = "payload.body"`,
`published_at = "payload.ts"`); a Kafka Connect JSON envelope (`{"schema": ...,
"payload": ...}`) is unwrapped first; the record key may supply the id. Pure code: plain
values in, a contract-shaped dict out, or `Unmappable` naming the path that was missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.config import InputSettings

# The contract's fields, in the order they are mapped.
FIELDS = ("id", "text", "title", "published_at", "source", "url", "lang", "kind", "tickers")
_MISSING = object()


class Unmappable(ValueError):
    """The record lacks a field the mapping requires; the message names the path."""


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Where each contract field is found. A field without a path is read from the
    top-level key of its own name, as in the plain contract."""

    paths: Mapping[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ("text",)
    id_from_key: bool = False
    unwrap_envelope: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.paths) - set(FIELDS)) + sorted(set(self.required) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown contract field(s) {unknown}; mappable: {', '.join(FIELDS)}")

    @classmethod
    def from_input(cls, settings: InputSettings) -> FieldMap:
        """The `[input]` settings as a mapping."""
        return cls(
            paths=settings.paths(),
            required=settings.required,
            id_from_key=settings.id_from_key,
            unwrap_envelope=settings.unwrap_envelope,
        )

    def path(self, name: str) -> str:
        return self.paths.get(name, name)


def is_connect_envelope(obj: Any) -> bool:
    """A Kafka Connect JsonConverter record with schemas enabled: exactly `schema` and
    `payload`, the schema an object (or null)."""
    return (
        isinstance(obj, dict)
        and set(obj) == {"schema", "payload"}
        and (obj["schema"] is None or isinstance(obj["schema"], dict))
    )


def unwrap_envelope(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The envelope's payload as an object, or None when the payload is not one.

    A string payload (a Connect `string` schema carrying JSON text) is parsed; a string
    that is not a JSON object is taken as the text itself.
    """
    payload = obj["payload"]
    if isinstance(payload, dict):
        return payload
    if isinstance(payload, str):
        try:
            inner = json.loads(payload)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
            return {"text": payload}
        return inner if isinstance(inner, dict) else {"text": payload}
    return None


def lookup(obj: Any, path: str) -> Any:
    """The value at a dotted path (`a.b.0.c`: list items by index), or `_MISSING`."""
    node = obj
    for part in path.split("."):
        if isinstance(node, dict):
            if part not in node:
                return _MISSING
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            i = int(part)
            if not -len(node) <= i < len(node):
                return _MISSING
            node = node[i]
        else:
            return _MISSING
    return node


def _epoch_text(value: Any) -> Any:
    """Epoch seconds or milliseconds sent as a digit string become a number."""
    if isinstance(value, str):
        s = value.strip()
        if s.isdigit() and len(s) >= 9:
            return int(s)
    return value


def apply(obj: dict[str, Any], fmap: FieldMap, key: bytes | None = None) -> dict[str, Any]:
    """A record object as the contract's message: mapped fields, then the rest as metadata.

    Raises `Unmappable` when a required field's path is missing or the envelope carries
    no object.
    """
    envelope: dict[str, Any] | None = None
    if fmap.unwrap_envelope and is_connect_envelope(obj):
        envelope = obj
        inner = unwrap_envelope(obj)
        if inner is None:
            raise Unmappable(
                f"Kafka Connect envelope whose payload is {type(obj['payload']).__name__}, not an object or text"
            )
        obj = inner
    if not fmap.paths and not fmap.id_from_key:
        return obj
    out: dict[str, Any] = {}
    roots: set[str] = set()
    for name in FIELDS:
        path = fmap.path(name)
        value = lookup(obj, path)
        if value is _MISSING and envelope is not None:
            value = lookup(envelope, path)  # a path written against the envelope ("payload.body")
        if value is _MISSING or value is None:
            if name in fmap.required and not (name == "id" and fmap.id_from_key and key):
                shown = f"{path!r} ({name})" if path != name else f"{path!r}"
                raise Unmappable(f"input mapping: path {shown} is missing from the record")
            continue
        out[name] = _epoch_text(value) if name == "published_at" else value
        roots.add(path.split(".", 1)[0])
    if fmap.id_from_key and key:
        out["id"] = key.decode("utf-8", "replace")
    for k, v in obj.items():
        if k not in roots and k not in out and k not in FIELDS:
            out[k] = v
    return out
