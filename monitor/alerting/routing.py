"""Which channels an alert goes to: the `[[routes]]` tree of the settings, as a pure stage.

`Router` is built once from the settings by the composition root; `channels(labels)`
answers for one alert. No routes: every channel (the contract's default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: this module reads plain values, not the settings loader
    from monitor.config import Route


@dataclass(frozen=True, slots=True)
class Router:
    routes: tuple[Route, ...]
    channel_names: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: object) -> Router:
        return cls(tuple(settings.routes), tuple(c.name for c in settings.channels))  # type: ignore[attr-defined]

    def channels(self, labels: Mapping[str, str | None]) -> list[str]:
        return route_channels(labels, self.routes, self.channel_names)


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
