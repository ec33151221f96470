"""Fingerprints: what a job is, as a hash, chained through the jobs it needs (a Merkle chain).

`gather_facts` (I/O) reads file contents once; `fingerprints` (pure) combines them with the
rendered definitions. Content hashes, never modification times, and paths relative to the
spec, so a re-cloned repository is still up to date. Scheduler settings (resources,
timeout, retries, host) are left out: raising a job's memory reruns nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccspec.spec.resolved import ResolvedJob, ResolvedWorkflow

__all__ = [
    "Facts",
    "Fingerprint",
    "definition",
    "fingerprint",
    "fingerprints",
    "gather_facts",
    "hash_file",
    "input_files",
]

_CHUNK = 1 << 20
MISSING = "missing"


@dataclass(frozen=True)
class Fingerprint:
    value: str  # "sha256:..."
    parts: Mapping[str, str]  # definition, file, inputs, upstream: what changed explains a rerun


@dataclass
class Facts:
    """File contents the fingerprints depend on, keyed by path relative to the spec folder."""

    files: dict[str, str] = field(default_factory=dict)
    # job id -> [(path, hash)]
    inputs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_file(path: Path) -> str:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return MISSING


def gather_facts(
    workflow: ResolvedWorkflow, jobs: list[ResolvedJob] | None = None, facts: Facts | None = None
) -> Facts:
    """Hash the scripts, notebooks and declared inputs of `jobs` (default: all)."""
    facts = facts or Facts()
    base = workflow.base_dir
    for job in jobs if jobs is not None else workflow.jobs.values():
        for rel in (job.script, job.notebook):
            if rel is not None and rel not in facts.files:
                facts.files[rel] = hash_file(base / rel)
        if job.inputs and "inputs" not in job.deferred:
            found: dict[str, str] = {}
            for pattern in job.inputs:
                for path in sorted(input_files(base, pattern)):
                    rel = os.path.relpath(path, base).replace(os.sep, "/")
                    found[rel] = facts.files.get(rel) or hash_file(path)
                    facts.files[rel] = found[rel]
            facts.inputs[job.id] = sorted(found.items())
    return facts


def input_files(base: Path, pattern: str) -> list[Path]:
    """The files an `inputs:` entry means: a glob's matches, a folder's files, or the file."""
    if any(c in pattern for c in "*?["):
        return [p for p in base.glob(pattern) if p.is_file()]
    path = base / pattern
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file()]
    return [path] if path.is_file() else []


def definition(job: ResolvedJob) -> dict[str, Any]:
    """What the job does, as data: the part of the fingerprint written in the spec."""
    return {
        "kind": job.kind,
        "run": job.run,
        "shell": job.shell,
        "script": job.script,
        "args": list(job.args),
        "interpreter": job.interpreter,
        "notebook": job.notebook,
        "parameters": job.parameters,
        "kernel": job.kernel,
        "env": dict(job.env),
        "workdir": job.workdir,
        "inputs": list(job.inputs),
        "matrix": dict(job.matrix),
    }


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


_NO_INPUTS = _sha(_canonical([]))


def fingerprint(job: ResolvedJob, facts: Facts, upstream: Mapping[str, str]) -> Fingerprint:
    file_rel = job.script or job.notebook
    found = facts.inputs.get(job.id)
    parts = {
        "definition": _sha(_canonical(definition(job))),
        "file": facts.files.get(file_rel, MISSING) if file_rel else "",
        "inputs": _sha(_canonical(found)) if found else _NO_INPUTS,
        # ids and fingerprints hold no newline or space: plain text is an unambiguous encoding
        "upstream": _sha(
            "\n".join(sorted(f"{n} {upstream.get(n, MISSING)}" for n in job.needs)).encode()
        ),
    }
    whole = "\n".join(f"{k} {parts[k]}" for k in ("definition", "file", "inputs", "upstream"))
    return Fingerprint("sha256:" + _sha(whole.encode()), parts)


def fingerprints(workflow: ResolvedWorkflow, facts: Facts) -> dict[str, Fingerprint]:
    """Every job's fingerprint; `workflow.jobs` is in topological order."""
    out: dict[str, Fingerprint] = {}
    values: dict[str, str] = {}
    for job_id, job in workflow.jobs.items():
        fp = fingerprint(job, facts, values)
        out[job_id] = fp
        values[job_id] = fp.value
    return out
