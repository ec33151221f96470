"""Convert a cloudmesh-cc workflow file into a ccspec spec (`ccspec import cloudmesh-cc`).

A cloudmesh-cc workflow is `workflow: {nodes: {NAME: {...}}, dependencies: ["a,b,c"]}`. Each
node becomes a job: `script:` when the node names one or when a file named after the node
(.sh, .py, .ipynb) sits beside the workflow, else its `exec:` command as `run:`, else
cloudmesh-cc's own default `NAME.sh`. A dependency string `a,b,c` makes b need a and c need b
(a node's `parent:` list too). `kind`/`host`/`user` become `hosts:` entries; labels become
descriptions; what only cloudmesh-cc uses (status, progress, label formats, shapes, colors)
is dropped, and comments in the output say where each job came from and what was dropped.

Called by `ccspec.cli.cmd_import`; `looks_like_cloudmesh` also by `ccspec.spec.validate`, to
point at the import command. Bad input raises `UsageError` (exit 2) naming the file.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccspec.errors import UsageError
from ccspec.spec.models import NAME_PATTERN

__all__ = ["Converted", "convert_file", "looks_like_cloudmesh"]

_BESIDE = (".sh", ".py", ".ipynb")
_LOCAL_HOSTS = {None, "", "local", "localhost", "127.0.0.1"}
_KINDS = ("local", "ssh", "slurm", "wsl")
_USED = {"name", "label", "kind", "host", "user", "script", "exec", "parent"}
_FORMAT_FIELD = re.compile(r"\{[^{}]*\}")


def looks_like_cloudmesh(data: object) -> bool:
    """A top-level `workflow:` mapping holding `nodes:`: cloudmesh-cc's format."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("workflow"), dict)
        and "nodes" in data["workflow"]
    )


@dataclass
class Converted:
    """The spec's text, and what the conversion left out or guessed (for the terminal)."""

    text: str
    jobs: int
    notes: list[str] = field(default_factory=list)


@dataclass
class _Job:
    name: str
    node: str
    line: int
    keys: dict[str, Any] = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # comments in the spec
    warnings: list[str] = field(default_factory=list)  # comments, and told on the terminal


def convert_file(src: Path, dest: Path | None) -> Converted:
    """The spec for the cloudmesh-cc workflow `src`, with paths relative to `dest`'s folder
    (the current folder when writing to standard output)."""
    data = _read(src)
    workflow = data["workflow"]
    nodes = workflow["nodes"]
    if not isinstance(nodes, dict) or not nodes:
        raise UsageError(f"{src}: `workflow.nodes` must be a mapping of nodes; it has none")
    out_dir = (dest.parent if dest is not None else Path.cwd()).resolve()
    hosts: dict[tuple[str, ...], tuple[str, dict[str, Any]]] = {}
    jobs: dict[str, _Job] = {}
    by_node: dict[str, str] = {}
    for key, node in nodes.items():
        job = _job(src, out_dir, str(key), node, set(jobs), hosts)
        jobs[job.name] = job
        by_node[str(key)] = by_node[str(node.get("name", key))] = job.name
    for before, after in _edges(src, workflow.get("dependencies"), nodes):
        missing = next((n for n in (before, after) if n not in by_node), None)
        if missing is not None:
            raise UsageError(
                f"{src}: a dependency names the node {missing!r}, which is not under "
                f"`workflow.nodes` (nodes: {', '.join(map(str, nodes))}); add the node or "
                "fix the dependency"
            )
        needs = jobs[by_node[after]].needs
        if by_node[before] not in needs:
            needs.append(by_node[before])
    dropped_top = [str(k) for k in data if k != "workflow"]
    dropped_top += [f"workflow.{k}" for k in workflow if k not in ("nodes", "dependencies")]
    name = _slug((dest or src).name.split(".")[0], set())
    return _render(src, dest, name, jobs, list(hosts.values()), dropped_top)


def _read(src: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = src.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{src}: no such file; give the path of a cloudmesh-cc workflow") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{src}: cannot read it ({exc})") from None
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise UsageError(
            f"{src}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}; "
            "give a cloudmesh-cc workflow file (`workflow: {nodes: ..., dependencies: ...}`)"
        ) from None
    if not looks_like_cloudmesh(data):
        raise UsageError(
            f"{src}: not a cloudmesh-cc workflow: it needs a top-level `workflow:` with "
            "`nodes:` (and `dependencies:`); a ccspec spec needs no import, check it with "
            "`ccspec validate`"
        )
    return dict(data)


