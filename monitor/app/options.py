"""What every `finsent` command shares: settings loading, logging, one-line failures, and
the click pieces (a lazily loaded group, column options).

Settings are loaded once per invocation (flags > env > TOML > defaults) and handed
down; logging is configured here and nowhere else. Expected failures exit non-zero with
one line that says what is wrong and how to fix it; secrets are never printed.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from monitor.config import ConfigError, Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


class LazyGroup(click.Group):
    """A group whose heavy sub-commands (training, benchmarks) are imported only when used.

    `lazy` maps a name to "module:attribute" of a click command, or to ("module:attribute",
    "short help"): with the short help, `--help` on the group lists the command without
    importing it (so `finsent --help` does not load torch)."""

    def __init__(self, *args: Any, lazy: Mapping[str, str | tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = {k: (v, "") if isinstance(v, str) else v for k, v in (lazy or {}).items()}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            target = self.lazy[cmd_name][0]
            module, _, attr = target.partition(":")
            cmd = getattr(importlib.import_module(module), attr)
            if not isinstance(cmd, click.Command):  # pragma: no cover - a wiring mistake
                raise TypeError(f"{target} is not a click command")
            return cmd
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)  # as click's own listing
        rows: list[tuple[str, str]] = []
        for name in names:
            static = self.lazy[name][1] if name in self.lazy else ""
            if static:
                rows.append((name, click.Command(name, help=static).get_short_help_str(limit)))
                continue
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def ignores_config_and_db(fn: F) -> F:
    """Accept `--config` and `--db` (every command does) on a job that reads only files."""
    fn = click.option("--config", "_config", type=click.Path(dir_okay=False), hidden=True, expose_value=False)(fn)
    return click.option("--db", "_db", hidden=True, expose_value=False)(fn)  # type: ignore[no-any-return]


class Failure(click.ClickException):
    """An expected error: printed as one line, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"finsent: {self.format_message()}", err=True)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("kafka", "apscheduler", "httpx", "httpcore", "tansu", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    from monitor.redact import REDACTING_FILTER, install_log_redaction

    install_log_redaction()
    for handler in logging.getLogger().handlers:  # covers every logger that propagates to root
        if REDACTING_FILTER not in handler.filters:
            handler.addFilter(REDACTING_FILTER)


def with_settings(**flag_map: str) -> Callable[[F], F]:
    """Add --config/--db and load settings; `flag_map` maps extra CLI params to setting names."""

    def deco(fn: F) -> F:
        @click.option(
            "--config", "config_path", type=click.Path(dir_okay=False), help="TOML settings file (or FINSENT_CONFIG)."
        )
        @click.option("--db", "db_url", help="Database URL (or FINSENT_DATABASE_URL), e.g. sqlite:///finsent.db.")
        @functools.wraps(fn)
        def wrapper(*args: Any, config_path: str | None, db_url: str | None, **kwargs: Any) -> Any:
            overrides: dict[str, Any] = {"database_url": db_url}
            for param, setting in flag_map.items():
                overrides[setting] = kwargs.pop(param, None)
            try:
                settings = load_settings(config_path, **overrides)
            except ConfigError as exc:
                raise Failure(str(exc)) from None
            setup_logging(settings.log_level)
            try:
                return fn(settings, *args, **kwargs)
            except (Failure, click.exceptions.Exit, click.Abort):
                raise
            except KeyboardInterrupt:
                raise SystemExit(130) from None
            except Exception as exc:
                explain(exc, settings)
                raise

        return wrapper  # type: ignore[return-value]

    return deco


def unreachable_database(url: str, exc: Exception, hint: str = "") -> Failure:
    """The one-line error for a database that cannot be reached (password redacted): the
    first line of the driver's own reason, then `hint`."""
    from monitor.redact import redact, redact_url

    reason = redact(str(getattr(exc, "orig", None) or exc)).strip().splitlines()[0]
    return Failure(f"database {redact_url(url)} is not reachable: {reason}" + (f" ({hint})" if hint else ""))


def explain(exc: Exception, settings: Settings) -> None:
    from sqlalchemy.exc import OperationalError

    from monitor.redact import redact

    if isinstance(exc, OperationalError):
        raise unreachable_database(settings.database_url, exc) from None
    from monitor.app.broker import BrokerError
    from monitor.ingest.inputs import InputError
    from monitor.store.migrate import SchemaNotCurrent

    if isinstance(exc, BrokerError | InputError | FileNotFoundError | SchemaNotCurrent):
        raise Failure(redact(str(exc))) from None
    try:
        from kafka.errors import NoBrokersAvailable
    except ImportError:  # pragma: no cover
        return
    if isinstance(exc, NoBrokersAvailable):
        raise Failure(
            f"no Kafka broker at {settings.kafka_bootstrap} (FINSENT_KAFKA_BOOTSTRAP); start one with `finsent broker`"
        ) from None


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    else:
        human(data)


def column_options(fn: F) -> F:
    """The input-file column options of `produce` and `replay` (see `columns_from`)."""
    for name, default in reversed(
        [("text", "text"), ("time", "published_at"), ("entity", "entity"), ("source", "source"), ("id", "id")]
    ):
        fn = click.option(
            f"--{name}-column",
            f"{name}_column",
            default=default,
            show_default=True,
            help=f"Input column holding the {name}.",
        )(fn)
    return fn


def columns_from(kw: dict[str, Any]) -> Any:
    """Pop the column options out of a command's keyword arguments, as `Columns`."""
    from monitor.ingest.inputs import Columns

    return Columns(
        text=kw.pop("text_column"),
        time=kw.pop("time_column"),
        entity=kw.pop("entity_column"),
        source=kw.pop("source_column"),
        id=kw.pop("id_column"),
    )
