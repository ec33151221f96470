"""What rendering templates may spend: a budget per rendering and limits over many.

A `Budget` (steps, output characters, a deadline) is opened per rendering by `start()` and
charged by the sandbox (`ccspec.spec.sandbox`) as the template runs. `overall()` puts a
limit over every rendering in a block of code: all the templates of one spec
(`ccspec.spec.validate`), or of one upload to `ccspec serve`, which can also cancel it
when the server stops. Limits nest: an inner block cannot outlast an outer one. Everything
is per thread and nothing uses signals, so the limits hold in any thread. This module does
not import Jinja, so validating a spec without templates never pays for it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

__all__ = [
    "MAX_OUTPUT",
    "MAX_SECONDS",
    "MAX_STEPS",
    "Budget",
    "Exhausted",
    "current",
    "overall",
    "start",
]

MAX_STEPS = 1_000_000  # loop items and calls one rendering may take
MAX_OUTPUT = 1_000_000  # characters one rendering may write (loops and macros included)
MAX_SECONDS = 5.0  # wall-clock limit of one rendering
_CHECK_EVERY = 256  # steps between two looks at the clock

TOO_MUCH_OUTPUT = f"the template writes more than {MAX_OUTPUT:,} characters"


class Exhausted(Exception):
    """A rendering went over one of its limits; the message says which."""


class Overall:
    """A limit over every rendering in a block of code, inside the enclosing one if any."""

    def __init__(
        self, seconds: float, cancel: threading.Event | None, outer: Overall | None
    ) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.cancel = cancel
        self.outer = outer

    def check(self, now: float) -> None:
        if self.outer is not None:
            self.outer.check(now)
        if self.cancel is not None and self.cancel.is_set():
            raise Exhausted("rendering was cancelled (the server is stopping)")
        if now > self.deadline:
            raise Exhausted(f"the spec's templates ran longer than {self.seconds:g} s in all")

    def expired(self, now: float) -> bool:
        try:
            self.check(now)
        except Exhausted:
            return True
        return False


class Budget:
    """What one rendering may still spend; `within` is the enclosing `overall()` limit."""

    __slots__ = ("check_at", "deadline", "output", "steps", "within")

    def __init__(self, within: Overall | None = None) -> None:
        now = time.monotonic()
        self.steps = MAX_STEPS
        self.output = MAX_OUTPUT
        self.deadline = now + MAX_SECONDS
        self.check_at = MAX_STEPS - _CHECK_EVERY
        self.within = within
        if within is not None and within.expired(now):
            self.check_at = MAX_STEPS  # the first step reports it

    def charge(self, steps: int = 1, output: int = 0) -> None:
        self.steps -= steps
        if output:
            self.output -= output
            if self.output < 0:
                raise Exhausted(TOO_MUCH_OUTPUT)
        if self.steps < self.check_at:
            self._check()

    def _check(self) -> None:
        if self.steps < 0:
            raise Exhausted(f"the template exceeded {MAX_STEPS:,} steps (loop items and calls)")
        now = time.monotonic()
        if now > self.deadline:
            raise Exhausted(f"the template ran longer than {MAX_SECONDS:g} s")
        if self.within is not None:
            self.within.check(now)
        self.check_at = self.steps - _CHECK_EVERY


_local = threading.local()


@contextlib.contextmanager
def overall(seconds: float, cancel: threading.Event | None = None) -> Iterator[None]:
    """Every rendering in this thread inside the block also stops when `seconds` have passed
    since it began (or the enclosing block's limit, whichever comes first), or once `cancel`
    is set."""
    outer: Overall | None = getattr(_local, "overall", None)
    _local.overall = Overall(seconds, cancel, outer)
    try:
        yield
    finally:
        _local.overall = outer


def start() -> None:
    """Open a fresh budget for the next rendering in this thread."""
    _local.budget = Budget(getattr(_local, "overall", None))


def current() -> Budget:
    """This thread's budget (a fresh one if no rendering has started here yet: Jinja may
    fold a constant through a filter while it compiles)."""
    try:
        budget: Budget = _local.budget
    except AttributeError:
        budget = _local.budget = Budget()
    return budget
