"""Copies of one story stored at the same moment by different workers (concurrent
transactions on PostgreSQL) yield exactly one original: the band lookup and insert of one
transaction must see the other's, not run beside it under READ COMMITTED."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from monitor.classify.base import KeywordTestDouble
from monitor.enrich.novelty import bands
from monitor.ingest.schemas import Document
from monitor.store.migrate import upgrade
from monitor.store.repository import Classified, recount, stored_counts, write_batch
from monitor.store.schema import documents, make_engine

T = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
HORIZON = timedelta(hours=6)
STORY = "Acme Corp shares plunge 12% after regulators open a fraud probe into its accounting"


def _item(doc_id: str, text: str, at: datetime) -> Classified:
    pred = KeywordTestDouble().classify([text])[0]
    return Classified(Document(doc_id, text, at), pred, ("ACME",), tuple(bands(text, 0.7)))


def test_concurrent_copies_on_two_workers_make_one_original(pg_url: str) -> None:
    upgrade(pg_url)
    e1, e2 = make_engine(pg_url), make_engine(pg_url)
    a = _item("copy-a", STORY, T)
    b = _item("copy-b", STORY + " - Reuters", T + timedelta(seconds=2))
    done = threading.Event()

    c1 = e1.connect()
    tx1 = c1.begin()
    write_batch(c1, [a], [], T, HORIZON)  # worker 1 is mid-transaction

    def worker2() -> None:
        with e2.begin() as c2:
            write_batch(c2, [b], [], T, HORIZON)
        done.set()

    t = threading.Thread(target=worker2)
    t.start()
    time.sleep(1.0)  # worker 2 does its lookup while worker 1 has not committed
    tx1.commit()
    c1.close()
    t.join(30)
    assert done.is_set()
    with e1.connect() as c:
        rows = dict(c.execute(select(documents.c.id, documents.c.duplicate_of)).all())
        counts_ok = stored_counts(c) == recount(c)
    e1.dispose()
    e2.dispose()
    originals = [k for k, v in rows.items() if v is None]
    print(f"\ntwo workers, one story: originals {originals}, copies {rows}")
    assert originals == ["copy-a"] and rows["copy-b"] == "copy-a"
    assert counts_ok
