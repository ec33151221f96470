"""Commands that write and check specs, without state: `validate`, `init`, `schema`."""

from __future__ import annotations

import sys

import click

from ccspec.cli.group import cli

__all__ = ["init", "schema", "validate"]


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
def schema() -> None:
    """Print the JSON Schema of the spec language (what editors validate against)."""
    from ccspec.schema import schema_text

    click.echo(schema_text(), nl=False)
