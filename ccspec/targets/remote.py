"""What every remote target shares: the remote layout, shipping files by content, the job's
command line, and one shell script that reads the state and new log bytes of all of a host's
jobs at once.

Layout under the host's workdir W (default ~/ccspec):

    W/.ccspec/blobs/SHA256        every shipped file, once per content
    W/.ccspec/runs/WF/JOB.N/      an attempt's run folder: exit_code (with the usage), log,
                                  the launch's claim launch.ID.TIME (ccspec.targets.claims;
                                  an ssh launch's holds the pid), else pid, and slurm_id
    W/WF/                         the jobs' working folder: scripts, notebooks and inputs at
                                  their paths relative to the spec, copied from the blobs

The attempt's log is mirrored into the local log file (.ccspec/logs/WF/JOB/N.log) as it
grows, so progress, outputs and `ccspec logs` work the same for every target.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ccspec.fingerprint import hash_file
from ccspec.interpreters import interpreter_argv
from ccspec.resources import template_path
from ccspec.spec.resolved import ResolvedJob
from ccspec.state.private import make_dirs, opener, with_umask

# the launch and tracking types live in base.py; imported from here by older callers
from ccspec.targets.base import RemoteLaunch, Submitted, Tracked, launched_at
from ccspec.targets.shells import Shell
from ccspec.usage import Usage, parse_usage

__all__ = [
    "PID_FUNCTION",
    "RemoteLaunch",
    "RemoteLayout",
    "Submitted",
    "Tracked",
    "launched_at",
    "mirror_size",
    "parse_poll",
    "poll_calls",
    "poll_lines",
    "read_remote_log",
    "refused",
    "run_words",
    "wrapper_variable",
]

q = shlex.quote
LOG_CHUNK = 8 << 20  # bytes of one job's log read per poll; the rest comes with the next poll
# bytes of all jobs' logs one poll brings at most (its answer is held whole)
POLL_LOG_BUDGET = 16 << 20
# jobs whose files one poll stats in one process (more: a process per job, as the command
# line must stay far below the system's limit)
STAT_AT_ONCE = 1000
START_GRACE = 60.0  # seconds a launched job may take to write its pid before it counts as lost


def refused(launch: RemoteLaunch, message: str, exc: BaseException) -> Submitted:
    """The answer to a launch that failed on this side (its files could not be shipped):
    temporary unless the error says retrying cannot help."""
    from ccspec.errors import TemporaryTargetError

    temporary = isinstance(exc, (TemporaryTargetError, OSError))
    return Submitted(launch.attempt_id, None, message, temporary=temporary)


def job_files(
    job: ResolvedJob, base: Path, inputs: Iterable[tuple[str, str]] = ()
) -> dict[str, Path]:
    """The local files a job needs on the remote host, by path relative to the spec."""
    files: dict[str, Path] = {}
    for rel in (job.script, job.notebook):
        if rel:
            files[rel] = base / rel
    for rel, _ in inputs:
        files[rel] = base / rel
    return files


class RemoteLayout:
    """Remote paths, file shipping and command lines for one host (POSIX on the far side)."""

    def __init__(self, shell: Shell, workdir: str, python: str = "python3") -> None:
        self.shell = shell
        self.workdir_spec = workdir
        self.python = python
        self._root: str | None = None
        self._blobs: set[str] | None = None  # contents already on the host
        self.polls = 0  # polls made: each starts its share of log bytes at another job

    @property
    def root(self) -> str:
        """The workdir as an absolute path on the host (created on first use)."""
        if self._root is None:
            spec = self.workdir_spec
            target = (
                f'"$HOME"/{q(spec[2:])}'
                if spec.startswith("~/")
                else '"$HOME"'
                if spec == "~"
                else q(spec)
            )
            # W/.ccspec is private (0700): the runs' logs may show secrets
            result = self.shell.run(
                f"mkdir -p {target}/.ccspec/blobs && chmod 700 {target}/.ccspec && cd {target} && "
                "pwd -P && ls .ccspec/blobs"
            )
            if result.code != 0:
                from ccspec.errors import PermanentTargetError

                raise PermanentTargetError(
                    f"cannot use workdir {spec} on {self.shell.label}: {result.err.strip()}"
                )
            lines = result.text.splitlines()
            self._root, self._blobs = lines[0], set(lines[1:])
        return self._root

    def path(self, rel: str) -> str:
        return str(PurePosixPath(self.root) / rel)

    def blob(self, sha: str) -> str:
        return self.path(f".ccspec/blobs/{sha}")

    def ship(self, local: Path) -> str:
        """Send a file unless the host already has its content; return its blob path."""
        sha = hash_file(local)
        self.root  # noqa: B018 - lists the blobs already there
        assert self._blobs is not None
        if sha not in self._blobs:
            self.shell.put(local.read_bytes(), self.blob(sha))
            self._blobs.add(sha)
        return self.blob(sha)

    def forget_blobs(self) -> None:
        """After a failed command the host may have lost files: list them again next time."""
        self._root, self._blobs = None, None

    def stage_script(self, launch: RemoteLaunch) -> str:
        """Shell lines that put the job's files in place in its working folder."""
        folders = " ".join(q(f) for f in self.stage_folders(launch))
        return " && ".join([f"mkdir -p {folders}", *self.stage_files(launch)])

    def stage_folders(self, launch: RemoteLaunch) -> list[str]:
        """The folders a launch needs: its working folder and its run folder."""
        return [self.job_folder(launch), self.path(launch.run_dir)]

    def stage_files(self, launch: RemoteLaunch) -> list[str]:
        """Shell lines that copy the job's files (shipped first) into its working folder."""
        lines = []
        for rel, local in sorted(launch.files.items()):
            blob = self.ship(local)
            dest = self.file_path(launch, rel)
            lines.append(
                f"mkdir -p {q(str(PurePosixPath(dest).parent))} && "
                f"{{ cmp -s {q(blob)} {q(dest)} || cp -f {q(blob)} {q(dest)}; }}"
            )
        return lines

    def workflow_folder(self, workflow: str) -> str:
        return self.path(workflow)

    def job_folder(self, launch: RemoteLaunch) -> str:
        base = PurePosixPath(self.workflow_folder(launch.workflow))
        return str(base / launch.job.workdir) if launch.job.workdir else str(base)

    def file_path(self, launch: RemoteLaunch, rel: str) -> str:
        posix = PurePosixPath(Path(rel).as_posix())
        if posix.is_absolute() or ".." in posix.parts:  # outside the spec's folder: keep it apart
            return str(
                PurePosixPath(self.workflow_folder(launch.workflow)) / "_outside" / posix.name
            )
        return str(PurePosixPath(self.workflow_folder(launch.workflow)) / posix)

    def argv(self, launch: RemoteLaunch) -> list[str]:
        """The command that runs the attempt under ccspec's wrapper (pid and exit code are
        written into the run folder)."""
        job, run = launch.job, self.path(launch.run_dir)
        if job.kind == "run":
            shell = job.shell or "bash"
            return [shell, "-c", _run_wrapper(), shell, job.run or ""]
        wrapper = ["sh", self.ship(template_path("job-wrapper.sh")), run]
        if job.kind == "script":
            script = self.file_path(launch, job.script or "")
            prefix = interpreter_argv(script, job.interpreter, python=self.python) or []
            return [*wrapper, *prefix, script, *(str(a) for a in job.args)]
        notebook = self.file_path(launch, job.notebook or "")
        argv = [
            *wrapper,
            self.python,
            "-m",
            "papermill",
            "--log-output",
            notebook,
            f"{run}/executed.ipynb",
            "-y",
            json.dumps(dict(job.parameters)),
        ]
        return [*argv, "-k", job.kernel] if job.kernel else argv

    def env_argv(self, launch: RemoteLaunch) -> list[str]:
        run = self.path(launch.run_dir)
        env = {**launch.env, "CCSPEC_RUN_DIR": run}
        return ["env", *(f"{k}={v}" for k, v in env.items())]


