"""`finsent replay FILE`: the whole pipeline without Kafka, in event time, as fast as it can.

Rows are read (CSV or JSONL), sorted by event time (stable, so ties keep file order),
cut into batches and sent through the same batch pipeline the daemon uses (decode ->
classify -> entities/novelty -> store, one transaction per batch). A `WatermarkClock`
follows the stream; after each batch the detector ticks at every `interval_seconds`
boundary of event time the watermark has passed, and the signals go to the alert
lifecycle. Because ticks happen at aligned event-time instants and a tick only reads
complete minutes at or before the watermark, the same file gives the same alerts at any
speed and any batch size.

Speed: the detector's answer depends only on the tick's minute, so it runs once per
minute (the first tick instant in it); a minute whose windows hold no document at all
after a tick that was all calm is skipped (nothing can spike, everything stays calm).
With no channel configured, the signals that can change an alert are applied once per
batch instead of once per tick, with the same result (see `replay`).
With `--notify` notifications are delivered to the configured channels; without it
they are recorded as suppressed, so a backtest pages nobody.
"""

from __future__ import annotations

import bisect
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from monitor.app.options import column_options, columns_from, with_settings
from monitor.config import Settings
from monitor.detect.clock import WatermarkClock, tick_times
from monitor.detect.params import Params
from monitor.detect.signals import Signal
from monitor.detect.windows import to_minute

log = logging.getLogger(__name__)

DEFAULT_BATCH = 512


@dataclass
class ReplayResult:
    rows: int = 0
    documents: int = 0
    rejected: int = 0
    ticks: int = 0
    detector_runs: int = 0
    fired: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, value, started_at)
    resolved: list[tuple[str, str, str]] = field(default_factory=list)
    first_event: datetime | None = None
    last_event: datetime | None = None
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "documents": self.documents,
            "rejected": self.rejected,
            "ticks": self.ticks,
            "detector_runs": self.detector_runs,
            "alerts_fired": len(self.fired),
            "alerts_resolved": len(self.resolved),
            "fired": [{"kind": k, "value": v, "started_at": s} for k, v, s in self.fired],
            "first_event": self.first_event.isoformat() if self.first_event else None,
            "last_event": self.last_event.isoformat() if self.last_event else None,
            "wall_s": round(self.wall_s, 3),
        }


def drive(
    events: Iterable[tuple[datetime, Any]],
    *,
    batch_size: int,
    lateness: timedelta,
    interval_seconds: float,
    span_minutes: int,
    fresh_minutes: int | None = None,
    busy: Callable[[], bool] | None = None,
    process: Callable[[list[Any]], None],
    detect: Callable[[datetime], list[Signal]],
    on_tick: Callable[[datetime, list[Signal] | None], None],
    clock: WatermarkClock | None = None,
) -> tuple[int, int]:
    """The clock-stepping core, independent of storage: returns (ticks, detector runs).

    `events` are (event time, payload) in arrival order (a replay sorts them first; the
    property tests also feed them out of order within `lateness`). After each batch
    the watermark moves and every aligned tick instant up to it is run: `detect` once
    per new minute (None is passed to `on_tick` for the other instants of a minute).
    At the end of the stream the watermark jumps to the last event time.

    A minute is skipped (no detector run, `on_tick(t, None)`) when nothing can change:
    the detector watches no key (`busy()` is false: no key spiked without being calm
    since) and no document arrived in the last `fresh_minutes`. A key fires only with
    fresh evidence, and with no key watched no alert is open to resolve: the alerts are
    exactly those of a run at every minute.
    """
    clock = clock or WatermarkClock(lateness)
    last_tick: datetime | None = None  # ticks are the aligned instants after the first event
    last_minute: int | None = None
    last_run_end: int | None = None  # the minute the last detector run ended at
    still = False  # the last run could not change anything while no data arrives
    event_minutes: list[int] = []  # distinct event minutes, sorted
    ticks = runs = 0

    def new_data(lo: int, hi: int) -> bool:
        i = bisect.bisect_left(event_minutes, lo)
        return i < len(event_minutes) and event_minutes[i] < hi

    def step() -> None:
        nonlocal last_tick, last_minute, last_run_end, still, ticks, runs
        now = clock.now()
        if now is None or last_tick is None:
            return
        for t in tick_times(last_tick, now, interval_seconds):
            m = to_minute(t)
            ticks += 1
            if m == last_minute:
                on_tick(t, None)
            else:
                last_minute = m
                idle = still and (busy is None or not busy())
                if idle and last_run_end is not None and not new_data(m - (fresh_minutes or 0), m):
                    on_tick(t, None)
                else:
                    sigs = detect(t)
                    runs += 1
                    last_run_end = m
                    still = fresh_minutes is not None and all(s.calm and not s.spiking for s in sigs)
                    on_tick(t, sigs)
            last_tick = t

    batch: list[Any] = []
    for ts, payload in events:
        batch.append(payload)
        if last_tick is None:
            last_tick = ts - timedelta(microseconds=1)
        clock.observe(ts)
        em = to_minute(ts)
        if not event_minutes or em > event_minutes[-1]:
            event_minutes.append(em)
        else:
            i = bisect.bisect_left(event_minutes, em)
            if i == len(event_minutes) or event_minutes[i] != em:
                event_minutes.insert(i, em)
        if len(batch) >= batch_size:
            process(batch)
            batch = []
            step()
    if batch:
        process(batch)
    clock.finish()
    step()
    return ticks, runs