def _slug(text: str, taken: set[str]) -> str:
    """A valid ccspec name for `text`, not in `taken`."""
    base = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:60] or "node"
    name, n = base, 1
    while name in taken or not re.match(NAME_PATTERN, name):
        n += 1
        name = f"{base}-{n}"
    return name


def _job(
    src: Path,
    out_dir: Path,
    key: str,
    node: object,
    taken: set[str],
    hosts: dict[tuple[str, ...], tuple[str, dict[str, Any]]],
) -> _Job:
    if not isinstance(node, dict):
        raise UsageError(
            f"{src}: node {key!r} must be a mapping (label, kind, script or exec, ...), "
            f"found {type(node).__name__}"
        )
    line = getattr(getattr(node, "lc", None), "line", None)
    job = _Job(_slug(key, taken), key, (line or 0) + 1)
    if job.name != key:
        job.warnings.append(f"renamed from {key!r}: job names are {NAME_PATTERN}")
    label = node.get("label")
    if isinstance(label, str) and label.strip() and not _FORMAT_FIELD.search(label):
        job.keys["description"] = label.strip()
    elif label is not None and label != key:
        job.notes.append("label format dropped")
    _kind(src, out_dir, key, node, job)
    host = _host(src, key, node, job, hosts)
    if host is not None:
        job.keys["host"] = host
    dropped = sorted(str(k) for k in node if k not in _USED)
    if dropped:
        job.notes.append("dropped: " + ", ".join(dropped))
    return job


def _kind(src: Path, out_dir: Path, key: str, node: dict[str, Any], job: _Job) -> None:
    """script/notebook from the node or a file beside the workflow, else run from exec."""
    script, command = node.get("script"), node.get("exec")
    name = str(node.get("name") or key)
    has_command = isinstance(command, str) and bool(command.strip())
    if not isinstance(script, str) or not script.strip():
        script = next((name + s for s in _BESIDE if (src.parent / (name + s)).is_file()), None)
        if script is not None:
            job.notes.append(f"{script} is the file beside the workflow named after the node")
        elif has_command:
            job.keys["run"] = command
            return
        else:
            script = f"{name}.sh"
            job.warnings.append(f"no script or exec: {script}, as cloudmesh-cc runs then")
    place = Path(os.path.expanduser(script))
    if not place.is_absolute():
        if not (src.parent / place).is_file():
            job.warnings.append(f"{script} is not beside the workflow; put it there")
        place = Path(os.path.relpath(src.parent.resolve() / place, out_dir))
    job.keys["notebook" if place.suffix == ".ipynb" else "script"] = place.as_posix()
    if has_command:
        job.notes.append(f"exec {command!r} not used: the script runs")


def _host(
    src: Path,
    key: str,
    node: dict[str, Any],
    job: _Job,
    hosts: dict[tuple[str, ...], tuple[str, dict[str, Any]]],
) -> str | None:
    """The name of the `hosts:` entry for the node's kind/host/user; None: this machine."""
    kind = str(node.get("kind") or "local")
    host = node.get("host")
    user = node.get("user")
    host = str(host) if host is not None else None
    if kind not in _KINDS:
        raise UsageError(
            f"{src}: node {key!r} has kind {kind!r}, which ccspec does not run (it runs "
            f"{', '.join(_KINDS)}); change the node's kind before importing"
        )
    remote = host not in _LOCAL_HOSTS
    if kind == "local" or (kind == "ssh" and not remote):
        if remote:
            job.warnings.append(f"kind {kind} runs on this machine; host {host} is not used")
        elif kind == "ssh":
            job.notes.append(f"kind ssh to {host} runs on this machine")
        return None
    entry: dict[str, Any] = {"type": kind}
    base = kind
    if kind == "wsl":  # on this Windows machine; cloudmesh-cc's user names its Windows folder
        entry["distro"] = "Ubuntu"
        job.warnings.append("cloudmesh-cc runs WSL's default distribution: check `distro:`")
    elif remote:  # ssh to the host, or slurm submitting through it
        entry["host" if kind == "ssh" else "ssh"] = host
        if user:
            entry["user"] = str(user)
        base = str(host).split(".")[0] + ("" if kind == "ssh" else f"-{kind}")
    ident = tuple(f"{k}={v}" for k, v in sorted(entry.items()))
    if ident not in hosts:
        taken = {name for name, _ in hosts.values()} | {"local"}
        hosts[ident] = (_slug(base, taken), entry)
    return hosts[ident][0]


