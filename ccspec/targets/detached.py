"""ssh and WSL hosts: each attempt runs detached (its own session, no terminal, its output in
its log) under ccspec's wrapper on the host, so it outlives the connection and ccspec itself.

A batch of launches is one remote command, which also reports the jobs that ended within a
moment (ccspec.targets.launch_report: short jobs need no poll); a poll of every other job on the
host is one remote command that also returns the new bytes of their logs.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence

from ccspec.errors import TargetError
from ccspec.states import FINAL, JobState
from ccspec.targets.base import LOG_READ, Fenced, RemoteLaunch, Status, Submitted, Target, Tracked
from ccspec.targets.claims import fence
from ccspec.targets.launch_report import SETTLED, ended, settle_lines
from ccspec.targets.remote import (
    PID_FUNCTION,
    START_GRACE,
    FileState,
    RemoteLayout,
    fetch_results,
    parse_poll,
    poll_lines,
    read_remote_log,
    refused,
    run_words,
    wrapper_variable,
)
from ccspec.targets.shells import Shell

__all__ = ["DetachedBackend"]

q = shlex.quote

# L KEY RUN_DIR CWD CLAIM [NAME=VALUE...] ARGV...: take the launch's claim, then start ARGV
# with those variables exported, detached in CWD with its output in RUN_DIR/log, and print
# "@@ KEY ok PID" (the pid is the wrapper's: it leads the job's own session). A launch sent
# again answers with the same pid. The log is made 0600 first (it may show secrets); the
# job keeps the host's umask U. A job in a session of its own, with no terminal and its stdio
# redirected, gets no hangup when the connection ends: `nohup` (one more program per job)
# only stands in where `setsid` is missing.
# The claim (ccspec.targets.claims) is the file RUN_DIR/CLAIM, made with noclobber: an
# O_EXCL create, as atomic as the fence's `mkdir` of the same name (whichever comes first,
# the other fails) and a builtin, so a launch costs no process for it. The job's pid goes
# into it. The job's wrapper finds its pid there ($CCSPEC_CLAIM) and writes no pid file of
# its own: one file less per job (new files are what costs most on the host's disk); it
# writes one when it looks before the pid is in (a race it seldom wins: the pid is written
# as soon as the fork returns). Found there already: a file is an
# earlier send of this launch (answer with the pid it holds), a folder a later runner's fence
# (give up). `true`, not `:`: a failed redirection of a special builtin ends the shell.
LAUNCH_FUNCTION = r"""
command -v setsid >/dev/null 2>&1 && S=setsid || S=nohup
U=$(umask)
L() {
  k=$1 r=$2 c=$3 m=$4; shift 4
  if [ ! -d "$c" ] || [ ! -d "$r" ]; then printf '@@ %s err missing folder %s\n' "$k" "$c"; return 0; fi
  set -C; { true > "$r/$m"; } 2>/dev/null; o=$?; set +C
  if [ "$o" -ne 0 ]; then
    j=0
    while [ -f "$r/$m" ] && [ ! -s "$r/$m" ] && [ "$j" -lt 50 ]; do sleep 0.1 2>/dev/null; j=$((j + 1)); done
    h=; [ -f "$r/$m" ] && { read -r h < "$r/$m"; } 2>/dev/null
    if [ -n "$h" ]; then printf '@@ %s ok %s\n' "$k" "$h"
    else printf '@@ %s err %s\n' "$k" 'the launch was settled as never started by a later ccspec run'; fi
    return 0
  fi
  umask 077; : >> "$r/log"; umask "$U"
  ( export CCSPEC_CLAIM="$r/$m"
    while [ $# -gt 0 ]; do case $1 in [A-Za-z_]*=*) export "$1"; shift ;; *) break ;; esac; done
    cd "$c" && exec $S "$@" > "$r/log" 2>&1 < /dev/null ) &
  echo "$!" > "$r/$m"
  printf '@@ %s ok %s\n' "$k" "$!"
}
"""


class DetachedBackend:
    queues = False

    def __init__(self, shell: Shell, workdir: str, python: str = "python3") -> None:
        self.shell = shell
        self.layout = RemoteLayout(shell, workdir, python)
        # jobs the launch command saw end, until the next poll reports them (by attempt id)
        self._ended: dict[int, FileState] = {}

    @property
    def label(self) -> str:
        return self.shell.label

    def submit(self, launches: Sequence[RemoteLaunch]) -> list[Submitted]:
        lines, folders = [LAUNCH_FUNCTION], dict[str, None]()
        failed: list[Submitted] = []
        sent: list[RemoteLaunch] = []
        for launch in launches:
            try:
                stage = self.layout.stage_files(launch)
                # NAME=VALUE words first: L exports them (no `env` process per job)
                argv = [*self.layout.env_argv(launch)[1:], *self.layout.argv(launch)]
                folders.update(dict.fromkeys(self.layout.stage_folders(launch)))
            except (TargetError, OSError) as exc:
                failed.append(refused(launch, f"cannot ship files to {self.label}: {exc}", exc))
                continue
            sent.append(launch)
            run, cwd = self.layout.path(launch.run_dir), self.layout.job_folder(launch)
            staged = f"{{ {' && '.join(stage)}; }} 2>/dev/null; " if stage else ""
            lines.append(
                f"{staged}L {launch.attempt_id} {q(run)} {q(cwd)} {q(launch.claim)} "
                f"{run_words(argv)}"
            )
        if not sent:
            return failed
        # every folder of the batch in one process (L checks that each one is there)
        lines.insert(1, f"mkdir -p {' '.join(q(f) for f in folders)} 2>/dev/null")
        lines.insert(1, wrapper_variable())
        tracked = [
            Tracked(x.attempt_id, None, x.run_dir, x.log_path, time.time(), fetch=x.fetch)
            for x in sent
        ]
        lines.append(settle_lines(self.layout, tracked))
        result = self.shell.run("\n".join(lines))
        head, _, tail = result.out.partition(SETTLED)
        answers = _answers(head.decode("utf-8", "replace"))
        out = list(failed)
        for launch in sent:
            status, _, value = answers.get(launch.attempt_id, ("", "", ""))
            if status == "ok" and value.isdigit():
                out.append(Submitted(launch.attempt_id, value))
            else:
                # no answer at all: the command died on the way (sending it again is safe,
                # its claim starts the job once); an answer "err" is the host's refusal
                detail = value or result.err.strip() or f"exit code {result.code}"
                out.append(
                    Submitted(
                        launch.attempt_id,
                        None,
                        f"could not start on {self.label}: {detail}",
                        temporary=not status,
                    )
                )
        started = {s.attempt_id for s in out if s.handle is not None}
        self._ended.update(ended(parse_poll(tail, [t for t in tracked if t.attempt_id in started])))
        if any(s.error for s in out):
            self.layout.forget_blobs()
        return out

    def poll(self, tracked: Sequence[Tracked]) -> dict[int, Status | None]:
        # jobs the launch command already saw end (their logs mirrored whole) need no question
        known = {t.attempt_id: f for t in tracked if (f := self._ended.pop(t.attempt_id, None))}
        ask = [t for t in tracked if t.attempt_id not in known]
        files = dict(known)
        if ask:
            files.update(parse_poll(self.shell.run(poll_lines(self.layout, ask)).out, ask))
        now = time.time()
        states: dict[int, Status | None] = {}
        for t in tracked:
            states[t.attempt_id] = self._status(t, files.get(t.attempt_id), now)
        fetch_results(
            self.layout,
            [
                t
                for t in tracked
                if t.fetch and (s := states.get(t.attempt_id)) is not None and s.state in FINAL
            ],
        )
        return states

    def _status(self, t: Tracked, f: FileState | None, now: float) -> Status | None:
        """The state of one job from what its run folder holds."""
        if f is None:  # the poll did not get to this job: unknown, never failed
            return None
        if f.exit_code is not None:
            if not f.complete:  # log bytes left to mirror: report the exit next time
                return Status(JobState.RUNNING, extra=f.mirroring())
            if f.exit_code == 0:
                return Status(JobState.SUCCEEDED, 0, finished=f.ended(now), usage=f.usage)
            reason = f"exit code {f.exit_code}"
            return Status(JobState.FAILED, f.exit_code, reason, f.ended(now), usage=f.usage)
        if f.pid == "r" or (f.pid == "-" and now - t.since < START_GRACE):
            return Status(JobState.RUNNING, extra=f.mirroring())
        if f.pid == "d":
            return Status(
                JobState.LOST,
                None,
                f"the job's process on {self.label} is gone and "
                "left no exit code (killed, or the host rebooted)",
            )
        return Status(
            JobState.LOST,
            None,
            f"the job never started on {self.label} (no pid in {self.layout.path(t.run_dir)})",
        )

    def fence(self, tracked: Sequence[Tracked]) -> dict[int, Fenced]:
        """A claimed launch was started right after it took its claim: follow it."""
        return {
            i: "started" if f == "claimed" else f for i, f in fence(self.layout, tracked).items()
        }

    def cancel(self, tracked: Sequence[Tracked], force: bool) -> None:
        sig = "KILL" if force else "TERM"
        lines = [PID_FUNCTION]
        for t in tracked:
            run = q(self.layout.path(t.run_dir))
            # the whole process group (the job leads its own session), or the pid alone;
            # no `--`: dash's kill does not take it
            lines.append(
                f'I {run}; [ -n "$p" ] && {{ kill -{sig} -"$p" 2>/dev/null || '
                f'kill -{sig} "$p" 2>/dev/null; }}'
            )
        if tracked:
            self.shell.run("\n".join(lines) + "\ntrue")

    def read_log(self, tracked: Tracked, offset: int, most: int = LOG_READ) -> bytes:
        return read_remote_log(self.layout, tracked, offset, most)

    def close(self) -> None:
        self.shell.close()


def _check(backend: DetachedBackend) -> Target[RemoteLaunch]:
    return backend  # mypy: a DetachedBackend is a Target of remote launches


def _answers(text: str) -> dict[int, tuple[str, str, str]]:
    """`@@ KEY ok VALUE` / `@@ KEY err MESSAGE` lines by key."""
    out: dict[int, tuple[str, str, str]] = {}
    for line in text.splitlines():
        if not line.startswith("@@ "):
            continue
        parts = line[3:].split(" ", 2)
        if len(parts) >= 2 and parts[0].isdigit():
            out[int(parts[0])] = (parts[1], "", parts[2] if len(parts) > 2 else "")
    return out