def wrapper_variable() -> str:
    """A line that puts the run: wrapper into the shell variable R, so that a batch's
    command carries it once, not once per job (`bash -c "$R" bash CMD`). Its umask is the
    command's `$U`, the umask the command starts the jobs with (ccspec.state.private.with_umask)."""
    marker = "\x00U\x00"  # never in the wrapper: where "$U" goes, outside the quotes
    before, _, after = with_umask(_run_wrapper(), marker).partition(marker)
    return f'R={q(before)}"$U"{q(after)}'


def run_words(argv: Sequence[str]) -> str:
    """The command line of `argv` with the run: wrapper named as "$R" (wrapper_variable)."""
    wrapper = _run_wrapper()
    return " ".join('"$R"' if word == wrapper else q(word) for word in argv)


@functools.lru_cache(maxsize=1)
def _run_wrapper() -> str:
    """The run: wrapper without its comments: it travels inside remote command lines."""
    lines = template_path("run-wrapper.sh").read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("#")) + "\n"


# -- polling -------------------------------------------------------------------------------

# `I RUN_DIR` sets p to the pid of the attempt's wrapper and h to "y" when there is a pid
# file, or an ssh launch's claim with the pid in it (ccspec.targets.detached), else both empty.
PID_FUNCTION = r"""
I() {
  p= h=; [ -f "$1/pid" ] && { h=y; { read -r p < "$1/pid"; } 2>/dev/null; return 0; }
  for h in "$1"/launch.*; do [ -f "$h" ] && { read -r p < "$h"; } 2>/dev/null; done; h=${p:+y}
}
"""

