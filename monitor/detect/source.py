"""The detector's database edge: minute buckets from `minute_counts`, hour blocks from
`hour_counts` (kept exact at write time), as plain integer arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Connection, cast, func, select

from monitor.detect.windows import Rows, from_minute
from monitor.store.schema import hour_counts, minute_counts


class SqlSource:
    """Counts through one connection; `per` is 1 (minutes) or 60 (hour blocks)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def fetch(self, start: int, end: int, per: int) -> Rows:
        text = False
        if per == 60 and start % 60 == 0 and end % 60 == 0:
            hc = hour_counts.c
            q = select(hc.key_kind, hc.key_value, hc.hour, hc.novel_total, hc.novel_negative, hc.total, hc.negative)
            q = q.where(hc.hour >= start // 60, hc.hour < end // 60, hc.total > 0)
        elif per == 1:
            mc = minute_counts.c
            # SQLite keeps the minute as ISO text: numpy parses it far faster than strftime.
            text = self.conn.dialect.name == "sqlite"
            minute = mc.minute if text else cast(func.extract("epoch", mc.minute), BigInteger) // 60
            q = select(mc.key_kind, mc.key_value, minute, mc.novel_total, mc.novel_negative, mc.total, mc.negative)
            q = q.where(mc.minute >= from_minute(start), mc.minute < from_minute(end), mc.total > 0)
        else:
            raise ValueError(f"the detector reads minutes or whole hours, not {per}-minute buckets from {start}")
        # Straight from the driver's cursor: every column is a plain int or str, and a cold
        # start reads hundreds of thousands of rows (SQLAlchemy's row objects would double it).
        result: Any = self.conn.execute(q)
        return rows_from_columns(result.cursor.fetchall(), minute_text=per == 1 and text)


def rows_from_columns(records: Sequence[Sequence[Any]], minute_text: bool = False) -> Rows:
    """(key_kind, key_value, bucket, novel_total, novel_negative, total, negative) tuples,
    each key and bucket at most once, to `Rows`, vectorised. With `minute_text` the bucket
    is a UTC minute as ISO text ("2024-05-01 12:03:00.000000"), turned into an epoch minute."""
    if not records:
        return Rows.empty()
    table = np.array(records, dtype=object)
    kind_codes, kinds = pd.factorize(table[:, 0], sort=False)
    value_codes, values = pd.factorize(table[:, 1], sort=False)
    n = len(values)
    pair_codes, pairs = pd.factorize(kind_codes.astype(np.int64) * n + value_codes, sort=False)
    keys = [(str(kinds[p // n]), str(values[p % n])) for p in pairs.tolist()]
    if minute_text:
        bucket = np.array(table[:, 2].astype(str), dtype="datetime64[m]").astype(np.int64)
        ntot, nneg, tot, neg = table[:, 3:].astype(np.int64).T
    else:
        bucket, ntot, nneg, tot, neg = table[:, 2:].astype(np.int64).T
    return Rows(keys, pair_codes.astype(np.int64), bucket, ntot, nneg, tot, neg)
