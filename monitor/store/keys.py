"""The keys of the `minute_counts` table, shared by the store that writes them and the
detector that reads them (pure: no database code, so the detector's pure modules can
import it).

A row is (key_kind, key_value): `("topic", name)`, `("entity", symbol)`, or the one
feed-wide row `FEED` that every document bumps (the detector's parent baseline, the
dashboard's totals).
"""

from __future__ import annotations

from collections.abc import Iterable

RowKey = tuple[str, str]
FEED: RowKey = ("all", "*")


def row_keys(topic: str | None, entities: Iterable[str]) -> list[RowKey]:
    """The rows one document counts in: the feed, its topic, each of its companies once."""
    keys = [FEED]
    if topic:
        keys.append(("topic", topic))
    keys.extend(("entity", e) for e in dict.fromkeys(entities))
    return keys
