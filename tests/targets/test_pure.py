"""The pure parts of the remote targets: Slurm state mapping, sbatch options, WSL paths and
the poll output parser (the integration tests in test_remote.py use the real services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccspec.spec.models import Resources, SlurmHost
from ccspec.spec.resolved import ResolvedJob
from ccspec.states import JobState
from ccspec.targets.hosts import wsl_path
from ccspec.targets.remote import LOG_CHUNK, RemoteLaunch, Tracked, parse_poll
from ccspec.targets.slurm import (
    SlurmRecord,
    _parse_sacct,
    _parse_squeue,
    attempt_of,
    busy,
    map_state,
    sbatch_options,
)


@pytest.mark.parametrize(
    ("state", "code", "expected", "reason"),
    [
        ("PENDING", None, JobState.QUEUED, "pending: Resources"),
        ("RUNNING", None, JobState.RUNNING, None),
        ("COMPLETING", None, JobState.RUNNING, None),
        ("COMPLETED", 0, JobState.SUCCEEDED, None),
        ("FAILED", 3, JobState.FAILED, "exit code 3"),
        ("TIMEOUT", 0, JobState.TIMED_OUT, "Slurm's time limit was reached (TIMEOUT)"),
        ("CANCELLED by 0", 0, JobState.CANCELLED, "cancelled in Slurm (scancel)"),
        ("NODE_FAIL", None, JobState.FAILED, "the node failed (NODE_FAIL)"),
        ("OUT_OF_MEMORY", 0, JobState.FAILED, "out of memory (OUT_OF_MEMORY)"),
        ("PREEMPTED", None, JobState.FAILED, "preempted by Slurm (PREEMPTED)"),
    ],
)
def test_slurm_states_map_to_ccspec_states_with_reasons(
    state: str, code: int | None, expected: JobState, reason: str | None
) -> None:
    status = map_state(SlurmRecord(state, code, "Resources" if state == "PENDING" else None), None)
    assert status.state is expected and status.reason == reason


def test_the_wrappers_exit_code_wins_over_accounting() -> None:
    assert map_state(SlurmRecord("COMPLETED", 0), 4).state is JobState.FAILED  # the job's own code


def test_sbatch_options_from_resources_and_host() -> None:
    job = ResolvedJob(
        "train",
        "train",
        "run",
        "hpc",
        run="true",
        timeout=90.0,
        resources=Resources(cpus=4, mem=8192, gpus=2),
    )
    launch = RemoteLaunch(1, "wf", job, 1, Path("."), ".ccspec/runs/wf/train/1", Path("x.log"), {})
    host = SlurmHost(
        type="slurm",
        partition="gpu",
        account="abc",
        qos="high",
        sbatch={"constraint": "haswell", "exclusive": True, "requeue": False},
    )
    assert sbatch_options(launch, host) == [
        "--partition=gpu",
        "--account=abc",
        "--qos=high",
        "--cpus-per-task=4",
        "--mem=8192M",
        "--time=0-00:02:00",
        "--gres=gpu:2",
        "--constraint=haswell",
        "--exclusive",
    ]


def test_wsl_paths() -> None:
    assert wsl_path(r"C:\Users\me\work") == "/mnt/c/Users/me/work"
    assert wsl_path("D:/data/") == "/mnt/d/data"
    assert wsl_path("~/ccspec") == "~/ccspec"


def test_squeue_and_sacct_parsing() -> None:
    records, ok = _parse_squeue("@@squeue\n12|PENDING|Priority\n13|RUNNING|None\n@@rc 0\n")
    assert ok and records["12"].reason == "Priority" and records["13"].state == "RUNNING"
    records, ok = _parse_squeue(
        "@@squeue\nslurm_load_jobs error: Invalid job id specified\n@@rc 1\n"
    )
    assert ok and records == {}  # every id forgotten: ask sacct
    _, ok = _parse_squeue(
        "@@squeue\nslurm_load_jobs error: Unable to contact slurm controller\n@@rc 1\n"
    )
    assert not ok  # unknown, never failed
    found = _parse_sacct(
        "12|FAILED|3:0\n12.batch|FAILED|3:0\n13|COMPLETED|0:0\n13|CANCELLED by 0|0:15\n"
    )
    assert found["12"] == SlurmRecord("FAILED", 3) and found["13"].state == "CANCELLED by 0"


def test_poll_output_is_split_by_byte_counts_and_mirrored(tmp_path: Path) -> None:
    a, b = (Tracked(i, "1", "r", tmp_path / f"{i}.log", 0.0) for i in (1, 2))
    (tmp_path / "1.log").write_bytes(b"old ")
    body = b"@@ x\n"  # a log line that looks like a header must not confuse the parser
    out = b"@@ 1 0 - - 9\nnew\n@@ x\n" + b"@@ 2 - r 77 0\n"
    assert len(b"new\n@@ x\n") == 9 and body in out
    found = parse_poll(out, [a, b])
    assert (tmp_path / "1.log").read_bytes() == b"old new\n@@ x\n"
    assert found[1].exit_code == 0 and found[1].complete
    assert found[2].exit_code is None and found[2].pid == "r" and found[2].slurm_id == "77"
    partial = parse_poll(f"@@ 2 0 - - {LOG_CHUNK}\n".encode() + b"z" * LOG_CHUNK, [b])
    assert not partial[2].complete  # more log to fetch before the exit is reported


def test_a_kept_layout_is_repainted_with_states_progress_and_durations() -> None:
    import re

    from ccspec.report.graph import COLOURS, GraphNode, Painter

    nodes = [GraphNode("a", "pending"), GraphNode("b", "pending", ("a",), host="box")]
    painter = Painter("flow")
    assert not painter.fits(nodes)
    painter.lay_out(nodes)
    later = [
        GraphNode("a", "succeeded", (), 100.0, 75.0),
        GraphNode("b", "running", ("a",), 40.0, 3.2, "box"),
    ]
    assert painter.fits(later)
    svg = painter.paint(later).decode()
    a = svg[svg.index("<title>a</title>") :]
    b = svg[svg.index("<title>b</title>") :]
    assert f'fill="{COLOURS["succeeded"]}"' in a[: a.index("</g>")]
    assert f'fill="{COLOURS["running"]}"' in b[: b.index("</g>")]
    texts = re.findall(r"<text[^>]*>(.*?)</text>", b[: b.index("</g>")])
    assert texts == ["b", "running", "40% 3.2s @box"]
    assert re.findall(r"<text[^>]*>(.*?)</text>", a[: a.index("</g>")]) == [
        "a",
        "succeeded",
        "1m15s",
    ]
    assert not painter.fits([*later, GraphNode("c", "pending", ("b",))])  # a new node: a new layout


def test_a_layout_is_kept_on_disk_by_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second run of the same graph (a new Painter, as in a new process) reads the layout
    back instead of rendering it; another shape or workflow name renders again."""
    import ccspec.report.graph as graph

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rendered: list[str] = []
    real = graph.render

    def counting(source: str, fmt: str = "svg") -> bytes:
        rendered.append(source)
        return real(source, fmt)

    monkeypatch.setattr(graph, "render", counting)
    nodes = [graph.GraphNode("a", "pending"), graph.GraphNode("b", "pending", ("a",))]
    first = graph.Painter("flow")
    first.lay_out(nodes)
    assert len(rendered) == 1 and len(list((tmp_path / "ccspec" / "layouts").glob("*.svg"))) == 1
    second = graph.Painter("flow")
    second.lay_out(nodes)
    assert len(rendered) == 1  # read back
    done = [
        graph.GraphNode("a", "succeeded", (), 100.0, 1.0),
        graph.GraphNode("b", "failed", ("a",), None, 2.0),
    ]
    assert second.paint(done) == first.paint(done)
    graph.Painter("other").lay_out(nodes)
    graph.Painter("flow").lay_out([*nodes, graph.GraphNode("c", "pending", ("b",))])
    assert len(rendered) == 3
    for kept in (tmp_path / "ccspec" / "layouts").glob("*.svg"):  # a damaged file is laid out again
        kept.write_text("<svg")
    graph.Painter("flow").lay_out(nodes)
    assert len(rendered) == 4


