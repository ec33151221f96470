"""The state store's SQLite settings (ccspec.state.store): WAL, checkpoints every 4,000
pages, and a WAL file that stays bounded over many launches. A real SQLite file."""

from __future__ import annotations

from pathlib import Path

from ccspec.state.store import StateStore
from ccspec.states import JobState


def test_a_store_checkpoints_its_wal_every_4000_pages(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    try:
        pragma = {name: store.db.execute(f"PRAGMA {name}").fetchone()[0]
                  for name in ("journal_mode", "synchronous", "wal_autocheckpoint")}
        assert pragma == {"journal_mode": "wal", "synchronous": 1, "wal_autocheckpoint": 4000}
        page = store.db.execute("PRAGMA page_size").fetchone()[0]
        for i in range(1500):  # launches as the engine records them: intent, handle, end
            job = f"j{i}"
            attempt = store.begin_attempt("flow", job, job, host="local", fingerprint="sha256:" + "0" * 64,
                                          parts={"definition": "sha256:" + "1" * 64}, run_dir=tmp_path / job / "1",
                                          log_path=tmp_path / job / "1.log", number=1)
            store.set_handle(attempt.id, str(1000 + i), workflow="flow", job=job, soon=True)
            store.finish_attempt(attempt.id, JobState.SUCCEEDED, exit_code=0, reason=None, outputs={}, progress=100.0,
                                 message=None, soon=True, workflow="flow", job=job)
        store.flush()
        wal = (tmp_path / "state.db-wal").stat().st_size
        assert wal <= (4000 + 100) * (page + 24)  # checkpointed and restarted, not grown with every launch
        assert store.db.execute("SELECT COUNT(*) FROM attempts WHERE state='succeeded'").fetchone()[0] == 1500
    finally:
        store.close()
