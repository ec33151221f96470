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

A budget belongs to one thread; `start()` opens a fresh one before each rendering.
Used by `ccspec.spec.templating` (its only caller), which reports `Exhausted` and Jinja's
`SecurityError` as sandbox diagnostics.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum, pass_eval_context

from ccspec.spec.budget import TOO_MUCH_OUTPUT, Budget, Exhausted, current

__all__ = ["MAX_SIZE", "Sandbox", "check", "make_environment", "weight"]

MAX_SIZE = 100_000  # heaviest string or container a template may build
MAX_INT_BITS = 100_000  # largest integer a template may compute (about 30,000 digits)
MAX_EXPONENT = 1000
_MACRO_STEPS = 5  # a macro call costs about five loop items


# -- weights ---------------------------------------------------------------------------

_SCALARS = (int, float, bool, type(None))
_CONTAINERS = (list, tuple, set, frozenset, dict, Namespace, range)


def weight(value: object, limit: int = MAX_SIZE) -> int:
    """A string's length, a container's items plus the weight of what they hold, counted
    through every reference (a list of n references to one string weighs n times it).
    Stops counting once past `limit`, so a bomb costs no more than a value at the limit."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value)  # type: ignore[arg-type]
    if kind in _SCALARS or not isinstance(value, (str, bytes, *_CONTAINERS)):
        return 1  # a number, a loop, a macro; an undefined value (`default` handles those)
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, (str, bytes, range)):
            total += len(item)
            continue
        if isinstance(item, (dict, Namespace)):
            if isinstance(item, Namespace):
                item = object.__getattribute__(item, "_Namespace__attrs")
            total += len(item) + 1
            children: Iterable[Any] = (x for pair in item.items() for x in pair)
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += len(item) + 1
            children = item
        else:
            if isinstance(item, Undefined):
                str(item)  # inside a container, a strict undefined (an unsafe attribute) raises
            continue  # counted as an item of its container
        if total > limit:
            break
        for child in children:
            child_kind = type(child)
            if child_kind is str:
                total += len(child)
            elif child_kind not in _SCALARS:
                stack.append(child)
    return total


def check(value: Any) -> Any:
    """`value`, or Exhausted when it weighs more than MAX_SIZE."""
    if (len(value) if type(value) is str else weight(value)) > MAX_SIZE:
        raise Exhausted(
            f"the template builds a value of more than {MAX_SIZE:,} characters or items"
        )
    return value


def _check_inputs(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    total = 0
    for value in (*args, *kwargs.values()) if kwargs else args:
        total += len(value) if type(value) is str else weight(value)
        if total > MAX_SIZE:
            raise Exhausted(
                f"the template passes more than {MAX_SIZE:,} characters or items to one call"
            )


def _metered(items: Iterator[Any]) -> Iterator[Any]:
    """A lazy result (map, select, batch, ...): each item is a step, and together they may
    not weigh more than MAX_SIZE."""
    budget = current()
    total = 0
    for item in items:
        budget.charge()
        total += weight(item)
        if total > MAX_SIZE:
            raise Exhausted(
                f"the template builds a sequence of more than {MAX_SIZE:,} characters or items"
            )
        yield item


def _checked_result(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return check(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, Iterator) and not isinstance(value, (str, bytes)):
        return _metered(value)
    return check(value)


# -- growth refused before it is allocated ---------------------------------------------

_PERCENT = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.)")


def _format_bound(fmt: str, values: Iterable[Any]) -> None:
    """Refuse a format (`%`, str.format, the `format` filter) whose result could be longer
    than MAX_SIZE: each field is at most its width plus the heaviest value."""
    heaviest = max((weight(v) for v in values), default=0)
    fields = 0
    widest = 0
    if "%" in fmt:
        for match in _PERCENT.finditer(fmt):
            if match.group(3) == "%":
                continue
            if "*" in (match.group(1), match.group(2)):
                raise SecurityError("a format width taken from the values (`*`) is not allowed")
            fields += 1
            widest = max(widest, *(int(g) for g in match.groups()[:2] if g and g.isdigit()), 0)
    if "{" in fmt:
        try:
            parsed = list(string.Formatter().parse(fmt))
        except ValueError:
            parsed = []  # the formatting itself reports the syntax error
        for _, field, spec, _ in parsed:
            if field is None:
                continue
            if spec and "{" in spec:
                raise SecurityError("a format spec taken from the values (`{:{}}`) is not allowed")
            fields += 1
            widest = max(widest, *(int(n) for n in re.findall(r"\d+", spec or "")), 0)
    if len(fmt) + fields * (widest + heaviest) > MAX_SIZE:
        raise Exhausted(f"the format would build more than {MAX_SIZE:,} characters")


_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "to_bytes"})


def _check_method(owner: Any, name: str, args: tuple[Any, ...]) -> None:
    """Methods whose result can be far larger than their inputs."""
    if name in _PADDING and args and isinstance(args[0], int) and args[0] > MAX_SIZE:
        raise SecurityError(f"{name}() wider than {MAX_SIZE:,}")
    if not isinstance(owner, (str, bytes)) or not args:
        return
    tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
    if name == "expandtabs" and isinstance(args[0], int) and tabs * args[0] > MAX_SIZE:
        raise SecurityError(f"expandtabs() would build more than {MAX_SIZE:,} characters")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1])
    elif name == "translate":
        table = args[0]
        longest = (
            max((weight(v) for v in table.values()), default=1) if isinstance(table, Mapping) else 1
        )
        if len(owner) * longest > MAX_SIZE:
            raise SecurityError(f"translate() could build more than {MAX_SIZE:,} characters")


def _check_join(separator: Any, items: list[Any] | tuple[Any, ...]) -> None:
    size = weight(separator) * max(0, len(items) - 1) + weight(items)
    if size > MAX_SIZE:
        raise Exhausted(f"the join would build more than {MAX_SIZE:,} characters")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    same = isinstance(text, str) and isinstance(old, str) and isinstance(new, str)
    if same or (isinstance(text, bytes) and isinstance(old, bytes) and isinstance(new, bytes)):
        hits = text.count(old) if old else len(text) + 1
        if len(text) + hits * max(0, len(new) - len(old)) > MAX_SIZE:
            raise SecurityError(f"replace() would build text longer than {MAX_SIZE:,}")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**":
        if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise SecurityError("exponent too large")
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and left.bit_length() * right > MAX_INT_BITS
        ):
            raise SecurityError(f"the power has more than {MAX_INT_BITS:,} bits")
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise SecurityError(f"the product has more than {MAX_INT_BITS:,} bits")
            return
        for seq, count in ((left, right), (right, left)):
            sized = (
                isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int) and count > 0
            )
            if sized and weight(seq) * count > MAX_SIZE:
                raise SecurityError(
                    f"the result would be more than {MAX_SIZE:,} characters or items"
                )
    elif operator == "%" and isinstance(left, (str, bytes)):
        values = (
            right.values()
            if isinstance(right, Mapping)
            else right
            if isinstance(right, tuple)
            else (right,)
        )
        _format_bound(left if isinstance(left, str) else left.decode("latin-1"), values)


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
    size = len(value) if kind is str else 1 if kind in _SCALARS else weight(value)
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
        _check_binop(operator, left, right)
        return check(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        current().charge(_MACRO_STEPS if isinstance(__obj, Macro) else 1)
        _check_inputs(args, kwargs)
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (_metered_loop(args[0], 0), *args[1:])
        target = getattr(__obj, "__wrapped__", __obj)  # Jinja hands out str.format wrapped
        name = getattr(target, "__name__", "")
        owner = getattr(target, "__self__", None)
        if name and owner is not None:
            if name == "join" and isinstance(owner, (str, bytes)) and args:
                args = (list(_metered(iter(args[0]))), *args[1:])
                _check_join(owner, args[0])
            elif name in ("format", "format_map") and isinstance(owner, str):
                mapping = (
                    args[0] if name == "format_map" and args and isinstance(args[0], dict) else {}
                )
                _format_bound(owner, (*args, *kwargs.values(), *mapping.values()))
            _check_method(owner, name, args)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(__obj, Macro) and isinstance(result, str):
            current().charge(0, len(result))
        return _checked_result(result)


# -- filters and globals ---------------------------------------------------------------


# Filters whose result is never much heavier than their input, do one pass over it and
# return no iterator: every value a template holds was bounded when built, so these need
# no checks (they are the common ones, and checks would cost ordinary templates).
_SHRINKING = frozenset(
    {
        "abs",
        "capitalize",
        "count",
        "d",
        "default",
        "first",
        "float",
        "int",
        "last",
        "length",
        "lower",
        "round",
        "safe",
        "string",
        "title",
        "trim",
        "upper",
        "wordcount",
    }
)


def _guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that charges a step, refuses inputs over MAX_SIZE, and checks its result."""

    @functools.wraps(function)  # keeps jinja_pass_arg (pass_eval_context and friends)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        current().charge()
        _check_inputs(args, kwargs)
        return _checked_result(function(*args, **kwargs))

    return guarded


