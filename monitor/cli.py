"""The `finsent` command. Every sub-command takes `--config PATH` and `--db URL` after its name.

Settings are loaded once per invocation here (flags > env > TOML > defaults) and handed
down; logging is configured here and nowhere else. Expected failures exit non-zero with
one line that says what is wrong and how to fix it; secrets are never printed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from monitor.config import ConfigError, Settings, load_settings

log = logging.getLogger("finsent")
F = TypeVar("F", bound=Callable[..., Any])


class Failure(click.ClickException):
    """An expected error: printed as one line, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"finsent: {self.format_message()}", err=True)


def _setup_logging(level: str) -> None:
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
        @click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML settings file (or FINSENT_CONFIG).")
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
            _setup_logging(settings.log_level)
            try:
                return fn(settings, *args, **kwargs)
            except (Failure, click.exceptions.Exit, click.Abort):
                raise
            except KeyboardInterrupt:
                raise SystemExit(130) from None
            except Exception as exc:
                _explain(exc, settings)
                raise

        return wrapper  # type: ignore[return-value]

    return deco


def _explain(exc: Exception, settings: Settings) -> None:
    from monitor.redact import redact

    from sqlalchemy.exc import OperationalError

    from monitor.db import redact_url

    if isinstance(exc, OperationalError):
        raise Failure(f"database {redact_url(settings.database_url)} is not reachable: {redact(str(exc.orig)).splitlines()[0]}") from None
    from monitor.broker import BrokerError
    from monitor.inputs import InputError

    if isinstance(exc, BrokerError | InputError | FileNotFoundError):
        raise Failure(redact(str(exc))) from None
    try:
        from kafka.errors import NoBrokersAvailable
    except ImportError:  # pragma: no cover
        return
    if isinstance(exc, NoBrokersAvailable):
        raise Failure(f"no Kafka broker at {settings.kafka_bootstrap} (FINSENT_KAFKA_BOOTSTRAP); start one with `finsent broker`") from None


def _emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    else:
        human(data)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="finsent")
def main() -> None:
    """finsent: a streaming financial sentiment monitor (Kafka -> topic & sentiment -> surge alerts)."""


# --------------------------------------------------------------------------- config
@main.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML-like text.")
@with_settings()
def config_cmd(settings: Settings, as_json: bool) -> None:
    """Print the effective configuration, secrets masked."""
    data = settings.redacted()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for k, v in data.items():
        click.echo(f"{k} = {json.dumps(v)}")


@main.command("migrate")
@with_settings()
def migrate_cmd(settings: Settings) -> None:
    """Bring the database schema up to date."""
    from monitor.db import redact_url
    from monitor.migrate import upgrade

    rev = upgrade(settings.database_url)
    click.echo(f"database {redact_url(settings.database_url)} at revision {rev}")


# --------------------------------------------------------------------------- broker
@main.command("broker")
@click.option("--port", type=int, default=None, help="Port to listen on (default: the port of FINSENT_KAFKA_BOOTSTRAP, 9092).")
@click.option("--partitions", type=int, default=3, show_default=True, help="Partitions of the topics it creates.")
@with_settings()
def broker_cmd(settings: Settings, port: int | None, partitions: int) -> None:
    """Run the embedded Kafka-compatible broker (tansu) in the foreground."""
    import signal
    import threading

    from monitor.broker import EmbeddedBroker

    if port is None:
        port = int(settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[-1])
    broker = EmbeddedBroker(port=port, topics=settings.kafka_topics, partitions=partitions)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with broker:
        click.echo(f"embedded broker on {broker.bootstrap}; topics {', '.join(broker.topics)} ({partitions} partitions). Ctrl-C stops it.")
        try:
            while not stop.is_set() and broker.proc is not None and broker.proc.poll() is None:
                stop.wait(0.5)
        except KeyboardInterrupt:
            pass
    if broker.proc is not None and broker.proc.returncode not in (0, None, -15):
        raise Failure(f"the broker exited with code {broker.proc.returncode}")


# --------------------------------------------------------------------------- run
@main.command("run")
@click.option("--model", "model", default=None, help="Model directory, or 'test-double' (FINSENT_MODEL).")
@with_settings(model="model")
def run_cmd(settings: Settings) -> None:
    """The daemon: consume, classify, store, detect, alert, notify. Stops cleanly on SIGTERM/SIGINT."""
    from monitor.daemon import Daemon

    classifier = build_classifier(settings)
    daemon = Daemon(settings, classifier)
    daemon.install_signal_handlers()
    sys.exit(daemon.run())


def build_classifier(settings: Settings) -> Any:
    from monitor.classify import KeywordTestDouble

    if settings.model == "test-double":
        log.warning("using the keyword test double instead of the model (FINSENT_MODEL=test-double)")
        return KeywordTestDouble()
    from monitor.engine import build_engine

    return build_engine(settings)


# --------------------------------------------------------------------------- produce
def column_options(fn: F) -> F:
    for name, default in reversed(
        [("text", "text"), ("time", "published_at"), ("entity", "entity"), ("source", "source"), ("id", "id")]
    ):
        fn = click.option(f"--{name}-column", f"{name}_column", default=default, show_default=True,
                          help=f"Input column holding the {name}.")(fn)
    return fn


def _columns(kw: dict[str, Any]) -> Any:
    from monitor.inputs import Columns

    return Columns(
        text=kw.pop("text_column"), time=kw.pop("time_column"), entity=kw.pop("entity_column"),
        source=kw.pop("source_column"), id=kw.pop("id_column"),
    )


@main.command("produce")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--topic", default=None, help="Topic to send to (default: the first of FINSENT_KAFKA_TOPICS).")
@click.option("--rate", type=float, default=None, help="Messages per second (default: as fast as possible).")
@column_options
@with_settings()
def produce_cmd(settings: Settings, file: str, topic: str | None, rate: float | None, **kw: Any) -> None:
    """Send a CSV or JSONL file to Kafka, one message per row, keeping timestamps."""
    from monitor.produce import produce_file

    cols = _columns(kw)
    stats = produce_file(settings, file, topic or settings.kafka_topics[0], cols, rate=rate)
    click.echo(json.dumps(stats))


# --------------------------------------------------------------------------- stats
@main.command("stats")
@click.option("--json", "as_json", is_flag=True)
@with_settings()
def stats_cmd(settings: Settings, as_json: bool) -> None:
    """Counts: documents, dead letters, alerts, notifications by status."""
    from monitor.stats import collect

    data = collect(settings)

    def human(d: dict[str, Any]) -> None:
        for k, v in d.items():
            click.echo(f"{k}: {v}")

    _emit(data, as_json, human)


# --------------------------------------------------------------------------- demo
@main.command("demo")
@click.option("--port", type=int, default=None, help="Broker port (default: a free one).")
@click.option("--minutes", type=int, default=24 * 60, show_default=True, help="Simulated minutes in the sample feed.")
@click.option("--rate", type=float, default=400.0, show_default=True, help="Messages per second sent to the broker.")
@click.option("--no-dashboard", is_flag=True, help="Do not start the dashboard.")
@with_settings()
def demo_cmd(settings: Settings, port: int | None, minutes: int, rate: float, no_dashboard: bool) -> None:
    """Everything on embedded defaults: broker, SQLite, model, a sample feed, the daemon, the dashboard."""
    from monitor.demo import run_demo

    sys.exit(run_demo(settings, port=port, minutes=minutes, rate=rate, dashboard=not no_dashboard))


def entry() -> None:  # pragma: no cover
    main()


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
