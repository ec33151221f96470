"""`ccspec import cloudmesh-cc SRC -o DEST`: bring a workflow from another tool into a spec."""

from __future__ import annotations

import click

from ccspec.cli.group import cli

__all__ = ["cloudmesh_cc", "import_group"]


@cli.group(name="import")
def import_group() -> None:
    """Convert workflows written for other tools into ccspec specs."""


@import_group.command(name="cloudmesh-cc")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    "dest",
    type=click.Path(dir_okay=False),
    help="Spec file to write (default: standard output).",
)
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
def cloudmesh_cc(src: str, dest: str | None, force: bool) -> None:
    """Convert the cloudmesh-cc workflow SRC (workflow: {nodes, dependencies}) into a spec.

    Nodes become jobs (their script, a NAME.sh/.py/.ipynb beside SRC, or their exec command),
    dependency chains `a,b,c` become needs, kind/host/user become hosts; comments in the spec
    say which node each job came from and what was dropped. Exit 2 on unusable input.
    """
    from pathlib import Path

    from ccspec.errors import UsageError
    from ccspec.spec.cloudmesh import convert_file

    source = Path(src)
    target = Path(dest) if dest else None
    if target is not None and target.exists() and not force:
        raise UsageError(f"{target} exists already; nothing was written (--force overwrites it)")
    if target is not None and target.exists() and target.resolve() == source.resolve():
        raise UsageError(f"{target} is the workflow being converted; write the spec elsewhere")
    converted = convert_file(source, target)
    for note in converted.notes:
        click.echo(f"note: {note}", err=True)
    if target is None:
        click.echo(converted.text, nl=False)
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(converted.text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{target}: cannot write it ({exc.strerror or exc})") from None
    click.echo(
        f"wrote {target}: {converted.jobs} jobs from {source}; next: ccspec validate {target}",
        err=True,
    )
