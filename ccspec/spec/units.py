"""Parse the human units of a spec: durations (`30m`, `1h30m`, `2-00:00:00`) and sizes (`4G`).

Pure functions used by the spec models and by targets that translate them (sbatch wants
minutes and megabytes).
"""

from __future__ import annotations

import math
import re

__all__ = [
    "DURATION_PATTERN",
    "MEMORY_PATTERN",
    "format_duration",
    "parse_duration",
    "parse_memory",
    "whole_number",
]

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)", re.IGNORECASE)
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_CLOCK = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")  # Slurm: [D-]HH[:MM[:SS]]
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?$", re.IGNORECASE)
_MEM_FACTOR = {"": 1 / (1024 * 1024), "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}

DURATION_HELP = "a duration like 90s, 30m, 2h, 1h30m, 1d or 1-12:00:00"
MEMORY_HELP = "a size like 512M, 4G or 1T"


def _duration_shape() -> str:
    """The texts `parse_duration` reads, as one regular expression that Python and the
    ECMA-262 dialect of JSON Schema read alike (ASCII digits, no inline flags).

    Spaces may sit between any two characters (they are dropped before reading); minutes and
    seconds of a clock go up to 59, hours after a day part up to 23.
    """
    digits = "[0-9](?: *[0-9])*"
    below60 = "(?:0 *)*(?:[0-5] *)?[0-9]"
    below24 = "(?:0 *)*(?:[01] *)?[0-9]|(?:0 *)*2 *[0-3]"
    bare = rf"(?:{digits}(?: *\.(?: *{digits})?)?|\. *{digits})"
    clock = (
        rf"(?:{below60} *: *{below60}|{digits} *: *{below60} *: *{below60}"
        rf"|{digits} *- *(?:{below24})(?: *: *{below60}(?: *: *{below60})?)?)"
    )
    unit = "(?:[mM] *[sS]|[dDhHmMsS])"
    parts = rf"(?:{digits}(?: *\. *{digits})? *{unit} *)+"
    return rf"\s*(?:{bare}|{clock}|{parts})\s*"


# A positive amount has a non-zero digit somewhere; the schema says so with a lookahead.
_NONZERO = r"(?=[\s\S]*[1-9])"
_DURATION_SHAPE = re.compile(_duration_shape())
DURATION_PATTERN = f"^{_NONZERO}{_duration_shape()}$"
_MEMORY_SHAPE = r"\s*[0-9]+(?:\.[0-9]+)?\s*[KMGTkmgt]?(?:[iI]?[bB]?)?\s*"
MEMORY_PATTERN = f"^{_NONZERO}{_MEMORY_SHAPE}$"


def whole_number(value: object) -> object:
    """`2.0` -> `2`: JSON Schema (draft 6 on) counts 2.0 as an integer, so ccspec does too."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def parse_duration(value: object) -> float:
    """Seconds in `value`: a number of seconds, `1h30m`, or Slurm's `D-HH:MM:SS`."""
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        if not _DURATION_SHAPE.fullmatch(value):
            raise ValueError(f"expected {DURATION_HELP}, got {value!r}")
        seconds = _text_duration(value.strip().replace(" ", ""))
    else:
        raise ValueError(f"expected {DURATION_HELP}, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be a finite positive number, got {value!r}")
    return seconds


def _text_duration(text: str) -> float:
    if not text:
        raise ValueError(f"expected {DURATION_HELP}, got an empty string")
    if text.replace(".", "", 1).isdigit():
        return float(text)
    clock = _CLOCK.match(text)
    if (clock and ":" in text) or (clock and "-" in text):
        days, a, b, c = clock.groups()
        parts = [int(x) for x in (a, b, c) if x is not None]
        while len(parts) < 3:  # HH:MM -> HH:MM:00 ; D-HH -> D-HH:00:00
            parts.append(0)
        if not days and text.count(":") == 1:  # Slurm reads MM:SS when there is no day part
            parts = [0, *parts[:2]]
        h, m, s = parts
        if m >= 60 or s >= 60 or (days and h >= 24):
            raise ValueError(
                f"expected {DURATION_HELP}, got {text!r} (minutes and seconds go up to 59)"
            )
        return int(days or 0) * 86400 + h * 3600 + m * 60 + s
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2).lower()]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"expected {DURATION_HELP}, got {text!r}")
    return total


def format_duration(seconds: float) -> str:
    """`5400` -> `1h30m`; the inverse of `parse_duration` for whole seconds."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.3g}s" if seconds < 10 and seconds != whole else f"{whole}s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def parse_memory(value: object) -> int:
    """Megabytes in `value`: `4G` -> 4096, `512M` -> 512; a bare number means megabytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected {MEMORY_HELP}, got {value!r}")
    value = whole_number(value)
    if isinstance(value, int):
        megabytes = float(value)
    elif isinstance(value, str):
        match = _MEMORY.match(value.strip()) if re.fullmatch(_MEMORY_SHAPE, value) else None
        if not match:
            raise ValueError(f"expected {MEMORY_HELP}, got {value!r}")
        number, unit, _ = match.groups()
        megabytes = float(number) * _MEM_FACTOR[unit.upper()] if unit else float(number)
    else:
        raise ValueError(f"expected {MEMORY_HELP}, got {value!r}")
    if megabytes <= 0:
        raise ValueError(f"a memory size must be positive, got {value!r}")
    return max(1, round(megabytes))
