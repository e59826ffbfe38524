"""`finsent bench`: end-to-end and per-stage throughput, latency and memory, with the naive baseline.

Call: ``run_bench(settings, n_messages=4000, db_given=False) -> dict``.

What it measures, all in one run on this machine:
- end to end (embedded broker -> the real daemon loop -> the database): messages/second
  at the peak (the topic is pre-loaded, timed from the first to the last stored batch);
- latency from produce to stored (offsets committed), p50/p99, while producing at half
  the measured peak rate;
- the naive baseline: the same daemon, but the classifier called once per message
  (what a per-record stream processor does), and the ratio;
- the stages alone: decode, classify (batched engine), store (+ entities/novelty);
- peak resident memory of the process (everything runs in this process).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from monitor.app.options import Failure, LazyGroup, setup_logging
from monitor.classify.base import Classifier, Prediction
from monitor.config import ConfigError, Settings, load_settings
from pipelines.hardware import cpu_model


class OnePerCall:
    """The naive way: one classifier call per message."""

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner

    @property
    def model_version(self) -> str:
        return self.inner.model_version

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return [self.inner.classify([t])[0] for t in texts]


def hardware() -> dict[str, Any]:
    cpu = cpu_model()
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        info["gpu"] = None
    return info


def _messages(n: int, seed: int) -> list[bytes]:
    from pipelines.feed import generate

    start = (datetime.now(UTC) - timedelta(minutes=max(30, n // 20))).replace(second=0, microsecond=0)
    out: list[bytes] = []
    for m in generate(seed, start, 10 * 24 * 60, max(20.0, n / 60), diurnal_pattern=False):
        m.pop("planted", None)
        out.append(json.dumps(m).encode())
        if len(out) >= n:
            break
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_daemon(
    settings: Settings, classifier: Classifier, topic: str, values: list[bytes], bootstrap: str, rate: float | None
) -> dict[str, Any]:
    """Run the real daemon loop in a thread on `topic`; produce `values` (pre-loaded or at `rate`)."""
    from kafka import KafkaProducer

    from monitor.app.broker import create_topics
    from monitor.app.daemon import Daemon

    create_topics(bootstrap, [topic, f"{topic}.dlq"], partitions=3)
    s = settings.model_copy(
        update={
            "kafka_bootstrap": bootstrap,
            "kafka_topics": (topic,),
            "kafka_group": f"bench-{topic}",
            "metrics_port": 0,
        }
    )
    daemon = Daemon(s, classifier)
    stored: list[tuple[float, float]] = []  # (produce ts, stored ts) per record
    done = threading.Event()

    def observe(records: list[Any], at: float) -> None:
        stored.extend((r.timestamp.timestamp(), at) for r in records)
        if len(stored) >= len(values):
            done.set()

    daemon.observer = observe
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)

    def produce() -> None:
        t0 = time.monotonic()
        for i, v in enumerate(values):
            producer.send(topic, v)  # record timestamp = send time: the latency's start
            if rate:
                ahead = (i + 1) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()

    if rate is None:
        produce()
    thread = threading.Thread(target=daemon.run, name="bench-daemon", daemon=True)
    thread.start()
    if rate is not None:
        # Latency is measured in steady state: start producing once the consumer owns partitions.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (daemon.consumer is not None and daemon.consumer.assignment()):
            time.sleep(0.2)
        produce()
    finished = done.wait(timeout=max(120.0, len(values) / 20))
    daemon.stop_event.set()
    thread.join(30)
    producer.close()
    if not stored:
        return {"stored": 0, "finished": finished}
    first_batch_end = min(at for _, at in stored)
    last = max(at for _, at in stored)
    # Throughput after the consumer joined its group: from the first batch's commit to the last.
    first_n = sum(1 for _, at in stored if at == first_batch_end)
    span = last - first_batch_end
    lat = sorted(at - ts for ts, at in stored)
    return {
        "stored": len(stored),
        "finished": finished,
        "msgs_per_s": round((len(stored) - first_n) / span, 1) if span > 0 else None,
        "p50_latency_s": round(statistics.median(lat), 3),
        "p99_latency_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3),
    }


def _stages(settings: Settings, classifier: Classifier, values: list[bytes], db_url: str) -> dict[str, Any]:
    from monitor.app.wiring import build
    from monitor.ingest.source import RawRecord
    from monitor.store.migrate import upgrade

    upgrade(db_url)
    parts = build(settings.model_copy(update={"database_url": db_url}))
    engine = parts.engine
    proc = parts.processor(classifier)
    now = datetime.now(UTC)
    recs = [RawRecord(v, "stage", 0, i, now) for i, v in enumerate(values)]
    b = settings.batch_max_records
    t0 = time.perf_counter()
    docs, rejected = proc.decode(recs)
    t1 = time.perf_counter()
    pairs = []
    for i in range(0, len(docs), b):
        pairs.extend(proc.classify(docs[i : i + b])[0])
    t2 = time.perf_counter()
    items = proc.enrich(pairs)
    t3 = time.perf_counter()
    for i in range(0, len(items), b):
        proc.store.write_batch(items[i : i + b], [], now)
    t4 = time.perf_counter()
    engine.dispose()
    n = len(values)
    return {
        "decode_msgs_per_s": round(n / (t1 - t0), 1),
        "classify_msgs_per_s": round(n / (t2 - t1), 1),
        "entities_novelty_msgs_per_s": round(n / (t3 - t2), 1),
        "store_msgs_per_s": round(n / (t4 - t3), 1),
    }


def run_bench(
    settings: Settings, n_messages: int = 4000, db_given: bool = False, naive_messages: int | None = None
) -> dict[str, Any]:
    from monitor.app.broker import EmbeddedBroker
    from monitor.app.wiring import build_classifier

    tmp = Path(tempfile.mkdtemp(prefix="finsent-bench-"))
    db_url = settings.database_url if db_given else f"sqlite:///{tmp / 'bench.db'}"
    settings = settings.model_copy(update={"database_url": db_url})
    classifier = build_classifier(settings)
    values = _messages(n_messages, seed=1)
    naive_n = naive_messages or max(200, min(n_messages, 1000))
    result: dict[str, Any] = {
        "hardware": hardware(),
        "model_version": classifier.model_version,
        "messages": n_messages,
        "batch_max_records": settings.batch_max_records,
        "database": db_url.split(":", 1)[0],
    }
    with EmbeddedBroker() as broker:
        peak = _run_daemon(settings, classifier, "bench-peak", values, broker.bootstrap, rate=None)
        result["end_to_end"] = peak
        result["msgs_per_s"] = peak.get("msgs_per_s")
        half = max(1.0, (peak.get("msgs_per_s") or 100.0) / 2)
        paced = _run_daemon(
            settings,
            classifier,
            "bench-half",
            _messages(min(n_messages, int(half * 20)), seed=2),
            broker.bootstrap,
            rate=half,
        )
        result["at_half_peak"] = {"rate": round(half, 1), **paced}
        result["p50_latency_s"] = paced.get("p50_latency_s")
        result["p99_latency_s"] = paced.get("p99_latency_s")
        naive = _run_daemon(
            settings, OnePerCall(classifier), "bench-naive", _messages(naive_n, seed=3), broker.bootstrap, rate=None
        )
        result["naive"] = naive
        result["naive_msgs_per_s"] = naive.get("msgs_per_s")
    if result["msgs_per_s"] and result["naive_msgs_per_s"]:
        result["ratio"] = round(result["msgs_per_s"] / result["naive_msgs_per_s"], 2)
    else:
        result["ratio"] = None
    result["stages"] = _stages(
        settings, classifier, _messages(min(n_messages, 4000), seed=4), f"sqlite:///{tmp / 'stages.db'}"
    )
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result


@click.group(
    "bench",
    cls=LazyGroup,
    lazy={
        "classify": "pipelines.bench_classify:command",
        "detect": "pipelines.bench_detect:command",
        "dashboard": "pipelines.bench_dashboard:command",
        "replay": "pipelines.bench_replay:command",
    },
    invoke_without_command=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--messages", type=int, default=4000, show_default=True, help="Messages through the pipeline.")
@click.option("--model", default=None, help="Model directory, or 'test-double'.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML settings file.")
@click.option("--db", "db_url", help="Database URL for the end-to-end run (default: a temporary SQLite file).")
@click.pass_context
def command(
    ctx: click.Context, as_json: bool, messages: int, model: str | None, config_path: str | None, db_url: str | None
) -> None:
    """End-to-end and per-stage throughput, latency and memory, with the naive baseline and the ratio."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        settings = load_settings(config_path, database_url=db_url, model=model)
    except ConfigError as exc:
        raise Failure(str(exc)) from None
    setup_logging("WARNING")
    result = run_bench(settings, n_messages=messages, db_given=db_url is not None)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        for k, v in result.items():
            click.echo(f"{k}: {json.dumps(v, default=str)}")