def _edges(src: Path, dependencies: object, nodes: dict[str, Any]) -> list[tuple[str, str]]:
    """(before, after) pairs from `a,b,c` strings, saved edge mappings and `parent:` lists."""
    pairs: list[tuple[str, str]] = []
    if isinstance(dependencies, str):
        dependencies = [dependencies]
    if isinstance(dependencies, list):
        for chain in dependencies:
            if not isinstance(chain, str):
                raise UsageError(f"{src}: a dependency must be text like 'a,b,c', found {chain!r}")
            names = [n.strip() for n in chain.split(",") if n.strip()]
            pairs += list(itertools.pairwise(names))
    elif isinstance(
        dependencies, dict
    ):  # as cloudmesh-cc saves them: {edge: {source, destination}}
        for edge in dependencies.values():
            if isinstance(edge, dict) and "source" in edge and "destination" in edge:
                pairs.append((str(edge["source"]), str(edge["destination"])))
    elif dependencies is not None:
        raise UsageError(
            f"{src}: `workflow.dependencies` must be a list of 'a,b,c' texts, "
            f"found {type(dependencies).__name__}"
        )
    for key, node in nodes.items():
        parents = node.get("parent") if isinstance(node, dict) else None
        for parent in parents if isinstance(parents, list) else []:
            pairs.append((str(parent), str(key)))
    return pairs


def _schema_comment(dest: Path | None) -> str | None:
    """The yaml-language-server line, when the repository has the schema."""
    from ccspec.spec.checks import find_repo_root

    if dest is None:
        return None
    folder = dest.resolve().parent
    schema = find_repo_root(folder) / "schemas" / "workflow.schema.json"
    if not schema.is_file():
        return None
    return f"yaml-language-server: $schema={Path(os.path.relpath(schema, folder)).as_posix()}"


def _render(
    src: Path,
    dest: Path | None,
    name: str,
    jobs: dict[str, _Job],
    hosts: list[tuple[str, dict[str, Any]]],
    dropped_top: list[str],
) -> Converted:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import LiteralScalarString

    spec = CommentedMap()
    spec["version"] = 1
    spec["name"] = name
    spec["description"] = f"Imported from the cloudmesh-cc workflow {src.name}"
    if hosts:
        spec["hosts"] = CommentedMap((n, CommentedMap(e)) for n, e in hosts)
    spec["jobs"] = CommentedMap()
    for job in jobs.values():
        body = CommentedMap(
            (k, LiteralScalarString(v) if isinstance(v, str) and "\n" in v else v)
            for k, v in job.keys.items()
        )
        if job.needs:
            body["needs"] = CommentedSeq(job.needs)
            body["needs"].fa.set_flow_style()
        spec["jobs"][job.name] = body
        where = f"from node {job.node!r}, {src.name} line {job.line}"
        spec["jobs"].yaml_set_comment_before_after_key(
            job.name, before="\n".join([where, *job.warnings, *job.notes]), indent=2
        )
    head = [_schema_comment(dest)]
    head.append(f"Converted from the cloudmesh-cc workflow {src} by `ccspec import cloudmesh-cc`.")
    if dropped_top:
        head.append("Dropped (cloudmesh-cc only): " + ", ".join(dropped_top) + ".")
    spec.yaml_set_start_comment("\n".join(h for h in head if h))
    out = io.StringIO()
    writer = YAML(typ="rt")
    writer.width = 4096
    writer.indent(mapping=2, sequence=4, offset=2)
    writer.dump(spec, out)
    notes = [f"job {j.name}: {w}" for j in jobs.values() for w in j.warnings]
    if dropped_top:
        notes.append("dropped: " + ", ".join(dropped_top))
    return Converted(out.getvalue(), len(jobs), notes)
