"""The `ccspec` command line. Each command is small: parse options, call the library, print.

One module per group of commands (`cmd_spec`, `cmd_apply`, `cmd_watch`, `cmd_serve`,
`cmd_jobs`, `cmd_report`), each registering on the click group of `group`; `entry` holds the console
script's entry point and the translation of errors to exit codes; `startup` what the command
changes in the interpreter for a fast start. Heavy modules are imported inside the commands,
so `ccspec --help` stays fast.
"""

from __future__ import annotations

from ccspec.cli import (
    cmd_apply,
    cmd_import,
    cmd_jobs,
    cmd_report,
    cmd_serve,
    cmd_spec,
    cmd_watch,
)
from ccspec.cli.entry import EXIT_INTERNAL, main, run
from ccspec.cli.group import cli
from ccspec.cli.startup import collect_again, skip_pydantic_plugin_discovery

__all__ = [
    "EXIT_INTERNAL",
    "cli",
    "cmd_apply",
    "cmd_import",
    "cmd_jobs",
    "cmd_report",
    "cmd_serve",
    "cmd_spec",
    "cmd_watch",
    "collect_again",
    "main",
    "run",
    "skip_pydantic_plugin_discovery",
]
