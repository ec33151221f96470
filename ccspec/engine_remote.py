"""The engine's remote hosts (ssh, Slurm, WSL): a worker thread per host, started on first use
(ccspec.targets.worker), and the launches and re-attaches the engine hands them. Imported only
by runs that use a remote host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ccspec.errors import TargetError
from ccspec.fingerprint import Facts
from ccspec.spec.models import Host
from ccspec.spec.resolved import ResolvedJob, ResolvedWorkflow
from ccspec.state.store import Attempt
from ccspec.targets.claims import launch_claim
from ccspec.targets.hosts import backend_for, poll_intervals
from ccspec.targets.remote import RemoteLaunch, Tracked, job_files, launched_at
from ccspec.targets.worker import HostWorker, Post

__all__ = ["RemoteHosts", "fetched"]


def fetched(job: ResolvedJob | None, log_path: Path) -> dict[str, Path]:
    """Files a remote attempt's run folder holds that ccspec keeps next to the local log: a
    notebook's executed copy."""
    if job is not None and job.kind == "notebook":
        return {"executed.ipynb": log_path.resolve().with_suffix(".ipynb")}
    return {}


class RemoteHosts:
    def __init__(self, hosts: Mapping[str, Host], post: Post) -> None:
        self.hosts = hosts
        self.post = post
        self.workers: dict[str, HostWorker] = {}

    def worker(self, name: str) -> HostWorker:
        worker = self.workers.get(name)
        if worker is None:
            host = self.hosts[name]
            shortest, longest = poll_intervals(host)
            worker = HostWorker(
                backend_for(host), self.post, min_interval=shortest, max_interval=longest
            )
            self.workers[name] = worker
        return worker

    def queues(self, name: str) -> bool:
        """Jobs on this host wait in a scheduler's queue before they run (Slurm)."""
        return self.worker(name).backend.queues

    def submit(
        self,
        workflow: ResolvedWorkflow,
        job: ResolvedJob,
        attempt: Attempt,
        facts: Facts,
        planned_id: str,
    ) -> None:
        """Hand a recorded attempt to its host's worker; the answer comes as an event."""
        assert attempt.run_dir is not None and attempt.log_path is not None
        host = self.hosts[job.host]
        log_path = Path(attempt.log_path)
        env = {k: str(v) for k, v in {**host.env, **job.env}.items()}
        env.update(
            {
                "CCSPEC_WORKFLOW": workflow.name,
                "CCSPEC_JOB": job.id,
                "CCSPEC_ATTEMPT": str(attempt.number),
            }
        )
        files = job_files(job, workflow.base_dir, facts.inputs.get(planned_id, ()))
        launch = RemoteLaunch(
            attempt.id,
            workflow.name,
            job,
            attempt.number,
            workflow.base_dir,
            Path(attempt.run_dir).as_posix(),
            log_path.resolve(),
            env,
            files,
            fetched(job, log_path),
            claim=launch_claim(attempt.id, attempt.created or 0.0),
        )
        self.worker(job.host).submit(launch)

    def watch(self, attempt: Attempt, job: ResolvedJob | None) -> None:
        """Poll an attempt an earlier runner launched like one this runner did; its run folder
        tells the handle when the submission's answer was lost with that runner."""
        assert attempt.run_dir is not None and attempt.log_path is not None
        log_path = Path(attempt.log_path)
        tracked = Tracked(
            attempt.id,
            attempt.handle,
            attempt.run_dir,
            log_path.resolve(),
            launched_at(attempt.created),
            fetch=fetched(job, log_path),
        )
        self.worker(attempt.host).watch(tracked)

    def cancel(self, host: str, attempt_id: int, force: bool) -> None:
        self.worker(host).cancel(attempt_id, force)

    def never_reached(self, active: Sequence[Attempt]) -> set[int]:
        """Remote launches recorded with no answer (the runner died before the host's): one
        command per host takes their claims (ccspec.targets.claims); the ids of those that
        never reached their host. A host that cannot be asked now: its jobs are followed."""
        unanswered: dict[str, list[Tracked]] = {}
        for a in active:
            host = self.hosts.get(a.host)
            if host is None or host.type == "local" or a.handle is not None:
                continue
            if a.run_dir and a.created:
                claim = launch_claim(a.id, a.created)
                tracked = Tracked(
                    a.id, None, a.run_dir, Path(a.log_path or "."), a.created, claim=claim
                )
                unanswered.setdefault(a.host, []).append(tracked)
        never: set[int] = set()
        for name, tracked_list in unanswered.items():
            try:  # the host's worker thread has nothing to do yet: its backend is free
                found = self.worker(name).backend.fence(tracked_list)
            except (TargetError, OSError):
                continue
            never.update(i for i, answer in found.items() if answer == "never")
        return never

    def flush(self) -> None:
        """The round's launches are all handed: each host sends its batch now."""
        for worker in self.workers.values():
            worker.flush()

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