def _filters(originals: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters with bounds on the ones that can build much more than they take."""

    def replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> Any:
        _check_replace(str(s), old, new)
        return originals["replace"](eval_ctx, s, old, new, count)

    def center(value: Any, width: int = 80) -> Any:
        if isinstance(width, int) and width > MAX_SIZE:
            raise SecurityError(f"width over {MAX_SIZE:,}")
        return originals["center"](value, width)

    def indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> Any:
        size = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        if size * (str(s).count("\n") + 1) + len(str(s)) > MAX_SIZE:
            raise SecurityError(f"indented text over {MAX_SIZE:,} characters")
        return originals["indent"](s, width, first, blank)

    def join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> Any:
        items = value if isinstance(value, (list, tuple)) else list(_metered(iter(value)))
        _check_join(d, items)
        return originals["join"](eval_ctx, items, d, attribute)

    def format_(value: Any, *args: Any, **kwargs: Any) -> Any:
        _format_bound(str(value), (*args, *kwargs.values()))
        return originals["format"](value, *args, **kwargs)

    def batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
        if isinstance(linecount, int) and linecount > MAX_SIZE:
            raise SecurityError(f"batch() of more than {MAX_SIZE:,} items")
        return originals["batch"](value, linecount, fill_with)

    def sum_(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if not isinstance(start, (int, float)):
            raise SecurityError("sum() adds numbers only (its start must be a number)")
        return originals["sum"](environment, iterable, attribute, start)

    def tojson(eval_ctx: Any, value: Any, indent: Any = None) -> Any:
        if indent is not None and not (isinstance(indent, int) and 0 <= indent <= 8):
            raise SecurityError("tojson() takes an indent of 0 to 8")
        return originals["tojson"](eval_ctx, value, indent)

    def short_text(name: str) -> Callable[..., Any]:
        original = originals[name]

        @functools.wraps(original)
        def bounded(
            value: Any, *args: Any, **kwargs: Any
        ) -> Any:  # regular expressions, slow on long text
            if weight(value) > MAX_SIZE // 10:
                raise SecurityError(f"{name}() takes at most {MAX_SIZE // 10:,} characters")
            return original(value, *args, **kwargs)

        return bounded

    replaced: dict[str, Callable[..., Any]] = {
        "replace": pass_eval_context(replace),
        "center": center,
        "indent": indent,
        "join": pass_eval_context(join),
        "format": format_,
        "batch": batch,
        "sum": _pass_environment(sum_),
        "tojson": pass_eval_context(tojson),
        "wordwrap": lambda s, *a, **k: str(
            s
        ),  # textwrap is slow on long words; specs have no use for it
    }
    for name in ("striptags", "urlize"):
        if name in originals:
            replaced[name] = short_text(name)
    every = {**originals, **replaced}
    return {name: f if name in _SHRINKING else _guarded(f) for name, f in every.items()}


def _pass_environment(function: Callable[..., Any]) -> Callable[..., Any]:
    from jinja2.utils import pass_environment

    return pass_environment(function)


def _bounded_range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_SIZE:
        raise Exhausted(f"range() of {len(items):,} items is over the limit of {MAX_SIZE:,}")
    return items


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if not all(isinstance(x, int) and 0 <= x <= 100 for x in (n, min, max)):
        raise SecurityError("lipsum() takes numbers from 0 to 100")
    return str(generate_lorem_ipsum(n, html, min, max))


def make_environment(**filters: Callable[..., Any]) -> Sandbox:
    """The sandbox, with `filters` added to Jinja's (bounded like them)."""
    env = Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        optimized=False,
        finalize=_finalize,
    )
    env.filters = _filters({**env.filters, **filters})
    env.filters[_LOOP_FILTER] = _metered_loop
    env.globals["range"] = _bounded_range
    env.globals["lipsum"] = _bounded_lipsum
    return env
