"""The `ccspec` command line. Each command is small: parse options, call the library, print.

Heavy modules are imported inside the commands, so `ccspec --help` stays fast. Errors the
user can fix (`CcspecError`) print a message and exit with their code; anything else is a bug:
exit 3 with a short message and the path of a file holding the traceback (`--debug` shows it).
"""

from __future__ import annotations

import gc
import os
import sys
import time
import types
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ccspec import __version__

if TYPE_CHECKING:  # imported inside the commands: `ccspec --help` stays fast
    from ccspec.spec.resolved import ResolvedWorkflow
    from ccspec.state.store import StateStore

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
    ccspec plan specs/          what would run, and why
    ccspec apply specs/         run what is new, changed or failed
    ccspec status specs/        recorded state of every job
    ccspec schema               print the JSON Schema of the spec language
    ccspec init                 start a repository with a spec and the schema
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text for people, json for tools, github for GitHub Actions annotations.",
)
@click.option(
    "--var",
    "var_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a variable (repeatable).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print problems only, no summary.")
def validate(paths: tuple[str, ...], fmt: str, var_pairs: tuple[str, ...], quiet: bool) -> None:
    """Check spec files and folders; exit 0 when all are valid, 1 otherwise."""
    from ccspec.formats import format_report, summary
    from ccspec.redact import masked_diagnostics
    from ccspec.spec.validate import parse_overrides, validate_paths

    overrides = parse_overrides(var_pairs)
    reports = validate_paths(paths, overrides)
    diagnostics = [d for r in reports for d in masked_diagnostics(r, overrides)]
    files = [r.display for r in reports]
    out = format_report(diagnostics, files, fmt)
    if out:
        click.echo(out)
    if fmt == "text" and not quiet:
        click.echo(summary(diagnostics, files), err=bool(diagnostics))
    sys.exit(1 if any(d.severity == "error" for d in diagnostics) else 0)  # warnings alone: 0


def _common(f: Any) -> Any:
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


def _load(
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


@cli.command()
@_common
@click.option(
    "--replace", multiple=True, metavar="JOB", help="Plan JOB to run even if it is up to date."
)
@click.option("--target", multiple=True, metavar="JOB", help="Plan only JOB and the jobs it needs.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when something would run, 0 when nothing would.",
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

    workflows = _load(paths, var_pairs)
    store = StateStore(state_dir(state_opt))
    plans = [plan_workflow(w, store, replace=replace, targets=target).plan for w in workflows]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "workflows": [
                        {
                            "name": p.workflow,
                            "counts": p.counts(),
                            "jobs": [
                                {
                                    "id": j.id,
                                    "name": j.name,
                                    "action": j.action.value,
                                    "reason_code": j.reason.code,
                                    "reason": j.reason.detail,
                                    "host": j.host,
                                    "dynamic": j.dynamic,
                                    "fingerprint": j.fingerprint.value if j.fingerprint else None,
                                }
                                for j in p.jobs
                            ],
                        }
                        for p in plans
                    ]
                },
                indent=2,
            )
        )
    else:
        for p in plans:
            counts = p.counts()
            summary = ", ".join(f"{n} {a.replace('_', ' ')}" for a, n in counts.items())
            click.echo(f"{p.workflow}: {summary}")
            for j in p.jobs:
                click.echo(f"  {j.line()}")
    if detailed_exitcode and not all(p.is_empty for p in plans):
        sys.exit(2)


