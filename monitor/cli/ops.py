"""Commands that run or inspect finsent: config, migrate, broker, run, sources, produce,
stats, demo, classify, dashboard."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from monitor.app.options import Failure, column_options, columns_from, emit, with_settings
from monitor.cli.group import main
from monitor.config import Settings


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
    from monitor.redact import redact_url
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
    from monitor.app.wiring import build_classifier

    daemon = Daemon(settings, build_classifier(settings))
    daemon.install_signal_handlers()
    sys.exit(daemon.run())


# --------------------------------------------------------------------------- sources
@main.group("sources")
def sources_grp() -> None:
    """News feeds (`[[sources]]` in the TOML file) polled into Kafka."""


@sources_grp.command("run")
@with_settings()
def sources_run_cmd(settings: Settings) -> None:
    """Poll the [[sources]] RSS/Atom feeds and produce new items to Kafka, in the foreground."""
    import signal
    import threading

    from monitor.app.sources import run

    if not settings.sources:
        raise Failure("no [[sources]] configured; add them to the TOML file (see finsent.example.toml)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sys.exit(run(settings, stop))


# --------------------------------------------------------------------------- produce
@main.command("produce")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--topic", default=None, help="Topic to send to (default: the first of FINSENT_KAFKA_TOPICS).")
@click.option("--rate", type=float, default=None, help="Messages per second (default: as fast as possible).")
@column_options
@with_settings()
def produce_cmd(settings: Settings, file: str, topic: str | None, rate: float | None, **kw: Any) -> None:
    """Send a CSV or JSONL file to Kafka, one message per row, keeping timestamps."""
    from monitor.ingest.produce import produce_file

    cols = columns_from(kw)
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

    emit(data, as_json, human)


# --------------------------------------------------------------------------- demo
@main.command("demo")
@click.option("--port", type=int, default=None, help="Broker port (default: a free one).")
@click.option("--minutes", type=int, default=24 * 60, show_default=True, help="Simulated minutes in the sample feed.")
@click.option("--rate", type=float, default=400.0, show_default=True, help="Messages per second sent to the broker.")
@click.option("--no-dashboard", is_flag=True, help="Do not start the dashboard.")
@click.option(
    "--lang",
    type=click.Choice(["en", "zh"]),
    default="en",
    show_default=True,
    help="The sample feed's language: en (US companies) or zh (中文, A-shares; surge about 贵州茅台 600519.SH).",
)
@with_settings()
def demo_cmd(settings: Settings, port: int | None, minutes: int, rate: float, no_dashboard: bool, lang: str) -> None:
    """Everything on embedded defaults: broker, SQLite, model, a sample feed, the daemon, the dashboard."""
    from monitor.cli.demo import run_demo

    sys.exit(run_demo(settings, port=port, minutes=minutes, rate=rate, dashboard=not no_dashboard, lang=lang))


# --------------------------------------------------------------------------- classify
@main.command("classify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--text-column", default="text", show_default=True)
@click.option("--title-column", default=None, help="A column with each row's title (read with the text).")
@click.option(
    "--output", type=click.Path(dir_okay=False), default=None, help="Write JSON lines here (default: stdout)."
)
@click.option("--model", default=None, help="Model directory, or 'test-double' (FINSENT_MODEL).")
@with_settings(model="model")
def classify_cmd(settings: Settings, file: str, text_column: str, title_column: str | None, output: str | None) -> None:
    """One JSON line per input row: topic, sentiment, their scores and probabilities, model_version,
    lang, and the companies linked with the sentiment toward each and their mentions."""
    from monitor.app.batch import matcher_for
    from monitor.classify.engine import classify_file
    from monitor.classify.lang import detect

    try:
        n = classify_file(
            file,
            text_column,
            output,
            model=settings.model or None,
            batch_size=settings.inference_batch_size,
            device=settings.device,
            title_column=title_column,
            matcher=matcher_for(settings),
            detect_lang=detect,
        )
    except ValueError as exc:
        raise Failure(str(exc)) from None
    if output:
        click.echo(f"classified {n} rows -> {output}", err=True)


# --------------------------------------------------------------------------- dashboard
@main.command("dashboard")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1; FINSENT_DASHBOARD_HOST).")
@click.option("--port", type=int, default=None, help="Port (default 8501; FINSENT_DASHBOARD_PORT).")
@with_settings(host="dashboard_host", port="dashboard_port")
def dashboard_cmd(settings: Settings) -> None:
    """The Streamlit app (default http://127.0.0.1:8501)."""
    from monitor.app.dashboard import serve

    sys.exit(serve(settings, settings.dashboard_host, settings.dashboard_port))
