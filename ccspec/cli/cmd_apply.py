"""Commands that converge a workflow once and report on it: `plan`, `apply`, `status`.

Each calls `ccspec.runner` on the specs `load_workflows` resolves and prints the outcome.
"""

from __future__ import annotations

import os
import sys
import time

import click

from ccspec.cli.complete import complete_spec_job
from ccspec.cli.entry import pending_changes
from ccspec.cli.group import cli, common_options, load_workflows
from ccspec.cli.plan_out import plan_document, plan_text

__all__ = ["apply", "plan", "status"]


@cli.command()
@common_options
@click.option(
    "--replace",
    multiple=True,
    metavar="JOB",
    help="Plan JOB to run even if it is up to date.",
    shell_complete=complete_spec_job,
)
@click.option(
    "--target",
    multiple=True,
    metavar="JOB",
    help="Plan only JOB and the jobs it needs.",
    shell_complete=complete_spec_job,
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when something would run, 0 when nothing would, 1 on any error.",
)
def plan(
    paths: tuple[str, ...],
    var_pairs: tuple[str, ...],
    state_opt: str | None,
    replace: tuple[str, ...],
    target: tuple[str, ...],
    as_json: bool,
    detailed_exitcode: bool,
) -> None:
    """Show what apply would run, and why."""
    import json

    from ccspec.runner import plan_workflow, state_dir
    from ccspec.state.store import StateStore

    workflows = load_workflows(paths, var_pairs)
    store = StateStore(state_dir(state_opt))
    plans = [plan_workflow(w, store, replace=replace, targets=target).plan for w in workflows]
    if as_json:
        click.echo(json.dumps({"workflows": [plan_document(p) for p in plans]}, indent=2))
    else:
        for p in plans:
            click.echo(plan_text(p))
    if detailed_exitcode and not all(p.is_empty for p in plans):
        pending_changes()  # exit 2; any error exits 1 (ccspec.cli.entry)


@cli.command()
@common_options
@click.option(
    "-j",
    "--jobs",
    "jobs_n",
    type=click.IntRange(min=1),
    default=None,
    help="Jobs at once (default: CPU count).",
)
@click.option(
    "--replace",
    multiple=True,
    metavar="JOB",
    help="Run JOB even if it is up to date.",
    shell_complete=complete_spec_job,
)
@click.option(
    "--target",
    multiple=True,
    metavar="JOB",
    help="Run only JOB and the jobs it needs.",
    shell_complete=complete_spec_job,
)
@click.option("--wait", is_flag=True, help="Wait for another apply of the same workflow to finish.")
def apply(
    paths: tuple[str, ...],
    var_pairs: tuple[str, ...],
    state_opt: str | None,
    jobs_n: int | None,
    replace: tuple[str, ...],
    target: tuple[str, ...],
    wait: bool,
) -> None:
    """Run what is new, changed or failed; exit 0 when every job succeeded or was up to date."""
    from ccspec.cli.apply_out import apply_summary
    from ccspec.console import make_reporter
    from ccspec.runner import apply_workflow, leased, plan_workflow, state_dir
    from ccspec.state.store import LeaseLost, StateStore

    workflows = load_workflows(paths, var_pairs, record_invalid=True)
    folder = state_dir(state_opt)
    jobs = jobs_n or os.cpu_count() or 1
    if len(workflows) > 1:  # at once, through one set of job slots (ccspec.cli.apply_many)
        from ccspec.cli.apply_many import apply_many

        sys.exit(
            apply_many(workflows, folder, jobs=jobs, replace=replace, target=target, wait=wait)
        )
    store = StateStore(folder)
    failed = interrupted = False
    lost: LeaseLost | None = None
    for workflow in workflows:
        with leased(
            store, workflow.name, wait=wait, waiting=lambda line: click.echo(line, err=True)
        ) as token:
            # under the lease: still to do
            planned = plan_workflow(workflow, store, replace=replace, targets=target)
            began = time.monotonic()
            with make_reporter(workflow.name, planned.plan) as reporter:
                outcome = apply_workflow(
                    planned,
                    store,
                    folder=folder,
                    jobs=jobs,
                    reporter=reporter,
                    lease=token,
                )
        click.echo(apply_summary(planned.plan, outcome, workflow.file, time.monotonic() - began))
        failed = failed or not outcome.ok
        interrupted = interrupted or outcome.interrupted
        lost = lost or outcome.lost
        if outcome.interrupted:
            break
    if lost is not None and not interrupted:
        raise lost  # exit 4, naming the apply that took the workflow over
    sys.exit(130 if interrupted else 1 if failed else 0)


@cli.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(
    paths: tuple[str, ...], var_pairs: tuple[str, ...], state_opt: str | None, as_json: bool
) -> None:
    """Show the recorded state of the workflows' jobs."""
    import json

    from ccspec.errors import StateFolderUnwritable
    from ccspec.redact import redactor_for
    from ccspec.report.status import status_document, usage_text
    from ccspec.runner import job_statuses, settle, state_dir
    from ccspec.state.store import StateStore

    workflows = load_workflows(paths, var_pairs)
    store = StateStore(state_dir(state_opt))
    redactors = {
        w.name: redactor_for(w.vars, w.spec.secrets, environ=os.environ) for w in workflows
    }
    for w in workflows:
        try:
            # jobs that finished while no runner watched them
            resources = {j.id: j.resources for j in w.jobs.values()}
            settle(store, w.name, w.hosts, redactor=redactors[w.name], resources=resources)
        except StateFolderUnwritable as exc:  # what is recorded can still be shown
            click.echo(f"ccspec: {exc}; showing the state as last recorded", err=True)
    # masked again as shown: a state folder an older ccspec wrote may hold secrets
    docs = [
        status_document(w.name, job_statuses(store, w.name), redact=redactors[w.name])
        for w in workflows
    ]
    if as_json:
        click.echo(json.dumps({"workflows": docs}, indent=2, default=str))
        return
    for doc in docs:
        click.echo(
            f"{doc['workflow']}: {doc['phase']} "
            + " ".join(f"{k}={v}" for k, v in doc["counts"].items())
        )
        for job_id, entry in doc["jobs"].items():
            progress = f" {entry['progress']:.0f}%" if "progress" in entry else ""
            reason = f" ({entry['reason']})" if "reason" in entry else ""
            click.echo(
                f"  {job_id:<30} {entry['state']:<10} attempt {entry.get('attempt', 0)}{progress}{reason}"
                + usage_text(entry)
            )
            if "usage_warning" in entry:
                click.echo(f"  {'':<30} warning: {entry['usage_warning']}")
