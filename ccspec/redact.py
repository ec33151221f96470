"""Secret redaction: what the status API, its server-sent events and the dashboard never show.

Secrets are the values of the vars a spec lists under `secrets:` (their names too: a value
stored under such a name is masked whole), and values taken from the environment under names
that mark them as secret (`API_TOKEN`, `DB_PASSWORD`...). A `Redactor` masks them wherever
they appear: in text, in nested JSON-like values (outputs, messages, event data) and in log
bytes, where the mask keeps the length so byte offsets and ranges stay meaningful.

Pure: callers gather the values (`secret_values`, `environment_secrets`) and pass them in.
Used by `ccspec.server`, the engine (what it records), the status file, `ccspec status`, and
for the messages about a spec (`masked_diagnostics`: validate, apply, plan).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ccspec.errors import Diagnostic

if TYPE_CHECKING:
    from ccspec.spec.validate import SpecReport

__all__ = [
    "ENV_MIN_LENGTH",
    "MASK",
    "MIN_LENGTH",
    "SECRET_NAME",
    "Redactor",
    "StreamRedactor",
    "environment_secrets",
    "masked_diagnostics",
    "redactor_for",
    "secret_values",
    "source_redactor",
]

MASK = "***"
MIN_LENGTH = 4  # shorter values are masked only where they are a whole value, not inside text
ENV_MIN_LENGTH = (
    8  # `TOKENIZERS_PARALLELISM=false` is a setting, not a secret: real ones are longer
)
SECRET_NAME = re.compile(
    r"(?i)(token|secret|passw(or)?d|passphrase|credential|api_?key|private_?key|access_?key|auth)"
)


def _leaves(value: Any) -> Iterator[str]:
    """The scalar texts inside a var's value (a secret may be a list or a mapping)."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _leaves(item)
    elif value is not None and not isinstance(value, bool):
        text = str(value)
        if text:
            yield text


def secret_values(vars: Mapping[str, Any], secrets: Iterable[str]) -> list[str]:
    """The values of the vars named in a spec's `secrets:` list."""
    return [text for name in secrets if name in vars for text in _leaves(vars[name])]


def environment_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values of environment variables whose names mark them as secret (at least
    ENV_MIN_LENGTH characters: shorter ones are settings such as `false` or `1`)."""
    return [
        value
        for name, value in environ.items()
        if len(value) >= ENV_MIN_LENGTH and SECRET_NAME.search(name)
    ]


@dataclass(frozen=True)
class Redactor:
    """Masks secret values; `names` are keys whose values are masked whole.

    An empty Redactor returns everything unchanged (and is falsy)."""

    values: tuple[str, ...] = ()
    names: frozenset[str] = frozenset()
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _bytes_pattern: re.Pattern[bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _whole: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unique = sorted({v for v in self.values if v}, key=lambda v: (-len(v), v))  # longest first
        object.__setattr__(self, "values", tuple(unique))
        object.__setattr__(self, "_whole", frozenset(unique))
        inner = [v for v in unique if len(v) >= MIN_LENGTH]
        if inner:
            object.__setattr__(self, "_pattern", re.compile("|".join(re.escape(v) for v in inner)))
            object.__setattr__(
                self, "_bytes_pattern", re.compile(b"|".join(re.escape(v.encode()) for v in inner))
            )

    def __bool__(self) -> bool:
        return bool(self.values or self.names)

    @property
    def longest(self) -> int:
        """Bytes of the longest secret that is masked inside text (0 if none)."""
        return max((len(v.encode()) for v in self.values if len(v) >= MIN_LENGTH), default=0)

    def text(self, text: str) -> str:
        if text in self._whole:
            return MASK
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """A JSON-like value with secrets masked: strings inside, numbers that equal a
        secret, and everything stored under a secret name."""
        if not self:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: MASK if k in self.names else self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and str(value) in self._whole
        ):
            return MASK
        return value

    def data(self, data: bytes) -> bytes:
        """Log bytes with every secret replaced by as many `*`: offsets stay valid."""
        if self._bytes_pattern is None:
            return data
        return self._bytes_pattern.sub(lambda m: b"*" * len(m.group(0)), data)

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts a byte stream chunk by chunk: holds back the last `longest - 1` bytes, so a
    secret split across two chunks is still masked. `flush()` at the end."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.hold = max(0, redactor.longest - 1)
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self.hold:
            return self.redactor.data(chunk)
        buffer = self.redactor.data(self.held + chunk)
        cut = max(0, len(buffer) - self.hold)
        self.held = buffer[cut:]
        return buffer[:cut]

    def flush(self) -> bytes:
        out, self.held = self.held, b""
        return out


def redactor_for(
    vars: Mapping[str, Any],
    secrets: Iterable[str],
    *,
    environ: Mapping[str, str] | None = None,
    extra: Iterable[str] = (),
) -> Redactor:
    """The Redactor of one workflow: its secret vars, the environment's secrets, `extra`."""
    names = [s for s in secrets if isinstance(s, str)]
    values = [*secret_values(vars, names), *environment_secrets(environ or {}), *extra]
    return Redactor(tuple(values), frozenset(names))


def source_redactor(
    report: SpecReport, overrides: Mapping[str, Any] | None = None
) -> Redactor | None:
    """The Redactor of a spec read as far as it goes (it may be invalid): the secrets named in
    its file, with the `--var` values given for them; None when it names none."""
    data = report.source.data if report.source is not None else None
    vars = data.get("vars") if isinstance(data, dict) else None
    names = data.get("secrets") if isinstance(data, dict) else None
    if not isinstance(vars, dict) or not isinstance(names, list):
        return None
    return redactor_for(
        {**vars, **{k: v for k, v in (overrides or {}).items() if k in vars}}, names
    )


def masked_diagnostics(
    report: SpecReport, overrides: Mapping[str, Any] | None = None
) -> list[Diagnostic]:
    """A spec's problems with its secrets masked (a message may quote a value, e.g. a host
    named by a secret var): they go to terminals, CI logs and status files."""
    redactor = source_redactor(report, overrides) if report.diagnostics else None
    if redactor is None:
        return list(report.diagnostics)
    return [dataclasses.replace(d, message=redactor.text(d.message)) for d in report.diagnostics]
