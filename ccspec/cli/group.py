"""The `ccspec` click group, and what the commands share: the PATHS/--var/--state options
and loading the specs they name.

Every `cmd_*` module registers its commands on `cli`; `ccspec.cli` imports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from ccspec import __version__

if TYPE_CHECKING:  # imported inside the commands: `ccspec --help` stays fast
    from ccspec.spec.resolved import ResolvedWorkflow

__all__ = ["cli", "common_options", "load_workflows"]

Command = TypeVar("Command", bound=Callable[..., None])


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="ccspec")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Declarative workflow specs, run where they belong: this machine, ssh hosts, Slurm.

    \b
    ccspec validate specs/      check specs (editor, pre-commit, CI)
    ccspec plan specs/          what would run, and why
    ccspec apply specs/         run what is new, changed or failed
    ccspec status specs/        recorded state of every job
    ccspec report WF -o t.html  timeline and resource usage of a run
    ccspec schema               print the JSON Schema of the spec language
    ccspec init                 start a repository with a spec and the schema
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def common_options(f: Command) -> Command:
    """PATHS, --var and --state, as every command that reads specs takes them."""
    f = click.option(
        "--state",
        "state_opt",
        metavar="DIR",
        help="State folder (default .ccspec, or $CCSPEC_STATE).",
    )(f)
    f = click.option(
        "--var",
        "var_pairs",
        multiple=True,
        metavar="NAME=VALUE",
        help="Override a variable (repeatable).",
    )(f)
    return click.argument("paths", nargs=-1, required=True, type=click.Path())(f)


def load_workflows(
    paths: tuple[str, ...], var_pairs: tuple[str, ...], *, record_invalid: bool = False
) -> list[ResolvedWorkflow]:
    """Resolved workflows, or an error listing every problem. With `record_invalid` (apply),
    an invalid spec's status file gets its errors, as the reconciler would write them."""
    from ccspec.errors import SpecInvalid
    from ccspec.runner import load_specs
    from ccspec.spec.validate import parse_overrides

    reports, problems = load_specs(paths, parse_overrides(var_pairs), record_invalid=record_invalid)
    if problems:
        raise SpecInvalid(problems)  # exit 2; nothing is launched
    # one without has a problem above
    return [r.workflow for r in reports if r.workflow is not None]
