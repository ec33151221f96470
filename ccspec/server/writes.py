"""Writes, for cloudmesh-cc parity: upload a workflow, add a job or a dependency, remove a job.

Each one changes a spec file under the specs folder and nothing else: git stays the source
of truth and the reconciler (or the next `ccspec apply`) picks the change up. Edits go
through `SpecEditor` (ruamel round-trip: comments and order kept); every result is
validated first and an invalid one is refused (422, each problem as `ccspec validate` prints
it) with the file untouched. Called by `ccspec.server.routes.writes`.

Validation runs outside the write lock, under one deadline for all of the spec's templates
(`UPLOAD_SECONDS`), and stops at once when the server stops: a slow or hostile spec holds up
nobody else's write. The lock only covers "the file is still what the edit was made from,
write it"; an edit whose file changed meanwhile is made again (at most `_ATTEMPTS` times).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccspec.errors import Diagnostic
from ccspec.report.status import write_if_changed
from ccspec.server.errors import Conflict, Invalid, NotFound
from ccspec.server.models import Written
from ccspec.server.specs import SpecFile, SpecFiles
from ccspec.spec.budget import overall
from ccspec.spec.models import NAME_PATTERN, NAME_RULE
from ccspec.spec.validate import display_path, validate_text

if TYPE_CHECKING:
    from ccspec.spec.edit import SpecEditor

__all__ = ["UPLOAD_SECONDS", "SpecWriter"]

UPLOAD_SECONDS = 10.0  # all the templates of one uploaded or edited spec, together
_ATTEMPTS = 10  # edits racing on one spec: each lost race costs one more validation


class SpecWriter:
    def __init__(self, specs: SpecFiles) -> None:
        self.specs = specs
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Cancel the validations under way (from any thread): the server is stopping."""
        self._stopping.set()

    def _validate(self, text: str, target: Path) -> None:
        with overall(UPLOAD_SECONDS, self._stopping):
            report = validate_text(text, target)
        if not report.valid:
            raise Invalid.from_diagnostics(report.diagnostics)

    def _spec(self, workflow: str) -> SpecFile:
        spec = self.specs.index().get(workflow)
        # a symlink out of the folder is not written through
        if spec is None or not self.specs.inside(spec.path):
            raise NotFound(
                f"no spec under {display_path(self.specs.folder)}/ defines workflow {workflow!r}; "
                "writes only change files there"
            )
        return spec

    def upload(self, data: bytes, name: str | None, replace: bool) -> Written:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid(
                "<upload>", f"the spec is not UTF-8 text (byte {exc.start})", "encoding"
            ) from exc
        declared = _declared_name(text)
        if name is None:
            name = declared
        if name is None:
            raise _invalid(
                "<upload>",
                "the workflow needs a name: set `name:` in the spec or pass ?name=",
                "missing-name",
            )
        if not re.match(NAME_PATTERN, name):
            raise _invalid(
                "<upload>", f"workflow name {name!r} is not valid ({NAME_RULE})", "invalid-name"
            )
        if declared is not None and declared != name:
            raise _invalid(
                "<upload>", f"the spec names itself {declared!r}, not {name!r}", "name-mismatch"
            )
        self.specs.folder.mkdir(parents=True, exist_ok=True)
        target = (self.specs.folder / f"{name}.yaml").resolve()
        self._may_upload(name, target, replace)
        self._validate(text, target)
        with self._lock:
            created = self._may_upload(name, target, replace)
            write_if_changed(target, text)
        return Written(workflow=name, spec=target.name, created=created)

    def _may_upload(self, name: str, target: Path, replace: bool) -> bool:
        """Whether the upload creates its file; Conflict when it may not be written."""
        existing = self.specs.index().get(name)
        if existing is not None and existing.path != target:
            raise Conflict(f"workflow {name!r} is defined by {display_path(existing.path)} already")
        created = not target.exists()
        if not created and not replace:
            raise Conflict(f"{display_path(target)} exists; pass ?replace=true to overwrite it")
        return created

    def add_job(self, workflow: str, name: str, fields: Mapping[str, Any]) -> Written:
        def change(editor: SpecEditor, spec: SpecFile) -> None:
            if not hasattr(editor.jobs, "keys"):
                raise _invalid(
                    display_path(spec.path),
                    "`jobs:` is not a mapping; fix the spec first",
                    "invalid",
                )
            if name in editor.jobs:
                raise Conflict(f"workflow {workflow!r} has a job {name!r} already")
            if "name" in fields:  # not a job key; it would also clash with add_job's own argument
                raise _invalid(
                    display_path(spec.path),
                    f"unknown key 'name' in job {name!r} (the name is given apart)",
                    "unknown-key",
                )
            editor.add_job(name, **dict(fields))

        return self._edit(workflow, change)

    def add_need(self, workflow: str, job: str, need: str) -> Written:
        def change(editor: SpecEditor, spec: SpecFile) -> None:
            if not hasattr(editor.jobs, "keys") or job not in editor.jobs:
                raise NotFound(f"workflow {workflow!r} has no job {job!r}")
            if not hasattr(editor.jobs[job], "get"):
                raise _invalid(
                    display_path(spec.path),
                    f"job {job!r} is not a mapping; fix the spec first",
                    "invalid",
                )
            editor.add_need(job, need)

        return self._edit(workflow, change)

    def remove_job(self, workflow: str, job: str) -> Written:
        def change(editor: SpecEditor, spec: SpecFile) -> None:
            if not hasattr(editor.jobs, "keys") or job not in editor.jobs:
                raise NotFound(f"workflow {workflow!r} has no job {job!r}")
            editor.remove_job(job)

        return self._edit(workflow, change)

    def _edit(self, workflow: str, change: Callable[[SpecEditor, SpecFile], None]) -> Written:
        """Edit the spec's text, validate the result, and write it if the file is still the
        text the edit was made from; otherwise make the edit again on the new text."""
        from ccspec.spec.edit import SpecEditor

        for _ in range(_ATTEMPTS):
            spec = self._spec(workflow)
            before = spec.path.read_text()
            editor = SpecEditor(spec.path, before)
            change(editor, spec)
            text = editor.text()
            self._validate(text, spec.path)
            with self._lock:
                if spec.path.read_text() == before:
                    write_if_changed(spec.path, text)
                    return Written(workflow=workflow, spec=spec.path.name, created=False)
        raise Conflict(
            f"the spec of workflow {workflow!r} kept changing while this edit was checked; send it again"
        )


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
