"""A job's launch on this machine: its argv, working folder and environment. Called by the
engine (ccspec.engine) for every local launch."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ccspec.interpreters import interpreter_argv
from ccspec.resources import template_path
from ccspec.spec.resolved import ResolvedJob
from ccspec.state.private import with_umask
from ccspec.targets.base import Launch

__all__ = ["POSIX_SHELLS", "command", "job_cwd", "local_launch", "run_wrapper"]

POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash"})


@functools.lru_cache(maxsize=1)
def run_wrapper() -> str:
    """The shell text that runs a `run:` job and writes its exit code; read once."""
    return with_umask(template_path("run-wrapper.sh").read_text())


def job_cwd(job: ResolvedJob, base: Path) -> Path:
    """A local job's working folder: the spec's folder, or its `workdir:` below it."""
    return (base / job.workdir).resolve() if job.workdir else base


def command(job: ResolvedJob, base: Path, run_dir: Path, log_path: Path) -> list[str]:
    """The argv of a job on this machine."""
    if job.kind == "run":
        return _shell_command(job, base, log_path)
    if job.kind == "script":
        script = str((base / (job.script or "")).resolve())
        prefix = interpreter_argv(script, job.interpreter, python=sys.executable) or []
        return [*prefix, script, *(str(a) for a in job.args)]
    notebook = str((base / (job.notebook or "")).resolve())
    executed = str(log_path.resolve().with_suffix(".ipynb"))
    parameters = json.dumps(dict(job.parameters))
    return [
        sys.executable,
        "-m",
        "ccspec.notebook",
        notebook,
        executed,
        parameters,
        job.kernel or "",
    ]


def _shell_command(job: ResolvedJob, base: Path, log_path: Path) -> list[str]:
    shell = job.shell or ("bash" if sys.platform != "win32" else "cmd")
    if shell in ("cmd", "cmd.exe"):
        return [shell, "/c", job.run or ""]
    if shell.lower().startswith(("powershell", "pwsh")):
        return [shell, "-NoProfile", "-Command", job.run or ""]
    if os.path.basename(shell) in POSIX_SHELLS:  # one process: the shell runs wrapper and command
        wrapper = run_wrapper()
        cwd = str(job_cwd(job, base))
        return [shell, "-c", wrapper, shell, job.run or "", os.path.abspath(log_path), cwd]
    return [shell, "-c", job.run or ""]


def local_launch(
    workflow: str,
    job: ResolvedJob,
    number: int,
    base: Path,
    run_dir: Path,
    base_env: Mapping[str, str],
    attempt_id: int = 0,
    created: float | None = None,
) -> Launch:
    """Launch `number` of a job, in `run_dir` (absolute), its log beside it as N.log."""
    log_path = run_dir.with_name(f"{number}.log")
    env = {
        **base_env,
        **{k: str(v) for k, v in job.env.items()},
        "CCSPEC_WORKFLOW": workflow,
        "CCSPEC_JOB": job.id,
        "CCSPEC_ATTEMPT": str(number),
        "CCSPEC_RUN_DIR": str(run_dir),
    }
    argv = command(job, base, run_dir, log_path)
    wrapped = len(argv) > 2 and argv[2] is run_wrapper()
    cwd = job_cwd(job, base)
    return Launch(
        workflow,
        job.id,
        number,
        argv,
        env,
        cwd,
        run_dir,
        log_path,
        job.timeout,
        wrapped=wrapped,
        attempt_id=attempt_id,
        created=created,
    )
