"""What the reconciler keeps of a pass that raised: the kind of failure (to say a failure
once, not at every retry) and the traceback, written to a file rather than the screen.
Used by the workflow controllers (ccspec.reconcile.controller)."""

from __future__ import annotations

import os
import re
import time

__all__ = ["failure_kind_of", "traceback_file"]


def failure_kind_of(exc: BaseException) -> tuple[str, ...]:
    """An error's type and the place that raised it: the same failure again, even when its
    message differs (a temporary file's name, a count)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = (tb.tb_frame.f_code.co_filename, str(tb.tb_lineno)) if tb is not None else ()
    return (type(exc).__module__, type(exc).__qualname__, *where)


def traceback_file(exc: Exception, workflow: str) -> str:
    """Where a failed pass's traceback was written (as the CLI does with an internal error's):
    $CCSPEC_CRASH_DIR or the temporary folder, never the state folder, which may be what fails."""
    import tempfile
    import traceback

    folder = os.environ.get("CCSPEC_CRASH_DIR") or tempfile.gettempdir()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", workflow)[:64]
    path = os.path.join(
        folder, f"ccspec-reconcile-{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    )
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"ccspec watch: a reconcile pass of workflow {workflow!r} failed\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError:
        return "(none: it could not be written)"
    return path
