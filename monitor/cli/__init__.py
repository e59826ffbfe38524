"""The `finsent` command line: one click group, commands grouped by what they touch."""

from monitor.cli import alerting, dlq, ops  # noqa: F401  (they register their commands on `main`)
from monitor.cli.group import main

__all__ = ["main"]
