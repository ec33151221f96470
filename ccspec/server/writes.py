"""Writes, for cloudmesh-cc parity: upload a workflow, add a job or a dependency, remove a job.

Each one changes a spec file under the specs folder and nothing else: git stays the source
of truth and the reconciler (or the next `ccspec apply`) picks the change up. Edits go
through `SpecEditor` (ruamel round-trip: comments and order kept); every result is
validated first and an invalid one is refused (422, each problem as `ccspec validate` prints
it) with the file untouched. One write at a time. Called by `ccspec.server.app`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from ccspec.errors import Diagnostic, SpecInvalid
from ccspec.report.status import write_if_changed
from ccspec.server.errors import Conflict, Invalid, NotFound
from ccspec.server.models import Written
from ccspec.server.specs import SpecFile, SpecFiles
from ccspec.spec.models import NAME_PATTERN, NAME_RULE
from ccspec.spec.validate import display_path, validate_text

__all__ = ["SpecWriter"]


class SpecWriter:
    def __init__(self, specs: SpecFiles) -> None:
        self.specs = specs
        self._lock = threading.Lock()

    def _spec(self, workflow: str) -> SpecFile:
        spec = self.specs.index().get(workflow)
        if spec is None or not self.specs.inside(spec.path):  # a symlink out of the folder is not written through
            raise NotFound(f"no spec under {display_path(self.specs.folder)}/ defines workflow {workflow!r}; "
                           "writes only change files there")
        return spec

    def upload(self, data: bytes, name: str | None, replace: bool) -> Written:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid("<upload>", f"the spec is not UTF-8 text (byte {exc.start})", "encoding") from exc
        declared = _declared_name(text)
        if name is None:
            name = declared
        if name is None:
            raise _invalid("<upload>", "the workflow needs a name: set `name:` in the spec or pass ?name=", "missing-name")
        if not re.match(NAME_PATTERN, name):
            raise _invalid("<upload>", f"workflow name {name!r} is not valid ({NAME_RULE})", "invalid-name")
        if declared is not None and declared != name:
            raise _invalid("<upload>", f"the spec names itself {declared!r}, not {name!r}", "name-mismatch")
        with self._lock:
            self.specs.folder.mkdir(parents=True, exist_ok=True)
            target = (self.specs.folder / f"{name}.yaml").resolve()
            existing = self.specs.index().get(name)
            if existing is not None and existing.path != target:
                raise Conflict(f"workflow {name!r} is defined by {display_path(existing.path)} already")
            created = not target.exists()
            if not created and not replace:
                raise Conflict(f"{display_path(target)} exists; pass ?replace=true to overwrite it")
            report = validate_text(text, target)
            if not report.valid:
                raise Invalid.from_diagnostics(report.diagnostics)
            write_if_changed(target, text)
        return Written(workflow=name, spec=target.name, created=created)

    def add_job(self, workflow: str, name: str, fields: Mapping[str, Any]) -> Written:
        from ccspec.spec.edit import SpecEditor

        with self._lock:
            spec = self._spec(workflow)
            editor = SpecEditor(spec.path)
            if not hasattr(editor.jobs, "keys"):
                raise _invalid(display_path(spec.path), "`jobs:` is not a mapping; fix the spec first", "invalid")
            if name in editor.jobs:
                raise Conflict(f"workflow {workflow!r} has a job {name!r} already")
            if "name" in fields:  # not a job key; it would also clash with add_job's own argument
                raise _invalid(display_path(spec.path), f"unknown key 'name' in job {name!r} (the name is given apart)",
                               "unknown-key")
            editor.add_job(name, **dict(fields))
            return self._save(workflow, spec, editor)

    def add_need(self, workflow: str, job: str, need: str) -> Written:
        from ccspec.spec.edit import SpecEditor

        with self._lock:
            spec = self._spec(workflow)
            editor = SpecEditor(spec.path)
            if not hasattr(editor.jobs, "keys") or job not in editor.jobs:
                raise NotFound(f"workflow {workflow!r} has no job {job!r}")
            if not hasattr(editor.jobs[job], "get"):
                raise _invalid(display_path(spec.path), f"job {job!r} is not a mapping; fix the spec first", "invalid")
            editor.add_need(job, need)
            return self._save(workflow, spec, editor)

    def remove_job(self, workflow: str, job: str) -> Written:
        from ccspec.spec.edit import SpecEditor

        with self._lock:
            spec = self._spec(workflow)
            editor = SpecEditor(spec.path)
            if not hasattr(editor.jobs, "keys") or job not in editor.jobs:
                raise NotFound(f"workflow {workflow!r} has no job {job!r}")
            editor.remove_job(job)
            return self._save(workflow, spec, editor)

    def _save(self, workflow: str, spec: SpecFile, editor: Any) -> Written:
        try:
            editor.save()
        except SpecInvalid as exc:
            raise Invalid.from_diagnostics(exc.diagnostics) from exc
        return Written(workflow=workflow, spec=spec.path.name, created=False)


def _declared_name(text: str) -> str | None:
    """The `name:` a spec gives itself, if it parses and has one (validation says the rest)."""
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def _invalid(file: str, message: str, code: str) -> Invalid:
    return Invalid.from_diagnostics([Diagnostic(file, 1, 1, message, code)])

