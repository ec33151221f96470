"""`ccspec apply` of several specs (ccspec.cli.apply_many): the specs run at once through one
set of job slots, `-j` bounds this machine's jobs across them, they interleave, and the worst
spec decides the exit code. Real `apply` processes; each job appends when it starts and ends,
and the tests read the overlaps from that."""

from __future__ import annotations

import signal
from pathlib import Path

import yaml

from tests.test_apply import ccspec, start, wait_for
from tests.test_watch_slots import most_at_once, spans

GATED = "echo {spec} {job} $(date +%s.%N) start >> ../record; while [ ! -e ../gate ]; do sleep 0.05; done"


def job_line(spec: str, job: str, seconds: float) -> str:
    mark = "echo {spec} {job} $(date +%s.%N) {edge} >> ../record"
    start_, end = (mark.format(spec=spec, job=job, edge=e) for e in ("start", "end"))
    return f"{start_}; sleep {seconds}; {end}"


def write_spec(folder: Path, name: str, jobs: dict[str, str]) -> None:
    lines = "\n".join(f"  {job}: {{run: '{run}'}}" for job, run in jobs.items())
    (folder / f"{name}.yaml").write_text(f"version: 1\nname: {name}\njobs:\n{lines}\n")


def specs_folder(repo: Path) -> Path:
    folder = repo / "specs"
    folder.mkdir()
    return folder


def test_j_bounds_the_jobs_across_specs_and_the_specs_interleave(repo: Path) -> None:
    folder = specs_folder(repo)
    for spec in ("a", "b", "c"):
        write_spec(folder, spec, {j: job_line(spec, j, 0.5) for j in ("j1", "j2", "j3")})
    result = ccspec(repo, "apply", "-j", "2", "specs/")
    assert result.returncode == 0, result.stdout + result.stderr
    found = spans((repo / "record").read_text())
    assert len(found) == 9
    order = sorted(found.items(), key=lambda kv: kv[1])
    assert most_at_once(found) == 2, order
    by_spec: dict[str, list[tuple[float, float]]] = {}
    for (spec, _), span in order:
        by_spec.setdefault(spec, []).append(span)
    first, second = sorted(by_spec.values())[:2]
    # not one spec after the other: the second spec starts before the first one's last job ends
    assert second[0][0] < max(end for _, end in first), order
    for spec in ("a", "b", "c"):  # each spec's plan, its events and its summary line
        assert f"{spec}: 3 to run, 0 up to date" in result.stdout
        assert f"{spec}/j1 succeeded" in result.stdout
        assert f"{spec}: 3 succeeded in " in result.stdout


def test_the_worst_spec_decides_the_exit_code_and_the_others_still_run(repo: Path) -> None:
    folder = specs_folder(repo)
    write_spec(folder, "good", {"ok": "true"})
    write_spec(folder, "bad", {"fails": "exit 3", "after": "true"})
    result = ccspec(repo, "apply", "-j", "2", "specs/")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "good: 1 succeeded in " in result.stdout
    assert "bad: 1 succeeded, 1 failed in " in result.stdout
    assert yaml.safe_load((folder / "good.status.yaml").read_text())["phase"] == "succeeded"


def test_a_spec_another_apply_holds_is_said_and_the_other_specs_run(repo: Path) -> None:
    folder = specs_folder(repo)
    write_spec(folder, "claimed", {"wait": GATED.format(spec="claimed", job="wait")})
    write_spec(folder, "free", {"ok": "true"})
    first = start(repo, "apply", "specs/claimed.yaml")
    try:
        wait_for(lambda: (repo / "record").exists())
        result = ccspec(repo, "apply", "specs/")
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"workflow 'claimed' is being applied by pid {first.pid}" in result.stderr
        assert "free: 1 succeeded in " in result.stdout
    finally:
        (repo / "gate").touch()
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_ctrl_c_cancels_the_running_jobs_of_every_spec_and_exits_130(repo: Path) -> None:
    folder = specs_folder(repo)
    for spec in ("a", "b"):
        write_spec(folder, spec, {"wait": GATED.format(spec=spec, job="wait")})
    proc = start(repo, "apply", "-j", "4", "specs/")
    try:
        wait_for(
            lambda: (
                (repo / "record").exists() and len((repo / "record").read_text().splitlines()) == 2
            )
        )
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        (repo / "gate").touch()  # a job the interrupt missed ends too: nothing outlives the test
    assert proc.returncode == 130, out + err
    assert "cancelling running jobs" in err
    for spec in ("a", "b"):
        doc = yaml.safe_load((folder / f"{spec}.status.yaml").read_text())
        assert doc["jobs"]["wait"]["state"] == "cancelled", doc


def test_ctrl_c_while_a_spec_waits_for_another_apply_ends_the_wait_too(repo: Path) -> None:
    folder = specs_folder(repo)
    for spec in ("claimed", "free"):
        write_spec(folder, spec, {"wait": GATED.format(spec=spec, job="wait")})
    first = start(repo, "apply", "specs/claimed.yaml")
    proc = None
    try:
        wait_for(lambda: (repo / "record").exists())
        proc = start(repo, "apply", "--wait", "specs/")
        wait_for(lambda: len((repo / "record").read_text().splitlines()) == 2)  # free's job runs
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, out + err
        assert first.poll() is None  # the other apply goes on
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        (repo / "gate").touch()
        first.communicate(timeout=60)
    assert first.returncode == 0
    doc = yaml.safe_load((folder / "free.status.yaml").read_text())
    assert doc["jobs"]["wait"]["state"] == "cancelled", doc


def test_an_ssh_hosts_max_jobs_bounds_its_jobs_across_the_specs_that_name_it(
    repo: Path,
) -> None:
    import uuid

    from tests.services import services, ssh

    svc = services()
    remote = f"~/t/{uuid.uuid4().hex[:12]}"
    assert ssh(f"mkdir -p {remote}").returncode == 0
    folder = specs_folder(repo)
    for spec, name in (("a", "box"), ("b", "cluster-node")):  # two names, one host
        host = (
            f"hosts: {{{name}: {{type: ssh, host: 127.0.0.1, port: {svc.ssh_port}, "
            f"user: {svc.ssh_user}, key: {svc.ssh_key}, workdir: '{remote}/{spec}', max_jobs: 1}}}}"
        )
        line = job_line(spec, "{job}", 0.5).replace("../record", f"{remote}/record")
        jobs = "\n".join(
            f"  {j}: {{host: {name}, run: '{line.format(job=j)}'}}" for j in ("j1", "j2")
        )
        (folder / f"{spec}.yaml").write_text(f"version: 1\nname: {spec}\n{host}\njobs:\n{jobs}\n")
    result = ccspec(repo, "apply", "-j", "4", "specs/")
    assert result.returncode == 0, result.stdout + result.stderr
    found = spans(ssh(f"cat {remote}/record").stdout)
    assert len(found) == 4
    assert most_at_once(found) == 1, sorted(found.items(), key=lambda kv: kv[1])
