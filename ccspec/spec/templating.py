"""Jinja2 templates in specs: a sandbox, strict undefined values, and a `q` filter.

Called by `ccspec.spec.resolve` while it expands jobs, and again by the engine when upstream
outputs become known. Jinja is imported only when a spec contains template syntax, so a
large spec without templates never pays for it. The sandbox itself, with its limits on
steps, sizes, output and time, is `ccspec.spec.sandbox`.

Rules the docs teach:
- `{{ x | q }}` shell-quotes a value; use it for anything interpolated into `run:`, which is a
  shell command. `args:` are passed as argv without a shell and need no quoting.
- A string that is a single `{{ expression }}` keeps the expression's type, so
  `parameters: {scores: "{{ jobs.train.outputs }}"}` passes a list, not its text.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "CONTEXT_NAMES",
    "TemplateInfo",
    "TemplateProblem",
    "analyze",
    "has_template",
    "render",
    "shell_quote",
]

CONTEXT_NAMES = frozenset({"vars", "matrix", "workflow", "job", "jobs"})
_MARKERS = ("{{", "{%", "{#")
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{|\{%|\{#).)*)\}\}\s*$", re.DOTALL)


class TemplateProblem(Exception):
    """A template that cannot be rendered; `code` says which kind of problem."""

    def __init__(self, message: str, code: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.line = line  # line inside the template, 1-based


def has_template(value: str) -> bool:
    return "{" in value and any(m in value for m in _MARKERS)


def shell_quote(value: Any) -> str:
    """The `q` filter: one shell word per value; a list becomes space-separated words."""
    if isinstance(value, (list, tuple)):
        return " ".join(shlex.quote(_text(v)) for v in value)
    return shlex.quote(_text(value))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@lru_cache(maxsize=1)
def _environment() -> Any:
    from ccspec.spec.sandbox import make_environment

    return make_environment(q=shell_quote, shell_quote=shell_quote)


@dataclass(frozen=True)
class TemplateInfo:
    """What a template refers to, found in its syntax tree before rendering."""

    names: frozenset[str]  # top-level names it reads
    vars: frozenset[str]  # vars.X it reads
    matrix: frozenset[str]  # matrix.X it reads
    jobs: frozenset[str]  # jobs.X it reads (upstream outputs: rendered at run time)


@lru_cache(maxsize=4096)
def analyze(source: str) -> TemplateInfo:
    """Parse a template; raises TemplateProblem for a syntax error."""
    try:
        return _analyze(source)
    except RecursionError:  # Jinja's parser and compiler recurse once per level of nesting
        raise TemplateProblem(
            "the template nests too deeply (brackets, blocks or expressions inside "
            "each other); simplify it",
            "template-syntax",
        ) from None


def _analyze(source: str) -> TemplateInfo:
    from jinja2 import TemplateSyntaxError, meta, nodes

    env = _environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(
            f"template syntax error: {exc.message}", "template-syntax", exc.lineno or 1
        ) from None
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        tag = type(node).__name__.lower().replace("fromimport", "from ... import")
        raise TemplateProblem(
            f"templates in specs cannot {{% {tag} %}} other files; put the text in a var or the spec",
            "template-sandbox",
            node.lineno,
        )
    for name in tree.find_all(nodes.Name):
        if name.name == "self" and name.ctx == "load":
            raise TemplateProblem(
                "`self` (the template itself) is not available in spec templates",
                "template-sandbox",
                name.lineno,
            )
    found: dict[str, set[str]] = {"vars": set(), "matrix": set(), "jobs": set()}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name) or target.name not in found:
            continue
        if isinstance(node, nodes.Getattr):
            found[target.name].add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found[target.name].add(node.arg.value)
    from ccspec.spec import budget

    budget.start()  # compiling folds constants, which may call filters
    try:  # the names are found by compiling, which is where an unknown filter or test shows
        names = frozenset(meta.find_undeclared_variables(tree))
    except TemplateSyntaxError as exc:
        raise TemplateProblem(
            f"template error: {exc.message}", "template-syntax", exc.lineno or 1
        ) from None
    return TemplateInfo(
        names=names,
        vars=frozenset(found["vars"]),
        matrix=frozenset(found["matrix"]),
        jobs=frozenset(found["jobs"]),
    )


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    env = _environment()
    match = _SINGLE_EXPRESSION.match(source)
    if match:
        return ("expression", env.compile_expression(match.group("expr"), undefined_to_none=False))
    return ("template", env.from_string(source))


def render(source: str, context: dict[str, Any]) -> Any:
    """Render one template string. A lone `{{ expression }}` keeps its native type. Limits
    (steps, sizes, output, time) come from `ccspec.spec.sandbox` and `ccspec.spec.budget`
    and hold in any thread."""
    from jinja2 import TemplateError, TemplateSyntaxError, Undefined
    from jinja2.exceptions import SecurityError, UndefinedError

    from ccspec.spec import budget, sandbox

    budget.start()
    try:
        kind, compiled = _compiled(source)
        if kind == "expression":
            value = compiled(**context)
            if isinstance(value, Undefined):
                str(value)  # StrictUndefined raises here with its message
            return sandbox.check(value)
        return sandbox.check(compiled.render(context))
    except (SecurityError, budget.Exhausted) as exc:
        raise TemplateProblem(
            f"unsafe template rejected by the sandbox: {exc}", "template-sandbox"
        ) from None
    except UndefinedError as exc:
        raise TemplateProblem(
            f"undefined template value: {exc.message}", "template-undefined"
        ) from None
    except TemplateSyntaxError as exc:
        raise TemplateProblem(
            f"template syntax error: {exc.message}", "template-syntax", exc.lineno or 1
        ) from None
    except TemplateError as exc:
        raise TemplateProblem(f"template error: {exc}", "template-error") from None
    except (
        TypeError,
        ValueError,
        ArithmeticError,
        LookupError,
        AttributeError,
        OverflowError,
    ) as exc:
        raise TemplateProblem(
            f"template failed: {type(exc).__name__}: {exc}", "template-error"
        ) from None
    except (RecursionError, MemoryError):
        raise TemplateProblem(
            "template failed: it needs too much memory or recursion", "template-error"
        ) from None
