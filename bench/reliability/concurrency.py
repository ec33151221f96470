"""Concurrency trials.

1. `wait_trial`: a `ccspec watch` over specs/ runs the whole time; each round edits the spec
   (every job changes) and starts two `ccspec apply --wait` on it at once. Whoever holds the
   lease runs the changed jobs; the others must plan again once they get it and find nothing
   left. Every round's side effects must happen exactly once.
2. `race_trial`: each round removes the state folder, then starts `status`, `plan`, `apply`
   and `validate` at once on it: none may crash with an internal error (exit 3, "this is a
   bug"), and apply still runs each job once.

Called by run.py (20 rounds each) and tests/test_reliability.py (reduced).
"""

from __future__ import annotations

import shutil
import signal
import time

from bench.reliability.lib import (
    Finished,
    Running,
    TrialResult,
    Workspace,
    finish,
    internal_error,
    start,
)

WAIT_JOBS = ("a", "b", "c")  # b needs a; c alone
RACE_COMMANDS = ("status", "plan", "apply", "validate")


def wait_spec(ws: Workspace, round_no: int) -> dict[str, object]:
    """Round `round_no` of the edited spec: the round is a var that every job's command uses."""

    def job(name: str) -> str:
        return f"{ws.ledger.append_command(f'r{{{{ vars.round }}}}/{name}')}; sleep 0.3"

    return {
        "version": 1,
        "vars": {"round": round_no},
        "jobs": {
            "a": {"run": job("a")},
            "b": {"run": job("b"), "needs": ["a"]},
            "c": {"run": job("c")},
        },
    }


def record(
    done: Finished, label: str, result: TrialResult, expected: tuple[int, ...] = (0,)
) -> None:
    """Count one finished command; an internal error or an unexpected exit code is an error."""
    result.runs += 1
    result.count_exit(done.code)
    if bug := internal_error(done):
        result.error(f"{label}: {bug}")
        result.facts["internal_errors"] = int(result.facts.get("internal_errors", 0)) + 1
    elif done.code not in expected:
        tail = (done.err.strip() or done.out.strip()).splitlines()[-1:] or [""]
        result.error(f"{label} exited {done.code}: {tail[0]}")


def wait_round(ws: Workspace, round_no: int, result: TrialResult) -> None:
    """Edit the spec, then two `apply --wait` at once (the watch sees the edit too)."""
    ws.write_spec("w", wait_spec(ws, round_no))
    procs = [start(ws, "apply", "--wait", "specs/w.yaml") for _ in range(2)]
    for proc in procs:
        record(finish(proc, timeout=180), "apply --wait", result)
    result.inputs += len(WAIT_JOBS)


def stop_watch(proc: Running, result: TrialResult) -> None:
    """SIGTERM the watch; it must stop cleanly (exit 0) and have reported no internal error."""
    proc.proc.send_signal(signal.SIGTERM)
    done = finish(proc, timeout=60)
    record(done, "watch", result)
    for line in done.text.splitlines():
        if "error" in line.lower():
            result.note(f"watch said: {line.strip()}")


def wait_trial(rounds: int = 20) -> TrialResult:
    """`rounds` edits, each applied by two `apply --wait` and a `watch` at once."""
    result = TrialResult(
        name="concurrency: 2x apply --wait + watch, spec edited each round", kind="concurrency"
    )
    started = time.monotonic()
    ws = Workspace("wait")
    try:
        ws.write_spec("w", wait_spec(ws, 0))
        watch = start(ws, "watch", "specs", "--interval", "5s")
        try:
            for r in range(1, rounds + 1):
                wait_round(ws, r, result)
                result.faults += 1
            record(
                finish(start(ws, "apply", "--wait", "specs/w.yaml"), timeout=180),
                "final apply --wait",
                result,
            )
        finally:
            stop_watch(watch, result)
        keys = [f"r{r}/{job}" for r in range(1, rounds + 1) for job in WAIT_JOBS]
        lost, duplicated = ws.ledger.lost_and_duplicated(keys)
        result.lost = len(lost)
        result.duplicated = sum(n - 1 for n in duplicated.values())
        result.facts["rounds_with_duplicates"] = len({k.split("/")[0] for k in duplicated})
        if lost:
            result.error(f"side effects that never happened: {', '.join(lost[:8])}")
        if duplicated:
            result.error(
                "side effects more than once: "
                + ", ".join(f"{k} x{n}" for k, n in list(duplicated.items())[:8])
            )
    finally:
        ws.close()
    result.seconds = time.monotonic() - started
    return result


def race_spec(ws: Workspace, round_no: int) -> dict[str, object]:
    jobs = {f"t{i}": {"run": ws.ledger.append_command(f"r{round_no}/t{i}")} for i in range(3)}
    return {"version": 1, "jobs": jobs}


def race_round(ws: Workspace, round_no: int, result: TrialResult) -> None:
    """A fresh state folder, then status, plan, apply and validate started together."""
    shutil.rmtree(ws.state, ignore_errors=True)
    ws.write_spec("r", race_spec(ws, round_no))
    procs = {name: start(ws, name, "specs/r.yaml") for name in RACE_COMMANDS}
    for name, proc in procs.items():
        record(finish(proc, timeout=120), name, result)
    result.inputs += len(RACE_COMMANDS)


def race_trial(rounds: int = 20) -> TrialResult:
    """`rounds` races of four commands on a fresh state folder: 0 internal errors."""
    result = TrialResult(
        name="concurrency: status+plan+apply+validate on a fresh state folder", kind="concurrency"
    )
    result.facts["internal_errors"] = 0
    started = time.monotonic()
    ws = Workspace("race")
    try:
        for r in range(rounds):
            race_round(ws, r, result)
            result.faults += 1
        keys = [f"r{r}/t{i}" for r in range(rounds) for i in range(3)]
        lost, duplicated = ws.ledger.lost_and_duplicated(keys)
        result.lost = len(lost)
        result.duplicated = sum(n - 1 for n in duplicated.values())
        if lost:
            result.error(f"jobs apply never ran: {', '.join(lost[:8])}")
    finally:
        ws.close()
    result.seconds = time.monotonic() - started
    return result
