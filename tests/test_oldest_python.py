"""ccspec on the oldest Python it supports (3.10, `requires-python`), where the standard
library names less than the 3.11 these tests run on. A named fake of the older module stands
in for it inside a real `ccspec apply` subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# every SQLITE_ name Python 3.10's sqlite3 has: the authorizer's codes; the result codes
# (SQLITE_FULL, SQLITE_IOERR, ...) came in 3.11
PY310_SQLITE_NAMES = [
    "ALTER_TABLE",
    "ANALYZE",
    "ATTACH",
    "CREATE_INDEX",
    "CREATE_TABLE",
    "CREATE_TEMP_INDEX",
    "CREATE_TEMP_TABLE",
    "CREATE_TEMP_TRIGGER",
    "CREATE_TEMP_VIEW",
    "CREATE_TRIGGER",
    "CREATE_VIEW",
    "CREATE_VTABLE",
    "DELETE",
    "DENY",
    "DETACH",
    "DONE",
    "DROP_INDEX",
    "DROP_TABLE",
    "DROP_TEMP_INDEX",
    "DROP_TEMP_TABLE",
    "DROP_TEMP_TRIGGER",
    "DROP_TEMP_VIEW",
    "DROP_TRIGGER",
    "DROP_VIEW",
    "DROP_VTABLE",
    "FUNCTION",
    "IGNORE",
    "INSERT",
    "OK",
    "PRAGMA",
    "READ",
    "RECURSIVE",
    "REINDEX",
    "SAVEPOINT",
    "SELECT",
    "TRANSACTION",
    "UPDATE",
]

FAKE_PY310_SQLITE3 = f"""
    import sqlite3, sys
    keep = {{"SQLITE_" + name for name in {PY310_SQLITE_NAMES!r}}}
    for name in [n for n in vars(sqlite3) if n.startswith("SQLITE_") and n not in keep]:
        delattr(sqlite3, name)
"""


def test_apply_runs_with_the_sqlite3_of_python_310(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text("version: 1\njobs: {a: {run: 'echo done > a.txt'}}\n")
    script = textwrap.dedent(FAKE_PY310_SQLITE3) + textwrap.dedent("""
        assert not hasattr(sqlite3, "SQLITE_FULL")
        import ccspec.cli
        sys.argv = ["ccspec", "apply", "flow.yaml", "--state", "st"]
        ccspec.cli.run()
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.txt").read_text() == "done\n"
