"""Slurm job arrays (`array:` on a matrix job): the members of one job that a host's worker
sends together go to Slurm as one `sbatch --array`, each member keeping its own run folder,
log, exit code and state. Called by `ccspec.targets.slurm.SlurmBackend` (submit and fence).

One array is a folder `.ccspec/arrays/WF/TOKEN` on the host holding its script: a `case` on
`$SLURM_ARRAY_TASK_ID` sends task X's output to its member's log and runs the member under
the usual wrapper. Each member takes its own launch claim first (ccspec.targets.claims); only
the members whose claim this send took are in the `--array=` index list, so a member sent
again (a lost answer) or fenced by a later run is never submitted twice. The member's handle
is the task id `JOBID_X`, which squeue (with -r), sacct and scancel all take. Before sbatch,
each member's run folder gets `array` ("FOLDER X"), so a run that finds a member claimed but
without its id learns it from the array's `slurm_id`, or from squeue by the array's comment.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ccspec.targets.base import RemoteLaunch, Tracked
from ccspec.targets.claims import CLAIM_CHECK

if TYPE_CHECKING:
    from ccspec.targets.remote import RemoteLayout

__all__ = [
    "ANSWER_FUNCTION",
    "ARRAY_FUNCTION",
    "FIND_FUNCTION",
    "SLURM_ID",
    "array_folder",
    "array_script",
    "find_lines",
    "job_name",
    "split_arrays",
    "split_batches",
    "submit_line",
]

q = shlex.quote

# a Slurm job id, an array task's id JOBID_TASK (squeue -r, sacct and scancel take both)
# or a pack member's PACKID+X (ccspec.targets.slurm_pack)
SLURM_ID = re.compile(r"^\d+([_+]\d+)?$")

# `R SEP KIND`, at the end of an array's or a pack's submit function (sbatch said $o, ended
# with $s, its id $i): each member this send claimed gets its handle (JOBID SEP INDEX) in its
# run folder and claim and is answered `ok`; if sbatch failed, its claim and KIND file are
# given back and it is answered `err` with sbatch's words.
ANSWER_FUNCTION = r"""
R() {
  x=0
  while [ "$x" -lt "$n" ]; do
    eval "v=\${c$x}"
    if [ -n "$v" ]; then
      eval "k=\$k$x r=\$r$x m=\$m$x"
      if [ "$s" = 0 ]; then
        echo "${i}$1$x" > "$r/slurm_id"; echo "${i}$1$x" > "$r/$m/handle"; printf '@@ %s ok %s\n' "$k" "${i}$1$x"
      else
        rm -rf "${r:?}/$m" "$r/$2"
        printf '@@ %s err %s\n' "$k" "$(printf '%s' "$o" | tr '\n' ' ')"
      fi
    fi
    x=$((x + 1))
  done
}
"""

# `A FOLDER THROTTLE (KEY RUN_DIR CLAIM)...`: take each member's claim (a member claimed
# already answers as in `S`), then one sbatch --array over the members this send claimed.
ARRAY_FUNCTION = (
    ANSWER_FUNCTION
    + r"""
