"""Jinja's filters and globals as spec templates get them: each charges a step of the
rendering's budget and refuses inputs over MAX_SIZE, and the ones that can build much more than
they take (replace, center, indent, join, format, batch, ...) are bounded beforehand. Filters
that only shrink their input go unchecked: they are the common ones. Used by
`ccspec.spec.sandbox.make_environment`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.utils import generate_lorem_ipsum, pass_eval_context

from ccspec.spec.budget import Exhausted, current
from ccspec.spec.sandbox_bounds import (
    MAX_SIZE,
    check_inputs,
    check_join,
    check_replace,
    checked_result,
    format_bound,
    metered,
    weight,
)

__all__ = ["bounded_filters", "bounded_lipsum", "bounded_range"]

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
        check_inputs(args, kwargs)
        return checked_result(function(*args, **kwargs))

    return guarded


def bounded_filters(originals: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters with bounds on the ones that can build much more than they take."""

    def replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> Any:
        check_replace(str(s), old, new)
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
        items = value if isinstance(value, (list, tuple)) else list(metered(iter(value)))
        check_join(d, items)
        return originals["join"](eval_ctx, items, d, attribute)

    def format_(value: Any, *args: Any, **kwargs: Any) -> Any:
        format_bound(str(value), (*args, *kwargs.values()))
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
        def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
            # regular expressions, slow on long text
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
        # textwrap is slow on long words; specs have no use for it
        "wordwrap": lambda s, *a, **k: str(s),
    }
    for name in ("striptags", "urlize"):
        if name in originals:
            replaced[name] = short_text(name)
    every = {**originals, **replaced}
    return {name: f if name in _SHRINKING else _guarded(f) for name, f in every.items()}


def _pass_environment(function: Callable[..., Any]) -> Callable[..., Any]:
    from jinja2.utils import pass_environment

    return pass_environment(function)


def bounded_range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_SIZE:
        raise Exhausted(f"range() of {len(items):,} items is over the limit of {MAX_SIZE:,}")
    return items


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if not all(isinstance(x, int) and 0 <= x <= 100 for x in (n, min, max)):
        raise SecurityError("lipsum() takes numbers from 0 to 100")
    return str(generate_lorem_ipsum(n, html, min, max))
