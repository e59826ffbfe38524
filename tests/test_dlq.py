"""`finsent dlq list` and `finsent dlq replay`: dead letters are inspected by reason, topic
and time, and re-driven through the same batch pipeline once the cause is fixed;
re-driving twice changes nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from monitor.classify.base import KeywordTestDouble, Prediction
from monitor.cli import main
from monitor.config import Settings
from monitor.ingest.source import RawRecord
from monitor.store.migrate import upgrade
from monitor.store.repository import recount, stored_counts
from monitor.store.schema import documents, make_engine

REC_TIME = datetime(2024, 5, 6, 9, 30, 15, tzinfo=UTC)


class Buggy:
    """A classifier release with a bug: it fails on texts mentioning 'dividend'."""

    model_version = "buggy-1"

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        if any("dividend" in t for t in texts):
            raise ValueError("tokenizer bug")
        return KeywordTestDouble().classify(texts)


def _run(*args: str) -> str:
    r = CliRunner().invoke(main, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def test_dlq_list_and_idempotent_replay(tmp_path: Path) -> None:
    from monitor.app.wiring import build

    url = f"sqlite:///{tmp_path / 'dlq.db'}"
    upgrade(url)
    parts = build(Settings(database_url=url, publish_results=False))
    values = [
        {"text": "Acme raises its dividend by 10%", "source": "wire"},  # no published_at: the record's time
        {"text": "Globex beats estimates"},
        b"{not json",
    ]
    records = [
        RawRecord(v if isinstance(v, bytes) else json.dumps(v).encode(), "news", 1, 40 + i, REC_TIME)
        for i, v in enumerate(values)
    ]
    res = parts.processor(Buggy()).process(records, datetime(2024, 5, 6, 10, tzinfo=UTC))
    assert res.inserted == 1 and len(res.rejections) == 2

    listed = json.loads(_run("dlq", "list", "--json", "--db", url))
    assert sorted(d["offset"] for d in listed) == [40, 42]
    assert all(d["replayed_at"] is None and d["reason"] for d in listed)
    only = json.loads(_run("dlq", "list", "--json", "--reason", "classifier", "--db", url))
    assert [d["offset"] for d in only] == [40]
    assert json.loads(_run("dlq", "list", "--json", "--topic", "comments", "--db", url)) == []
    assert len(json.loads(_run("dlq", "list", "--json", "--since", "2024-05-06T09:00:00Z", "--db", url))) == 2

    # the fix is deployed (the test double has no such bug): re-drive the classifier's dead letters
    out = json.loads(_run("dlq", "replay", "--reason", "classifier", "--model", "test-double", "--json", "--db", url))
    assert out["selected"] == 1 and out["stored"] == 1 and out["still_rejected"] == 0, out
    again = json.loads(_run("dlq", "replay", "--reason", "classifier", "--model", "test-double", "--json", "--db", url))
    assert again["selected"] == 0 and again["stored"] == 0, again
    # everything still rejected stays, with its reason; a replay of it changes nothing
    rest = json.loads(_run("dlq", "replay", "--model", "test-double", "--json", "--db", url))
    assert rest["selected"] == 1 and rest["stored"] == 0 and rest["still_rejected"] == 1, rest

    eng = make_engine(url)
    with eng.connect() as c:
        assert int(c.execute(select(func.count()).select_from(documents)).scalar_one()) == 2
        row = c.execute(
            select(documents.c.published_at, documents.c.source).where(documents.c.text.like("%dividend%"))
        ).one()
        assert row.published_at == REC_TIME and row.source == "wire"  # decoded as the daemon would have
        assert stored_counts(c) == recount(c)
    eng.dispose()
    after = {d["offset"]: d for d in json.loads(_run("dlq", "list", "--json", "--all", "--db", url))}
    assert after[40]["replayed_at"] is not None and after[42]["replayed_at"] is None and after[42]["replays"] == 1
