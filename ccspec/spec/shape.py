"""Turn pydantic's validation errors into spec diagnostics a person can act on.

Called by `ccspec.spec.validate`. Pydantic reports `loc` tuples in model terms (with union
tags and `[key]` markers); this module maps them back to the YAML path, and rewrites the
common cases: unknown keys get "did you mean", missing keys say what to add, names say which
characters are allowed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ccspec.errors import Diagnostic
from ccspec.spec.models import (
    HOST_TYPES,
    NAME_RULE,
    Defaults,
    Job,
    LocalHost,
    Resources,
    SlurmHost,
    SshHost,
    Workflow,
    WslHost,
)
from ccspec.spec.resolve import suggest
from ccspec.spec.source import Source, ValuePath

__all__ = ["shape_diagnostics"]

_HOST_MODELS: dict[str, type[BaseModel]] = {
    "local": LocalHost,
    "ssh": SshHost,
    "slurm": SlurmHost,
    "wsl": WslHost,
}
# Words people bring from other tools, and the key ccspec uses for them.
_SYNONYMS = {
    "depends_on": "needs",
    "depends": "needs",
    "dependencies": "needs",
    "after": "needs",
    "requires": "needs",
    "command": "run",
    "cmd": "run",
    "shell_command": "run",
    "exec": "run",
    "environment": "env",
    "variables": "vars",
    "params": "parameters",
    "arguments": "args",
    "tasks": "jobs",
    "steps": "jobs",
    "retry": "retries",
    "walltime": "time",
    "memory": "mem",
    "cores": "cpus",
    "threads": "cpus",
    "gpu": "gpus",
    "node": "host",
    "machine": "host",
    "cwd": "workdir",
    "dir": "workdir",
    "input": "inputs",
    "file": "script",
}


def shape_diagnostics(
    source: Source, error: ValidationError
) -> tuple[list[Diagnostic], dict[str, set[str]]]:
    """Diagnostics, plus what failed: {"jobs": names, "hosts": names, top-level key: set()}.

    The caller retries without those parts, so the rest of the spec is still checked.
    """
    problems: dict[tuple[int, int, str], Diagnostic] = {}
    bad: dict[str, set[str]] = {}
    for err in error.errors(include_url=False, include_context=True):
        loc = tuple(err["loc"])
        message, path, at_key = _describe(source.data, err, loc)
        d = source.diagnostic(path, message, _code(err["type"]), key=at_key)
        problems.setdefault((d.line, d.col, d.message), d)
        if loc:
            names = bad.setdefault(str(loc[0]), set())
            if loc[0] in ("jobs", "hosts") and len(loc) >= 2:
                names.add(str(loc[1]))
    found = sorted(problems.values())
    if any(d.code == "unknown-key" and "(did you mean 'jobs'?)" in d.message for d in found):
        # said once is enough
        found = [d for d in found if not (d.code == "missing-key" and "`jobs:`" in d.message)]
    return found, bad


def _code(kind: str) -> str:
    return {
        "extra_forbidden": "unknown-key",
        "missing": "missing-key",
        "string_pattern_mismatch": "invalid-name",
    }.get(kind, "invalid-value")


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[ValuePath, bool]:
    """Follow `loc` through the data, skipping pydantic's union tags; (path, is-a-key-error)."""
    path: list[str | int] = []
    node = data
    is_key = False
    for part in loc:
        if part == "[key]":
            is_key = True
            break
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and part in _HOST_MODELS:
            continue  # union tag
        else:
            path.append(part)
            node = None
    return tuple(path), is_key


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose fields apply to the mapping at `loc` (for did-you-mean)."""
    parts = [p for p in loc if p not in _HOST_MODELS]
    if not parts:
        return Workflow
    head = parts[0]
    if head == "defaults":
        return Defaults if len(parts) == 1 else Resources
    if head == "jobs" and len(parts) >= 2:
        return Job if len(parts) == 2 else Resources if parts[2] == "resources" else None
    if head == "hosts" and len(loc) == 3 and loc[2] in _HOST_MODELS:
        return _HOST_MODELS[loc[2]]
    return None


def _where(path: ValuePath) -> str:
    if len(path) >= 2 and path[0] == "jobs":
        rest = ".".join(str(p) for p in path[2:])
        return f"job {path[1]!r}" + (f", `{rest}`" if rest else "")
    if len(path) >= 2 and path[0] == "hosts":
        rest = ".".join(str(p) for p in path[2:])
        return f"host {path[1]!r}" + (f", `{rest}`" if rest else "")
    return "`" + ".".join(str(p) for p in path) + "`" if path else "the spec"


def _describe(data: Any, err: Any, loc: tuple[Any, ...]) -> tuple[str, ValuePath, bool]:
    kind = err["type"]
    path, is_key = _data_path(data, loc)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return _unknown_key(path, loc), path, True
    if kind == "missing":
        key = str(path[-1])
        if path == ("version",):
            return "missing `version: 1` at the top of the spec", (), False
        if path == ("jobs",):
            return "missing `jobs:`: a workflow needs at least one job", (), False
        return f"{_where(path[:-1])} is missing the required key {key!r}", path[:-1], True
    if is_key:
        return _invalid_name(path), path, True
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "?")
        return (
            f"{_where(path)}: unknown host type {tag!r}{suggest(tag, HOST_TYPES)}; use one of {', '.join(HOST_TYPES)}",
            (*path, "type"),
            False,
        )
    if kind == "union_tag_not_found":
        return f"{_where(path)} needs `type:` (one of {', '.join(HOST_TYPES)})", path, True
    if kind == "literal_error" and path == ("version",):
        return (
            f"unsupported spec version {_value_at(data, path)!r}: this ccspec reads `version: 1`",
            path,
            False,
        )
    if kind == "string_pattern_mismatch" and path == ("name",):
        return f"invalid workflow name {_value_at(data, path)!r}: {NAME_RULE}", path, False
    if kind in ("dict_type", "model_type"):
        value = _value_at(data, path)
        found = "nothing" if value is None else f"a {_kind_of(value)}"
        if len(path) == 2 and path[0] == "jobs":
            if value is None:
                return f"job {path[1]!r} is empty; give it run, script or notebook", path, True
            return (
                f"job {path[1]!r} must be a mapping of keys (run, needs, ...), found {found}",
                path,
                False,
            )
        if path == ("jobs",) and value is None:
            return "`jobs:` is empty: a workflow needs at least one job", path, True
        return f"{_where(path)} must be a mapping (key: value), found {found}", path, value is None
    if kind == "too_short" and path == ("jobs",):
        return "`jobs:` is empty: a workflow needs at least one job", path, False
    value = _value_at(data, path)
    shown = f" (got {value!r})" if value is not None and not isinstance(value, (dict, list)) else ""
    whole_job = len(path) == 2 and path[0] == "jobs"  # point at the job's name, not its first key
    return (
        f"{_where(path)}: {msg[0].lower() + msg[1:] if msg else 'invalid value'}{shown if 'got' not in msg else ''}",
        path,
        whole_job,
    )


def _unknown_key(path: ValuePath, loc: tuple[Any, ...]) -> str:
    key = str(path[-1])
    model = _model_at(loc[:-1])
    fields = list(model.model_fields) if model else []
    hint = suggest(key, fields)
    if not hint and key.lower() in _SYNONYMS and _SYNONYMS[key.lower()] in fields:
        hint = f" (did you mean {_SYNONYMS[key.lower()]!r}?)"
    owner = _where(path[:-1])
    return f"unknown key {key!r} in {owner}{hint or '; allowed keys: ' + ', '.join(fields)}"


def _invalid_name(path: ValuePath) -> str:
    """A mapping key that is not a valid name: which kind of name, and the rule it breaks."""
    container = path[:-1]
    name = str(path[-1]) if path else "?"
    what = {
        "jobs": "job",
        "hosts": "host",
        "vars": "variable",
        "env": "environment variable",
        "sbatch": "sbatch option",
    }.get(str(container[-1]) if container else "", "key")
    rule = {
        "job": NAME_RULE,
        "host": NAME_RULE,
        "sbatch option": f"write the long option without dashes, e.g. {name.lstrip('-')!r}",
    }.get(what, "use letters, digits and _, not starting with a digit")
    return f"invalid {what} name {name!r}: {rule}"


def _kind_of(value: Any) -> str:
    return {list: "list", str: "text", int: "number", float: "number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _value_at(data: Any, path: ValuePath) -> Any:
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node