def _event_time(msg: dict[str, Any]) -> datetime | None:
    """The row's event time: RFC 3339 / ISO 8601, epoch seconds or milliseconds (also as
    text), or another common format (e.g. "Mon Jan 06 14:05:00 +0000 2020"); None if absent."""
    from monitor.ingest.schemas import _Invalid, parse_time

    v = msg.get("published_at")
    if v in (None, ""):
        return None
    try:
        return parse_time(v)
    except _Invalid:
        pass
    if isinstance(v, str):
        s = v.strip()
        try:
            return parse_time(float(s))
        except (ValueError, _Invalid):
            pass
        try:
            import pandas as pd

            ts = pd.to_datetime(s, utc=True)
            if ts is not pd.NaT:
                return ts.to_pydatetime()
        except (ValueError, TypeError, OverflowError):
            pass
    return None


_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-^=:]{0,19}$")


def _symbol(value: str) -> str | None:
    """An entity cell value as a symbol the message schema accepts ("Apple Inc" -> "APPLE-INC")."""
    v = value.strip().lstrip("$").upper()
    if _SYMBOL.match(v):
        return v
    v = re.sub(r"[^A-Z0-9.\-^=:]+", "-", v).strip("-.^=:")[:20]
    return v if v and _SYMBOL.match(v) else None


def replay(
    path: str | Path,
    settings: Any,
    *,
    columns: Any = None,
    notify: bool = False,
    classifier: Any = None,
    engine: Any = None,
    batch_size: int | None = None,
) -> ReplayResult:
    """Replay a CSV/JSONL file into `settings.database_url` (or `engine`); returns what happened."""
    from monitor.app.wiring import build
    from monitor.detect.runner import open_alert_keys
    from monitor.ingest.inputs import Columns, read_records, to_message
    from monitor.ingest.schemas import Rejection, to_document

    t0 = time.perf_counter()
    cols = columns or Columns()
    _check_columns(path, cols)
    if engine is None:
        from monitor.store.migrate import upgrade

        upgrade(settings.database_url)
    # A replay publishes nothing, and keeps no alert events for a daemon to publish later.
    parts = build(settings.model_copy(update={"publish_results": False}), engine)
    parts.detector.forget()  # the baseline cache must come from this replay's own history
    if classifier is None:
        from monitor.app.wiring import build_classifier

        classifier = build_classifier(settings)
    det = settings.detect
    processor = parts.processor(classifier)
    result = ReplayResult()
    bad: list[Rejection] = []
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    for n, row, err in read_records(path):
        result.rows += 1
        if row is None:
            bad.append(Rejection(err or "unreadable row", b"", "replay", 0, n))
            continue
        msg = to_message(row, cols)
        if isinstance(msg.get("tickers"), list):
            msg["tickers"] = [y for y in (_symbol(str(x)) for x in msg["tickers"]) if y]
        ts = _event_time(msg)
        if ts is not None:
            msg["published_at"] = ts.isoformat()
        if ts is None or not isinstance(msg.get("text"), str):
            why = f"row {n}: no valid {cols.time!r} time" if ts is None else f"row {n}: no {cols.text!r} text"
            bad.append(Rejection(why, repr(row)[:2000].encode(), "replay", 0, n))
            continue
        events.append((ts, n, msg))
    events.sort(key=lambda e: (e[0], e[1]))
    if events:
        result.first_event, result.last_event = events[0][0], events[-1][0]

    skew = timedelta(seconds=settings.max_future_skew_seconds)

    def process(batch: list[tuple[int, dict[str, Any], datetime]]) -> None:
        flush()  # the alerts of the ticks so far, before the next documents are stored
        docs, rejected = [], []
        for line, msg, ts in batch:
            try:
                docs.append(
                    to_document(msg, record_time=ts, max_future_skew=skew, topic="replay", partition=0, offset=line)
                )
            except Exception as exc:  # schemas._Invalid: a bad row is dead-lettered, never fatal
                rejected.append(Rejection(str(exc), repr(msg)[:2000].encode(), "replay", 0, line))
        res = processor.process_documents(docs, rejected, datetime.now(UTC))
        result.documents += int(getattr(res, "inserted", len(docs)) or 0)
        result.rejected += len(rejected)

    if bad:
        processor.process_documents([], bad, datetime.now(UTC))
        result.rejected += len(bad)

    with parts.engine.connect() as conn:  # a replay may start on a database with open alerts
        open_alerts = open_alert_keys(conn)
    # With no channel, the alert stage acts on signals only (no group waits or repeats run
    # on the clock), applies them in event-time order, and passes over a calm key with no
    # open alert. So the replay keeps the signals of keys that spike or have an open alert
    # and applies them in one transaction before the next batch is stored (the documents an
    # alert looks up are then those a tick-by-tick run sees), before a full detector tick
    # (it reads the open alerts), and at the end: the same alerts, without a transaction
    # per minute of stream for as long as an alert is open.
    held: list[Signal] = []
    held_until: datetime | None = None  # the tick the held signals run to
    watched: set[tuple[str, str]] = set(open_alerts)  # open, or spiked since the last flush

    def flush() -> None:
        if held and held_until is not None:
            sigs = list(held)
            held.clear()
            apply(sigs, held_until)
            watched.clear()
            watched.update(open_alerts)

    def on_tick(t: datetime, sigs: list[Signal] | None) -> None:
        nonlocal held_until
        if settings.channels:
            apply(sigs or [], t)
            return
        for sig in sigs or ():
            kv = (sig.key.kind, sig.key.value)
            if sig.spiking or kv in watched:
                watched.add(kv)
                held.append(sig)
                held_until = t

    def detect(t: datetime) -> list[Signal]:
        if parts.detector.needs_full_tick():
            flush()
        return parts.detector.tick(t, lock=False, recheck_minutes=0, final_until=clock.now())

    def apply(sigs: list[Signal], t: datetime) -> None:
        res = parts.alerting.apply(sigs, t, notify=notify)
        for c in res.changes:
            kv = (c.alert.key.kind, c.alert.key.value)
            key = (*kv, c.alert.started_at.isoformat())
            if c.kind in ("fired", "pending"):
                open_alerts.add(kv)
            elif c.kind in ("resolved", "dropped"):
                open_alerts.discard(kv)
            if c.kind == "fired":
                result.fired.append(key)
            elif c.kind == "resolved":
                result.resolved.append(key)

    params = Params.from_settings(det)
    clock = WatermarkClock(timedelta(minutes=det.allowed_lateness_minutes))
    result.ticks, result.detector_runs = drive(
        ((ts, (line, msg, ts)) for ts, line, msg in events),
        batch_size=batch_size or settings.batch_max_records or DEFAULT_BATCH,
        lateness=timedelta(minutes=det.allowed_lateness_minutes),
        interval_seconds=det.interval_seconds,
        span_minutes=params.span_minutes,
        fresh_minutes=params.fresh_minutes,
        busy=parts.detector.watching,
        process=process,
        detect=detect,
        on_tick=on_tick,
        clock=clock,
    )
    flush()
    result.wall_s = time.perf_counter() - t0
    return result


