"""The sandbox spec templates render in: Jinja's immutable sandbox with a budget per rendering.

Jinja's sandbox refuses unsafe attributes (`__class__`, `__globals__`, `mro`, ...) and methods
that change data. This module adds bounds, so a hostile spec can neither escape nor exhaust
the machine, and they hold in any thread (no signals, no timers):

- steps: every item a `{% for %}` loop takes and every call (macros, methods, globals,
  filters) charges one step of the rendering's budget, which also carries a wall-clock
  deadline, checked every few hundred steps;
- sizes: a value a template builds (operators, `~`, literals, calls, filters, format
  strings) may not weigh more than MAX_SIZE: a string's characters, a container's items,
  counted through nested containers, so shared references cannot hide a bomb; growth that
  would be allocated before it can be weighed (`'x' * n`, `center(n)`, format widths, a
  separator times the items of a join) is refused beforehand;
- output: what `{{ }}`, macros and loop bodies write is charged to an output budget.

A budget belongs to one thread; `start()` opens a fresh one before each rendering. The size
checks are in ccspec.spec.sandbox_bounds, the bounded filters in ccspec.spec.sandbox_filters;
here are the code generator that meters loops and literals, and the environment.
Used by `ccspec.spec.templating` (its only caller), which reports `Exhausted` and Jinja's
`SecurityError` as sandbox diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ccspec.spec.budget import TOO_MUCH_OUTPUT, Budget, Exhausted, current
from ccspec.spec.sandbox_bounds import (
    MAX_SIZE,
    SCALARS,
    check,
    check_binop,
    check_inputs,
    check_join,
    check_method,
    checked_result,
    format_bound,
    metered,
    weight,
)
from ccspec.spec.sandbox_filters import bounded_filters, bounded_lipsum, bounded_range

# MAX_SIZE, check and weight are re-exported: the sandbox's interface to its callers
__all__ = ["MAX_SIZE", "Sandbox", "check", "make_environment", "weight"]

_MACRO_STEPS = 5  # a macro call costs about five loop items


# -- the code generator: loops, `~` and literals are metered ----------------------------


_LOOP_FILTER = "ccspec metered loop"  # not an identifier: a template cannot name it


class _Generator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Before Jinja looks at the names and filters a template uses: every loop's iterable
        # goes through the metering filter, charged one step and its body's text per item.
        for loop in node.find_all(nodes.For):
            text = sum(len(data.data) for data in loop.find_all(nodes.TemplateData))
            loop.iter = nodes.Filter(
                loop.iter, _LOOP_FILTER, [nodes.Const(text)], [], None, None, lineno=loop.lineno
            )
        super().visit_Template(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _checked(self, visit: Callable[[Any, Frame], None], node: nodes.Node, frame: Frame) -> None:
        self.write("environment.checked_value(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._checked(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._checked(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":
            self._checked(super().visit_Tuple, node, frame)
        else:
            super().visit_Tuple(node, frame)


_SIZED = (list, tuple, str, range, dict)
_SMALL_LOOP = 64  # a loop this short is charged when it starts; its body cannot run long unseen


def _metered_loop(items: Iterable[Any], text: int) -> Iterable[Any]:
    budget = current()
    if type(items) in _SIZED and len(items) <= _SMALL_LOOP:  # type: ignore[arg-type]
        count = len(items)  # type: ignore[arg-type]
        budget.charge(count, count * text)
        return items
    return _metered_items(items, text, budget)


def _metered_items(items: Iterable[Any], text: int, budget: Budget) -> Iterator[Any]:
    for item in items:
        budget.steps -= 1  # Budget.charge, inlined: this runs for every item of a long loop
        if text:
            budget.output -= text
            if budget.output < 0:
                raise Exhausted(TOO_MUCH_OUTPUT)
        if budget.steps < budget.check_at:
            budget.charge(0)
        yield item


def _checked_concat(parts: tuple[Any, ...]) -> str:
    return str(check("".join(map(str, parts))))  # its parts were all checked when built


def _finalize(value: Any) -> Any:
    """Every `{{ }}` output: charged to the output budget before it becomes text."""
    kind = type(value)
    size = len(value) if kind is str else 1 if kind in SCALARS else weight(value)
    if size > MAX_SIZE:
        raise Exhausted(
            f"the template writes a value of more than {MAX_SIZE:,} characters or items"
        )
    budget = current()
    budget.output -= size
    if budget.output < 0:
        raise Exhausted(TOO_MUCH_OUTPUT)
    return value


# -- the environment -------------------------------------------------------------------


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus the budget and size limits above."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _Generator
    checked_concat = staticmethod(_checked_concat)
    checked_value = staticmethod(check)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return check(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        current().charge(_MACRO_STEPS if isinstance(__obj, Macro) else 1)
        check_inputs(args, kwargs)
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (_metered_loop(args[0], 0), *args[1:])
        target = getattr(__obj, "__wrapped__", __obj)  # Jinja hands out str.format wrapped
        name = getattr(target, "__name__", "")
        owner = getattr(target, "__self__", None)
        if name and owner is not None:
            if name == "join" and isinstance(owner, (str, bytes)) and args:
                args = (list(metered(iter(args[0]))), *args[1:])
                check_join(owner, args[0])
            elif name in ("format", "format_map") and isinstance(owner, str):
                mapping = (
                    args[0] if name == "format_map" and args and isinstance(args[0], dict) else {}
                )
                format_bound(owner, (*args, *kwargs.values(), *mapping.values()))
            check_method(owner, name, args)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(__obj, Macro) and isinstance(result, str):
            current().charge(0, len(result))
        return checked_result(result)


def make_environment(**filters: Callable[..., Any]) -> Sandbox:
    """The sandbox, with `filters` added to Jinja's (bounded like them)."""
    env = Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        optimized=False,
        finalize=_finalize,
    )
    env.filters = bounded_filters({**env.filters, **filters})
    env.filters[_LOOP_FILTER] = _metered_loop
    env.globals["range"] = bounded_range
    env.globals["lipsum"] = bounded_lipsum
    return env
