"""The bash launcher that forks `run:` jobs (ccspec.targets.launcher): a job it forks must
see what a fresh `bash -c` job sees, and the runner must fall back to spawning whenever it
cannot (a command using `$$` or `exec`, an environment a subshell cannot take over, a dead
launcher). Real bash processes throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from ccspec.engine import _run_wrapper
from ccspec.processes import pid_alive
from ccspec.targets.base import Launch
from ccspec.targets.launcher import BashLauncher, eligible
from ccspec.targets.local import PREPARE_AHEAD, LocalTarget
from ccspec.targets.run_folder import read_exit_code, take_claim

pytestmark = pytest.mark.skipif(
    not BashLauncher.available, reason="the launcher needs Linux pidfds"
)

# What a job can observe of its shell and process. Differences a subshell cannot avoid are
# left out: $BASH_SUBSHELL, $BASHPID-dependent values, the session id, $_ and counters.
PROBE = r"""
grep -E 'Sig(Ign|Blk)' /proc/self/status & wait $!  # what a background command inherits
grep -E 'Sig(Ign|Blk)' /proc/self/status  # and a foreground one
echo "pgid-is-own=$(( $(ps -o pgid= -p $BASHPID) == BASHPID ))"
echo "flags=$-"
x="héllo"; echo "chars=${#x}"
echo "umask=$(umask) pwd=$PWD shlvl=$SHLVL zero=$0 args=$#"
shopt -p
set -o
trap -p
ulimit -a
declare -F
declare -p | grep -v -E '^declare -[-a-zA-Z]* (BASH[A-Z_]*|_|PPID|RANDOM|SRANDOM|SECONDS|EPOCHSECONDS|EPOCHREALTIME|LINENO|PIPESTATUS|COLUMNS|LINES|HISTCMD|CCSPEC_JOB|CCSPEC_RUN_DIR|__ccspec_[a-z]*)='
env | grep -v -E '^(_|CCSPEC_RUN_DIR|CCSPEC_JOB)=' | sort
yes | head -n 1
"""


def _launch(
    tmp: Path, name: str, command: str, env: dict[str, str], run_dir: Path | None = None
) -> Launch:
    run_dir = run_dir or tmp / "runs" / name
    log = tmp / f"{name}.log"
    argv = ["bash", "-c", _run_wrapper(), "bash", command, str(log), str(tmp)]
    full = {**env, "CCSPEC_RUN_DIR": str(run_dir), "CCSPEC_JOB": name}
    return Launch("wf", name, 1, argv, full, tmp, run_dir, log, None, wrapped=True)


def _run(target: LocalTarget, launch: Launch, timeout: float = 20) -> tuple[str, int | None]:
    done: dict[str, int | None] = {}
    handle = target.submit(launch, lambda h, code: done.__setitem__(h, code))
    end = time.monotonic() + timeout
    while handle not in done:
        assert time.monotonic() < end, f"{launch.job_id} did not end"
        target.wait(0.5)
    return handle, done[handle]


def test_a_forked_job_sees_what_a_spawned_job_sees(tmp_path: Path) -> None:
    target = LocalTarget()
    try:
        env = {
            **os.environ,
            "CCSPEC_WORKFLOW": "wf",
            "SPEC_VAR": "from the spec: ünïcode",
            "LANG": "C.UTF-8",
        }
        forked = _launch(tmp_path, "forked", PROBE, env)
        # `: $$` makes the same probe start its own bash: the spawned reference
        spawned = _launch(tmp_path, "spawned", PROBE + ": $$\n", env)
        assert eligible(forked.argv) and not eligible(spawned.argv)
        handle_f, code_f = _run(target, forked)
        _, code_s = _run(target, spawned)
        for i in range(5):  # one spare after another
            _, code = _run(target, _launch(tmp_path, f"more{i}", f"exit {i}", env))
            assert code == i
        assert target._launcher is not None and target._launcher._pid, "the launcher was not used"
        assert not target._launcher.broken
    finally:
        target.close()
    assert code_f == code_s == 0
    seen_f, seen_s = forked.log_path.read_text(), spawned.log_path.read_text()
    assert seen_f == seen_s
    assert "pgid-is-own=1" in seen_f  # its own process group: a timeout kills all of it
    assert "SPEC_VAR=from the spec: ünïcode" in seen_f and "chars=5" in seen_f
    assert "Broken pipe" not in seen_f and seen_f.rstrip().endswith("y")  # SIGPIPE at its default
    assert (forked.run_dir / "pid").read_text().strip() == handle_f
    assert read_exit_code(forked.run_dir) == 0


def test_the_launcher_takes_over_environment_changes_and_removals(tmp_path: Path) -> None:
    launcher = BashLauncher("/bin/bash", _run_wrapper())
    try:
        env = dict(os.environ)
        env.pop("HOME", None)
        # values travel as shell words: quotes, expansions and backslashes must stay as they are
        quoted = "it's $(touch expanded) `touch expanded` ${HOME} \\ end"
        env.update(
            {
                "CCSPEC_RUN_DIR": str(tmp_path / "r"),
                "WITH_SPACES": "a b\nc",
                "EMPTY": "",
                "QUOTED": quoted,
            }
        )
        (tmp_path / "r").mkdir()
        log = tmp_path / "log"
        pid = launcher.launch(
            'printf "%s|" "${HOME-unset}" "$WITH_SPACES" "${EMPTY-unset}" "$QUOTED"',
            str(log),
            str(tmp_path),
            _run_wrapper(),
            env,
        )
        assert pid is not None
        _wait_file(tmp_path / "r" / "exit_code")
        assert log.read_text() == f"unset|a b\nc||{quoted}|"
        assert not (tmp_path / "expanded").exists()
        # names a subshell cannot take over go back to the caller, which spawns
        assert (
            launcher.launch(
                "true", str(log), str(tmp_path), _run_wrapper(), {**env, "BASH_ENV": "/x"}
            )
            is None
        )
        assert (
            launcher.launch("true", str(log), str(tmp_path), _run_wrapper(), {**env, "A-B": "1"})
            is None
        )
        assert not launcher.broken
    finally:
        launcher.close()


def _wait_file(path: Path, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize(
    "command", ["echo $$ > own", "echo ${$} > own", "exec sh -c 'echo $$ > own'"]
)
def test_commands_that_need_their_own_shell_are_spawned(tmp_path: Path, command: str) -> None:
    target = LocalTarget()
    try:
        handle, code = _run(target, _launch(tmp_path, "own", command, dict(os.environ)))
    finally:
        target.close()
    assert code == 0
    assert (tmp_path / "own").read_text().strip() == handle  # $$ is the job's own pid
    assert target._launcher is None  # nothing went through the launcher


def test_jobs_go_on_when_the_launcher_dies(tmp_path: Path) -> None:
    target = LocalTarget()
    try:
        _, code = _run(target, _launch(tmp_path, "first", "exit 3", dict(os.environ)))
        assert code == 3
        launcher = target._launcher
        assert launcher is not None
        os.kill(launcher._pid, signal.SIGKILL)
        # the spares forked before the launcher died (up to TURN_PIPES) may take a job each; then jobs are spawned
        for name in ("second", "third", "fourth", "fifth", "sixth", "seventh"):
            _, code = _run(target, _launch(tmp_path, name, f"echo {name}", dict(os.environ)))
            assert code == 0
            assert (tmp_path / f"{name}.log").read_text() == f"{name}\n"
        assert launcher.broken
    finally:
        target.close()


def test_a_forked_job_killed_behind_ccspecs_back_was_killed_by_signal_9(tmp_path: Path) -> None:
    """Its wrapper could write no exit code, but its parent, the launcher, saw it die: the
    same -9 ("killed by signal 9") as a job this process spawned, not "lost"."""
    target = LocalTarget()
    try:
        launch = _launch(tmp_path, "victim", "sleep 30", dict(os.environ))
        done: dict[str, int | None] = {}
        handle = target.submit(launch, lambda h, code: done.__setitem__(h, code))
        _wait_file(launch.run_dir / "pid")
        os.killpg(int(handle), signal.SIGKILL)
        end = time.monotonic() + 10
        while handle not in done:
            assert time.monotonic() < end
            target.wait(0.5)
    finally:
        target.close()
    assert done[handle] == -9


def test_a_forked_job_outlives_the_runner_and_the_next_apply_collects_it(tmp_path: Path) -> None:
    """SIGKILL the runner while a forked job runs: the launcher ends at end of input, the
    job goes on, and the next apply collects its exit code without running it again."""
    (tmp_path / "flow.yaml").write_text(
        textwrap.dedent("""
        version: 1
        jobs:
          slow: {run: "echo run >> trace; sleep 2; echo done > slow.out"}
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccspec", "apply", "flow.yaml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file: Path | None = None
    end = time.monotonic() + 20
    while pid_file is None:
        assert time.monotonic() < end, "the job never started"
        found = list((tmp_path / ".ccspec" / "logs").rglob("pid"))
        pid_file = found[0] if found else None
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    job_pid = int(pid_file.read_text())
    assert pid_alive(job_pid)
    result = subprocess.run(
        [sys.executable, "-m", "ccspec", "apply", "flow.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "slow.out").read_text() == "done\n"
    assert (tmp_path / "trace").read_text() == "run\n"  # exactly once
    status = yaml.safe_load((tmp_path / "flow.status.yaml").read_text())
    assert status["jobs"]["slow"]["state"] == "succeeded" and status["jobs"]["slow"]["attempt"] == 1


def test_a_record_cut_short_runs_nothing(tmp_path: Path) -> None:
    """The runner dies while writing a launch record: the spare that read it runs nothing."""
    launcher = BashLauncher("/bin/bash", _run_wrapper())
    assert launcher._start()
    spare = launcher._read_pid()
    (tmp_path / "r").mkdir()
    record = launcher._record(
        f"touch {tmp_path}/ran",
        f"{tmp_path}/log",
        str(tmp_path),
        {**os.environ, "CCSPEC_RUN_DIR": f"{tmp_path}/r"},
    )
    assert record is not None
    os.write(launcher._records, record[:-1])  # its last byte never comes
    launcher.close()
    end = time.monotonic() + 10
    while pid_alive(spare):
        assert time.monotonic() < end, "the spare did not end"
        time.sleep(0.02)
    assert not (tmp_path / "ran").exists() and not (tmp_path / "r" / "exit_code").exists()


def test_text_beyond_ascii_reaches_the_job_byte_for_byte(tmp_path: Path) -> None:
    """Records are ASCII with escapes whatever the locale: a command, log, folder and
    environment with other characters (and a byte that is not UTF-8) arrive unchanged."""
    launcher = BashLauncher("/bin/bash", _run_wrapper())
    try:
        folder = tmp_path / "dossier été ✓"
        run_dir = folder / "r"
        run_dir.mkdir(parents=True)
        log = folder / "journal ü.log"
        odd = os.fsdecode(b"raw \xff byte")  # not UTF-8: carried as the byte it is
        env = {
            **os.environ,
            "LANG": "C.UTF-8",
            "CCSPEC_RUN_DIR": str(run_dir),
            "GREETING": "grüße 'ok' ✓",
            "ODD": odd,
        }
        pid = launcher.launch(
            'printf \'%s|\' \'naïve ✓\' "$GREETING" "$PWD" "$ODD"',
            str(log),
            str(folder),
            _run_wrapper(),
            env,
        )
        assert pid is not None
        _wait_file(run_dir / "exit_code")
        assert (
            log.read_bytes()
            == "naïve ✓|grüße 'ok' ✓|".encode() + os.fsencode(folder) + b"|raw \xff byte|"
        )
        assert read_exit_code(run_dir) == 0
        assert not launcher.broken
    finally:
        launcher.close()


def test_a_launcher_started_again_after_close_hands_out_its_own_spares(tmp_path: Path) -> None:
    """close() ends the launcher; the next launch starts a new one, whose pids are the ones
    handed out (not the old launcher's spares, which ended with it)."""
    launcher = BashLauncher("/bin/bash", _run_wrapper())
    try:
        for name in ("one", "two", "three"):
            run_dir = tmp_path / name
            run_dir.mkdir()
            pid = launcher.launch(
                f"echo {name}",
                str(tmp_path / f"{name}.log"),
                str(tmp_path),
                _run_wrapper(),
                {**os.environ, "CCSPEC_RUN_DIR": str(run_dir)},
            )
            assert pid is not None
            _wait_file(run_dir / "exit_code")
            # the pid handed out is the job's
            assert (run_dir / "pid").read_text().strip() == str(pid)
            assert (tmp_path / f"{name}.log").read_text() == f"{name}\n"
            if name == "one":
                time.sleep(0.5)  # the next spares' pids arrive: the next read takes more than one
            elif name == "two":
                launcher.close()  # with a spare's pid read but not handed out
        assert not launcher.broken
    finally:
        launcher.close()


def test_a_wrapper_without_its_set_up_function_is_refused(tmp_path: Path) -> None:
    """The launcher defines the wrapper's set-up function once; a wrapper it cannot find
    that function in ends the launcher at once, and every launch goes back to spawning."""
    wrapper = "echo a wrapper of another shape"
    launcher = BashLauncher("/bin/bash", wrapper)
    try:
        (tmp_path / "r").mkdir()
        assert (
            launcher.launch(
                "touch ran",
                str(tmp_path / "log"),
                str(tmp_path),
                wrapper,
                {**os.environ, "CCSPEC_RUN_DIR": str(tmp_path / "r")},
            )
            is None
        )
        assert launcher.broken
    finally:
        launcher.close()
    assert not (tmp_path / "ran").exists()


def test_job_folders_asked_for_ahead_are_made_while_the_runner_waits_up_to_a_limit(
    tmp_path: Path,
) -> None:
    """The runner asks for the run folders of jobs that are ready, at most PREPARE_AHEAD
    waiting at a time, and makes a few of their job folders each time before it waits. The
    run folder itself is made by the launch (its claim); a launch makes the job folder too
    when it was not made ahead."""
    target = LocalTarget()
    try:
        folders = [tmp_path / "logs" / "wf" / f"j{i}" / "1" for i in range(PREPARE_AHEAD + 5)]
        for folder in folders:
            target.prepare(folder)
        target.make_prepared(3)
        # in the order asked, three
        assert [f.parent.exists() for f in folders[:4]] == [True, True, True, False]
        target.make_prepared(PREPARE_AHEAD)
        assert all(f.parent.exists() for f in folders[:PREPARE_AHEAD])
        assert not any(f.exists() for f in folders)  # run folders wait for their launch
        # beyond the limit: made by their launch
        assert not any(f.parent.exists() for f in folders[PREPARE_AHEAD:])
        for name, folder in (("ahead", folders[0]), ("own", folders[-1])):
            handle, code = _run(
                target, _launch(tmp_path, name, f"echo {name}", dict(os.environ), run_dir=folder)
            )
            assert code == 0 and read_exit_code(folder) == 0
            assert (folder / "pid").read_text().strip() == handle
            assert (tmp_path / f"{name}.log").read_text() == f"{name}\n"
        assert target.made_ahead == 1
        target.prepare(folders[-2])  # a place was freed by the launch of folders[0]
        target.make_prepared()
        assert folders[-2].parent.exists()
    finally:
        target.close()


def test_the_run_folder_is_the_launch_claim(tmp_path: Path) -> None:
    """A launch makes its run folder, atomically: a second claim of the same folder (the
    same launch sent again, or a later run's fence) is refused; a released claim is free."""
    target = LocalTarget()
    try:
        run_dir = tmp_path / "logs" / "wf" / "j" / "1"
        target.prepare(run_dir)
        target.make_prepared()
        assert run_dir.parent.is_dir() and not run_dir.exists()
        assert target.claim(run_dir) and run_dir.is_dir()
        assert not target.claim(run_dir)
        assert not take_claim(run_dir)
        target.release(run_dir)
        assert not run_dir.exists()
        assert take_claim(run_dir)  # a fence took it: the launch gives up
        assert not target.claim(run_dir)
        deep = tmp_path / "logs" / "other" / "k" / "1"  # no folder above it made yet
        assert target.claim(deep) and deep.is_dir()
    finally:
        target.close()


def test_an_apply_launches_jobs_in_the_run_folders_made_ahead(tmp_path: Path) -> None:
    """The engine asks for the folders of jobs that are ready (waiting for a slot) under the
    same absolute paths its launches use: each launch finds its folder made."""
    import ccspec
    from ccspec.engine import Engine
    from ccspec.runner import apply_workflow, plan_workflow
    from ccspec.state.store import StateStore

    jobs = "".join(f"  j{i}: {{run: 'sleep 0.1; echo {i} > out{i}'}}\n" for i in range(6))
    (tmp_path / "flow.yaml").write_text(
        f"version: 1\njobs:\n{jobs}  last: {{run: 'cat out* > all', needs: [j0, j1, j2, j3, j4, j5]}}\n"
    )
    store = StateStore(tmp_path / ".ccspec")
    engines: list[Engine] = []
    try:
        planned = plan_workflow(ccspec.load(tmp_path / "flow.yaml"), store)
        outcome = apply_workflow(
            planned,
            store,
            folder=tmp_path / ".ccspec",
            jobs=2,
            reporter=lambda e, v: None,
            svg=False,
            signals=False,
            started=engines.append,
        )
    finally:
        store.close()
    assert outcome.ok
    assert (tmp_path / "all").read_text().split() == [str(i) for i in range(6)]
    local = engines[0].local
    assert local.made_ahead >= 4  # j2..j5 waited for a slot while theirs were made
    assert local.prepared_unused == 0  # every folder asked for was used by its launch
    for name in [*(f"j{i}" for i in range(6)), "last"]:
        assert read_exit_code(tmp_path / ".ccspec" / "logs" / "flow" / name / "1") == 0


BURST = r"""
import os, sys, time
from pathlib import Path
from ccspec.engine import _run_wrapper
from ccspec.targets.launcher import BashLauncher

tmp = Path(sys.argv[1])
while (fd := os.open(os.devnull, os.O_RDONLY)) < 9:  # the next pipes get fds 9.. (those they go to)
    pass
os.close(fd)
launcher = BashLauncher("/bin/bash", _run_wrapper())
handed = []
for i in range(12):
    (tmp / f"r{i}").mkdir()
    handed.append(launcher.launch(f"echo job{i}", str(tmp / f"{i}.log"), str(tmp), _run_wrapper(),
                                  {**os.environ, "CCSPEC_RUN_DIR": str(tmp / f"r{i}")}))
end = time.monotonic() + 20
while not all((tmp / f"r{i}" / "exit_code").exists() for i in range(12)) and time.monotonic() < end:
    time.sleep(0.02)
seen = [(tmp / f"r{i}" / "pid").read_text().strip() if (tmp / f"r{i}" / "pid").exists() else None for i in range(12)]
logs = [(tmp / f"{i}.log").read_text() if (tmp / f"{i}.log").exists() else None for i in range(12)]
launcher.close()
print(handed, seen, logs, launcher.broken)
sys.exit(0 if seen == [str(p) for p in handed] and logs == [f"job{i}\n" for i in range(12)] and not launcher.broken else 1)
"""


def test_a_burst_of_launches_gets_each_job_the_pid_handed_out_for_it(tmp_path: Path) -> None:
    """Records sent back to back, faster than spares are forked: spare i takes record i (its
    turn comes on a pipe of its own), so every pid handed out is that job's. In a fresh
    process whose pipes get the fd numbers they go to in the launcher (0-23), as a busy
    runner's may: handing them over must not overwrite one with another."""
    done = subprocess.run(
        [sys.executable, "-c", BURST, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_after_a_status_question_each_launch_still_gets_its_own_pid(tmp_path: Path) -> None:
    """The launcher's answers to a status question come on the same pipe as the spares'
    pids: the jobs launched after it must still be handed the pid of their own process
    (the one its wrapper recorded), or a cancel would signal another job's group."""
    target = LocalTarget()
    try:
        handle, code = _run(target, _launch(tmp_path, "killed", "kill -KILL $BASHPID", {}))
        assert code == -9
        for name in ("b", "c", "d", "e", "f"):
            launch = _launch(tmp_path, name, "true", dict(os.environ))
            handle, code = _run(target, launch)
            assert code == 0
            assert (launch.run_dir / "pid").read_text().strip() == handle
    finally:
        target.close()


def test_cancel_signals_the_group_the_job_recorded_not_another(tmp_path: Path) -> None:
    """A handle that names another process group (a pid learnt in the wrong order) is never
    the one signalled: the job's wrapper recorded its own pid in the run folder."""
    job, bystander = (subprocess.Popen(["sleep", "30"], start_new_session=True) for _ in range(2))
    try:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        (run_dir / "pid").write_text(f"{job.pid}\n")
        LocalTarget().cancel(str(bystander.pid), run_dir)
        assert job.wait(timeout=10) == -signal.SIGTERM
        assert bystander.poll() is None
    finally:
        for proc in (job, bystander):
            proc.kill()
            proc.wait()