@pytest.mark.parametrize(
    ("message", "temporary"),
    [
        ("Batch job submission failed: Socket timed out on send/recv operation", True),
        ("Batch job submission failed: Unable to contact slurm controller (connect failure)", True),
        ("Batch job submission failed: Resource temporarily unavailable", True),
        ("Batch job submission failed: Invalid partition name specified", False),
        ("Batch job submission failed: Invalid account or account/partition combination", False),
        ("sbatch: error: invalid partition specified: nope", False),
    ],
)
def test_sbatch_errors_that_are_worth_sending_again(message: str, temporary: bool) -> None:
    assert busy(f"sbatch: error: {message}") is temporary


def test_a_remote_run_folder_names_its_workflow_job_and_attempt() -> None:
    # one folder per attempt (JOB.N), and the two levels an earlier ccspec recorded (JOB/N)
    assert attempt_of(".ccspec/runs/flow/train.3") == ("flow", "train", "3")
    assert attempt_of(".ccspec/runs/flow/v1.2.10") == ("flow", "v1.2", "10")
    assert attempt_of(".ccspec/runs/flow/train/3") == ("flow", "train", "3")
    assert attempt_of(".ccspec/runs/flow/v1.2/10") == ("flow", "v1.2", "10")
    assert attempt_of("train") is None