# One function, called once per job: `P KEY RUN_DIR OFFSET` prints
#   @@ KEY EXIT PID_STATE SLURM_ID NBYTES LEFT NOW WRITTEN [USAGE]   then NBYTES of the log from OFFSET
# EXIT is the wrapper's exit code or '-'; PID_STATE is r (running), d (gone) or - (no pid yet);
# LEFT the log bytes still to fetch after these; NOW the host's clock and WRITTEN the time its
# exit code was written by that clock (or '-'): the job's end is known, without clock skew,
# however long its log takes to mirror (nanoseconds with GNU date and stat, else seconds).
# USAGE: once the job ended, its wrapper's usage line (ccspec.usage): the exit-code file's
# second line (an older wrapper's file `usage`).
# A job gets at most CHUNK bytes of its log, and all jobs together at most BUDGET ($B).
POLL_FUNCTION = r"""
B=BUDGET T= NL='
' N=$(date +%s.%N 2>/dev/null)
case $N in *[!0-9.]*|'') N=$(date +%s 2>/dev/null) ;; esac
P() {
  x=- s=- i=- n=0 m=0 w=- z= v= u=
  # files are read with the shell's own `read`: no process per file and job
  [ -f "$2/exit_code" ] && { x=; { read -r x; read -r u; } < "$2/exit_code"; } 2>/dev/null
  if [ "$x" = - ] || [ -z "$x" ]; then
    x=- u=
    I "$2"
    if [ -n "$h" ]; then
      # alive, and not a zombie waiting for a late reaper
      if kill -0 "$p" 2>/dev/null && ! { [ -r "/proc/$p/stat" ] && { read -r t < "/proc/$p/stat"; } 2>/dev/null && t=${t##*) } && [ "${t%% *}" = Z ]; }; then s=r
      elif [ -f "$2/exit_code" ]; then x=; { { read -r x; read -r u; } < "$2/exit_code"; } 2>/dev/null; x=${x:--}; s=d
      else s=d; fi
    fi
  fi
  [ -f "$2/slurm_id" ] && { read -r i < "$2/slurm_id"; } 2>/dev/null
  # this job's lines of the poll's one stat (T), when they are at its head: the exit code's
  # time e (it was stat'd first: the log's size l after it is final) and the log's size l
  e= l= h=${T%%"$NL"*}
  case $h in "$2/exit_code|"*) e=${h##*|}; T=${T#"$h"}; T=${T#"$NL"}; h=${T%%"$NL"*} ;; esac
  case $h in "$2/log|"*) l=${h#"$2/log|"}; l=${l%%|*}; T=${T#"$h"}; T=${T#"$NL"} ;; esac
  if [ "$x" != - ] && [ -n "$e" ]; then z=$l w=$e
  elif [ "$x" = - ]; then z=$l
  fi
  if [ "$x" != - ] && [ -z "$e" ] && [ -f "$2/log" ]; then
    # ended after the poll's stat: the log's size and the exit code's time in one process
    v=$(stat -c '%s %.9Y' "$2/log" "$2/exit_code" 2>/dev/null)
    case $v in *"
"*) z=${v%% *} w=${v##* } ;; esac
  fi
  case $z in ''|*[!0-9]*) z= ;; esac
  if [ -z "$z" ] && [ -f "$2/log" ]; then z=$(wc -c < "$2/log"); fi
  if [ -n "$z" ]; then
    n=$((z - $3))
    [ "$n" -lt 0 ] && n=0
    m=$n
    [ "$n" -gt CHUNK ] && n=CHUNK
    [ "$n" -gt "$B" ] && n=$B
    B=$((B - n)) m=$((m - n))
  fi
  if [ "$x" != - ] && [ "$w" = - ]; then
    w=$(stat -c %.9Y "$2/exit_code" 2>/dev/null || stat -c %Y "$2/exit_code" 2>/dev/null)
  fi
  case $w in ''|*[!0-9.]*) w=- ;; esac
  [ "$x" != - ] && [ -z "$u" ] && [ -f "$2/usage" ] && read -r u < "$2/usage"  # a builtin: no process
  printf '@@ %s %s %s %s %s %s %s %s%s\n' "$1" "${x:--}" "$s" "${i:--}" "$n" "$m" "${N:--}" "$w" "${u:+ $u}"
  [ "$n" -gt 0 ] && tail -c +$(($3 + 1)) "$2/log" | head -c "$n"
  return 0
}
""".replace("CHUNK", str(LOG_CHUNK)).replace("BUDGET", str(POLL_LOG_BUDGET))
POLL_FUNCTION = PID_FUNCTION + POLL_FUNCTION