Q() {
  k=$1 r=$2 m=$3
  CLAIM_CHECK
  return 10
}
A() {
  d=$1 t=$2 x=0 l=
  shift 2
  while [ $# -ge 3 ]; do
    Q "$1" "$2" "$3"
    if [ $? = 10 ]; then
      umask 077; : >> "$2/log"; umask "$U"
      echo "$d $x" > "$2/array"; l="$l,$x"; eval "c$x=1"
    else eval "c$x="; fi
    x=$((x + 1)); shift 3
  done
  [ -n "$l" ] || return 0
  o=$(sbatch --parsable --array="${l#,}$t" "$d/job.sbatch" 2>&1); s=$?
  i=${o%%;*}; [ "$s" = 0 ] && echo "$i" > "$d/slurm_id"
  R _ array
}
""".replace("CLAIM_CHECK", CLAIM_CHECK)
)

# `F RUN_DIR`: a member of an array or a pack, claimed but without its Slurm id: from the
# array's (pack's) slurm_id, else from squeue by its comment; written into the run folder.
FIND_FUNCTION = r"""
F() {
  [ -s "$1/slurm_id" ] && return 0
  if [ -s "$1/array" ]; then read -r d x < "$1/array"; g=_ f=1
  elif [ -s "$1/pack" ]; then read -r d x < "$1/pack"; g=+ f=2
  else return 0; fi
  i=$(cat "$d/slurm_id" 2>/dev/null)
  if [ -z "$i" ]; then
    i=$(squeue -h -t all -r -u "$(id -un)" -o '%F|%i|%k' 2>/dev/null | grep -F ":${d##*/}" | head -n 1 | cut -d'|' -f"$f")
    i=${i%%_*}
  fi
  [ -n "$i" ] && echo "$i$g$x" > "$1/slurm_id"
  return 0
}
"""


def split_arrays(
    launches: Sequence[RemoteLaunch],
) -> tuple[list[RemoteLaunch], list[list[RemoteLaunch]]]:
    """The launches that go one sbatch each, and the arrays (two members or more) of the rest:
    members of one matrix job with `array:`, at most its chunk size per array."""
    return split_batches(launches, lambda launch: launch.job.array)


def split_batches(
    launches: Sequence[RemoteLaunch], size: Callable[[RemoteLaunch], int | None]
) -> tuple[list[RemoteLaunch], list[list[RemoteLaunch]]]:
    """The launches whose job has no batch `size`, and batches (two members or more) of
    the others: members of one job, at most `size` per batch; a batch of one is an
    ordinary launch. Arrays and packs (ccspec.targets.slurm_pack) are cut so."""
    singles: list[RemoteLaunch] = []
    groups: dict[tuple[str, str], list[RemoteLaunch]] = {}
    for launch in launches:
        if size(launch):
            groups.setdefault((launch.workflow, launch.job.name), []).append(launch)
        else:
            singles.append(launch)
    batches: list[list[RemoteLaunch]] = []
    for members in groups.values():
        most = size(members[0]) or len(members)
        for start in range(0, len(members), most):
            chunk = members[start : start + most]
            if len(chunk) == 1:
                singles.extend(chunk)
            else:
                batches.append(chunk)
    return singles, batches


def job_name(launch: RemoteLaunch) -> str:
    """The Slurm job name of the launch's job (arrays and single jobs alike)."""
    return f"ccspec.{launch.workflow}.{launch.job.name}"[:200]


def array_folder(layout: RemoteLayout, workflow: str) -> str:
    """A new array's folder on the host (its script, the array's Slurm id, Slurm's own output)."""
    return layout.path(f".ccspec/arrays/{workflow}/{secrets.token_hex(8)}")


def array_script(
    layout: RemoteLayout, members: Sequence[RemoteLaunch], folder: str, options: Sequence[str]
) -> str:
    """The array's sbatch script: task X runs member X, its output in X's log."""
    first = members[0]
    lines = [
        "#!/bin/bash",
        f"# ccspec: {first.workflow}/{first.job.name}, an array of {len(members)} members",
        f"#SBATCH --job-name={job_name(first)}",
        f"#SBATCH --comment=ccspec:array:{folder.rsplit('/', 1)[-1]}",
        f"#SBATCH --output={folder}/%a.out",
        *(f"#SBATCH {option}" for option in options),
        "# each member writes pid and exit code into its own run folder, like on every other host",
        'case "$SLURM_ARRAY_TASK_ID" in',
    ]
    for index, launch in enumerate(members):
        run = q(layout.path(launch.run_dir))
        command = shlex.join([*layout.env_argv(launch), *layout.argv(launch)])
        lines.append(
            f"{index}) exec >> {run}/log 2>&1; cd {q(layout.job_folder(launch))} && exec {command} ;;"
        )
    lines += ['*) echo "no member $SLURM_ARRAY_TASK_ID in this array" >&2; exit 2 ;;', "esac", ""]
    return "\n".join(lines)


def submit_line(
    layout: RemoteLayout,
    members: Sequence[RemoteLaunch],
    folder: str,
    script: str,
    throttle: int | None,
) -> str:
    """Shell lines that write the array's script and submit the members that take their claim."""
    eof = f"CCSPEC_{secrets.token_hex(8)}"
    slots = " ".join(
        f"k{i}={m.attempt_id} r{i}={q(layout.path(m.run_dir))} m{i}={q(m.claim)}"
        for i, m in enumerate(members)
    )
    args = " ".join(f"{m.attempt_id} {q(layout.path(m.run_dir))} {q(m.claim)}" for m in members)
    limit = f"%{throttle}" if throttle else ""
    return (
        f"mkdir -p {q(folder)} && cat > {q(folder)}/job.sbatch <<'{eof}'\n{script}{eof}\n"
        f"n={len(members)} {slots}\nA {q(folder)} {q(limit)} {args}"
    )


def find_lines(layout: RemoteLayout, tracked: Sequence[Tracked]) -> str:
    """Shell lines that find the Slurm ids of claimed array members (see FIND_FUNCTION);
    members of no array are left alone."""
    calls = [f"F {q(layout.path(t.run_dir))}" for t in tracked]
    return "\n".join([FIND_FUNCTION, *calls]) if calls else ""