@cli.command()
@_common
@click.option(
    "-j",
    "--jobs",
    "jobs_n",
    type=click.IntRange(min=1),
    default=None,
    help="Jobs at once (default: CPU count).",
)
@click.option("--replace", multiple=True, metavar="JOB", help="Run JOB even if it is up to date.")
@click.option("--target", multiple=True, metavar="JOB", help="Run only JOB and the jobs it needs.")
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
    from ccspec.console import make_reporter
    from ccspec.runner import apply_workflow, leased, plan_workflow, state_dir
    from ccspec.state.store import LeaseLost, StateStore

    workflows = _load(paths, var_pairs, record_invalid=True)
    folder = state_dir(state_opt)
    store = StateStore(folder)
    failed = interrupted = False
    lost: LeaseLost | None = None
    for workflow in workflows:
        with leased(
            store, workflow.name, wait=wait, waiting=lambda line: click.echo(line, err=True)
        ) as token:
            # under the lease: still to do
            planned = plan_workflow(workflow, store, replace=replace, targets=target)
            with make_reporter(workflow.name, planned.plan) as reporter:
                outcome = apply_workflow(
                    planned,
                    store,
                    folder=folder,
                    jobs=jobs_n or os.cpu_count() or 1,
                    reporter=reporter,
                    lease=token,
                )
        failed = failed or not outcome.ok
        interrupted = interrupted or outcome.interrupted
        lost = lost or outcome.lost
        if outcome.interrupted:
            break
    if lost is not None and not interrupted:
        raise lost  # exit 4, naming the apply that took the workflow over
    sys.exit(130 if interrupted else 1 if failed else 0)


@cli.command()
@_common
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(
    paths: tuple[str, ...], var_pairs: tuple[str, ...], state_opt: str | None, as_json: bool
) -> None:
    """Show the recorded state of the workflows' jobs."""
    import json

    from ccspec.errors import StateFolderUnwritable
    from ccspec.redact import redactor_for
    from ccspec.report.status import status_document
    from ccspec.runner import job_statuses, settle, state_dir
    from ccspec.state.store import StateStore

    workflows = _load(paths, var_pairs)
    store = StateStore(state_dir(state_opt))
    redactors = {
        w.name: redactor_for(w.vars, w.spec.secrets, environ=os.environ) for w in workflows
    }
    for w in workflows:
        try:
            # jobs that finished while no runner watched them
            settle(store, w.name, w.hosts, redactor=redactors[w.name])
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
            )


@cli.command()
@_common
@click.option(
    "-j",
    "--jobs",
    "jobs_n",
    type=click.IntRange(min=1),
    default=None,
    help="Jobs at once on this machine (default: CPUs).",
)
@click.option(
    "--interval",
    default="30s",
    show_default=True,
    help="Resync period: re-plan every spec, follow running jobs.",
)
@click.option("--prune", is_flag=True, help="Cancel the running jobs of a spec that is deleted.")
@click.option(
    "--serve",
    "serve_too",
    is_flag=True,
    help="Also serve the status API and dashboard (as `ccspec serve`).",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="With --serve: address to listen on."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="With --serve: port.",
)
@click.option(
    "--allow-write",
    is_flag=True,
    help="With --serve: allow uploads and spec edits (with a token); "
    "the reconciler runs what they change.",
)
def watch(
    paths: tuple[str, ...],
    var_pairs: tuple[str, ...],
    state_opt: str | None,
    jobs_n: int | None,
    interval: str,
    prune: bool,
    serve_too: bool,
    host: str,
    port: int,
    allow_write: bool,
) -> None:
    """Keep the workflows in PATHS converged: run what a saved spec adds or changes, as it is saved.

    Ctrl-C stops watching; running jobs go on, and the next watch or apply re-attaches."""
    import signal
    from pathlib import Path

    from ccspec.errors import UsageError
    from ccspec.reconcile import Reconciler
    from ccspec.runner import state_dir
    from ccspec.spec.units import parse_duration
    from ccspec.spec.validate import parse_overrides

    collect_again()

    try:
        period = parse_duration(interval)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--interval {interval!r}: {exc}") from exc
    for raw in paths:
        if not Path(raw).exists():
            raise UsageError(f"no such file or folder: {raw}")

    def say(line: str) -> None:
        click.echo(line)

    reconciler = Reconciler(
        [Path(p) for p in paths],
        state=state_dir(state_opt),
        jobs=jobs_n or os.cpu_count() or 1,
        interval=period,
        prune=prune,
        overrides=parse_overrides(var_pairs),
        say=say,
    )
    click.echo(f"watching {', '.join(paths)} (resync every {period:g}s; Ctrl-C stops)")
    # the server owns the main thread (and its signals); the reconciler runs beside it
    if serve_too:
        import threading

        from ccspec.server import run

        folder = next((p for p in paths if Path(p).is_dir()), str(Path(paths[0]).parent))
        app = _server_app(host, port, state_opt, folder, allow_write, None, "1M")
        app.state.metrics.reconcile_errors = reconciler.pass_errors  # ccspec_reconcile_errors_total
        thread = threading.Thread(target=reconciler.run, name="reconciler", daemon=True)
        thread.start()

        def stop(*_: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)  # the server re-raises the signal that stopped it
        try:
            run(app, host, port)
        except KeyboardInterrupt:
            pass
        finally:
            reconciler.stop()
            thread.join(timeout=60)
    else:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: reconciler.stop())
        reconciler.run()
    click.echo("stopped watching; running jobs go on (the next watch or apply re-attaches)")


