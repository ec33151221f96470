"""`ccspec watch`: the reconciler (`ccspec.reconcile`) on the command line, alone or beside
the status server (`--serve`)."""

from __future__ import annotations

import os

import click

from ccspec.cli.cmd_serve import server_app
from ccspec.cli.group import cli, common_options
from ccspec.cli.startup import collect_again

__all__ = ["watch"]


@cli.command()
@common_options
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
        app = server_app(host, port, state_opt, folder, allow_write, None, "1M")
        app.state.metrics.reconcile_errors = reconciler.pass_errors  # ccspec_reconcile_errors_total
        app.state.metrics.reconcile = reconciler.pass_snapshot  # passes, durations, queue
        app.state.metrics.slots = reconciler.slots.snapshot  # job slots per host
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