@dataclass(frozen=True)
class FileState:
    exit_code: int | None
    pid: str  # r, d or -
    slurm_id: str | None
    complete: bool  # the whole log has been mirrored
    left: int = 0  # log bytes still to mirror
    # seconds between the exit code's writing and the poll, by the host's clock
    age: float | None = None
    usage: Usage | None = None  # the wrapper's usage line, once the job ended

    def ended(self, now: float) -> float | None:
        """When the job ended, on this machine's clock (None: not known)."""
        return now - self.age if self.age is not None and self.age >= 0 else None

    def mirroring(self) -> dict[str, str]:
        """Status extra of a job whose log is being caught up: it differs from poll to poll,
        so the host's worker polls again soon instead of backing off."""
        return {"mirroring": str(self.left)} if self.left else {}


def poll_lines(layout: RemoteLayout, tracked: Sequence[Tracked]) -> str:
    """The poll script of these jobs. The jobs take turns at the head of the list (as many
    as one budget serves in full move on each poll), so that when a few long logs use up the
    poll's budget, the others still get their share."""
    first = layout.polls * (POLL_LOG_BUDGET // LOG_CHUNK) % len(tracked) if tracked else 0
    layout.polls += 1
    return "\n".join([POLL_FUNCTION, poll_calls(layout, (*tracked[first:], *tracked[:first]))])


def poll_calls(layout: RemoteLayout, tracked: Sequence[Tracked]) -> str:
    """The calls of the poll function for these jobs, after one `stat` of all their exit codes
    and logs (in the calls' order), so that a job costs no process of its own."""
    dirs = [q(layout.path(t.run_dir)) for t in tracked]
    lines = []
    if 0 < len(dirs) <= STAT_AT_ONCE:
        files = " ".join(f"{d}/exit_code {d}/log" for d in dirs)
        lines.append(f"T=$(stat -c '%n|%s|%.9Y' {files} 2>/dev/null)")
    for t, d in zip(tracked, dirs, strict=True):
        lines.append(f"P {t.attempt_id} {d} {mirror_size(t.log_path)}")
    return "\n".join(lines)


# `F KEY FILE OFFSET MOST` prints `@@ KEY SIZE NBYTES`, then NBYTES of FILE from OFFSET (at
# most MOST); nothing when there is no such file.
FETCH_FUNCTION = r"""
F() {
  [ -f "$2" ] || return 0
  z=$(wc -c < "$2"); n=$((z - $3))
  [ "$n" -gt "$4" ] && n=$4
  [ "$n" -lt 0 ] && n=0
  printf '@@ %s %s %s\n' "$1" "$z" "$n"
  [ "$n" -gt 0 ] && tail -c +$(($3 + 1)) "$2" | head -c "$n"
  return 0
}
"""


def read_remote_log(layout: RemoteLayout, tracked: Tracked, offset: int, most: int) -> bytes:
    """At most `most` bytes of an attempt's log on the host from `offset` on (one command)."""
    if most <= 0:
        return b""
    path = f"{layout.path(tracked.run_dir)}/log"
    out = layout.shell.run(f"{FETCH_FUNCTION}\nF 0 {q(path)} {max(0, offset)} {most}").out
    start = out.find(b"@@ 0 ")
    end = out.find(b"\n", start) if start >= 0 else -1
    if end < 0:
        return b""
    fields = out[start + 3 : end].split(b" ")
    nbytes = int(fields[2]) if len(fields) == 3 and fields[2].isdigit() else 0
    return out[end + 1 : end + 1 + nbytes]


def fetch_results(layout: RemoteLayout, finished: Sequence[Tracked]) -> None:
    """Bring back the files finished attempts left in their run folders (an executed
    notebook is kept next to its log, as for local jobs). One command for all of them per
    POLL_LOG_BUDGET bytes, so a large file never sits whole in memory; each is written under
    a temporary name and renamed when complete. A missing file is skipped."""
    wanted = {
        i: (f"{layout.path(t.run_dir)}/{name}", local)
        for i, (t, name, local) in enumerate(
            (t, n, lo) for t in finished for n, lo in t.fetch.items()
        )
    }
    offsets = dict.fromkeys(wanted, 0)
    while offsets:
        _fetch_round(layout, wanted, offsets)


def _fetch_round(
    layout: RemoteLayout, wanted: Mapping[int, tuple[str, Path]], offsets: dict[int, int]
) -> None:
    """One command for the next piece of every file still wanted (its answer is freed on
    return, before the next one arrives); forgets the files that are complete or missing."""
    share = max(1, POLL_LOG_BUDGET // len(offsets))
    out = layout.shell.run(
        "\n".join(
            [FETCH_FUNCTION, *(f"F {i} {q(wanted[i][0])} {offsets[i]} {share}" for i in offsets)]
        )
    ).out
    view = memoryview(out)
    pos, answered = 0, set()
    while (start := out.find(b"@@ ", pos)) >= 0 and (end := out.find(b"\n", start)) >= 0:
        fields = out[start + 3 : end].decode("utf-8", "replace").split(" ")
        if (
            len(fields) != 3
            or not all(f.isdigit() for f in fields)
            or int(fields[0]) not in offsets
        ):
            pos = end + 1
            continue
        key, size, nbytes = (int(f) for f in fields)
        data = view[end + 1 : end + 1 + nbytes]
        pos = end + 1 + nbytes
        answered.add(key)
        local = wanted[key][1]
        part = local.with_name(local.name + ".part")
        make_dirs(part.parent)
        with open(part, "ab" if offsets[key] else "wb", opener=opener) as fh:  # 0600
            fh.write(data)
        offsets[key] += len(data)
        if offsets[key] >= size or not data:  # all of it (or it shrank: keep what came)
            os.replace(part, local)
            del offsets[key]
    for key in set(offsets) - answered:  # no such file (or no answer): skipped
        if offsets.pop(key):
            local = wanted[key][1]
            local.with_name(local.name + ".part").unlink(missing_ok=True)


def mirror_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _age(host_now: str, written: str) -> float | None:
    """Seconds between two times of the host's clock (None when either is missing)."""
    try:
        return float(host_now) - float(written)
    except ValueError:
        return None


def parse_poll(out: bytes, tracked: Sequence[Tracked]) -> dict[int, FileState]:
    """Read the poll script's output; append each job's new log bytes to its local mirror."""
    by_id = {t.attempt_id: t for t in tracked}
    found: dict[int, FileState] = {}
    pos = 0
    while True:
        start = out.find(b"@@ ", pos)
        if start < 0:
            break
        end = out.find(b"\n", start)
        if end < 0:
            break
        fields = out[start + 3 : end].decode("utf-8", "replace").split(" ")
        if (
            len(fields) in (6, 7)
            or len(fields) < 5
            or not fields[0].isdigit()
            or not fields[4].isdigit()
        ):
            pos = end + 1
            continue
        key, exit_text, pid_state, slurm_id, size = fields[:5]
        left_text, host_now, written = fields[5:8] if len(fields) >= 8 else ("", "-", "-")
        nbytes = int(size)
        data = out[end + 1 : end + 1 + nbytes]
        pos = end + 1 + nbytes
        t = by_id.get(int(key))
        if t is None:
            continue
        if data:
            make_dirs(t.log_path.parent)
            with open(t.log_path, "ab", opener=opener) as fh:  # 0600: the log may show secrets
                fh.write(data)
        code = int(exit_text) if exit_text.lstrip("-").isdigit() and exit_text != "-" else None
        usage = parse_usage(" ".join(fields[8:])) if len(fields) > 8 else None
        left = int(left_text) if left_text.isdigit() else (0 if nbytes < LOG_CHUNK else 1)
        left += nbytes - len(data)  # an answer cut short: what is missing comes with the next poll
        age = _age(host_now, written)
        found[t.attempt_id] = FileState(
            code, pid_state, None if slurm_id == "-" else slurm_id, left == 0, left, age, usage
        )
    return found
