"""Edit a spec file in place, keeping its comments, order and formatting (ruamel.yaml).

Used by the Python API (build or change a workflow from code) and, later, the API's write
endpoints. Every save is validated first: an edit that would make the spec invalid raises
`SpecInvalid` and leaves the file untouched.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

__all__ = ["SpecEditor"]


class SpecEditor:
    """spec = SpecEditor("specs/quickstart.yaml")
    spec.add_job("plot", run="python plot.py", needs=["summarise"])
    spec.add_need("report", "plot")
    spec.save()
    """

    def __init__(self, path: str | Path, text: str | None = None) -> None:
        from ruamel.yaml import YAML

        self.path = Path(path)
        self._yaml = YAML(typ="rt")
        self._yaml.preserve_quotes = True
        self._yaml.indent(mapping=2, sequence=4, offset=2)
        self.data: Any = self._yaml.load(text if text is not None else self.path.read_text())
        if self.data is None:
            from ruamel.yaml.comments import CommentedMap

            self.data = CommentedMap(version=1, jobs=CommentedMap())

    @property
    def jobs(self) -> Any:
        from ruamel.yaml.comments import CommentedMap

        if self.data.get("jobs") is None:
            self.data["jobs"] = CommentedMap()
        return self.data["jobs"]

    def add_job(self, name: str, **fields: Any) -> None:
        if name in self.jobs:
            raise ValueError(f"job {name!r} already exists")
        self.jobs[name] = _plain(fields)

    def remove_job(self, name: str) -> None:
        if name not in self.jobs:
            raise KeyError(f"no job {name!r}")
        del self.jobs[name]
        for job in self.jobs.values():  # nothing may keep needing it
            needs = job.get("needs") if hasattr(job, "get") else None
            if isinstance(needs, list) and name in needs:
                needs.remove(name)
            elif needs == name:
                del job["needs"]

    def add_need(self, job: str, need: str) -> None:
        from ruamel.yaml.comments import CommentedSeq

        entry = self.jobs[job]
        needs = entry.get("needs")
        if needs is None:
            seq = CommentedSeq([need])
            seq.fa.set_flow_style()
            entry["needs"] = seq
        elif isinstance(needs, str):
            entry["needs"] = [needs, need] if needs != need else needs
        elif need not in needs:
            needs.append(need)

    def text(self) -> str:
        out = io.StringIO()
        self._yaml.dump(self.data, out)
        return out.getvalue()

    def save(self, path: str | Path | None = None) -> Path:
        """Validate, then write atomically. Raises SpecInvalid and writes nothing when invalid."""
        from ccspec.errors import SpecInvalid
        from ccspec.report.status import write_if_changed
        from ccspec.spec.validate import validate_text

        target = Path(path) if path is not None else self.path
        text = self.text()
        report = validate_text(text, target)
        if not report.valid:
            raise SpecInvalid(report.diagnostics)
        write_if_changed(target, text)
        return target


def _plain(fields: dict[str, Any]) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    out = CommentedMap()
    for key, value in fields.items():
        if isinstance(value, (list, tuple)):
            seq = CommentedSeq(list(value))
            seq.fa.set_flow_style()
            value = seq
        out[key] = value
    return out