def _check_columns(path: str | Path, cols: Any) -> None:
    """Fail early, naming the option, when the text or time column is not in the file."""
    from monitor.ingest.inputs import InputError, read_records

    for _n, row, _err in read_records(path):
        if row is None:
            continue
        for col, opt in ((cols.text, "--text-column"), (cols.time, "--time-column")):
            if col not in row:
                raise InputError(f"column {col!r} not in {str(path)!r}; columns are {sorted(row)} (use {opt})")
        return
    raise InputError(f"{str(path)!r} has no readable rows")


@click.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@column_options
@click.option("--notify", is_flag=True, help="Also deliver the alerts' notifications to the configured channels.")
@click.option("--model", default=None, help="Model directory, or 'test-double' (FINSENT_MODEL).")
@click.option("--batch-size", type=int, default=None, help="Documents per pipeline batch (does not change the alerts).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_settings(model="model")
def command(settings: Settings, file: str, notify: bool, batch_size: int | None, as_json: bool, **kw: Any) -> None:
    """The whole pipeline without Kafka, in event time, as fast as it can.

    Raises the same alerts a live run of the same stream would. Notifications are
    recorded as suppressed unless --notify is given, so a backtest pages nobody.
    """
    cols = columns_from(kw)
    res = replay(file, settings, columns=cols, notify=notify, batch_size=batch_size)
    if notify and settings.channels:
        from monitor.app.wiring import build

        parts = build(settings)
        try:
            for _ in range(100):  # deliver what the replay enqueued; retries wait for the daemon's sender
                if not parts.sender.send_due(datetime.now(UTC)).due:
                    break
        finally:
            parts.engine.dispose()
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2, default=str))
        return
    click.echo(
        f"replayed {res.rows} rows ({res.rejected} rejected) from {res.first_event} to {res.last_event} "
        f"in {res.wall_s:.1f}s: {len(res.fired)} alerts fired, {len(res.resolved)} resolved"
    )
    for kind, value, started in res.fired:
        click.echo(f"  fired {kind} {value} at {started}")


if __name__ == "__main__":  # `python -m pipelines.replay FILE ...`, the same as `finsent replay`
    command(prog_name="finsent replay")
