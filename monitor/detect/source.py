"""The detector's database edge: minute buckets from `minute_counts`, hour blocks from
`hour_counts` (kept exact at write time), as plain integer arrays.

A cold start reads a week of hours and a day of minutes for every key (about 900,000 rows
at 10,000 keys). On PostgreSQL, long spans (a cold start's, a replay's read-ahead) come as
Arrow columns through `monitor.store.arrow`, with no Python object per row (close the
source, or use it as a context manager, to close that connection). Short spans, and every
read on SQLite, go row by row through the tick's connection, straight from the driver's
cursor; both paths give the same `Rows`. (Packing the four counts into two integers and
sending hours as small offsets, to make fewer Python objects per row, measured no faster
on SQLite.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Connection, Engine, cast, func, select

from monitor.detect.windows import Rows, from_minute
from monitor.store.arrow import ArrowReader
from monitor.store.schema import hour_counts, minute_counts

# Spans at least this long are read as Arrow columns (where the database allows): a
# columnar read opens its own connection, which only pays off on many rows.
COLUMNAR_MIN_MINUTES = 6 * 60


class SqlSource:
    """Counts through one connection; `per` is 1 (minutes) or 60 (hour blocks).
    `columnar=False` reads every span row by row (the reference the tests compare with).

    Given an engine instead of a connection, the source connects at its first read and
    closes that connection with itself: a replay's tick usually has every minute it needs
    in memory already, and a transaction per tick would cost more than the tick."""

    def __init__(self, bind: Connection | Engine, columnar: bool = True) -> None:
        self._engine = bind if isinstance(bind, Engine) else bind.engine
        self._conn = bind if isinstance(bind, Connection) else None
        self._own: Connection | None = None  # the connection this source opened
        self.columnar = columnar
        self.columnar_reads = 0  # spans that came as Arrow columns (for the tests)
        self._reader: ArrowReader | None | bool = False  # False: not looked for yet

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = self._own = self._engine.connect()
        return self._conn

    def __enter__(self) -> SqlSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections this source opened: the columnar reader's, if a long span
        opened one, and its own, if it was given an engine."""
        if isinstance(self._reader, ArrowReader):
            self._reader.close()
        own, self._own = self._own, None
        if own is not None:
            self._conn = None
            own.close()

    def _columnar(self) -> ArrowReader | None:
        if self._reader is False:
            self._reader = ArrowReader.for_url(self._engine.url, self._engine.dialect) if self.columnar else None
        return self._reader if isinstance(self._reader, ArrowReader) else None

    def fetch(self, start: int, end: int, per: int) -> Rows:
        text = False
        if per == 60 and start % 60 == 0 and end % 60 == 0:
            hc = hour_counts.c
            q = select(hc.key_kind, hc.key_value, hc.hour, hc.novel_total, hc.novel_negative, hc.total, hc.negative)
            q = q.where(hc.hour >= start // 60, hc.hour < end // 60, hc.total > 0)
        elif per == 1:
            mc = minute_counts.c
            # SQLite keeps the minute as ISO text: numpy parses it far faster than strftime.
            text = self._engine.dialect.name == "sqlite"
            minute = mc.minute if text else cast(func.extract("epoch", mc.minute), BigInteger) // 60
            q = select(mc.key_kind, mc.key_value, minute, mc.novel_total, mc.novel_negative, mc.total, mc.negative)
            q = q.where(mc.minute >= from_minute(start), mc.minute < from_minute(end), mc.total > 0)
        else:
            raise ValueError(f"the detector reads minutes or whole hours, not {per}-minute buckets from {start}")
        reader = self._columnar() if end - start >= COLUMNAR_MIN_MINUTES else None
        if reader is not None:
            table = reader.read(q)
            if table is not None:
                self.columnar_reads += 1
                return rows_from_arrow(table, text)
        # Straight from the driver's cursor: every column is a plain int or str, and a cold
        # start reads hundreds of thousands of rows (SQLAlchemy's row objects would double it).
        result: Any = self.conn.execute(q)
        return rows_from_columns(result.cursor.fetchall(), text)


def _rows(kind_codes: np.ndarray, kinds: Sequence[Any], value_codes: np.ndarray, values: Sequence[Any],
          bucket: np.ndarray, ntot: np.ndarray, nneg: np.ndarray, tot: np.ndarray, neg: np.ndarray) -> Rows:  # fmt: skip
    """`Rows` from factorized key columns, the buckets and the four counts."""
    n = len(values)
    pair_codes, pairs = pd.factorize(kind_codes.astype(np.int64) * n + value_codes, sort=False)
    keys = [(str(kinds[p // n]), str(values[p % n])) for p in pairs.tolist()]
    return Rows(keys, pair_codes.astype(np.int64), bucket, ntot, nneg, tot, neg)


def rows_from_columns(records: Sequence[Sequence[Any]], minute_text: bool = False) -> Rows:
    """(key_kind, key_value, bucket, novel_total, novel_negative, total, negative) tuples,
    each key and bucket at most once, to `Rows`, vectorised. With `minute_text` the bucket
    is a UTC minute as ISO text ("2024-05-01 12:03:00.000000"), turned into an epoch minute."""
    if not records:
        return Rows.empty()
    table = np.array(records, dtype=object)
    kind_codes, kinds = pd.factorize(table[:, 0], sort=False)
    value_codes, values = pd.factorize(table[:, 1], sort=False)
    if minute_text:
        bucket = np.array(table[:, 2].astype(str), dtype="datetime64[m]").astype(np.int64)
        ntot, nneg, tot, neg = table[:, 3:].astype(np.int64).T
    else:
        bucket, ntot, nneg, tot, neg = table[:, 2:].astype(np.int64).T
    return _rows(kind_codes, kinds, value_codes, values, bucket, ntot, nneg, tot, neg)


def rows_from_arrow(table: Any, minute_text: bool = False) -> Rows:
    """`rows_from_columns` for a `pyarrow.Table` of the same seven columns: the keys are
    dictionary-encoded and the numbers taken as arrays, with no Python object per row.
    Keys are numbered in order of first appearance, as there."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return Rows.empty()
    cols = [table.column(i).combine_chunks() for i in range(7)]
    kind, value = pc.dictionary_encode(cols[0]), pc.dictionary_encode(cols[1])
    if minute_text:
        bucket = pc.cast(cols[2], pa.timestamp("us")).to_numpy().astype("datetime64[m]").astype(np.int64)
    else:
        bucket = cols[2].to_numpy().astype(np.int64)
    ntot, nneg, tot, neg = (c.to_numpy().astype(np.int64) for c in cols[3:])
    return _rows(
        kind.indices.to_numpy(),
        kind.dictionary.to_pylist(),
        value.indices.to_numpy(),
        value.dictionary.to_pylist(),
        bucket,
        ntot,
        nneg,
        tot,
        neg,
    )
