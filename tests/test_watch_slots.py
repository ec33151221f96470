"""One set of job slots for every spec `ccspec watch` runs (ccspec.slots): `-j` bounds this
machine's jobs across specs, a remote host's `max_jobs` bounds its jobs across the specs
that write it alike, and waiting specs take turns. Real `watch` processes and the real test
sshd; each job writes when it starts and ends, and the tests read the overlaps from that."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tests.services import services, ssh
from tests.test_apply import wait_for
from tests.test_watch import Watch, put


@pytest.fixture
def specs(repo: Path) -> Path:
    folder = repo / "specs"
    folder.mkdir()
    return folder


RECORD = 'echo "{spec} {job} $(date +%s.%N) {edge}" >> {log}'


def job_line(spec: str, job: str, log: str, seconds: float) -> str:
    start = RECORD.format(spec=spec, job=job, log=log, edge="start")
    end = RECORD.format(spec=spec, job=job, log=log, edge="end")
    return f"{start}; sleep {seconds}; {end}"


def spans(text: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(spec, job) -> (start, end) of the jobs that ended."""
    seen: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for line in text.splitlines():
        spec, job, at, edge = line.split()
        seen[(spec, job)][edge] = float(at)
    return {k: (v["start"], v["end"]) for k, v in seen.items() if "end" in v}


def most_at_once(found: dict[tuple[str, str], tuple[float, float]]) -> int:
    return max(sum(1 for s, e in found.values() if s <= start < e) for start, _ in found.values())


def write_specs(folder: Path, count: int, jobs: int, host: str, log: str, seconds: float) -> None:
    for n in range(count):
        lines = "\n".join(
            f"  j{j}: {{host: there, run: '{job_line(f's{n}', f'j{j}', log, seconds)}'}}"
            for j in range(jobs)
        )
        put(folder / f"s{n}.yaml", f"version: 1\nname: s{n}\n{host}\njobs:\n{lines}\n")


def test_j_bounds_this_machines_jobs_across_specs_and_a_large_spec_starves_no_other(
    repo: Path, specs: Path
) -> None:
    log = repo / "record"
    local = "hosts: {there: {type: local}}"
    write_specs(specs, 1, 6, local, str(log), 1.0)
    (specs / "s0.yaml").rename(specs / "big.yaml")  # read first, so it asks for slots first
    text = (specs / "big.yaml").read_text().replace("s0", "big")
    (specs / "big.yaml").write_text(text)
    write_specs(specs, 3, 2, local, str(log), 1.0)
    watch = Watch(repo, "-j", "2")
    try:
        wait_for(lambda: log.exists() and len(spans(log.read_text())) == 12, timeout=60)
    finally:
        watch.stop()
    found = spans(log.read_text())
    assert most_at_once(found) == 2, sorted(found.items(), key=lambda kv: kv[1])
    big_starts = sorted(a for (spec, _), (a, _) in found.items() if spec == "big")
    small_ends = [b for (spec, _), (_, b) in found.items() if spec != "big"]
    # the small specs take turns with the large one: all done before its last job starts
    assert max(small_ends) <= big_starts[-1] + 0.05, sorted(found.items(), key=lambda kv: kv[1])


def test_an_ssh_host_with_max_jobs_1_named_in_two_specs_runs_one_job_at_a_time(
    repo: Path, specs: Path
) -> None:
    import uuid

    svc = services()
    folder = f"~/t/{uuid.uuid4().hex[:12]}"
    log = f"{folder}/record"
    assert ssh(f"mkdir -p {folder}").returncode == 0
    for n, name in enumerate(["box", "cluster-node"]):  # two names, one host
        host = (
            f"hosts: {{there: {{type: ssh, host: 127.0.0.1, port: {svc.ssh_port}, "
            f"user: {svc.ssh_user}, key: {svc.ssh_key}, workdir: '{folder}/{name}', max_jobs: 1}}}}"
        )
        write_specs(specs, 1, 2, host, log, 0.5)
        (specs / "s0.yaml").rename(specs / f"{name}.yaml")
        text = (specs / f"{name}.yaml").read_text().replace("s0", f"s{n}")
        (specs / f"{name}.yaml").write_text(text)
    watch = Watch(repo, "-j", "4")

    def recorded() -> str:
        return ssh(f"cat {log} 2>/dev/null").stdout

    try:
        wait_for(lambda: len(spans(recorded())) == 4, timeout=90)
    finally:
        watch.stop()
    found = spans(recorded())
    assert most_at_once(found) == 1, sorted(found.items(), key=lambda kv: kv[1])


def test_metrics_show_the_slots_in_use_and_the_workflows_waiting_per_host(
    repo: Path, specs: Path
) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = repo / "record"
    write_specs(specs, 2, 2, "hosts: {there: {type: local}}", str(log), 3.0)
    watch = Watch(repo, "-j", "2", "--serve", "--port", str(port))

    def metrics() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    busy = ['ccspec_slots_in_use{host="local"} 2', 'ccspec_slots_limit{host="local"} 2']
    try:
        wait_for(lambda: all(line in metrics().splitlines() for line in busy), timeout=30)
        # one spec holds both slots and the other waits, or each holds one with a job waiting
        waiting = [x for x in metrics().splitlines() if x.startswith("ccspec_slots_waiting{")]
        assert waiting in (
            ['ccspec_slots_waiting{host="local"} 1'],
            ['ccspec_slots_waiting{host="local"} 2'],
        ), waiting
        wait_for(lambda: log.exists() and len(spans(log.read_text())) == 4, timeout=60)
        wait_for(lambda: 'ccspec_slots_in_use{host="local"} 0' in metrics().splitlines())
    finally:
        watch.stop()


def test_a_spec_edited_while_it_runs_keeps_its_jobs_slots_from_other_specs(
    repo: Path, specs: Path
) -> None:
    log = repo / "record"
    local = "hosts: {there: {type: local}}"
    write_specs(specs, 2, 2, local, str(log), 3.0)
    watch = Watch(repo, "-j", "2")
    try:
        # s0 or s1 runs both its jobs; the other waits
        wait_for(lambda: log.exists() and log.read_text().count("start") == 2, timeout=30)
        first = log.read_text().split()[0]
        spec = specs / f"{first}.yaml"
        spec.write_text(spec.read_text().replace("sleep 3.0", "sleep 3.0 "))  # hand-over
        wait_for(lambda: len(spans(log.read_text())) >= 4, timeout=60)
    finally:
        watch.stop()
    found = spans(log.read_text())
    assert most_at_once(found) == 2, sorted(found.items(), key=lambda kv: kv[1])
