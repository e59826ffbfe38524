"""Whether an alert is muted now: silences, and inhibition between company and topic alerts.

Pure: plain values in, plain values out. The document counts that `topics_explained_by_entities`
weighs are fetched by the repository before the stages run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from monitor.alerting.matchers import Silence


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
