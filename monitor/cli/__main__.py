"""`python -m monitor.cli ...`: the same as the `finsent` command."""

from monitor.cli import main

main()
