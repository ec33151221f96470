"""Matrix expansion: one job definition -> one job per combination, with stable ids.

Pure functions, called by `ccspec.spec.resolve` at validate/plan time and by the engine
when a matrix comes from an upstream output (dynamic fan-out).

    matrix: {model: [mlp, cnn], size: [1, 2], exclude: [{model: cnn, size: 2}],
             include: [{model: rnn, size: 1}]}

gives `train-mlp-1`, `train-mlp-2`, `train-cnn-1`, `train-rnn-1`: dimensions in the order
written, values in the order listed, `exclude` drops combinations that match all of its keys,
`include` appends combinations. An id is the job name, then each value made URL- and
file-safe (lowercase, runs of other characters become `-`).
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MatrixError", "combinations", "job_id", "secret_in_ids", "slug"]

_UNSAFE = re.compile(r"[^a-z0-9_.]+")
_DIMENSION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_COMBINATIONS = 100_000
Combination = dict[str, Any]


class MatrixError(ValueError):
    """A matrix that cannot be expanded; `path` is where inside the matrix, if known."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


def slug(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return _UNSAFE.sub("-", text.lower()).strip("-.")


def job_id(name: str, combination: Combination) -> str:
    if not combination:
        return name
    return "-".join([name, *(slug(v) for v in combination.values())])


def secret_in_ids(
    combos: list[Combination], secrets: Mapping[str, list[str]]
) -> tuple[str, str] | None:
    """(dimension, secret var) of the first matrix value that would show a secret in a job id
    (ids are in status files, pictures, logs' paths and the API, which mask values, not ids).
    `secrets`: each secret var's texts. A secret shorter than 4 characters (in its id form)
    counts only when a value is that secret, so that short ones do not match everywhere."""
    forms = [(name, text, slug(text)) for name, texts in secrets.items() for text in texts]
    for combo in combos:
        for dim, value in combo.items():
            shown = slug(value)
            for name, text, form in forms:
                if str(value) == text or (len(form) >= 4 and form in shown):
                    return str(dim), name
    return None


def combinations(matrix: Any) -> list[Combination]:
    """Expand a rendered matrix (a mapping of lists, or a list of mappings)."""
    if isinstance(matrix, list):  # an explicit list of combinations, e.g. from an upstream job
        return [_checked_combination(item, (i,)) for i, item in enumerate(matrix)] or _empty()
    if not isinstance(matrix, dict):
        raise MatrixError(
            f"a matrix must be a mapping of lists (or a list of mappings), got {type(matrix).__name__}"
        )
    dims: dict[str, list[Any]] = {}
    for name, values in matrix.items():
        if name in ("include", "exclude"):
            continue
        if not _DIMENSION.match(str(name)):
            raise MatrixError(
                f"matrix dimension {name!r} must be an identifier (letters, digits, _)", (name,)
            )
        if not isinstance(values, list):
            raise MatrixError(
                f"matrix dimension {name!r} must be a list of values, got {type(values).__name__}",
                (name,),
            )
        if not values:
            raise MatrixError(
                f"matrix dimension {name!r} is an empty list; give it at least one value", (name,)
            )
        for i, value in enumerate(values):
            _check_value(value, (name, i))
        dims[name] = values
    total = 1
    for values in dims.values():
        total *= len(values)
    if total > MAX_COMBINATIONS:
        raise MatrixError(
            f"the matrix has {total:,} combinations, over the limit of {MAX_COMBINATIONS:,}"
        )
    combos = (
        [dict(zip(dims, values, strict=True)) for values in itertools.product(*dims.values())]
        if dims
        else []
    )
    excludes = _entries(matrix.get("exclude"), "exclude")
    for i, rule in enumerate(excludes):
        unknown = set(rule) - set(dims)
        if unknown:
            name = sorted(unknown)[0]
            close = difflib.get_close_matches(str(name), list(dims), n=1)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else f"; the dimensions are {', '.join(dims)}"
            )
            raise MatrixError(
                f"exclude names {name!r}, which is not a matrix dimension{hint}",
                ("exclude", i, name),
            )
    combos = [
        c
        for c in combos
        if not any(all(c.get(k) == v for k, v in rule.items()) for rule in excludes)
    ]
    for extra in _entries(matrix.get("include"), "include"):
        if extra not in combos:
            combos.append(extra)
    if not combos:
        return _empty()
    return combos


def _empty() -> list[Combination]:
    raise MatrixError("the matrix expands to no jobs at all")


def _entries(value: Any, key: str) -> list[Combination]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MatrixError(f"matrix `{key}` must be a list of mappings", (key,))
    return [_checked_combination(item, (key, i)) for i, item in enumerate(value)]


def _checked_combination(item: Any, path: tuple[str | int, ...]) -> Combination:
    if not isinstance(item, dict) or not item:
        raise MatrixError(
            "each matrix combination must be a non-empty mapping such as {model: cnn}", path
        )
    for name, value in item.items():
        if not _DIMENSION.match(str(name)):
            raise MatrixError(
                f"matrix dimension {name!r} must be an identifier (letters, digits, _)", path
            )
        _check_value(value, (*path, name))
    return dict(item)


def _check_value(value: Any, path: tuple[str | int, ...]) -> None:
    if isinstance(value, (dict, list)) or value is None:
        raise MatrixError("matrix values must be plain values (text, numbers, true/false)", path)
    if not slug(value):
        raise MatrixError(
            f"matrix value {value!r} gives an empty job id part; use letters or digits", path
        )
