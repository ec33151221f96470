"""`ccspec serve`: the status API and dashboard (`ccspec.server`). `server_app` builds the app
for it and for `ccspec watch --serve`, and prints its warnings and token."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from ccspec.cli.group import cli
from ccspec.cli.startup import collect_again

if TYPE_CHECKING:  # imported inside the commands: `ccspec --help` stays fast
    from fastapi import FastAPI

__all__ = ["serve", "server_app", "specs_folder"]


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
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
    default=None,
    metavar="DIR",
    help="The folder of PATHS, as an option (default: specs).",
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
    paths: tuple[str, ...],
    host: str,
    port: int,
    state_opt: str | None,
    specs_dir: str | None,
    allow_write: bool,
    token_file: str | None,
    max_upload: str,
    access_log: bool,
) -> None:
    """Serve the status API (OpenAPI GUI at /docs), the live dashboard (/) and server-sent events.

    PATHS: the folder of spec files (or a spec file in it) whose workflows are shown, where
    uploads go and edits happen; default specs."""
    from ccspec.server import run

    collect_again()

    folder = specs_folder((*paths, *([specs_dir] if specs_dir else [])))
    app = server_app(host, port, state_opt, folder, allow_write, token_file, max_upload)
    run(app, host, port, access_log=access_log)


def specs_folder(paths: tuple[str, ...]) -> str:
    """The one folder of specs that PATHS (and --specs) name: a folder, or the folder of a
    spec file; none named: specs. A path that does not exist is a usage error (exit 2), as
    for every command that takes PATHS."""
    from pathlib import Path

    from ccspec.errors import UsageError

    if not paths:
        return "specs"
    folders: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"no such file or folder: {raw}")
        folder = str(path if path.is_dir() else path.parent)
        if folder not in folders:
            folders.append(folder)
    if len(folders) > 1:
        raise UsageError(
            f"serve shows one folder of specs; {' and '.join(folders)} are different folders"
        )
    return folders[0]


def server_app(
    host: str,
    port: int,
    state_opt: str | None,
    specs_dir: str,
    allow_write: bool,
    token_file: str | None,
    max_upload: str,
) -> FastAPI:
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
