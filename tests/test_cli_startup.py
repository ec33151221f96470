"""What the ccspec command skips at start-up (ccspec.cli.skip_pydantic_plugin_discovery): in
the command, pydantic's plugin discovery (importlib.metadata and a scan of every installed
distribution) is not done; in a program that imports ccspec, and when the user sets
pydantic's own switch, pydantic is left as it is. Real subprocesses throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SPEC = "version: 1\njobs:\n  one: {run: 'true'}\n"

# what each case reports: whether importlib.metadata was imported, which loader pydantic has
REPORT = """
import json, sys
loader = sys.modules.get("pydantic.plugin._loader")
print(json.dumps({"metadata": "importlib.metadata" in sys.modules,
                  "real_loader": loader is not None and "_plugins" in vars(loader)}))  # no __getattr__
"""


def _report(tmp: Path, body: str, env: dict[str, str] | None = None) -> dict[str, bool]:
    (tmp / "flow.yaml").write_text(SPEC)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body) + REPORT],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_command_validates_without_plugin_discovery(tmp_path: Path) -> None:
    seen = _report(
        tmp_path,
        """
        import ccspec.cli
        ccspec.cli.skip_pydantic_plugin_discovery()
        from ccspec.spec.validate import validate_paths
        reports = validate_paths(["flow.yaml"])
        assert reports[0].valid and reports[0].workflow.jobs["one"].run == "true"
    """,
    )
    assert seen == {"metadata": False, "real_loader": False}


def test_a_program_importing_ccspec_keeps_pydantic_plugins(tmp_path: Path) -> None:
    seen = _report(
        tmp_path,
        """
        import ccspec
        assert ccspec.load("flow.yaml").jobs["one"].run == "true"
    """,
    )
    assert seen == {"metadata": True, "real_loader": True}


def test_pydantics_own_switch_leaves_pydantic_as_it_is(tmp_path: Path) -> None:
    seen = _report(
        tmp_path,
        """
        import ccspec.cli
        ccspec.cli.skip_pydantic_plugin_discovery()
        import ccspec
        ccspec.load("flow.yaml")
    """,
        env={"PYDANTIC_DISABLE_PLUGINS": "some-plugin"},
    )
    assert seen == {"metadata": True, "real_loader": True}


def test_any_other_name_of_the_loader_loads_the_real_one(tmp_path: Path) -> None:
    seen = _report(
        tmp_path,
        """
        import ccspec.cli
        ccspec.cli.skip_pydantic_plugin_discovery()
        from pydantic.plugin._loader import PYDANTIC_ENTRY_POINT_GROUP
        assert PYDANTIC_ENTRY_POINT_GROUP == "pydantic"
    """,
    )
    assert seen["real_loader"]


def test_the_command_line_runs_with_it(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(SPEC)
    done = subprocess.run(
        [sys.executable, "-m", "ccspec", "apply", "flow.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "one succeeded" in done.stdout


GC_REPORT = """
import atexit, gc, json, sys
import ccspec.engine, ccspec.cli
seen = {}
run = ccspec.engine.Engine.run
def watched(self):
    seen["during_run"] = gc.isenabled()
    return run(self)
ccspec.engine.Engine.run = watched
atexit.register(lambda: print(json.dumps({**seen, "at_exit": gc.isenabled()})))
sys.argv = ["ccspec", *sys.argv[1:]]
ccspec.cli.run()
"""


def test_the_collector_is_off_for_start_up_and_on_while_jobs_run(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(SPEC)
    for argv, expected in (
        (["validate", "flow.yaml"], {"at_exit": False}),
        (["apply", "flow.yaml"], {"during_run": True, "at_exit": False}),
    ):
        done = subprocess.run(
            [sys.executable, "-c", GC_REPORT, *argv],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout.splitlines()[-1]) == expected, argv


def test_the_python_api_leaves_the_collector_as_it_was(tmp_path: Path) -> None:
    seen = _report(
        tmp_path,
        """
        import gc, ccspec
        assert gc.isenabled()
        assert ccspec.apply("flow.yaml").ok
        assert gc.isenabled()
    """,
    )
    assert seen["metadata"]  # (the API path: plugin discovery as usual)
