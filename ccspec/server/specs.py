"""The spec files the API reads: validated once per version of each file, found by name.

A workflow's spec is the file it was last applied from (the state store records it), else
the file under the specs folder (`--specs`, default `specs/`) that defines it. Writes only
ever touch files under the specs folder. Used by `ccspec.server.reader` and the writers.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccspec.redact import Redactor, redactor_for
from ccspec.spec.validate import SPEC_SUFFIXES, SpecReport, validate_file

__all__ = ["SpecFile", "SpecFiles", "StatKey", "stat_key"]

StatKey = tuple[int, int, int] | None
CACHED_SPECS = 128


def stat_key(path: Path) -> StatKey:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class SpecFile:
    """One spec file as validated at one version (`stat`)."""

    path: Path
    stat: StatKey
    report: SpecReport

    @property
    def name(self) -> str | None:
        return self.report.name

    @property
    def data(self) -> Mapping[str, Any]:
        source = self.report.source
        return source.data if source is not None and isinstance(source.data, dict) else {}

    @property
    def vars(self) -> Mapping[str, Any]:
        if self.report.workflow is not None:
            return self.report.workflow.vars
        found = self.data.get("vars")
        return found if isinstance(found, dict) else {}

    @property
    def secrets(self) -> list[str]:
        found = self.data.get("secrets")
        return [s for s in found if isinstance(s, str)] if isinstance(found, list) else []

    @property
    def description(self) -> str | None:
        found = self.data.get("description")
        return found if isinstance(found, str) else None

    @property
    def errors(self) -> list[str]:
        return [f"{d} [{d.code}]" for d in self.report.diagnostics if d.severity == "error"]

    def redactor(self, environ_secrets: tuple[str, ...]) -> Redactor:
        return redactor_for(self.vars, self.secrets, extra=environ_secrets)


class SpecFiles:
    """Validated spec files, cached by (mtime, size, inode); thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: OrderedDict[Path, SpecFile] = OrderedDict()
        self._lock = threading.Lock()

    def folder_stamp(self) -> int | None:
        """Changes when a file is added to, removed from or renamed in the specs folder."""
        try:
            return os.stat(self.folder).st_mtime_ns
        except OSError:
            return None

    def load(self, path: Path) -> SpecFile | None:
        """The validated spec at `path`, or None when there is no such file."""
        path = path.resolve()
        stat = stat_key(path)
        if stat is None:
            return None
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and cached.stat == stat:
                self._cache.move_to_end(path)
                return cached
            spec = SpecFile(path, stat, validate_file(path))
            self._cache[path] = spec
            while len(self._cache) > CACHED_SPECS:
                self._cache.popitem(last=False)
            return spec

    def files(self) -> list[Path]:
        """Spec files directly under the specs folder (not status files), sorted."""
        try:
            entries = sorted(os.scandir(self.folder), key=lambda e: e.name)
        except OSError:
            return []
        return [
            Path(e.path).resolve()
            for e in entries
            if e.name.endswith(SPEC_SUFFIXES)
            and not e.name.endswith((".status.yaml", ".status.yml"))
            and not e.name.startswith(".")
            and e.is_file()
        ]

    def index(self) -> dict[str, SpecFile]:
        """Workflow name -> its spec under the specs folder (the first file wins a clash)."""
        found: dict[str, SpecFile] = {}
        for path in self.files():
            spec = self.load(path)
            if spec is not None and spec.name is not None:
                found.setdefault(spec.name, spec)
        return found

    def inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.folder.resolve())
        except ValueError:
            return False
        return True
