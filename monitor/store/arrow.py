"""Columnar reads for the few queries that return hundreds of thousands of rows.

A detector starting cold reads a week of hour blocks and a day of minute buckets for
every key: on a desk with 10,000 companies that is about 900,000 rows, and turning them
into Python tuples (then numpy arrays) costs more than PostgreSQL takes to find them. An
ADBC driver (Apache Arrow Database Connectivity, `adbc-driver-postgresql`) hands the rows
over as Arrow columns instead, with no Python object per row.

The read goes through its own connection (one per tick), so it sees what is committed: the
detector's counts are written by other transactions before a tick reads them. Where no
columnar read is possible or safe (SQLite, see `ArrowReader.for_url`; a driver that is
not installed) `ArrowReader.for_url` gives None and the caller keeps its row-by-row path;
a failed read logs once and gives None too. Either path returns the same table.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import URL, Dialect

log = logging.getLogger(__name__)

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(what: str, exc: BaseException) -> None:
    with _warned_lock:
        if what in _warned:
            return
        _warned.add(what)
    log.warning("columnar read unavailable (%s: %s); reading rows one by one instead", what, exc)


class ArrowReader:
    """Runs SQLAlchemy `select`s through ADBC and returns `pyarrow.Table`s. The connection
    opens at the first read and stays open until `close` (a tick's reads share one)."""

    def __init__(self, kind: str, target: str, dialect: Dialect) -> None:
        self.kind = kind  # "postgresql"
        self.target = target  # a libpq URI
        self.dialect = dialect
        self._conn: Any = None

    @classmethod
    def for_url(cls, url: URL, dialect: Dialect) -> ArrowReader | None:
        """A reader for this database, or None where a columnar read is not safe or possible.

        SQLite is never read this way: the ADBC driver carries its own copy of the SQLite
        library, and two copies in one process undo each other's file locks (closing a
        file releases every POSIX lock the process holds on it), which showed as "disk
        I/O error" and stale reads in our tests.
        """
        if url.get_backend_name() != "postgresql":
            return None
        try:
            import adbc_driver_postgresql.dbapi  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError as exc:
            _warn_once("adbc driver for postgresql", exc)
            return None
        return cls("postgresql", url.set(drivername="postgresql").render_as_string(hide_password=False), dialect)

    def read(self, query: Select[Any]) -> Any | None:
        """The query's rows as a `pyarrow.Table`, or None if the columnar read failed.

        The query is rendered with its values inline (the detector's bounds are integers
        and timestamps the dialect renders itself), so no driver-specific parameter style
        is needed.
        """
        sql = str(query.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))
        try:
            if self._conn is None:
                import adbc_driver_postgresql.dbapi as pg_adbc

                self._conn = pg_adbc.connect(self.target)
            with self._conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table()
        except Exception as exc:  # noqa: BLE001 - any driver failure falls back to the row path
            _warn_once(f"{self.kind} read", exc)
            self.close()
            return None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                log.debug("columnar reader: close failed", exc_info=True)
