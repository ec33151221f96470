"""How the state store's records look in the status API: rows and records turned into the
API's models (ccspec.server.models), times as the status file shows them, secrets masked, jobs
in the spec's order. Pure functions; `Reader` calls them when it builds a response.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ccspec.redact import Redactor
from ccspec.server.models import AttemptInfo, EventInfo, JobInfo, ResourceUsage
from ccspec.server.specs import SpecFile
from ccspec.state.store import Attempt, RecordedJob
from ccspec.states import JobState
from ccspec.usage import Usage

__all__ = [
    "STATES",
    "attempt_info",
    "event_info",
    "job_info",
    "json_object",
    "layout",
    "log_url",
    "redacted_spec",
    "row_info",
    "stamp_time",
    "usage_info",
]

STATES = {s.value: s for s in JobState}


def stamp_time(stamp: float | None) -> datetime | None:
    """A time as the status file shows it: UTC, to the second (durations are in `seconds`)."""
    return None if stamp is None else datetime.fromtimestamp(int(stamp), tz=UTC)


def json_object(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {"value": value}


def layout(
    spec: SpecFile | None, recorded: Mapping[str, str]
) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """Recorded job ids (`recorded`: id -> job name) in the spec's order, each job's needs, and
    the spec's jobs never recorded.

    Members of a fan-out made on the fly are not in the spec: they go where their job is,
    with its needs."""
    workflow = spec.report.workflow if spec is not None else None
    if workflow is None:
        return sorted(recorded), {}, []
    position: dict[str, int] = {}
    needs: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for i, job in enumerate(workflow.jobs.values()):
        position.setdefault(job.id, i)
        position.setdefault(job.name, i)
        needs[job.id] = list(job.needs)
        by_name.setdefault(job.name, list(job.needs))
    big = len(position) + 1
    order = sorted(recorded, key=lambda j: (position.get(j, position.get(recorded[j], big)), j))
    for job_id in order:
        if job_id not in needs:
            needs[job_id] = by_name.get(recorded[job_id], [])
    names = set(recorded.values())
    planned = [j.id for j in workflow.jobs.values() if j.id not in recorded and j.name not in names]
    return order, needs, planned


def row_info(row: tuple[Any, ...], needs: list[str], redactor: Redactor) -> JobInfo:
    (
        job_id,
        name,
        state,
        reason,
        fingerprint,
        job_outputs,
        attempts,
        updated,
        host,
        started,
        finished,
        exit_code,
        progress,
        message,
        attempt_outputs,
        wall,
        cpu,
        max_rss,
        warning,
    ) = row
    # as `ccspec status` shows them
    outputs = json_object(attempt_outputs) or json_object(job_outputs)
    return JobInfo(
        id=job_id,
        name=name,
        state=STATES[state],
        reason=_masked(redactor, reason),
        host=host,
        attempt=attempts,
        fingerprint=fingerprint,
        started=stamp_time(started),
        finished=stamp_time(finished),
        seconds=None
        if started is None or finished is None
        else round(max(0.0, finished - started), 3),
        exit_code=exit_code,
        progress=_percent(progress),
        message=_masked(redactor, message),
        outputs=redactor.value(outputs),
        needs=needs,
        updated=stamp_time(updated),
        usage=usage_info(Usage(wall, cpu, max_rss), _masked(redactor, warning)),
    )


def job_info(
    workflow: str,
    rec: RecordedJob,
    a: Attempt | None,
    needs: Mapping[str, list[str]],
    redactor: Redactor,
) -> JobInfo:
    outputs = dict(a.outputs) if a is not None and a.outputs else dict(rec.outputs)
    started = a.started if a is not None else None
    finished = a.finished if a is not None else None
    return JobInfo(
        id=rec.id,
        name=rec.name,
        state=rec.state,
        reason=_masked(redactor, rec.reason),
        host=a.host if a else None,
        attempt=rec.attempts,
        fingerprint=rec.fingerprint,
        started=stamp_time(started),
        finished=stamp_time(finished),
        seconds=None
        if started is None or finished is None
        else round(max(0.0, finished - started), 3),
        exit_code=a.exit_code if a else None,
        progress=_percent(a.progress if a else None),
        message=_masked(redactor, a.message if a else None),
        outputs=redactor.value(outputs),
        needs=needs.get(rec.id, []),
        updated=stamp_time(rec.updated),
        usage=usage_info(a.usage, _masked(redactor, a.usage_warning)) if a else None,
    )


def attempt_info(workflow: str, a: Attempt, redactor: Redactor) -> AttemptInfo:
    return AttemptInfo(
        number=a.number,
        host=a.host,
        state=a.state,
        handle=a.handle,
        reason=_masked(redactor, a.reason),
        exit_code=a.exit_code,
        fingerprint=a.fingerprint,
        created=stamp_time(a.created),
        started=stamp_time(a.started),
        finished=stamp_time(a.finished),
        progress=_percent(a.progress),
        message=_masked(redactor, a.message),
        outputs=redactor.value(dict(a.outputs)),
        usage=usage_info(a.usage, _masked(redactor, a.usage_warning)),
        log=log_url(workflow, a.job, a.number),
    )


def usage_info(usage: Usage | None, warning: str | None) -> ResourceUsage | None:
    """An attempt's usage in the API (None: nothing was measured)."""
    if usage is None or (usage.wall is None and usage.cpu is None and usage.max_rss is None):
        return None
    return ResourceUsage(wall=usage.wall, cpu=usage.cpu, max_rss=usage.max_rss, warning=warning)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(min(100.0, max(0.0, float(value))), 1)


def _masked(redactor: Redactor, text: str | None) -> str | None:
    return None if text is None else redactor.text(text)


def log_url(workflow: str, job: str, number: int) -> str:
    return f"/api/workflows/{quote(workflow)}/jobs/{quote(job)}/log?attempt={number}"


def event_info(row: Mapping[str, Any], redactor: Redactor) -> EventInfo:
    """An event row of the store as the API shows it: the job's new state made explicit."""
    kind = str(row["kind"])
    data = row.get("data") or {}
    state = data.get("state") if kind == "state" else kind
    return EventInfo(
        id=int(row["id"]),
        time=stamp_time(float(row["time"])) or datetime.now(UTC),
        workflow=str(row["workflow"]),
        kind=kind,
        job=row.get("job"),
        attempt_id=row.get("attempt"),
        state=STATES.get(str(state)) if state is not None else None,
        data=redactor.value(dict(data)) if isinstance(data, dict) else {},
    )


def redacted_spec(text: str, secrets: list[str], redactor: Redactor) -> str:
    """The spec's text with its secret vars' values replaced by *** (comments and order kept),
    then every other appearance of a secret masked."""
    if secrets:
        try:
            from ruamel.yaml import YAML

            yaml = YAML(typ="rt")
            yaml.preserve_quotes = True
            data = yaml.load(text)
            vars_ = data.get("vars") if hasattr(data, "get") else None
            if isinstance(vars_, MutableMapping):
                for name in secrets:
                    if name in vars_:
                        vars_[name] = "***"
                out = io.StringIO()
                yaml.dump(data, out)
                text = out.getvalue()
        except Exception:  # not YAML ruamel can round-trip: masking the text below still applies
            pass
    return redactor.text(text) if redactor else text
