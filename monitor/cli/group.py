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
from typing import Any, TypeVar

import click

from monitor.config import ConfigError, Settings, load_settings

# Before torch is imported anywhere: spinning OpenMP threads cost 2-5x on busy small machines.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
    from sqlalchemy.exc import OperationalError

    from monitor.store.schema import redact_url
    from monitor.redact import redact

    if isinstance(exc, OperationalError):
        raise Failure(
            f"database {redact_url(settings.database_url)} is not reachable: {redact(str(exc.orig)).splitlines()[0]}"
        ) from None
    from monitor.app.broker import BrokerError
    from monitor.ingest.inputs import InputError

    if isinstance(exc, BrokerError | InputError | FileNotFoundError):
        raise Failure(redact(str(exc))) from None
    try:
        from kafka.errors import NoBrokersAvailable
    except ImportError:  # pragma: no cover
        return
    if isinstance(exc, NoBrokersAvailable):
        raise Failure(
            f"no Kafka broker at {settings.kafka_bootstrap} (FINSENT_KAFKA_BOOTSTRAP); start one with `finsent broker`"
        ) from None


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
    from monitor.store.schema import redact_url
    from monitor.store.migrate import upgrade

    rev = upgrade(settings.database_url)
    click.echo(f"database {redact_url(settings.database_url)} at revision {rev}")


# --------------------------------------------------------------------------- broker
@main.command("broker")
@click.option(
    "--port", type=int, default=None, help="Port to listen on (default: the port of FINSENT_KAFKA_BOOTSTRAP, 9092)."
)
@click.option("--partitions", type=int, default=3, show_default=True, help="Partitions of the topics it creates.")
@with_settings()
def broker_cmd(settings: Settings, port: int | None, partitions: int) -> None:
    """Run the embedded Kafka-compatible broker (tansu) in the foreground."""
    import signal
    import threading

    from monitor.app.broker import EmbeddedBroker

    if port is None:
        port = int(settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[-1])
    broker = EmbeddedBroker(port=port, topics=settings.kafka_topics, partitions=partitions)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with broker:
        click.echo(
            f"embedded broker on {broker.bootstrap}; topics {', '.join(broker.topics)} ({partitions} partitions). Ctrl-C stops it."
        )
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
    from monitor.app.daemon import Daemon

    classifier = build_classifier(settings)
    daemon = Daemon(settings, classifier)
    daemon.install_signal_handlers()
    sys.exit(daemon.run())


def build_classifier(settings: Settings) -> Any:
    """The classifier the settings name: the shipped model, a model folder, or the test double."""
    if settings.model == "test-double":
        log.warning("using the keyword test double instead of the model (FINSENT_MODEL=test-double)")
    from monitor.classify.engine import build_classifier as build

    return build(
        settings.model or None,
        device=settings.device,
        max_length=settings.max_length,
        batch_size=settings.inference_batch_size,
    )


# --------------------------------------------------------------------------- produce
def column_options(fn: F) -> F:
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


def _columns(kw: dict[str, Any]) -> Any:
    from monitor.ingest.inputs import Columns

    return Columns(
        text=kw.pop("text_column"),
        time=kw.pop("time_column"),
        entity=kw.pop("entity_column"),
        source=kw.pop("source_column"),
        id=kw.pop("id_column"),
    )


@main.command("produce")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--topic", default=None, help="Topic to send to (default: the first of FINSENT_KAFKA_TOPICS).")
@click.option("--rate", type=float, default=None, help="Messages per second (default: as fast as possible).")
@column_options
@with_settings()
def produce_cmd(settings: Settings, file: str, topic: str | None, rate: float | None, **kw: Any) -> None:
    """Send a CSV or JSONL file to Kafka, one message per row, keeping timestamps."""
    from monitor.ingest.produce import produce_file

    cols = _columns(kw)
    stats = produce_file(settings, file, topic or settings.kafka_topics[0], cols, rate=rate)
    click.echo(json.dumps(stats))


# --------------------------------------------------------------------------- stats
@main.command("stats")
@click.option("--json", "as_json", is_flag=True)
@with_settings()
def stats_cmd(settings: Settings, as_json: bool) -> None:
    """Counts: documents, dead letters, alerts, notifications by status."""
    from monitor.store.stats import collect

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
    from monitor.cli.demo import run_demo

    sys.exit(run_demo(settings, port=port, minutes=minutes, rate=rate, dashboard=not no_dashboard))


# --------------------------------------------------------------------------- replay
@main.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@column_options
@click.option("--notify", is_flag=True, help="Also deliver the alerts' notifications to the configured channels.")
@click.option("--model", default=None, help="Model directory, or 'test-double' (FINSENT_MODEL).")
@click.option("--batch-size", type=int, default=None, help="Documents per pipeline batch (does not change the alerts).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_settings(model="model")
def replay_cmd(settings: Settings, file: str, notify: bool, batch_size: int | None, as_json: bool, **kw: Any) -> None:
    """The whole pipeline without Kafka, in event time, as fast as it can.

    Raises the same alerts a live run of the same stream would. Notifications are
    recorded as suppressed unless --notify is given, so a backtest pages nobody.
    """
    from pipelines.replay import replay

    cols = _columns(kw)
    res = replay(file, settings, columns=cols, notify=notify, batch_size=batch_size)
    if notify and settings.channels:
        from datetime import UTC, datetime

        from monitor.store.schema import make_engine
        from monitor.notify.sender import send_due

        engine = make_engine(settings.database_url)
        try:
            for _ in range(100):  # deliver what the replay enqueued; retries wait for the daemon's sender
                stats = send_due(engine, settings, datetime.now(UTC))
                if not stats.due:
                    break
        finally:
            engine.dispose()
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2, default=str))
        return
    click.echo(
        f"replayed {res.rows} rows ({res.rejected} rejected) from {res.first_event} to {res.last_event} "
        f"in {res.wall_s:.1f}s: {len(res.fired)} alerts fired, {len(res.resolved)} resolved"
    )
    for kind, value, started in res.fired:
        click.echo(f"  fired {kind} {value} at {started}")


# --------------------------------------------------------------------------- classify
@main.command("classify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--text-column", default="text", show_default=True)
@click.option(
    "--output", type=click.Path(dir_okay=False), default=None, help="Write JSON lines here (default: stdout)."
)
@click.option("--model", default=None, help="Model directory, or 'test-double' (FINSENT_MODEL).")
@with_settings(model="model")
def classify_cmd(settings: Settings, file: str, text_column: str, output: str | None) -> None:
    """One JSON line per input row: topic, sentiment, their scores and probabilities, model_version."""
    from monitor.classify.engine import classify_file

    try:
        n = classify_file(
            file,
            text_column,
            output,
            model=settings.model or None,
            batch_size=settings.inference_batch_size,
            device=settings.device,
        )
    except ValueError as exc:
        raise Failure(str(exc)) from None
    if output:
        click.echo(f"classified {n} rows -> {output}", err=True)


# --------------------------------------------------------------------------- train / evaluate / bench
_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def _passthrough(ctx: click.Context, argv_main: Callable[[list[str]], int]) -> None:
    args = list(ctx.args)
    for flag in ("--config", "--db"):  # accepted everywhere; these jobs read files, not the database
        while flag in args:
            i = args.index(flag)
            del args[i : i + 2]
    code = argv_main(args)
    if code:
        sys.exit(code)


@main.command("train", context_settings=_PASSTHROUGH)
@click.pass_context
def train_cmd(ctx: click.Context) -> None:
    """Fine-tune the topic + sentiment model (see `finsent train --help`)."""
    from pipelines.train import main as train_main

    _passthrough(ctx, train_main)


@main.command("evaluate", context_settings=_PASSTHROUGH)
@click.pass_context
def evaluate_cmd(ctx: click.Context) -> None:
    """Evaluate a model on labelled CSVs: accuracy, macro-F1, calibration, confusion matrix (see --help)."""
    from pipelines.evaluate import main as evaluate_main

    _passthrough(ctx, evaluate_main)