@cli.command()
@click.argument("workflow")
@click.argument("job")
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
@click.argument("workflow")
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
    [resolved] = _load((str(spec),), ())
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
@click.argument("workflow")
@click.argument("jobs_", metavar="[JOB]...", nargs=-1)
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


_STARTER = """# yaml-language-server: $schema=../schemas/workflow.schema.json
version: 1
name: {name}
description: A starting point; `ccspec validate specs/`, then `ccspec apply specs/`
vars:
  greeting: hello
jobs:
  hello:
    run: |
      echo {{{{ vars.greeting | q }}}} > "$CCSPEC_RUN_DIR/greeting.txt"
      echo "# ccspec output file=$CCSPEC_RUN_DIR/greeting.txt"
  shout:
    run: tr a-z A-Z < {{{{ jobs.hello.outputs.file | q }}}}
    needs: [hello]
"""


@cli.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False))
@click.option("--name", default="hello", show_default=True, help="Name of the starter workflow.")
def init(folder: str, name: str) -> None:
    """Start a repository: specs/NAME.yaml and the JSON Schema editors validate it with."""
    import re
    from pathlib import Path

    from ccspec.errors import UsageError
    from ccspec.schema import schema_text
    from ccspec.spec.models import NAME_PATTERN, NAME_RULE

    if not re.match(NAME_PATTERN, name):
        raise UsageError(f"--name {name!r}: {NAME_RULE}")
    root = Path(folder)
    spec = root / "specs" / f"{name}.yaml"
    if spec.exists():
        raise UsageError(f"{spec} exists already; nothing was written")
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(_STARTER.format(name=name))
    schema_file = root / "schemas" / "workflow.schema.json"
    if not schema_file.exists():
        schema_file.parent.mkdir(parents=True, exist_ok=True)
        schema_file.write_text(schema_text())
    click.echo(
        f"wrote {spec} and {schema_file}; next: ccspec validate {spec.parent} && ccspec apply {spec.parent}"
    )


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but this machine's loopback wants a token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--state", "state_opt", metavar="DIR", help="State folder (default .ccspec, or $CCSPEC_STATE)."
)
@click.option(
    "--specs",
    "specs_dir",
    default="specs",
    show_default=True,
    metavar="DIR",
    help="Folder of spec files: where uploads go and edits happen.",
)
@click.option(
    "--allow-write",
    is_flag=True,
    help="Allow uploading workflows and editing specs (with the token; one is made up and printed if none is set).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="File holding the bearer token (default: $CCSPEC_TOKEN). With a token, reads want it too.",
)
@click.option(
    "--max-upload",
    default="1M",
    show_default=True,
    metavar="SIZE",
    help="Largest request body: 512K, 2M...",
)
@click.option("--access-log", is_flag=True, help="Print a line per request.")
def serve(
    host: str,
    port: int,
    state_opt: str | None,
    specs_dir: str,
    allow_write: bool,
    token_file: str | None,
    max_upload: str,
    access_log: bool,
) -> None:
    """Serve the status API (OpenAPI GUI at /docs), the live dashboard (/) and server-sent events."""
    from ccspec.server import run

    collect_again()

    app = _server_app(host, port, state_opt, specs_dir, allow_write, token_file, max_upload)
    run(app, host, port, access_log=access_log)


