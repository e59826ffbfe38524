"""Commands for the on-call: alerts (list, ack), channels (list, test), silences."""

from __future__ import annotations

import os
from typing import Any

import click

from monitor.app.options import Failure, emit, with_settings
from monitor.cli.group import main
from monitor.config import Settings


# --------------------------------------------------------------------------- alerts
@main.group("alerts")
def alerts_grp() -> None:
    """Alerts raised by the detector."""


@alerts_grp.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--state", type=click.Choice(["pending", "firing", "resolved"]), default=None)
@click.option("--limit", type=int, default=100, show_default=True)
@with_settings()
def alerts_list_cmd(settings: Settings, as_json: bool, state: str | None, limit: int) -> None:
    """Alerts: id, key, state, started_at, resolved_at, summary, counts and baseline."""
    from monitor.alerting.queries import list_alerts

    engine = _current_engine(settings)
    try:
        rows = list_alerts(engine, state=state, limit=limit)
    finally:
        engine.dispose()

    def human(items: list[dict[str, Any]]) -> None:
        if not items:
            click.echo("no alerts")
        for a in items:
            key = a.get("key") or {}
            click.echo(
                f"{a.get('id')}  {a.get('state'):<8} {key.get('kind')}={key.get('value')}  "
                f"started {a.get('started_at')}  resolved {a.get('resolved_at') or '-'}  {a.get('summary') or ''}"
            )

    emit(rows, as_json, human)


@alerts_grp.command("ack")
@click.argument("alert_id")
@click.option("--by", "who", default=lambda: os.environ.get("USER", "cli"), help="Who acknowledges.")
@with_settings()
def alerts_ack_cmd(settings: Settings, alert_id: str, who: str) -> None:
    """Acknowledge an alert: it stops repeating; its resolved message still goes out."""
    from datetime import UTC, datetime

    from monitor.alerting.queries import acknowledge

    engine = _current_engine(settings)
    try:
        if not acknowledge(engine, alert_id, who, datetime.now(UTC)):
            raise Failure(f"no alert with id {alert_id!r}; see `finsent alerts list`")
    finally:
        engine.dispose()
    click.echo(f"acknowledged {alert_id}")


def _current_engine(settings: Settings) -> Any:
    """An engine on a database whose schema is current; only `migrate` and the daemon migrate."""
    from monitor.store.migrate import require_current
    from monitor.store.schema import make_engine

    engine = make_engine(settings.database_url)
    try:
        require_current(settings.database_url, engine)
    except Exception:
        engine.dispose()
        raise
    return engine


# --------------------------------------------------------------------------- channels
@main.group("channels")
def channels_grp() -> None:
    """Chat channels from the [[channels]] settings."""


@channels_grp.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_settings()
def channels_list_cmd(settings: Settings, as_json: bool) -> None:
    """Show the configured channels, secrets masked."""
    from monitor.notify.delivery import list_channels

    rows = list_channels(settings)

    def human(items: list[dict[str, Any]]) -> None:
        if not items:
            click.echo("no channels configured ([[channels]] in the TOML file)")
        for c in items:
            click.echo("  ".join(f"{k}={v}" for k, v in c.items()))

    emit(rows, as_json, human)


@channels_grp.command("test")
@click.argument("name")
@with_settings()
def channels_test_cmd(settings: Settings, name: str) -> None:
    """Send a test message to one channel."""
    from monitor.notify.delivery import send_test

    try:
        res = send_test(settings, name)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    if not res.ok:
        raise Failure(f"channel {name!r}: delivery failed ({res.status_code or 'no response'}): {res.error}")
    click.echo(f"channel {name!r}: test message delivered ({res.status_code})")


# --------------------------------------------------------------------------- silence
@main.group("silence")
def silence_grp() -> None:
    """Silences: mute matching alerts' notifications for a while."""


@silence_grp.command("add")
@click.argument("matchers", nargs=-1, required=True)
@click.option("--duration", default="2h", show_default=True, help="How long, e.g. 30m, 2h, 1d.")
@click.option("--author", default=lambda: os.environ.get("USER", "cli"), help="Who creates it.")
@click.option("--comment", default="", help="Why.")
@with_settings()
def silence_add_cmd(settings: Settings, matchers: tuple[str, ...], duration: str, author: str, comment: str) -> None:
    """Add a silence. MATCHERS like key_value=AAPL, key_kind=entity, topic=~Earn.* (=, !=, =~, !~)."""
    from datetime import UTC, datetime

    from monitor.alerting.silences import add_silence

    engine = _current_engine(settings)
    try:
        sil = add_silence(
            engine,
            list(matchers),
            now=datetime.now(UTC),
            duration=_duration(duration),
            created_by=author,
            comment=comment,
        )
    except ValueError as exc:
        raise Failure(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"silence {sil.id} until {sil.ends_at.isoformat()}")


@silence_grp.command("list")
@click.option("--all", "include_expired", is_flag=True, help="Include expired silences.")
@click.option("--json", "as_json", is_flag=True)
@with_settings()
def silence_list_cmd(settings: Settings, include_expired: bool, as_json: bool) -> None:
    """List active (or all) silences."""
    import dataclasses
    from datetime import UTC, datetime

    from monitor.alerting.silences import list_silences

    engine = _current_engine(settings)
    try:
        rows = [
            dataclasses.asdict(s) if dataclasses.is_dataclass(s) else dict(s)  # type: ignore[arg-type]
            for s in list_silences(engine, datetime.now(UTC), include_expired=include_expired)
        ]
    finally:
        engine.dispose()

    def human(items: list[dict[str, Any]]) -> None:
        if not items:
            click.echo("no silences")
        for r in items:
            click.echo(
                f"{r.get('id')}  {r.get('matchers')}  {r.get('starts_at')} -> {r.get('ends_at')}  "
                f"by {r.get('created_by')}: {r.get('comment')}"
            )

    emit(rows, as_json, human)


@silence_grp.command("expire")
@click.argument("silence_id")
@with_settings()
def silence_expire_cmd(settings: Settings, silence_id: str) -> None:
    """End a silence now."""
    from datetime import UTC, datetime

    from monitor.alerting.silences import expire_silence

    engine = _current_engine(settings)
    try:
        if not expire_silence(engine, silence_id, datetime.now(UTC)):
            raise Failure(f"no active silence with id {silence_id!r}; see `finsent silence list`")
    finally:
        engine.dispose()
    click.echo(f"expired {silence_id}")


def _duration(text: str) -> Any:
    import re
    from datetime import timedelta

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not m:
        raise Failure(f"duration {text!r} is not like 30m, 2h or 1d")
    n, unit = float(m.group(1)), m.group(2)
    return timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit])
