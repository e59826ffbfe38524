"""The `finsent` group. Every sub-command takes `--config PATH` and `--db URL` after its name.

The daemon's and the operators' commands live in `monitor.cli.ops` and
`monitor.cli.alerting`; the offline jobs (train, evaluate, replay, backtests, benchmarks,
the sample feed) are click commands of their `pipelines` modules, loaded when used.
"""

from __future__ import annotations

import os

import click

from monitor.app.options import LazyGroup

# Before torch is imported anywhere: spinning OpenMP threads cost 2-5x on busy small machines.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

JOBS = {
    "train": ("pipelines.train:command", "Fine-tune the topic + sentiment model."),
    "evaluate": ("pipelines.evaluate:command", "Evaluate a model on labelled CSVs: accuracy, macro-F1, calibration."),
    "replay": ("pipelines.replay:command", "The whole pipeline without Kafka, in event time, as fast as it can."),
    "backtest": ("pipelines.backtest:command", "Replay a stream and score its alerts against known events."),
    "bench": ("pipelines.bench:command", "Throughput, latency and memory, with the naive baseline and the ratio."),
    "feed": ("pipelines.feed:command", "Write the generated demo feed (planted surges, decoys, outages)."),
}


@click.group(cls=LazyGroup, lazy=JOBS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="finsent")
def main() -> None:
    """finsent: a streaming financial sentiment monitor (Kafka -> topic & sentiment -> surge alerts)."""
