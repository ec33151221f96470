"""Rendering a spec's values through its templates, with diagnostics: every template inside a
value is analysed (syntax, undefined names) and rendered; a value that reads upstream
outputs (`jobs.X.outputs`) is left a template until those jobs have finished. Rendered values
are coerced to what a field takes (text, a list of text).

`FieldRenderer` is the base of the resolver (ccspec.spec.resolver), which renders each job's
fields with it at plan time and again at launch.
"""

from __future__ import annotations

import difflib
from typing import Any

from ccspec.errors import Diagnostic
from ccspec.spec.source import Source, ValuePath
from ccspec.spec.templating import CONTEXT_NAMES, TemplateProblem, analyze, has_template, render

__all__ = ["FieldRenderer", "nested_template", "suggest"]

_JINJA_GLOBALS = frozenset(
    {
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "loop",
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
    }
)


def suggest(word: str, choices: Any) -> str:
    """` (did you mean 'x'?)` or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class FieldRenderer:
    """Renders values of one spec, collecting its diagnostics (one per place and message)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.diagnostics: dict[tuple[int, int, str], Diagnostic] = {}
        self.upstream: dict[str, Any] | None = None  # set when rendering at launch time

    def error(self, path: ValuePath, message: str, code: str, *, key: bool = False) -> None:
        d = self.source.diagnostic(path, message, code, key=key)
        self.diagnostics.setdefault((d.line, d.col, d.message), d)

    # -- templates --------------------------------------------------------------------

    def _template(
        self, value: Any, path: ValuePath, ctx: dict[str, Any], *, may_defer: bool
    ) -> tuple[Any, set[str]]:
        """Render every template inside `value`. Returns (value, upstream jobs it waits for)."""
        if isinstance(value, str):
            if not has_template(value):
                return value, set()
            info = self._analyze(value, path)
            if info is None:
                return value, set()
            if info.jobs and self.upstream is not None:
                ctx = {**ctx, "jobs": self.upstream}
            elif info.jobs:
                if not may_defer:
                    self.error(
                        path,
                        f"`{path[2] if len(path) > 2 else path[-1]}` cannot use upstream outputs (jobs.{sorted(info.jobs)[0]}); only run, args, parameters, env and matrix can",
                        "upstream-not-allowed",
                    )
                    return value, set()
                return value, set(info.jobs)
            if not self._names_ok(info, path, ctx):
                return value, set()
            try:
                return render(value, ctx), set()
            except TemplateProblem as p:
                self.error(
                    path,
                    p.message + _where(path) if p.code == "template-sandbox" else p.message,
                    p.code,
                )
                return value, set()
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            ups: set[str] = set()
            for k, v in value.items():
                out[k], u = self._template(v, (*path, k), ctx, may_defer=may_defer)
                ups |= u
            return out, ups
        if isinstance(value, list):
            items: list[Any] = []
            ups = set()
            for i, v in enumerate(value):
                r, u = self._template(v, (*path, i), ctx, may_defer=may_defer)
                items.append(r)
                ups |= u
            return items, ups
        return value, set()

    def _syntax_only(self, value: Any, path: ValuePath) -> None:
        if isinstance(value, str) and has_template(value):
            self._analyze(value, path)
        elif isinstance(value, dict):
            for k, v in value.items():
                self._syntax_only(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self._syntax_only(v, (*path, i))

    def _analyze(self, value: str, path: ValuePath) -> Any:
        try:
            return analyze(value)
        except TemplateProblem as p:
            where = f" (line {p.line} of the template)" if p.line > 1 else ""
            self.error(path, p.message + where, p.code)
            return None

    def _names_ok(self, info: Any, path: ValuePath, ctx: dict[str, Any]) -> bool:
        ok = True
        for unknown in sorted(info.names - CONTEXT_NAMES - _JINJA_GLOBALS):
            self.error(
                path,
                f"undefined template variable {unknown!r}{suggest(unknown, CONTEXT_NAMES)}; templates can use vars, matrix, workflow, job and jobs",
                "template-undefined",
            )
            ok = False
        for var in sorted(info.vars - set(ctx["vars"])):
            self.error(
                path,
                f"undefined variable vars.{var}{suggest(var, ctx['vars'])}; declare it under `vars:` or pass --var {var}=VALUE",
                "template-undefined",
            )
            ok = False
        for dim in sorted(info.matrix - set(ctx["matrix"])):
            if ctx["matrix"]:
                self.error(
                    path,
                    f"the matrix has no dimension {dim!r} (it has {', '.join(ctx['matrix'])})",
                    "template-undefined",
                )
            else:
                self.error(
                    path,
                    f"template uses matrix.{dim} but this job has no `matrix:`",
                    "template-undefined",
                )
            ok = False
        return ok

    # -- coercions --------------------------------------------------------------------

    def _as_text(self, value: Any, path: ValuePath, what: str) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        self.error(path, f"`{what}` must render to text, got {type(value).__name__}", "bad-type")
        return str(value)

    def _as_list(self, value: Any, path: ValuePath, what: str) -> list[str]:
        """Text items; a lone `{{ expression }}` that yields a list adds one item per element."""
        items: list[str] = []
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            parts = item if isinstance(item, (list, tuple)) else [item]
            items.extend(self._as_text(p, (*path, i), what) for p in parts)
        return items


def nested_template(value: Any) -> bool:
    """Whether a template stands anywhere inside `value`."""
    if isinstance(value, str):
        return has_template(value)
    if isinstance(value, dict):
        return any(nested_template(v) for v in value.values())
    if isinstance(value, list):
        return any(nested_template(v) for v in value)
    return False


def _where(path: ValuePath) -> str:
    """` in field F of job J` for a problem found while rendering the template at `path`."""
    if len(path) >= 3 and path[0] == "jobs":
        field = ".".join(str(p) for p in path[2:])
        return f" (in field {field!r} of job {path[1]!r})"
    return f" (in {'.'.join(str(p) for p in path)!r})"
