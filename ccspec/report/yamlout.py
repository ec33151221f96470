"""A small, fast YAML writer for ccspec's own files (status files).

PyYAML's representer is too slow to rewrite a large workflow's status while it runs. This
writer knows the shapes ccspec writes: nested mappings in block style, scalars plain when
YAML reads them back unchanged and JSON-quoted otherwise, and anything nested deeper inside
a value (lists, outputs) in JSON flow style, which is YAML too. `tests/test_yamlout.py`
checks that `yaml.safe_load` reads back what was written.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["dump", "dump_nested"]

_PLAIN = re.compile(r"^[A-Za-z_/.][A-Za-z0-9_./@+-]*(?: [A-Za-z0-9_./@+()-]+)*$")
_SPECIAL = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|\.inf|\.nan|[-+]?\.?\d.*)$"
)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        # YAML 1.1 reads a float only with a dot: 1e+16 -> 1.0e+16
        if "e" in text and "." not in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    return _text(str(value))


@functools.lru_cache(maxsize=8192)  # keys, states, hosts and times repeat in every job's entry
def _text(text: str) -> str:
    if (
        _PLAIN.fullmatch(text)
        and not _SPECIAL.fullmatch(text)
        and ": " not in text
        and " #" not in text
    ):
        return text
    if text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return _escaped(text)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escaped(text: str) -> str:
    """Double-quoted YAML with escapes for what YAML may not hold raw (control characters);
    \\U for characters beyond the BMP, since YAML readers do not join surrogate pairs."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code <= 0xFF
                else f"\\u{code:04x}"
                if code <= 0xFFFF
                else f"\\U{code:08x}"
            )
    out.append('"')
    return "".join(out)


def _flow(value: Any) -> str:
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{" + ", ".join(f"{_scalar(str(k))}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


_PLAIN_TYPES = (str, int, float, bool, type(None))


def _block(mapping: Mapping[str, Any], indent: str, out: list[str], depth: int) -> None:
    for key, value in mapping.items():
        head = f"{indent}{_text(key) if type(key) is str else _scalar(str(key))}:"
        # most values: no Mapping check (an ABC's isinstance is slow)
        if type(value) in _PLAIN_TYPES:
            out.append(f"{head} {_text(value) if type(value) is str else _scalar(value)}")
        elif isinstance(value, Mapping) and value and depth < 3:
            out.append(head)
            _block(value, indent + "  ", out, depth + 1)
        elif isinstance(value, (Mapping, list, tuple)):
            out.append(f"{head} {_flow(value)}")
        else:
            out.append(f"{head} {_scalar(value)}")


def dump(document: Mapping[str, Any]) -> str:
    out: list[str] = []
    _block(document, "", out, 0)
    return "\n".join(out) + "\n"


def dump_nested(mapping: Mapping[str, Any], indent: str, depth: int) -> str:
    """`mapping` as it appears inside a document at `depth` (for text kept piece by piece)."""
    out: list[str] = []
    _block(mapping, indent, out, depth)
    return "\n".join(out) + "\n"
