"""The console script's entry point (`run`, named in pyproject.toml) and `main`, which turns
every error into an exit code: errors the user can fix (`CcspecError`) print a message and
exit with their code; anything else is a bug: exit 3 with a short message and the path of a
file holding the traceback (`--debug` shows it)."""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import NoReturn

import click

from ccspec import __version__
from ccspec.cli.group import cli
from ccspec.cli.startup import skip_pydantic_plugin_discovery

__all__ = ["EXIT_INTERNAL", "detailed_exitcode", "main", "pending_changes", "run"]


EXIT_INTERNAL = 3


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the console script and `python -m ccspec`. Under `plan
    --detailed-exitcode`, Terraform's contract: every error exits 1, so that 2 means only
    "changes pending" (which the command says with `click.exceptions.Exit(2)`)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        _main(args)
    except SystemExit as exc:
        code = exc.code
        if detailed_exitcode(args) and code not in (0, None) and not isinstance(exc, _Pending):
            code = 1
        sys.exit(code)


class _Pending(SystemExit):
    """`plan --detailed-exitcode` found something to run: exit 2, not an error."""


def pending_changes() -> NoReturn:
    """Exit 2 for `plan --detailed-exitcode`: something would run."""
    raise _Pending(2)


def detailed_exitcode(args: list[str]) -> bool:
    """Whether the command line is `plan ... --detailed-exitcode` (looked at before click
    parses it, so that a usage error exits 1 as well)."""
    words = args[: args.index("--")] if "--" in args else args
    command = next((w for w in words if not w.startswith("-")), None)
    return command == "plan" and "--detailed-exitcode" in words


def _main(args: list[str]) -> NoReturn:
    from ccspec.errors import CcspecError

    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="ccspec", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code not in (0, 1) else exc.exit_code)
    except CcspecError as exc:
        click.echo(f"ccspec: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except OSError as exc:
        # a full or read-only disk under a file ccspec writes; anything else is a bug
        from ccspec.state.unwritable import for_file

        error = for_file(exc)
        if error is None:
            _internal_error(exc, debug)
        click.echo(f"ccspec: {error}", err=True)
        sys.exit(error.exit_code)
    except Exception as exc:  # a bug: keep the traceback, but not on the user's screen
        _internal_error(exc, debug)
    sys.exit(0)


def run() -> NoReturn:
    """The console script and `python -m ccspec`: `main`, then an exit that skips tearing the
    interpreter down. Freeing every object of a large run one by one (a garbage collection,
    then every module's objects) is slow (bench/README.md) and changes nothing a user sees:
    output is flushed and atexit handlers run first, and where a thread that is not a
    daemon still runs, the usual exit waits for it as always."""
    skip_pydantic_plugin_discovery()
    # Start-up (imports, loading a spec, planning) makes hundreds of thousands of objects and
    # no garbage, so the cyclic collector's scans of them are wasted time. Commands that run
    # for long turn it on again (`collect_again`; apply for its run).
    gc.disable()
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    import atexit
    import threading

    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        sys.exit(code)  # the usual exit: it waits for them, then runs the atexit handlers
    atexit._run_exitfuncs()
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            code = code or 1
    os._exit(code or 0)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _internal_error(exc: BaseException, debug: bool) -> NoReturn:
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if debug:
        sys.stderr.write(text)
        sys.exit(EXIT_INTERNAL)
    folder = os.environ.get("CCSPEC_CRASH_DIR") or tempfile.gettempdir()
    path = os.path.join(folder, f"ccspec-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt")
    where = path
    try:
        # 0600: a message may quote a secret
        with open(path, "w", encoding="utf-8", opener=_private) as fh:
            fh.write(f"ccspec {__version__}, argv: {sys.argv!r}\n{text}")
    except OSError:
        where = "(could not write it; run again with --debug)"
    click.echo(
        f"ccspec: internal error ({type(exc).__name__}: {exc}); this is a bug in ccspec.\n"
        f"The full traceback is in {where}; please include it when you report the bug.",
        err=True,
    )
    sys.exit(EXIT_INTERNAL)
