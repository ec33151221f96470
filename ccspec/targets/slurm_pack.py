"""Packs (`pack: N` on a matrix job): up to N members of one job that a host's worker sends
together go to Slurm as ONE job, whose script (an in-allocation runner) starts them in as
many lanes as the allocation holds, each member under the usual wrapper, with its own run
folder, log, exit code and state. Called by `ccspec.targets.slurm.SlurmBackend` (submit,
poll, cancel, fence).

Resources follow Snakemake's rule for job groups: with W members at once (W = the most
`resources.cpus` a node's CPUs hold, at most the pack's size), the pack asks W times a
member's CPUs and memory (the sum over what runs in parallel) and ceil(n / W) times its time
(members of one lane run in series). W is worked out on the host at submit time (`sinfo`).

A member's handle is `PACKID+X` (X its index in the pack). Members take their own launch
claims before sbatch, as array members do (ccspec.targets.slurm_array); the runner starts
only the members listed in the pack's `members` file, which this send claimed. A member
cancelled alone gets a `cancel` file (the runner skips it if it has not started) and a
signal sent into the allocation with `srun --overlap`; `scancel PACKID` cancels the pack.
"""

from __future__ import annotations

import math
import re
import secrets
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ccspec.targets.base import RemoteLaunch
from ccspec.targets.claims import CLAIM_CHECK
from ccspec.targets.slurm_array import ANSWER_FUNCTION, split_batches
from ccspec.targets.slurm_states import RUNNING_STATES, SlurmRecord, final

if TYPE_CHECKING:
    from ccspec.spec.models import Resources
    from ccspec.targets.remote import RemoteLayout

__all__ = [
    "PACK_FUNCTION",
    "PACK_MEMBER",
    "cancel_members",
    "member_record",
    "pack_folder",
    "pack_script",
    "pack_submit_line",
    "split_packs",
]

q = shlex.quote

PACK_MEMBER = re.compile(r"^(\d+)\+(\d+)$")
# options the pack works out itself from a member's resources
_OWN = ("--cpus-per-task=", "--mem=", "--time=")

# `K FOLDER CPUS MEM_MB MINUTES SINFO_ARGS (KEY RUN_DIR CLAIM)...`: take each member's claim
# (as `A` of slurm_array: Q, and R for the answers), list the claimed ones for the runner, size the
# pack from a node's CPUs, and sbatch it once.
PACK_FUNCTION = (
    ANSWER_FUNCTION
    + r"""
Q() {
  k=$1 r=$2 m=$3
  CLAIM_CHECK
  return 10
}
K() {
  d=$1 e=$2 y=$3 z=$4 p=$5 x=0 l=0
  shift 5
  : > "$d/members"
  while [ $# -ge 3 ]; do
    Q "$1" "$2" "$3"
    if [ $? = 10 ]; then
      umask 077; : >> "$2/log"; umask "$U"
      echo "$d $x" > "$2/pack"; echo "$x" >> "$d/members"; l=$((l + 1)); eval "c$x=1"
    else eval "c$x="; fi
    x=$((x + 1)); shift 3
  done
  [ "$l" -gt 0 ] || return 0
  u=$(sinfo -h -o %c $p 2>/dev/null | sort -n | head -n 1)
  case $u in ''|*[!0-9]*) u=$e ;; esac
  w=$((u / e)); [ "$w" -lt 1 ] && w=1; [ "$w" -gt "$l" ] && w=$l
  echo "$w" > "$d/lanes"
  o="--cpus-per-task=$((w * e))"
  [ "$y" -gt 0 ] && o="$o --mem=$((w * y))M"
  [ "$z" -gt 0 ] && o="$o --time=$(((l + w - 1) / w * z))"
  o=$(sbatch --parsable $o "$d/job.sbatch" 2>&1); s=$?
  i=${o%%;*}; [ "$s" = 0 ] && echo "$i" > "$d/slurm_id"
  R + pack
}
""".replace("CLAIM_CHECK", CLAIM_CHECK)
)

# The runner's loop: members from the `members` file, at most `lanes` at once; it ends
# with 0 whatever its members did (each member's own exit code is in its run folder).
_RUNNER = r"""
w=$(cat "$D/lanes" 2>/dev/null || echo 1)
while read -r i; do
  while [ "$(jobs -pr | wc -l)" -ge "$w" ]; do wait -n 2>/dev/null || true; done
  M "$i" &
done < "$D/members"
wait
exit 0
"""


def split_packs(
    launches: Sequence[RemoteLaunch],
) -> tuple[list[RemoteLaunch], list[list[RemoteLaunch]]]:
    """The launches that are no pack members, and the packs (two members or more) of the
    rest: members of one job with `pack:`, at most its size per pack."""
    return split_batches(launches, lambda launch: launch.job.pack)


def pack_folder(layout: RemoteLayout, workflow: str) -> str:
    """A new pack's folder on the host (runner script, members, lanes, Slurm's output)."""
    return layout.path(f".ccspec/packs/{workflow}/{secrets.token_hex(8)}")


