"""Launch claims: how a runner that finds a remote launch recorded without an answer (its
runner was killed after recording the launch and before the host answered) learns, with
one command on the host, whether the launch ever reached the host. Called by the remote
backends (`fence`), whose launch functions take the same claim; the engine asks when it
attaches to such an attempt.

Every remote launch first takes its claim: `mkdir RUN_DIR/launch.ID.CREATED` on the host,
right before it starts the job (ssh) or submits it (Slurm), and writes the job's handle into
it (an ssh or WSL launch makes a file of that name instead, with noclobber: as atomic, and
no process; ccspec.targets.detached). When the claim is already there it starts nothing: it
answers with the handle an earlier send of the same launch wrote (a launch retried after its
answer was lost runs once), or gives up when a fence took the claim. A runner that attaches to an unanswered launch
takes the same claim (the fence). mkdir is atomic, so exactly one of the two gets it:

- the fence got it: the launch never reached that point and now never will, even if it is
  still on its way (the earlier runner was only stalled, or its command is still running on
  the host after its connection died). The job is relaunched at once as a new attempt: no
  start grace is needed, because nothing can start the old attempt any more.
- the launch got it: the job was started (or submitted) right after; its pid, exit code or
  Slurm id follows in the run folder, and the attempt is followed, never relaunched.

The claim's name holds the attempt's id and the time it was recorded, so the run folder of
an attempt from a state folder deleted since (same workflow, job and number) does not block
a new launch. A pid, exit code or Slurm id in the run folder counts as "started" even when
the fence got the claim (a launch by a ccspec that took no claims): never run twice.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from ccspec.targets.base import Fenced, Tracked
from ccspec.targets.remote import RemoteLayout

__all__ = ["CLAIM_CHECK", "Fenced", "fence", "launch_claim"]

# Lines of a launch function, with the run folder in $r, the claim's name in $m and the
# launch's key in $k. The claim taken, the function starts the job and writes its handle
# into the claim (`$r/$m/handle`). The claim already taken: by this same launch sent before
# (a retry after its answer was lost: answer with the handle it wrote, so nothing starts
# twice) or by a later runner's fence (`$r/$m/fenced`: give up, saying so).
CLAIM_CHECK = r"""
  if ! mkdir "$r/$m" 2>/dev/null; then
    j=0
    while [ ! -e "$r/$m/fenced" ] && [ ! -s "$r/$m/handle" ] && [ "$j" -lt 50 ]; do sleep 0.1 2>/dev/null; j=$((j + 1)); done
    if [ -s "$r/$m/handle" ]; then printf '@@ %s ok %s\n' "$k" "$(cat "$r/$m/handle")"
    else printf '@@ %s err %s\n' "$k" 'the launch was settled as never started by a later ccspec run'; fi
    return 0
  fi"""

# `C KEY RUN_DIR CLAIM` prints `@@ KEY fenced|launched started|-`.
FENCE_FUNCTION = r"""
C() {
  mkdir -p "$2" 2>/dev/null || return 0
  if mkdir "$2/$3" 2>/dev/null; then f=fenced; : > "$2/$3/fenced"; else f=launched; fi
  t=-
  for n in "$2"/pid "$2"/pid.* "$2"/exit_code "$2"/exit_code.* "$2"/slurm_id; do [ -e "$n" ] && t=started; done
  printf '@@ %s %s %s\n' "$1" "$f" "$t"
}
"""


def launch_claim(attempt_id: int, created: float) -> str:
    """The claim's name in the run folder of the attempt recorded with this id at this time."""
    return f"launch.{attempt_id}.{round(created * 1_000_000)}"


def fence(layout: RemoteLayout, tracked: Sequence[Tracked]) -> dict[int, Fenced]:
    """Take the claims of unanswered launches (those with a claim name): by attempt id, what
    each launch did. An attempt missing from the answer is unknown (the host could not say)."""
    chosen = [t for t in tracked if t.claim]
    if not chosen:
        return {}
    lines = [
        FENCE_FUNCTION,
        *(
            f"C {t.attempt_id} {shlex.quote(layout.path(t.run_dir))} {shlex.quote(t.claim or '')}"
            for t in chosen
        ),
    ]
    result = layout.shell.run("\n".join(lines))
    wanted = {t.attempt_id for t in chosen}
    found: dict[int, Fenced] = {}
    for line in result.text.splitlines():
        fields = line.split(" ")
        if (
            len(fields) != 4
            or fields[0] != "@@"
            or not fields[1].isdigit()
            or int(fields[1]) not in wanted
        ):
            continue
        key, took, traces = int(fields[1]), fields[2], fields[3]
        if traces == "started":
            found[key] = "started"
        elif took == "fenced":
            found[key] = "never"
        elif took == "launched":
            found[key] = "claimed"
    return found
