"""Commands on the recorded jobs of an applied workflow, named by WORKFLOW: `logs`, `graph`,
`cancel`."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from ccspec.cli.complete import complete_job, complete_workflow, complete_workflow_or_file
from ccspec.cli.group import cli, load_workflows
from ccspec.cli.startup import collect_again

if TYPE_CHECKING:  # imported inside the commands: `ccspec --help` stays fast
    from ccspec.state.store import StateStore

__all__ = ["cancel", "graph", "logs"]


@cli.command()
@click.argument("workflow", shell_complete=complete_workflow)
@click.argument("job", shell_complete=complete_job)
@click.option("--attempt", type=int, default=None, help="Attempt number (default: the last).")
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing as the log grows, until the job ends."
)
@click.option("--state", "state_opt", metavar="DIR", help="State folder.")
def logs(workflow: str, job: str, attempt: int | None, follow: bool, state_opt: str | None) -> None:
    """Print a job's log."""
    if follow:
        collect_again()

    from ccspec.errors import UsageError
    from ccspec.runner import state_dir
    from ccspec.state.store import StateStore
    from ccspec.states import FINAL

    store = StateStore(state_dir(state_opt))
    attempts = store.attempts(workflow, job)
    if not attempts:
        raise UsageError(f"no attempts recorded for job {job!r} of workflow {workflow!r}")
    chosen = (
        attempts[-1]
        if attempt is None
        else next((a for a in attempts if a.number == attempt), None)
    )
    if chosen is None or not chosen.log_path:
        raise UsageError(f"job {job!r} has no attempt {attempt}; it has {len(attempts)}")
    from ccspec.logfile import copy_log, log_redactor

    # streamed in chunks, secrets masked (also across chunk edges), however long the log
    ended = (lambda: store.attempt(chosen.id).state in FINAL) if follow else None
    copy_log(
        chosen.log_path, sys.stdout.buffer, log_redactor(store.spec_path(workflow)), ended=ended
    )


@cli.command()
@click.argument("workflow", shell_complete=complete_workflow_or_file)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    default=None,
    help="FILE.svg, FILE.dot or FILE.png (default: DOT to stdout).",
)
@click.option("--state", "state_opt", metavar="DIR", help="State folder.")
def graph(workflow: str, output: str | None, state_opt: str | None) -> None:
    """Draw a workflow's DAG (a spec file, or the name of an applied workflow)."""
    from pathlib import Path

    from ccspec.errors import UsageError
    from ccspec.report.graph import GraphNode, dot_source, render
    from ccspec.runner import state_dir
    from ccspec.state.store import StateStore

    store = StateStore(state_dir(state_opt))
    spec = Path(workflow)
    if not spec.is_file():
        recorded = store.spec_path(workflow)
        if recorded is None:
            raise UsageError(f"{workflow!r} is neither a spec file nor an applied workflow")
        spec = Path(recorded)
    [resolved] = load_workflows((str(spec),), ())
    records = store.recorded_jobs(resolved.name)
    nodes = [
        GraphNode(
            j.id,
            records[j.id].state.value if j.id in records else "planned",
            j.needs,
            None,
            None,
            j.host,
        )
        for j in resolved.jobs.values()
    ]
    source = dot_source(resolved.name, nodes)
    if output is None or output.endswith(".dot"):
        if output is None:
            click.echo(source)
        else:
            Path(output).write_text(source)
        return
    fmt = Path(output).suffix.lstrip(".") or "svg"
    Path(output).write_bytes(render(source, fmt))


@cli.command()
@click.argument("workflow", shell_complete=complete_workflow)
@click.argument("jobs_", metavar="[JOB]...", nargs=-1, shell_complete=complete_job)
@click.option("--state", "state_opt", metavar="DIR", help="State folder.")
def cancel(workflow: str, jobs_: tuple[str, ...], state_opt: str | None) -> None:
    """Cancel a workflow's running jobs (all, or the JOBs named)."""
    from ccspec.runner import cancel_attempts, spec_hosts, state_dir
    from ccspec.state.store import StateStore

    store = StateStore(state_dir(state_opt))
    holder = store.lease_holder(workflow)
    if holder is not None and not jobs_:
        import signal
        import socket

        pid, host, _ = holder
        if host == socket.gethostname():
            os.kill(pid, signal.SIGTERM)
            click.echo(f"asked the apply running as pid {pid} to cancel {workflow!r}")
            return
    named = _named_jobs(store, workflow, jobs_)
    chosen = [a for a in store.active_attempts(workflow) if not jobs_ or a.job in named]
    for job_id in sorted(named.keys() - {a.job for a in chosen}):
        click.echo(f"{job_id} of {workflow!r} is not running ({named[job_id]}); nothing to cancel")
    problems = cancel_attempts(
        store, spec_hosts(store, workflow), chosen, "cancelled by `ccspec cancel`"
    )
    for attempt in chosen:
        if attempt.id in problems:
            click.echo(
                f"could not cancel {attempt.job} on {attempt.host}: {problems[attempt.id]}",
                err=True,
            )
    count = len(chosen) - len(problems)
    click.echo(f"cancelled {count} job(s) of {workflow!r}")
    if problems:
        sys.exit(1)


def _named_jobs(store: StateStore, workflow: str, names: tuple[str, ...]) -> dict[str, str]:
    """The recorded jobs that `names` (ids, or the name of a matrix's jobs) stand for, with
    their states; a workflow or job never recorded is a usage error (exit 2)."""
    from ccspec.errors import UsageError
    from ccspec.spec.resolve import suggest

    workflows = store.workflows()
    if workflow not in workflows:
        raise UsageError(
            f"no workflow {workflow!r} was ever applied with this state folder{suggest(workflow, workflows)}"
        )
    recorded = store.recorded_jobs(workflow)
    out: dict[str, str] = {}
    for name in names:
        found = {i: r.state.value for i, r in recorded.items() if name in (i, r.name)}
        if not found:
            known = sorted({*recorded, *(r.name for r in recorded.values())})
            raise UsageError(f"no job {name!r} in workflow {workflow!r}{suggest(name, known)}")
        out.update(found)
    return out
