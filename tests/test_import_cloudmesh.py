"""`ccspec import cloudmesh-cc`: cloudmesh-cc's own example workflows (tests/corpus/cloudmesh-cc,
copied from its repository) convert into specs that validate, against ccspec and the JSON
Schema; the example with its scripts runs in chain order with its progress lines read; bad
input is a clear error (exit 2), and `ccspec validate` on a cloudmesh-cc file points here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from ccspec.spec.validate import validate_paths
from tests.conftest import REPO

EXAMPLES = REPO / "tests" / "corpus" / "cloudmesh-cc"
WORKFLOWS = sorted(p.relative_to(EXAMPLES) for p in EXAMPLES.glob("*/*.yaml"))
SCHEMA = json.loads((REPO / "schemas" / "workflow.schema.json").read_text())


def ccspec(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def imported(tmp_path: Path, workflow: Path) -> tuple[Path, dict[str, object]]:
    """The example's folder copied to tmp_path, converted beside it; (spec path, its data)."""
    folder = tmp_path / workflow.parent
    shutil.copytree(EXAMPLES / workflow.parent, folder)
    spec = folder / "spec.yaml"
    result = ccspec(folder, "import", "cloudmesh-cc", workflow.name, "-o", spec.name)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return spec, yaml.safe_load(spec.read_text())


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=str)
def test_every_example_converts_and_validates(tmp_path: Path, workflow: Path) -> None:
    spec, data = imported(tmp_path, workflow)
    jobs: dict[str, dict[str, str]] = data["jobs"]  # type: ignore[assignment]
    assert spec.read_text().count("# from node '") == len(jobs)  # where each job came from
    for job in jobs.values():
        # scripts that cloudmesh-cc's tests write at run time: the spec names them
        if "script" in job and not (spec.parent / job["script"]).exists():
            (spec.parent / job["script"]).write_text("echo stand-in\n")
    (report,) = validate_paths([spec])
    assert report.valid, report.diagnostics
    jsonschema.Draft202012Validator(SCHEMA).validate(data)


def test_chains_hosts_labels_and_comments(tmp_path: Path) -> None:
    spec, data = imported(tmp_path, Path("workflows/workflow-service.yaml"))
    jobs: dict[str, dict[str, object]] = data["jobs"]  # type: ignore[assignment]
    # the two chains start,...,end; a node's `parent:` list is a dependency too
    assert jobs["job-local-0"]["needs"] == ["start"]
    assert jobs["end"]["needs"] == ["job-local-2", "job-rivanna-hpc-virginia-edu-5"]
    assert jobs["job-rivanna-hpc-virginia-edu-3"]["needs"] == ["start"]
    # kind ssh with user and host: one hosts entry, used by the three jobs
    assert data["hosts"] == {
        "rivanna": {"type": "ssh", "host": "rivanna.hpc.virginia.edu", "user": "thf2bn"}
    }
    assert {j.get("host") for j in jobs.values()} == {None, "rivanna"}
    # a plain label is the description; a label format is dropped, and said so
    assert jobs["start"]["description"] == "start" and "description" not in jobs["job-local-0"]
    text = spec.read_text()
    assert "# from node 'job-rivanna.hpc.virginia.edu-3', workflow-service.yaml line 44" in text
    assert "renamed from 'job-rivanna.hpc.virginia.edu-3'" in text
    assert "dropped: created, instance, modified, progress, status" in text
    assert "Dropped (cloudmesh-cc only): colors." in text


def test_exec_becomes_run_and_kind_local_stays_local(tmp_path: Path) -> None:
    _, mnist = imported(tmp_path, Path("mnist/mnist.yaml"))
    assert mnist["jobs"] == {  # dependencies: {} -- no needs
        "start": {"description": "start", "run": "echo start"},
        "mlp_mnist": {"description": "mlp_mnist", "run": "echo mnist"},
        "end": {"description": "stop", "run": "echo end"},
    }
    spec, slurm = imported(tmp_path, Path("workflow-slurm/slurm-workflow.yaml"))
    assert "hosts" not in slurm and slurm["jobs"] == {
        "c": {"description": "job-1-label", "script": "slurm.sh"}
    }
    assert "kind local runs on this machine; host rivanna is not used" in spec.read_text()


def test_script_kinds_from_files_beside_and_hosts_of_other_kinds(tmp_path: Path) -> None:
    (tmp_path / "prep.py").write_text("print('prep')\n")
    (tmp_path / "report.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4}))
    (tmp_path / "flow.yaml").write_text(
        yaml.safe_dump(
            {
                "workflow": {
                    "nodes": {
                        "prep": {"kind": "slurm", "host": "login.hpc.edu", "user": "ann"},
                        "report": {"kind": "slurm", "host": "localhost"},
                        "train": {"kind": "wsl", "exec": "make train"},
                        "copy": {"kind": "ssh", "host": "localhost", "exec": "cp a b"},
                    },
                    "dependencies": ["prep,report", "prep,train,copy"],
                }
            }
        )
    )
    (tmp_path / ".git").mkdir()  # a repository with the schema: the spec points editors at it
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "workflow.schema.json").write_text(json.dumps(SCHEMA))
    result = ccspec(tmp_path, "import", "cloudmesh-cc", "flow.yaml", "-o", "out/spec.yaml")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out" / "spec.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../schemas/workflow.schema.json\n")
    data = yaml.safe_load(text)
    assert data["hosts"] == {
        "login-slurm": {"type": "slurm", "ssh": "login.hpc.edu", "user": "ann"},
        "slurm": {"type": "slurm"},
        "wsl": {"type": "wsl", "distro": "Ubuntu"},
    }
    assert data["jobs"] == {
        "prep": {"script": "../prep.py", "host": "login-slurm"},
        "report": {"notebook": "../report.ipynb", "host": "slurm", "needs": ["prep"]},
        "train": {"run": "make train", "host": "wsl", "needs": ["prep"]},
        "copy": {"run": "cp a b", "needs": ["train"]},
    }
    assert "check `distro:`" in result.stderr