def _server_app(
    host: str,
    port: int,
    state_opt: str | None,
    specs_dir: str,
    allow_write: bool,
    token_file: str | None,
    max_upload: str,
) -> Any:
    """The API app for `serve` and `watch --serve`, with its warnings and token printed."""
    import ipaddress
    import re
    from pathlib import Path

    from ccspec.errors import UsageError
    from ccspec.runner import state_dir

    token = (
        Path(token_file).read_text().strip()
        if token_file
        else os.environ.get("CCSPEC_TOKEN", "").strip()
    ) or None
    made_up = allow_write and token is None
    if made_up:
        from ccspec.server.auth import new_token

        token = new_token()
    size = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(i?[bB])?\s*", max_upload)
    if size is None or int(size.group(1)) == 0:
        raise UsageError(
            f"--max-upload {max_upload!r}: expected a size in bytes, or with K, M or G"
        )
    limit = int(size.group(1)) * 1024 ** " KMG".index((size.group(2) or " ").upper())
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and token is None:
        for line in (
            "",
            "!" * 78,
            f"WARNING: ccspec serve listens on {host}:{port} WITHOUT A TOKEN.",
            "Anyone who can reach this port can read every workflow, job output and log.",
            "Set CCSPEC_TOKEN (or --token-file) to require a bearer token, or serve on 127.0.0.1.",
            "!" * 78,
            "",
        ):
            click.secho(line, fg="red", bold=True, err=True)

    from ccspec.server import ServeConfig, create_app

    config = ServeConfig(
        state=state_dir(state_opt),
        specs=Path(specs_dir),
        token=token,
        allow_write=allow_write,
        max_upload=limit,
        environ=dict(os.environ),
    )
    app = create_app(config)
    shown = f"[{host}]" if ":" in host else host
    mode = "read-write" if allow_write else "read-only"
    click.echo(
        f"ccspec serve: http://{shown}:{port}/ (dashboard), /docs (API), {mode}; state {config.state}, "
        f"specs {config.specs}/",
        err=True,
    )
    if made_up:
        click.echo(
            f"token (send `Authorization: Bearer TOKEN`; set CCSPEC_TOKEN to choose it): {token}\n"
            f"dashboard: http://{shown}:{port}/?token={token}",
            err=True,
        )
    return app


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
    interpreter down. Freeing every object of a large run one by one takes 60-70 ms here
    (a garbage collection, then every module's objects) and changes nothing a user sees:
    output is flushed and atexit handlers run first, and where a thread that is not a
    daemon still runs, the usual exit waits for it as always."""
    skip_pydantic_plugin_discovery()
    # Start-up (imports, loading a spec, planning) makes hundreds of thousands of objects and
    # no garbage; the cyclic collector scanning them took ~60 ms of each command's imports
    # and ~20 ms of a 1,000-job spec's load here. Commands that run for long turn it on again
    # (`collect_again`; apply for its run).
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


_PLUGIN_LOADER = "pydantic.plugin._loader"


def collect_again() -> None:
    """The cyclic garbage collector back on, for a command that runs for long."""
    gc.enable()


def skip_pydantic_plugin_discovery() -> None:
    """In the ccspec command only (never on `import ccspec`): pydantic looks for plugins in
    the entry points of every installed distribution when it builds its first validator,
    and importing importlib.metadata for that and scanning site-packages takes about 30 ms
    of each command here. The command's only models are ccspec's own, which use no plugin,
    so pydantic finds a loader that has none. Setting PYDANTIC_DISABLE_PLUGINS (pydantic's
    own switch) leaves pydantic as it is; so does any name of the loader other than
    `get_plugins`, which loads the real module."""
    if _PLUGIN_LOADER in sys.modules or "PYDANTIC_DISABLE_PLUGINS" in os.environ:
        return
    loader = types.ModuleType(_PLUGIN_LOADER, "ccspec: no pydantic plugins in the ccspec command")
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]
    loader.__dict__["__getattr__"] = _real_plugin_loader  # PEP 562: the module's own fallback
    sys.modules[_PLUGIN_LOADER] = loader


def _real_plugin_loader(name: str) -> Any:
    if name.startswith("__"):  # what the import system asks of any module (`__path__`...)
        raise AttributeError(name)
    import importlib

    sys.modules.pop(_PLUGIN_LOADER, None)
    return getattr(importlib.import_module(_PLUGIN_LOADER), name)


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
