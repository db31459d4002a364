"""The `hosig` command line: one subcommand module per engine area, all sharing `common`."""

from hosig.cli.main import main

__all__ = ["main"]