def test_workflow_example_runs_in_chain_order_reading_cloudmesh_progress(tmp_path: Path) -> None:
    folder = tmp_path / "workflow-example"
    shutil.copytree(EXAMPLES / "workflow-example", folder)
    for script in folder.glob("*.sh"):  # shorter waits; the order and the lines are the point
        text = script.read_text()
        script.write_text(text.replace("sleep 5", "sleep 1.5").replace("sleep 3", "sleep 0.2"))
    converted = ccspec(
        folder, "import", "cloudmesh-cc", "workflow-example.yaml", "-o", "example.yaml"
    )
    assert converted.returncode == 0, converted.stderr
    run = subprocess.Popen(
        [sys.executable, "-m", "ccspec", "apply", "example.yaml", "--state", "state"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    status_file = folder / "example.status.yaml"
    seen: set[float] = set()
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:  # bounded poll of a real run
        try:
            status = yaml.safe_load(status_file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            status = {}
        fetch = (status.get("jobs") or {}).get("fetch-data") or {}
        if fetch.get("state") == "running" and fetch.get("progress") is not None:
            seen.add(float(fetch["progress"]))
        time.sleep(0.05)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, out + err
    # fetch-data.sh's `# cloudmesh status=running progress=50` line, read while it ran
    assert 50.0 in seen, seen
    events = [line.split()[1:3] for line in out.splitlines() if line[:2].isdigit()]
    chain = ["start", "fetch-data", "compute", "analyze", "end"]
    assert events == [
        [f"example/{job}", event] for job in chain for event in ("started", "succeeded")
    ]


BAD = {
    "not_yaml.yaml": ("workflow: [nodes\n", "not valid YAML"),
    "ccspec_spec.yaml": ("version: 1\njobs: {a: {run: x}}\n", "not a cloudmesh-cc workflow"),
    "missing_node.yaml": (
        "workflow:\n  nodes: {a: {exec: x}, b: {exec: y}}\n  dependencies: ['a,b,c']\n",
        "names the node 'c', which is not under `workflow.nodes`",
    ),
    "node_not_mapping.yaml": ("workflow:\n  nodes: {a: 5}\n", "node 'a' must be a mapping"),
    "unknown_kind.yaml": (
        "workflow:\n  nodes: {a: {kind: lsf, exec: x}}\n",
        "kind 'lsf', which ccspec does not run",
    ),
    "bad_dependencies.yaml": (
        "workflow:\n  nodes: {a: {exec: x}}\n  dependencies: 5\n",
        "`workflow.dependencies` must be a list",
    ),
    "duplicate_node.yaml": (
        "workflow:\n  nodes:\n    a: {exec: x}\n    a: {exec: y}\n",
        "not valid YAML",
    ),
}


def test_bad_input_is_a_clear_error_with_exit_2(tmp_path: Path) -> None:
    for name, (text, message) in BAD.items():
        (tmp_path / name).write_text(text)
        result = ccspec(tmp_path, "import", "cloudmesh-cc", name, "-o", "out.yaml")
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and name in result.stderr, result.stderr
        assert message in result.stderr, (name, result.stderr)
        assert not (tmp_path / "out.yaml").exists()
    missing = ccspec(tmp_path, "import", "cloudmesh-cc", "nowhere.yaml")
    assert missing.returncode == 2 and "nowhere.yaml: no such file" in missing.stderr


def test_existing_output_is_kept_unless_forced(tmp_path: Path) -> None:
    source = EXAMPLES / "mnist" / "mnist.yaml"
    (tmp_path / "spec.yaml").write_text("mine\n")
    kept = ccspec(tmp_path, "import", "cloudmesh-cc", str(source), "-o", "spec.yaml")
    assert kept.returncode == 2 and "exists already" in kept.stderr
    assert (tmp_path / "spec.yaml").read_text() == "mine\n"
    forced = ccspec(tmp_path, "import", "cloudmesh-cc", str(source), "-o", "spec.yaml", "--force")
    assert forced.returncode == 0 and "echo mnist" in (tmp_path / "spec.yaml").read_text()


def test_validate_on_a_cloudmesh_file_suggests_the_import(tmp_path: Path) -> None:
    workflow = EXAMPLES / "workflows" / "workflow.yaml"
    result = ccspec(tmp_path, "validate", str(workflow))
    assert result.returncode == 1
    assert (
        f"this is a cloudmesh-cc workflow, not a ccspec spec; convert it with "
        f"`ccspec import cloudmesh-cc {workflow} -o NEW.yaml` [cloudmesh-cc-workflow]"
    ) in result.stdout
    assert len(result.stdout.splitlines()) == 1  # that, not a list of unknown keys
