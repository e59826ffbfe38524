"""Only `finsent migrate` and the daemon change the schema. Read-only commands (stats,
alerts list, silence list, ...) work with a read-only database user, and say clearly when
the schema is behind instead of migrating it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

COMMANDS = [["stats", "--json"], ["alerts", "list", "--json"], ["silence", "list", "--json"]]


def _finsent(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c))
def test_read_only_command_refuses_an_unmigrated_database_and_leaves_it_alone(tmp_path: Path, cmd: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    create_engine(url).connect().close()  # an empty database file
    r = _finsent(*cmd, "--db", url)
    assert r.returncode != 0
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "schema" in err[0] and "behind" in err[0] and "finsent migrate" in err[0], r.stderr
    assert inspect(create_engine(url)).get_table_names() == [], "a read-only command migrated the database"


def test_read_only_command_works_for_a_read_only_user_on_a_current_schema(pg_url: str) -> None:
    from sqlalchemy.engine import make_url

    from monitor.store.migrate import upgrade

    upgrade(pg_url)
    db = make_url(pg_url).database
    role = f"ro_{db}"[:60]
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        c.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))
    try:
        ro_url = make_url(pg_url).set(username=role).render_as_string(hide_password=False)
        for cmd in COMMANDS:
            r = _finsent(*cmd, "--db", ro_url)
            assert r.returncode == 0, (cmd, r.stderr)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP OWNED BY "{role}"'))
            c.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


@pytest.mark.timeout(120)
def test_daemons_migrating_a_fresh_database_at_once_do_not_collide(pg_url: str) -> None:
    """Three daemons starting together on an empty PostgreSQL database each migrate it."""
    from concurrent.futures import ThreadPoolExecutor

    from monitor.store.migrate import head_revision, upgrade

    with ThreadPoolExecutor(4) as pool:
        revs = list(pool.map(lambda _: upgrade(pg_url), range(4)))
    assert revs == [head_revision()] * 4
