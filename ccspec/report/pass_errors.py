"""A reconcile pass that failed, in the workflow's status file, and gone once one succeeds.

`ccspec watch` calls `with_pass_error` when a pass over a workflow raises (the state folder
is unusable, a bug) and again, with None, when a later pass succeeds. The error is one line
in the status file's `errors:` list, recognised by its opening words, and the phase is
`error` while it stands; the rest of the file (its jobs, as last written) is kept as it is.
Pure: text in, text out.
"""

from __future__ import annotations

import re

import yaml

from ccspec.report import yamlout
from ccspec.report.status import HEADER, iso, phase_of, status_document
from ccspec.states import JobState

__all__ = ["OPENING", "PHASE", "pass_error_line", "with_pass_error"]

PHASE = "error"  # the status file's phase while watch cannot reconcile the workflow
OPENING = "watch could not reconcile this workflow"
_JOBS = re.compile(r"^jobs:", re.MULTILINE)
_STATES = {s.value: s for s in JobState}


def pass_error_line(message: str, since: float) -> str:
    """The `errors:` entry for a pass failing since `since` (Unix time). Stable while the
    same error repeats, so retries do not rewrite the file."""
    return f"{OPENING} since {iso(since)}: {message}; retrying with backoff"


def with_pass_error(text: str | None, workflow: str, line: str | None) -> str:
    """The status file `text` (None: no file yet) with `line` as its reconcile error, or
    with no reconcile error when `line` is None. Validation errors stay; the jobs section
    is kept byte for byte; a file that is not a status file is replaced by one."""
    split = _split(text)
    if split is None:
        head: dict[str, object] = {
            k: v for k, v in status_document(workflow, []).items() if k != "jobs"
        }
        jobs = "jobs: {}\n"
    else:
        head, jobs = split
    errors = [
        e for e in _list(head.get("errors")) if not (isinstance(e, str) and e.startswith(OPENING))
    ]
    if line is not None:
        errors.append(line)
        phase = PHASE
    else:
        counts = head.get("counts")
        states = [
            _STATES[s]
            for s, n in (counts.items() if isinstance(counts, dict) else ())
            if s in _STATES and isinstance(n, int)
            for _ in range(n)
        ]
        phase = phase_of(states, bool(errors))
    head = {**head, "workflow": head.get("workflow", workflow), "phase": phase, "errors": errors}
    ordered: dict[str, object] = {
        k: head[k] for k in ("workflow", "phase", "counts", "errors") if k in head
    }
    ordered.update((k, v) for k, v in head.items() if k not in ordered)
    return HEADER + yamlout.dump(ordered) + jobs


def _split(text: str | None) -> tuple[dict[str, object], str] | None:
    """The head (every key before `jobs:`), parsed, and the jobs section as text."""
    if not text:
        return None
    found = _JOBS.search(text)
    if found is None:
        return None
    try:
        head = yaml.load(
            text[: found.start()], Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except yaml.YAMLError:
        return None
    if not isinstance(head, dict) or "phase" not in head:
        return None
    return head, text[found.start() :]


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []
