"""The tail of a detached host's launch command: wait a moment for the jobs it just started,
then report them as a poll would. Short jobs (a sweep of quick tasks) are then known to have
ended with the launch's answer, with no poll of their own. Called by
`DetachedBackend.submit` (ccspec.targets.detached).

The wait is short and ends early: as soon as every job has its exit code, or when none has
ended after a few steps (long jobs: the launch answers at once and polls follow them).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from ccspec.targets.base import Tracked
from ccspec.targets.remote import POLL_FUNCTION, FileState, RemoteLayout, poll_calls

__all__ = ["SETTLED", "ended", "settle_lines"]

SETTLED = b"@@settled\n"  # between the launches' answers and the report of their jobs
STEP = 0.005  # seconds between looks at the run folders
STEPS = 10  # looks at most
HOPELESS = 3  # looks after which, none having ended, the jobs are taken to be long

# `W RUN_DIR...` returns once each run folder has its exit code, after STEPS looks, or after
# HOPELESS looks that found none.
WAIT_FUNCTION = (
    r"""
W() {
  t=0
  while [ "$t" -lt STEPS ]; do
    a=0 e=0
    for d; do a=$((a + 1)); [ -e "$d/exit_code" ] && e=$((e + 1)); done
    [ "$e" -eq "$a" ] && return 0
    [ "$e" -eq 0 ] && [ "$t" -ge HOPELESS ] && return 0
    sleep STEP 2>/dev/null || return 0
    t=$((t + 1))
  done
}
""".replace("STEPS", str(STEPS))
    .replace("HOPELESS", str(HOPELESS))
    .replace("STEP", str(STEP))
)


def settle_lines(layout: RemoteLayout, tracked: Sequence[Tracked]) -> str:
    """Lines that wait for these just-launched jobs, print SETTLED, then poll them."""
    q = shlex.quote
    dirs = " ".join(q(layout.path(t.run_dir)) for t in tracked)
    lines = [WAIT_FUNCTION, f"W {dirs}", "printf '@@settled\\n'", POLL_FUNCTION]
    return "\n".join([*lines, poll_calls(layout, tracked)])


def ended(files: Mapping[int, FileState]) -> dict[int, FileState]:
    """The jobs of a report that ended with their whole log mirrored: final, never asked again."""
    return {i: f for i, f in files.items() if f.exit_code is not None and f.complete}
