"""Bring a database's schema up to date with the project's Alembic migrations.

Only `finsent migrate` and the daemon call `upgrade`; every other command calls
`require_current`, which changes nothing (a read-only database user can run them) and
says what to do when the schema is behind.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from monitor.store.schema import make_engine

log = logging.getLogger(__name__)

_SCRIPTS = Path(__file__).with_name("migrations")
MIGRATE_LOCK_KEY = 0x6D696772617465  # "migrate"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class SchemaNotCurrent(RuntimeError):
    """The database's schema is not the one this finsent was built for."""


def require_current(url: str, engine: Engine) -> None:
    """Raise `SchemaNotCurrent` unless the database is at the head revision; migrates nothing."""
    from monitor.redact import redact_url

    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    where = f"database {redact_url(url)}"
    known = {r.revision for r in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaNotCurrent(
            f"{where} has schema revision {current}, newer than this finsent knows ({head}); upgrade finsent"
        )
    raise SchemaNotCurrent(
        f"{where} schema is behind (at {current or 'no schema'}, this finsent needs {head}); "
        "run `finsent migrate` (or start `finsent run`, which migrates) with a user that may change the schema"
    )


def upgrade(url: str, engine: Engine | None = None) -> str:
    """Upgrade to head; returns the revision the database is at afterwards."""
    own = engine is None
    engine = engine or make_engine(url)
    try:
        cfg = alembic_config(url)
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Daemons starting together on a fresh database would each create the
                # schema; the second would fail on a duplicate table. One at a time: the
                # others wait here, then find the schema at head and do nothing.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        rev = current_revision(engine) or ""
        log.info("database schema at revision %s", rev)
        return rev
    finally:
        if own:
            engine.dispose()
