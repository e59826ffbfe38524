"""Label matchers and silences, as in Alertmanager: `key_value=AAPL`, `topic=~Earn.*`.

Pure: an alert is described by its labels (`rule`, `key_kind`, `key_value`, `topic`,
`severity`); a silence mutes the alerts whose labels all its matchers match.

Regular expressions are RE2 (`google-re2`), as in Alertmanager (Go's regexp is RE2 too):
matching takes time linear in the label, so no pattern can stall the alert transaction.
What RE2 does not support (backreferences, lookarounds) is refused when the silence is made.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import re2

MatchOp = Literal["=", "!=", "=~", "!~"]
LABEL_NAMES = ("rule", "key_kind", "key_value", "topic", "severity")
_MATCHER_RE = re.compile(r"^\s*([a-z_]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class MatcherError(ValueError):
    """A silence matcher is malformed; the message says what a valid one looks like."""


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    value: str
    op: MatchOp = "="

    def __post_init__(self) -> None:
        if self.name not in LABEL_NAMES:
            raise MatcherError(f"unknown label {self.name!r} in matcher; use one of {', '.join(LABEL_NAMES)}")
        if self.op not in ("=", "!=", "=~", "!~"):
            raise MatcherError(f"unknown operator {self.op!r}; use =, !=, =~ or !~")
        if self.op in ("=~", "!~"):
            try:
                _regex(self.value)
            except re2.error as exc:
                detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
                raise MatcherError(
                    f"matcher {self.name}{self.op}{self.value!r}: not a regular expression RE2 accepts ({detail}); "
                    "backreferences and lookarounds are not supported, write e.g. topic=~'Earn.*|M&A.*'"
                ) from None

    def matches(self, labels: Mapping[str, str | None]) -> bool:
        actual = labels.get(self.name) or ""
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = _regex(self.value).fullmatch(actual) is not None  # anchored, as in Alertmanager
        return hit if self.op == "=~" else not hit

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value, "op": self.op}

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error is raised as a MatcherError, not printed by absl


@lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    return re2.compile(pattern, options=_RE2_OPTIONS)


def parse_matcher(text: str) -> Matcher:
    """`key_value=AAPL`, `topic=~Earn.*`, `severity!=info` -> Matcher."""
    m = _MATCHER_RE.match(text)
    if not m:
        raise MatcherError(f"cannot parse matcher {text!r}; write e.g. key_value=AAPL or topic=~'Earn.*'")
    value = m.group(3)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return Matcher(m.group(1), value, m.group(2))  # type: ignore[arg-type]


def matchers_from_json(data: Iterable[Mapping[str, Any]]) -> tuple[Matcher, ...]:
    return tuple(Matcher(str(d["name"]), str(d["value"]), d.get("op", "=")) for d in data)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str = ""
    comment: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str | None]) -> bool:
        # A silence with no matchers would mute everything; treat it as matching nothing.
        return bool(self.matchers) and all(m.matches(labels) for m in self.matchers)
