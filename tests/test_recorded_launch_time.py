"""A remote attempt whose record has no launch time (its `created` column is empty, as the
schema allows): `ccspec status` follows it with the start grace counted from now
(ccspec.targets.remote.launched_at) instead of failing on the missing time. Real ssh host
(the test sshd), real runner killed with SIGKILL, real state database."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

from tests.services import services, ssh
from tests.test_apply import ccspec, kill_runner
from tests.test_remote import remote_pid, start_remote_job


def test_status_follows_a_remote_attempt_recorded_without_a_launch_time(repo: Path) -> None:
    remote_dir = f"~/t/{uuid.uuid4().hex[:12]}"
    proc, run_dir = start_remote_job(repo, services(), remote_dir, "long", '"sleep 200"')
    pid = remote_pid(run_dir)
    kill_runner(proc)  # the job runs on, detached, with nobody watching it
    try:
        # no pid in the run folder (none in the launch's claim, no pid file): what a job just
        # starting looks like, so the grace decides
        ssh(f'rm -f {run_dir}/pid; for f in {run_dir}/launch.*; do : > "$f"; done')
        with sqlite3.connect(repo / ".ccspec" / "state.db") as db:
            db.execute("UPDATE attempts SET created = NULL")
        result = ccspec(repo, "status", "flow.yaml", "--json")
        assert result.returncode == 0, result.stderr
        [doc] = json.loads(result.stdout)["workflows"]
        # within its grace: not lost, not run again
        assert doc["jobs"]["long"]["state"] == "running"
    finally:
        ssh(f"kill -9 {pid}")
