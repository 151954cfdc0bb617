"""`python -m repro` runs the CLI."""

from repro.cli import main

main()
