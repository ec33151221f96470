"""The size bounds of the template sandbox (ccspec.spec.sandbox): how much a value weighs,
the checks that refuse a value heavier than MAX_SIZE, and the checks that refuse growth before
it is allocated (`'x' * n`, padding, format widths, a separator times the items of a join,
large powers). Used by the sandbox and its bounded filters (ccspec.spec.sandbox_filters).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jinja2 import Undefined
from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

from ccspec.spec.budget import Exhausted, current

__all__ = [
    "MAX_EXPONENT",
    "MAX_INT_BITS",
    "MAX_SIZE",
    "SCALARS",
    "check",
    "check_binop",
    "check_inputs",
    "check_join",
    "check_method",
    "check_replace",
    "checked_result",
    "format_bound",
    "metered",
    "weight",
]

MAX_SIZE = 100_000  # heaviest string or container a template may build
MAX_INT_BITS = 100_000  # largest integer a template may compute (about 30,000 digits)
MAX_EXPONENT = 1000


# -- weights ---------------------------------------------------------------------------

SCALARS = (int, float, bool, type(None))
CONTAINERS = (list, tuple, set, frozenset, dict, Namespace, range)


def weight(value: object, limit: int = MAX_SIZE) -> int:
    """A string's length, a container's items plus the weight of what they hold, counted
    through every reference (a list of n references to one string weighs n times it).
    Stops counting once past `limit`, so a bomb costs no more than a value at the limit."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value)  # type: ignore[arg-type]
    if kind in SCALARS or not isinstance(value, (str, bytes, *CONTAINERS)):
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
            elif child_kind not in SCALARS:
                stack.append(child)
    return total


def check(value: Any) -> Any:
    """`value`, or Exhausted when it weighs more than MAX_SIZE."""
    if (len(value) if type(value) is str else weight(value)) > MAX_SIZE:
        raise Exhausted(
            f"the template builds a value of more than {MAX_SIZE:,} characters or items"
        )
    return value


def check_inputs(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    total = 0
    for value in (*args, *kwargs.values()) if kwargs else args:
        total += len(value) if type(value) is str else weight(value)
        if total > MAX_SIZE:
            raise Exhausted(
                f"the template passes more than {MAX_SIZE:,} characters or items to one call"
            )


def metered(items: Iterator[Any]) -> Iterator[Any]:
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


def checked_result(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return check(value)
    if kind in SCALARS:
        return value
    if isinstance(value, Iterator) and not isinstance(value, (str, bytes)):
        return metered(value)
    return check(value)


# -- growth refused before it is allocated ---------------------------------------------

_PERCENT = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.)")


def format_bound(fmt: str, values: Iterable[Any]) -> None:
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


def check_method(owner: Any, name: str, args: tuple[Any, ...]) -> None:
    """Methods whose result can be far larger than their inputs."""
    if name in _PADDING and args and isinstance(args[0], int) and args[0] > MAX_SIZE:
        raise SecurityError(f"{name}() wider than {MAX_SIZE:,}")
    if not isinstance(owner, (str, bytes)) or not args:
        return
    tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
    if name == "expandtabs" and isinstance(args[0], int) and tabs * args[0] > MAX_SIZE:
        raise SecurityError(f"expandtabs() would build more than {MAX_SIZE:,} characters")
    elif name == "replace" and len(args) >= 2:
        check_replace(owner, args[0], args[1])
    elif name == "translate":
        table = args[0]
        longest = (
            max((weight(v) for v in table.values()), default=1) if isinstance(table, Mapping) else 1
        )
        if len(owner) * longest > MAX_SIZE:
            raise SecurityError(f"translate() could build more than {MAX_SIZE:,} characters")


def check_join(separator: Any, items: list[Any] | tuple[Any, ...]) -> None:
    size = weight(separator) * max(0, len(items) - 1) + weight(items)
    if size > MAX_SIZE:
        raise Exhausted(f"the join would build more than {MAX_SIZE:,} characters")


def check_replace(text: Any, old: Any, new: Any) -> None:
    same = isinstance(text, str) and isinstance(old, str) and isinstance(new, str)
    if same or (isinstance(text, bytes) and isinstance(old, bytes) and isinstance(new, bytes)):
        hits = text.count(old) if old else len(text) + 1
        if len(text) + hits * max(0, len(new) - len(old)) > MAX_SIZE:
            raise SecurityError(f"replace() would build text longer than {MAX_SIZE:,}")


def check_binop(operator: str, left: Any, right: Any) -> None:
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
        format_bound(left if isinstance(left, str) else left.decode("latin-1"), values)
