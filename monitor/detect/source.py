"""The detector's database edge: minute counts summed into minute or hour buckets."""

from __future__ import annotations

from sqlalchemy import BigInteger, Connection, and_, case, cast, func, literal_column, select

from monitor.detect.windows import Rows, from_minute, rows_from_records
from monitor.store.schema import minute_counts


class SqlSource:
    """minute_counts through one connection; `per` is 1 (minutes) or 60 (hour blocks)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def fetch(self, start: int, end: int, per: int) -> Rows:
        mc = minute_counts.c
        if self.conn.dialect.name == "sqlite":
            epoch = cast(func.strftime("%s", mc.minute), BigInteger)
        else:
            epoch = cast(func.extract("epoch", mc.minute), BigInteger)
        bucket = (epoch // (60 * per)).label("bucket")  # floor division on both backends
        q = (
            select(
                mc.key_kind,
                mc.key_value,
                bucket,
                func.sum(mc.novel_total),
                func.sum(mc.novel_negative),
                func.sum(case((mc.total > 0, 1), else_=0)),
                func.sum(mc.total),
                func.sum(mc.negative),
            )
            .where(and_(mc.minute >= from_minute(start), mc.minute < from_minute(end), mc.total > 0))
            .group_by(mc.key_kind, mc.key_value, literal_column("bucket"))
        )
        rows = self.conn.execute(q).fetchall()
        return rows_from_records(((r[0], r[1]), *r[2:]) for r in rows)