def pack_script(
    layout: RemoteLayout,
    members: Sequence[RemoteLaunch],
    folder: str,
    name: str,
    options: Sequence[str],
) -> str:
    """The pack's sbatch script: the in-allocation runner and how it starts member X."""
    first = members[0]
    lines = [
        "#!/bin/bash",
        f"# ccspec: {first.workflow}/{first.job.name}, a pack of {len(members)} members",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --comment=ccspec:pack:{folder.rsplit('/', 1)[-1]}",
        f"#SBATCH --output={folder}/pack.out",
        *(f"#SBATCH {o}" for o in options if not o.startswith(_OWN)),
        f"D={q(folder)}",
        "# member X: in its own session (cancelled alone: its process group), under the wrapper",
        "M() {",
        '  case "$1" in',
    ]
    for index, launch in enumerate(members):
        run = q(layout.path(launch.run_dir))
        command = shlex.join([*layout.env_argv(launch), *layout.argv(launch)])
        lines.append(
            f"  {index}) if [ -e {run}/cancel ]; then echo 143 > {run}/exit_code; else "
            f"exec >> {run}/log 2>&1; cd {q(layout.job_folder(launch))} && exec setsid {command}; fi ;;"
        )
    lines += ["  esac", "}", _RUNNER.strip(), ""]
    return "\n".join(lines)


def pack_submit_line(
    layout: RemoteLayout,
    members: Sequence[RemoteLaunch],
    folder: str,
    script: str,
    partition: str | None,
) -> str:
    """Shell lines that write the pack's runner and submit the members that take their claim."""
    res: Resources = members[0].job.resources
    limit = res.time or members[0].job.timeout
    minutes = max(1, math.ceil(limit / 60)) if limit else 0
    eof = f"CCSPEC_{secrets.token_hex(8)}"
    slots = " ".join(
        f"k{i}={m.attempt_id} r{i}={q(layout.path(m.run_dir))} m{i}={q(m.claim)}"
        for i, m in enumerate(members)
    )
    args = " ".join(f"{m.attempt_id} {q(layout.path(m.run_dir))} {q(m.claim)}" for m in members)
    where = f"-p {partition}" if partition else ""
    return (
        f"mkdir -p {q(folder)} && cat > {q(folder)}/job.sbatch <<'{eof}'\n{script}{eof}\n"
        f"n={len(members)} {slots}\n"
        f"K {q(folder)} {res.cpus or 1} {res.mem or 0} {minutes} {q(where)} {args}"
    )


def member_record(
    record: SlurmRecord | None, exit_code: int | None, started: bool
) -> SlurmRecord | None:
    """A member's state from its pack's record and its own run folder: its own exit code
    settles it (unless the pack was cancelled or timed out with it); not started in a running pack, it waits for a lane; a pack that ended
    without the member's exit code ends the member the same way."""
    state = record.state.split()[0].rstrip("+") if record and record.state else ""
    if exit_code is not None:
        if record is not None and exit_code > 128 and final(state) and state != "COMPLETED":
            return SlurmRecord(record.state, exit_code)  # killed with its pack: why the pack ended
        return SlurmRecord("COMPLETED" if exit_code == 0 else "FAILED", exit_code)
    if record is None:
        return None
    if state in RUNNING_STATES and not started:
        return SlurmRecord("PENDING", None, "waiting for a lane in its pack")
    if state == "COMPLETED":  # the pack's runner ended, this member left no exit code
        return SlurmRecord("FAILED", None)
    return record


def cancel_members(
    layout: RemoteLayout, members: Sequence[tuple[str, str]], force: bool
) -> list[str]:
    """Shell lines that cancel members (run folder, handle): each is skipped if it has not
    started, and signalled (its process group) inside its pack's allocation if it has; a
    pack whose every member is cancelled is cancelled whole (scancel)."""
    packs: dict[str, list[str]] = {}
    for run_dir, handle in members:
        match = PACK_MEMBER.match(handle)
        if match:
            packs.setdefault(match.group(1), []).append(q(layout.path(run_dir)))
    signal = "KILL" if force else "TERM"
    lines = []
    for job, runs in packs.items():
        whole = f"scancel --signal=KILL --full {job}; scancel {job}" if force else f"scancel {job}"
        each = "; ".join(
            f"p=$(cat {run}/pid 2>/dev/null); "
            f'[ -n "$p" ] && [ ! -e {run}/exit_code ] && '
            f"srun --jobid={job} --overlap -N1 -n1 -Q kill -s {signal} -- -$p"
            for run in runs
        )
        lines += [
            "; ".join(f": > {run}/cancel" for run in runs),
            f'd=$(cut -d" " -f1 < {runs[0]}/pack)',
            f'if [ "$(wc -l < "$d/members")" -le {len(runs)} ]; then {whole}; else {each}; fi 2>/dev/null',
        ]
    return lines
