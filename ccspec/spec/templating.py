"""Jinja2 templates in specs: a sandbox, strict undefined values, and a `q` filter.

Called by `ccspec.spec.resolve` while it expands jobs, and again by the engine when upstream
outputs become known. Jinja is imported only when a spec contains template syntax, so a
large spec without templates never pays for it.

Rules the docs teach:
- `{{ x | q }}` shell-quotes a value; use it for anything interpolated into `run:`, which is a
  shell command. `args:` are passed as argv without a shell and need no quoting.
- A string that is a single `{{ expression }}` keeps the expression's type, so
  `parameters: {scores: "{{ jobs.train.outputs }}"}` passes a list, not its text.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
import threading
from collections.abc import Iterator
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


_MAX_SIZE = 100_000  # longest string or list a template may build
_MAX_STEPS = 1_000_000  # items all `range()` calls of one rendering may yield
_MAX_SECONDS = 5.0  # wall-clock limit of one rendering (POSIX main thread)
_WIDTH = re.compile(r"(?:%[-+ #0]*|\{[^{}]*:[^{}]*?)(\d{6,})")  # a format width of 100000 or more
_budget = threading.local()


class _Exhausted(Exception):
    pass


def _steps(count: int) -> None:
    left = getattr(_budget, "steps", _MAX_STEPS) - count
    _budget.steps = left
    if left < 0:
        raise _Exhausted(f"the template loops more than {_MAX_STEPS:,} times")


def _bounded_range(*args: int) -> Any:
    items = range(*args)
    if len(items) > _MAX_SIZE:
        raise _Exhausted(f"range() of {len(items):,} items is over the limit of {_MAX_SIZE:,}")

    def counted() -> Any:
        for item in items:
            _steps(1)
            yield item

    return counted()


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, list, tuple)) and len(value) > _MAX_SIZE:
        raise _Exhausted(f"the template builds a value longer than {_MAX_SIZE:,}")
    return value


def _check_format(text: Any) -> None:
    if isinstance(text, str) and _WIDTH.search(text):
        raise _Exhausted("format widths of 100,000 or more are not allowed")


_GROWING_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.filters import do_center, do_indent, do_replace
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Sandbox(ImmutableSandboxedEnvironment):
        """Jinja's immutable sandbox, plus limits on what a template may build or loop over,
        so a spec cannot exhaust memory or time (`'x' * 10**10`, nested huge loops)."""

        intercepted_binops = frozenset({"*", "**", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > 1000:
                raise SecurityError("exponent too large")
            if operator == "*":
                for seq, count in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > _MAX_SIZE:
                        raise SecurityError(f"result longer than {_MAX_SIZE:,} items")
            if operator == "%":
                _check_format(left)
            return _check_size(super().call_binop(context, operator, left, right))

        def getattr(self, obj: Any, attribute: str) -> Any:
            if isinstance(obj, str) and attribute in ("format", "format_map"):
                _check_format(obj)  # str.format is wrapped by the sandbox: check the pattern here
            return super().getattr(obj, attribute)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            name = getattr(__obj, "__name__", "")
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, str):
                if name in _GROWING_METHODS and any(isinstance(a, int) and a > _MAX_SIZE for a in args):
                    raise SecurityError(f"width over {_MAX_SIZE:,}")
                elif name == "replace" and len(args) >= 2:
                    _check_replace(owner, args[0], args[1])
            return _check_size(super().call(__context, __obj, *args, **kwargs))

    def replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> Any:
        _check_replace(str(s), str(old), str(new))
        return do_replace(eval_ctx, s, old, new, count)

    def center(value: Any, width: int = 80) -> Any:
        if isinstance(width, int) and width > _MAX_SIZE:
            raise SecurityError(f"width over {_MAX_SIZE:,}")
        return do_center(value, width)

    def indent(s: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width * max(1, str(s).count("\n") + 1) > _MAX_SIZE:
            raise SecurityError(f"indented text over {_MAX_SIZE:,} characters")
        return do_indent(s, width, *args, **kwargs)

    from jinja2.utils import pass_eval_context

    env = Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals["range"] = _bounded_range
    env.filters.update({
        "q": shell_quote, "shell_quote": shell_quote, "replace": pass_eval_context(replace),
        "center": center, "indent": indent, "wordwrap": lambda s, *a, **k: _check_size(str(s)),
    })
    return env


def _check_replace(text: str, old: Any, new: Any) -> None:
    if isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        if len(text) + hits * max(0, len(new) - len(old)) > _MAX_SIZE:
            from jinja2.exceptions import SecurityError

            raise SecurityError(f"replace() would build text longer than {_MAX_SIZE:,}")


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
    from jinja2 import TemplateSyntaxError, meta, nodes

    env = _environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", "template-syntax", exc.lineno or 1) from None
    found: dict[str, set[str]] = {"vars": set(), "matrix": set(), "jobs": set()}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name) or target.name not in found:
            continue
        if isinstance(node, nodes.Getattr):
            found[target.name].add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found[target.name].add(node.arg.value)
    try:  # the names are found by compiling, which is where an unknown filter or test shows
        names = frozenset(meta.find_undeclared_variables(tree))
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template error: {exc.message}", "template-syntax", exc.lineno or 1) from None
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
    """Render one template string. A lone `{{ expression }}` keeps its native type."""
    from jinja2 import TemplateError, TemplateSyntaxError, Undefined
    from jinja2.exceptions import SecurityError, UndefinedError

    _budget.steps = _MAX_STEPS
    try:
        with _time_limit(_MAX_SECONDS):
            kind, compiled = _compiled(source)
            if kind == "expression":
                value = compiled(**context)
                if isinstance(value, Undefined):
                    str(value)  # StrictUndefined raises here with its message
                return _check_size(value)
            return _check_size(compiled.render(context))
    except (SecurityError, _Exhausted) as exc:
        raise TemplateProblem(f"unsafe template rejected by the sandbox: {exc}", "template-sandbox") from None
    except UndefinedError as exc:
        raise TemplateProblem(f"undefined template value: {exc.message}", "template-undefined") from None
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", "template-syntax", exc.lineno or 1) from None
    except TemplateError as exc:
        raise TemplateProblem(f"template error: {exc}", "template-error") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError, OverflowError) as exc:
        raise TemplateProblem(f"template failed: {type(exc).__name__}: {exc}", "template-error") from None
    except (RecursionError, MemoryError):
        raise TemplateProblem("template failed: it needs too much memory or recursion", "template-error") from None


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt a rendering that runs too long (POSIX, main thread; elsewhere the step and
    size limits alone apply)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise _Exhausted(f"rendering took longer than {_MAX_SECONDS:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
