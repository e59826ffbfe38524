"""The `finsent` command line: one click group, commands grouped by what they touch."""
from monitor.cli.group import main

__all__ = ["main"]
