"""The `ccspec` command line. Each command is small: parse options, call the library, print.

Heavy modules are imported inside the commands, so `ccspec --help` stays fast. Errors the
user can fix (`CcspecError`) print a message and exit with their code; anything else is a bug:
exit 3 with a short message and the path of a file holding the traceback (`--debug` shows it).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from typing import NoReturn

import click

from ccspec import __version__

__all__ = ["cli", "main"]

EXIT_INTERNAL = 3


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="ccspec")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Declarative workflow specs, run where they belong: this machine, ssh hosts, Slurm.

    \b
    ccspec validate specs/      check specs (editor, pre-commit, CI)
    ccspec schema               print the JSON Schema of the spec language
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", show_default=True,
              help="text for people, json for tools, github for GitHub Actions annotations.")
@click.option("--var", "var_pairs", multiple=True, metavar="NAME=VALUE", help="Override a variable (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Print problems only, no summary.")
def validate(paths: tuple[str, ...], fmt: str, var_pairs: tuple[str, ...], quiet: bool) -> None:
    """Check spec files and folders; exit 0 when all are valid, 1 otherwise."""
    from ccspec.formats import format_report, summary
    from ccspec.spec.validate import parse_overrides, validate_paths

    reports = validate_paths(paths, parse_overrides(var_pairs))
    diagnostics = [d for r in reports for d in r.diagnostics]
    files = [r.display for r in reports]
    out = format_report(diagnostics, files, fmt)
    if out:
        click.echo(out)
    if fmt == "text" and not quiet:
        click.echo(summary(diagnostics, files), err=bool(diagnostics))
    sys.exit(1 if diagnostics else 0)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the spec language (what editors validate against)."""
    from ccspec.schema import schema_text

    click.echo(schema_text(), nl=False)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the console script and `python -m ccspec`."""
    from ccspec.errors import CcspecError

    args = sys.argv[1:] if argv is None else argv
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
    except Exception as exc:  # a bug: keep the traceback, but not on the user's screen
        _internal_error(exc, debug)
    sys.exit(0)


def _internal_error(exc: BaseException, debug: bool) -> NoReturn:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if debug:
        sys.stderr.write(text)
        sys.exit(EXIT_INTERNAL)
    folder = os.environ.get("CCSPEC_CRASH_DIR") or tempfile.gettempdir()
    path = os.path.join(folder, f"ccspec-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt")
    where = path
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"ccspec {__version__}, argv: {sys.argv!r}\n{text}")
    except OSError:
        where = "(could not write it; run again with --debug)"
    click.echo(f"ccspec: internal error ({type(exc).__name__}: {exc}); this is a bug in ccspec.\n"
               f"The full traceback is in {where}; please include it when you report the bug.", err=True)
    sys.exit(EXIT_INTERNAL)


