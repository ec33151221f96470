"""`ccspec report WF -o timeline.html`: a run's timeline (one bar per attempt, coloured by state
and host) with every attempt's resource usage, as one self-contained HTML file, after
Nextflow's report and timeline. WF is a spec file or the name of an applied workflow, as for
`ccspec graph`."""

from __future__ import annotations

import click

from ccspec.cli.complete import complete_workflow_or_file
from ccspec.cli.group import cli

__all__ = ["report"]


@cli.command()
@click.argument("workflow", shell_complete=complete_workflow_or_file)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="FILE.html to write (default: the HTML to stdout).",
)
@click.option("--state", "state_opt", metavar="DIR", help="State folder.")
def report(workflow: str, output: str | None, state_opt: str | None) -> None:
    """Write a workflow's timeline and resource usage as HTML (a spec file, or the name of an
    applied workflow)."""
    from pathlib import Path

    from ccspec.cli.group import load_workflows
    from ccspec.errors import CcspecError, UsageError
    from ccspec.report.timeline import bars_of, timeline_html
    from ccspec.runner import state_dir
    from ccspec.state.store import StateStore

    store = StateStore(state_dir(state_opt))
    try:
        if Path(workflow).is_file():
            [resolved] = load_workflows((workflow,), ())
            name = resolved.name
        elif store.spec_path(workflow) is not None:
            name = workflow
        else:
            raise UsageError(f"{workflow!r} is neither a spec file nor an applied workflow")
        bars = bars_of(store.attempts(name))
    finally:
        store.close()
    page = timeline_html(name, bars)
    if output is None:
        click.echo(page, nl=False)
        return
    try:
        Path(output).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CcspecError(f"cannot write {output}: {exc.strerror}; choose another -o FILE") from exc
    click.echo(f"{output}: the timeline of {name}, {len(bars)} attempts", err=True)
