"""Schemathesis fuzzes `ccspec serve` from its own /openapi.json: every operation, valid and
invalid input, with writing enabled, and every check it has but one. The server must never
answer 5xx and must answer what its document says (status codes, content types, schemas,
headers, auth).

`positive_data_acceptance` is left out: a body can match the request schema (a job as a
mapping, a spec as a YAML mapping) and still make an invalid spec, which is a 422 by design."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.serving import ccspec, make_repo, start_server

TOKEN = "fuzz-token-0123456789"

# Named like the quickstart, whose names the document gives as examples: the fuzzer reaches
# real workflows and jobs, not only 404s.
QUICKSTART = """\
# fuzzed
version: 1
name: quickstart
vars: {rows: 5, password: hunter2-hunter2}
secrets: [password]
jobs:
  generate:
    run: echo "# ccspec output csv=data.csv"; echo "# ccspec progress=100"
  summarise:
    run: echo "# ccspec output mean=2.5"
    needs: [generate]
  report:
    run: echo "report {{ vars.rows }}"
    needs: [generate, summarise]
"""


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", quickstart=QUICKSTART)
    applied = ccspec(repo, "apply", "specs/")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    server = start_server(repo, "--allow-write", token=TOKEN)
    try:
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
            ),
        }
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "25",
                "--seed",
                "20261125",
                "--request-timeout",
                "20",
                "--workers",
                "1",  # 2 trips a CPython 3.11 bug: ast.parse in two threads (in hypothesis)
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--suppress-health-check",
                "all",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        log = server.stop()
    report = run.stdout[-6000:] + run.stderr[-2000:]
    print(run.stdout[-1500:])  # the summary, for the log of a passing run
    assert run.returncode == 0, report
    assert "Traceback" not in log and "Exception" not in log, log[-4000:]
    assert "Server error" not in run.stdout and "5xx" not in run.stdout.split("SUMMARY")[-1], report
