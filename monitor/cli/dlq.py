"""`finsent dlq list` and `finsent dlq replay`: inspect dead letters and re-drive them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from monitor.app.options import Failure, emit, with_settings
from monitor.cli.group import main
from monitor.config import Settings


def _filters(fn: Any) -> Any:
    fn = click.option("--since", default=None, help="Only dead letters received at or after this RFC 3339 time.")(fn)
    fn = click.option("--topic", default=None, help="Only dead letters from this topic.")(fn)
    fn = click.option("--reason", default=None, help="Only dead letters whose reason contains this text.")(fn)
    return fn


def _filter(reason: str | None, topic: str | None, since: str | None, include_replayed: bool) -> Any:
    from monitor.store.dead_letters import Filter

    when = None
    if since:
        try:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise Failure(f"--since {since!r} is not an RFC 3339 time, e.g. 2026-12-01T09:00:00Z") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return Filter(reason=reason, topic=topic, since=when, include_replayed=include_replayed)


@main.group("dlq")
def dlq_grp() -> None:
    """Dead letters: records that could not be stored, with the reason."""


@dlq_grp.command("list")
@_filters
@click.option("--all", "include_replayed", is_flag=True, help="Include dead letters already re-driven.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@with_settings()
def dlq_list_cmd(
    settings: Settings,
    reason: str | None,
    topic: str | None,
    since: str | None,
    include_replayed: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List dead letters (oldest first): coordinates, reason, whether re-driven."""
    from monitor.store.dead_letters import listing
    from monitor.store.migrate import require_current
    from monitor.store.schema import make_engine

    f = _filter(reason, topic, since, include_replayed)
    engine = make_engine(settings.database_url)
    try:
        require_current(settings.database_url, engine)
        with engine.connect() as conn:
            rows = listing(conn, f, limit)
    finally:
        engine.dispose()
    for r in rows:
        for k in ("received_at", "record_time", "replayed_at"):
            r[k] = r[k].isoformat() if r[k] is not None else None

    def human(items: list[dict[str, Any]]) -> None:
        if not items:
            click.echo("no dead letters match")
        for r in items:
            state = f"re-driven {r['replayed_at']}" if r["replayed_at"] else "pending"
            click.echo(f"{r['id']}  {r['topic']}[{r['partition']}]@{r['offset']}  {r['received_at']}  {state}")
            click.echo(f"    {r['reason'][:200]}")

    emit(rows, as_json, human)


@dlq_grp.command("replay")
@_filters
@click.option("--model", "model", default=None, help="Model directory, or 'test-double' (FINSENT_MODEL).")
@click.option("--json", "as_json", is_flag=True)
@with_settings(model="model")
def dlq_replay_cmd(settings: Settings, reason: str | None, topic: str | None, since: str | None, as_json: bool) -> None:
    """Re-drive matching dead letters through decode -> classify -> store, idempotently."""
    from monitor.app.batch import ClassifierUnavailable
    from monitor.app.dlq import replay
    from monitor.app.wiring import build, build_classifier
    from monitor.store.migrate import require_current

    f = _filter(reason, topic, since, False)
    parts = build(settings)
    try:
        require_current(settings.database_url, parts.engine)
        try:
            stats = replay(parts.processor(build_classifier(settings)), f, datetime.now(UTC))
        except ClassifierUnavailable as exc:
            raise Failure(f"the classifier does not work, nothing was re-driven past this point: {exc}") from None
    finally:
        parts.engine.dispose()

    def human(d: dict[str, int]) -> None:
        click.echo(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items()))

    emit(stats.as_dict(), as_json, human)
