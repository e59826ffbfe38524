"""Which channels an alert goes to, and whether it is muted (silenced or inhibited).

Pure: plain values in, plain values out. An alert is described to these functions by its
labels: `rule`, `key_kind`, `key_value`, `topic` (for a topic alert its own name, for an
entity alert the topic of its negative documents, when known) and `severity`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from monitor.config import Route

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
            except re.error as exc:
                raise MatcherError(
                    f"matcher {self.name}{self.op}{self.value!r}: bad regular expression: {exc}"
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


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


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


def route_channels(
    labels: Mapping[str, str | None], routes: Sequence[Route], channel_names: Sequence[str]
) -> list[str]:
    """Channels for an alert, in configuration order, each once.

    No routes: every channel (the contract's default). With routes, an alert that matches
    none goes nowhere; add a route with no match fields as a catch-all. A matching route
    with `continue = false` stops the search.
    """
    if not routes:
        return list(channel_names)
    out: list[str] = []
    for r in routes:
        if not route_matches(r, labels):
            continue
        out.extend(c for c in r.channels if c not in out)
        if not r.continue_:
            break
    return out


def route_matches(route: Route, labels: Mapping[str, str | None]) -> bool:
    if route.key_kind is not None and labels.get("key_kind") != route.key_kind:
        return False
    if route.key_value and labels.get("key_value") not in route.key_value:
        return False
    if route.topic and labels.get("topic") not in route.topic:
        return False
    return not (route.severity and labels.get("severity") not in route.severity)


def excess_negatives(numbers: Mapping[str, Any]) -> float:
    """Negative documents in an alert's window beyond what its (shrunk) baseline share expects."""
    try:
        k = float(numbers["window_negative"])
        n = float(numbers["window_total"])
        base = numbers.get("shrunk_baseline")
        share = float(base if base is not None else numbers["baseline_share"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, k - n * share)


def topics_explained_by_entities(
    firing: Iterable[tuple[Mapping[str, str | None], Mapping[str, Any]]],
    company_documents: Mapping[str, tuple[int, int, Sequence[str]]],
    share: float = 0.5,
) -> dict[str, list[str]]:
    """Firing topic alerts that are echoes of firing company alerts, and those companies.

    `firing` holds (labels, numbers) of the firing alerts. `company_documents[topic]` is
    (documents, negatives, companies): the novel documents in that topic alert's window that
    mention any firing company, each counted once, and the companies that have negatives among
    them, most first. The question is counterfactual: take those documents out of the
    topic's window; if that removes at least `share` of its excess negatives (window
    negatives beyond what the shrunk baseline expects), the topic surge is the companies'
    news told again, and one company's bad day does not also page as a topic-wide surge.
    A company counts in every topic its documents fall under, not only the one its alert
    is filed under.
    """
    out: dict[str, list[str]] = {}
    for labels, numbers in firing:
        name = labels.get("key_value")
        if labels.get("key_kind") != "topic" or not name or name not in company_documents:
            continue
        docs, negatives, companies = company_documents[name]
        before = excess_negatives(numbers)
        if before <= 0 or not companies:
            continue
        try:
            rest = {
                **numbers,
                "window_total": max(0.0, float(numbers["window_total"]) - docs),
                "window_negative": max(0.0, float(numbers["window_negative"]) - negatives),
            }
        except (KeyError, TypeError, ValueError):
            continue
        if before - excess_negatives(rest) >= share * before:
            out[name] = list(companies)
    return out


def mute_reasons(
    labels: Mapping[str, str | None],
    silences: Iterable[Silence],
    now: datetime,
    *,
    firing_topics: Iterable[str] = (),
    inhibit_entity_by_topic: bool = False,
    explained_topics: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Why an alert must not be notified now: `silence:<id>` per active matching silence,
    `inhibited:topic=<name>` for a company alert when its topic's own alert is firing and
    `inhibit_entity_by_topic` is on, `inhibited:entity=<A,B>` for a topic alert found in
    `explained_topics` (see `topics_explained_by_entities`). Empty list: not muted."""
    reasons = [f"silence:{s.id}" for s in silences if s.active(now) and s.matches(labels)]
    if inhibit_entity_by_topic and labels.get("key_kind") == "entity":
        topic = labels.get("topic")
        if topic and topic in set(firing_topics):
            reasons.append(f"inhibited:topic={topic}")
    if explained_topics and labels.get("key_kind") == "topic":
        companies = explained_topics.get(labels.get("key_value") or "")
        if companies:
            reasons.append("inhibited:entity=" + ",".join(companies))
    return reasons