@main.group("bench", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--messages", type=int, default=4000, show_default=True, help="Messages through the pipeline.")
@click.option("--model", default=None, help="Model directory, or 'test-double'.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML settings file.")
@click.option("--db", "db_url", help="Database URL for the end-to-end run (default: a temporary SQLite file).")
@click.pass_context
def bench_cmd(
    ctx: click.Context, as_json: bool, messages: int, model: str | None, config_path: str | None, db_url: str | None
) -> None:
    """End-to-end and per-stage throughput, latency and memory, with the naive baseline and the ratio."""
    if ctx.invoked_subcommand is not None:
        return
    from pipelines.bench import run_bench

    try:
        settings = load_settings(config_path, database_url=db_url, model=model)
    except ConfigError as exc:
        raise Failure(str(exc)) from None
    _setup_logging("WARNING")
    result = run_bench(settings, n_messages=messages, db_given=db_url is not None)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        for k, v in result.items():
            click.echo(f"{k}: {json.dumps(v, default=str)}")


@bench_cmd.command("classify", context_settings=_PASSTHROUGH)
@click.pass_context
def bench_classify_cmd(ctx: click.Context) -> None:
    """Classifier alone: engine vs the transformers pipeline called once per text (see --help)."""
    from pipelines.bench_classify import main as bench_main

    _passthrough(ctx, bench_main)


@bench_cmd.command("detect", context_settings=_PASSTHROUGH)
@click.pass_context
def bench_detect_cmd(ctx: click.Context) -> None:
    """One detector tick over many keys with days of minute counts (see --help)."""
    from pipelines.bench_detect import main as bench_main

    _passthrough(ctx, bench_main)


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
    from monitor.alerting.outbox import list_alerts

    engine = _migrated_engine(settings)
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

    _emit(rows, as_json, human)


@alerts_grp.command("ack")
@click.argument("alert_id")
@click.option("--by", "who", default=lambda: os.environ.get("USER", "cli"), help="Who acknowledges.")
@with_settings()
def alerts_ack_cmd(settings: Settings, alert_id: str, who: str) -> None:
    """Acknowledge an alert: it stops repeating; its resolved message still goes out."""
    from datetime import UTC, datetime

    from monitor.alerting.outbox import acknowledge

    engine = _migrated_engine(settings)
    try:
        if not acknowledge(engine, alert_id, who, datetime.now(UTC)):
            raise Failure(f"no alert with id {alert_id!r}; see `finsent alerts list`")
    finally:
        engine.dispose()
    click.echo(f"acknowledged {alert_id}")


def _migrated_engine(settings: Settings) -> Any:
    from monitor.store.schema import make_engine
    from monitor.store.migrate import upgrade

    engine = make_engine(settings.database_url)
    upgrade(settings.database_url, engine)
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

    _emit(rows, as_json, human)


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

    from monitor.alerting.outbox import add_silence

    engine = _migrated_engine(settings)
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

    from monitor.alerting.outbox import list_silences

    engine = _migrated_engine(settings)
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

    _emit(rows, as_json, human)


@silence_grp.command("expire")
@click.argument("silence_id")
@with_settings()
def silence_expire_cmd(settings: Settings, silence_id: str) -> None:
    """End a silence now."""
    from datetime import UTC, datetime

    from monitor.alerting.outbox import expire_silence

    engine = _migrated_engine(settings)
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


# --------------------------------------------------------------------------- dashboard
@main.command("dashboard")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1; FINSENT_DASHBOARD_HOST).")
@click.option("--port", type=int, default=None, help="Port (default 8501; FINSENT_DASHBOARD_PORT).")
@with_settings(host="dashboard_host", port="dashboard_port")
def dashboard_cmd(settings: Settings) -> None:
    """The Streamlit app (default http://127.0.0.1:8501)."""
    from monitor.app.dashboard import serve

    sys.exit(serve(settings, settings.dashboard_host, settings.dashboard_port))


def entry() -> None:  # pragma: no cover
    main()


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
