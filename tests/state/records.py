"""What the state-store tests record: launches as the engine records them."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ccspec.state.store import Attempt, StateStore
from ccspec.states import JobState

FP = "sha256:" + "a" * 64
# opens another connection to the test's database (the `open_store` fixture)
OpenStore = Callable[[], StateStore]

PARTS = {"definition": "d" * 64, "file": "", "inputs": "i" * 64, "upstream": "u" * 64}


def launch(
    store: StateStore,
    job: str = "a",
    *,
    workflow: str = "w",
    number: int | None = None,
    lease: str | None = None,
    fingerprint: str = FP,
    parts: Mapping[str, str] = PARTS,
) -> Attempt:
    """Record the intent to launch `job` (begin_attempt), with run folder and log as named."""
    logs = store.folder / "logs" / workflow / job
    return store.begin_attempt(
        workflow,
        job,
        job,
        host="local",
        fingerprint=fingerprint,
        parts=parts,
        run_dir=logs / "run",
        log_path=logs / "run.log",
        number=number,
        lease=lease,
    )


def finish(
    store: StateStore,
    attempt: Attempt,
    state: JobState = JobState.SUCCEEDED,
    *,
    exit_code: int | None = 0,
    reason: str | None = None,
    outputs: Mapping[str, object] | None = None,
    soon: bool = False,
) -> None:
    store.finish_attempt(
        attempt.id,
        state,
        exit_code=exit_code,
        reason=reason,
        outputs=outputs or {},
        progress=None,
        message=None,
        soon=soon,
    )
