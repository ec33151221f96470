"""A run's resource usage and timeline beyond `ccspec status`: the API's `usage` of jobs and
attempts, the dashboard's columns, warning and timeline picture (a real `ccspec serve` over a
real `ccspec apply`), and `ccspec report WF -o timeline.html` (the HTML parsed: one bar per
attempt, coloured by state and host) with its exit codes."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ccspec.report.graph import COLOURS
from ccspec.server.models import JobDetail, WorkflowDetail
from tests.serving import Server, ccspec, make_repo, start_server

# `flaky` fails its first attempt and succeeds on its retry: two bars for it
SPEC = """\
version: 1
name: runs
jobs:
  hungry:
    run: python3 -c "b = bytearray(30 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    resources:
      mem: 10M
  flaky:
    run: |
      if [ -f tried ]; then echo second; else touch tried; exit 1; fi
    retries: 1
  last:
    run: echo done
    needs: [hungry]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = make_repo(tmp_path_factory.mktemp("runs"), runs=SPEC)
    applied = ccspec(repo, "apply", "specs/runs.yaml")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    server = start_server(repo)
    yield server
    server.stop()


def test_the_api_shows_each_jobs_and_attempts_usage(served: Server) -> None:
    with served.client() as http:
        detail = WorkflowDetail.model_validate(http.get("/api/workflows/runs").json())
        job = JobDetail.model_validate(http.get("/api/workflows/runs/jobs/hungry").json())
        flaky = JobDetail.model_validate(http.get("/api/workflows/runs/jobs/flaky").json())
    jobs = {j.id: j for j in detail.jobs}
    usage = jobs["hungry"].usage
    assert usage is not None and usage.max_rss is not None and usage.cpu is not None
    assert usage.max_rss >= 30 * 1024 * 1024
    assert usage.warning is not None and "over the 10M asked" in usage.warning
    assert job.attempts[-1].usage == usage
    assert [a.usage is not None for a in flaky.attempts] == [True, True]
    assert jobs["last"].usage is not None and jobs["last"].usage.warning is None


def test_the_dashboard_shows_usage_the_warning_and_the_timeline(served: Server) -> None:
    with served.client() as http:
        page = http.get("/workflows/runs").text
        job_page = http.get("/workflows/runs/jobs/hungry").text
        svg = http.get("/api/workflows/runs/timeline.svg")
    assert 'class="mem warn"' in page and "over the 10M asked" in page
    assert '<td class="cpu">' in page and 'id="timeline"' in page
    assert "over the 10M asked" in job_page
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    bars = ET.fromstring(svg.text).findall("{http://www.w3.org/2000/svg}g")
    assert sorted((b.get("data-job"), b.get("data-attempt")) for b in bars) == [
        ("flaky", "1"),
        ("flaky", "2"),
        ("hungry", "1"),
        ("last", "1"),
    ]


class Bars(HTMLParser):
    """The timeline's bars in an HTML page: attributes of each `<g class="bar">` and the
    fill colours of the rectangles inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str]] = []
        self.fills: list[list[str]] = []
        self.inside = False
        self.rows = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "g" and found.get("class", "").startswith("bar"):
            self.bars.append(found)
            self.fills.append([])
            self.inside = True
        elif tag == "rect" and self.inside:
            self.fills[-1].append(found.get("fill", ""))
        elif tag == "tr" and found.get("class", "").startswith("attempt"):
            self.rows += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "g":
            self.inside = False


def test_report_writes_one_bar_per_attempt(served: Server) -> None:
    out = served.repo / "timeline.html"
    done = ccspec(served.repo, "report", "specs/runs.yaml", "-o", str(out))
    assert done.returncode == 0, done.stderr
    parser = Bars()
    parser.feed(out.read_text())
    states = {(b["data-job"], b["data-attempt"]): b["data-state"] for b in parser.bars}
    assert states == {
        ("flaky", "1"): "failed",
        ("flaky", "2"): "succeeded",
        ("hungry", "1"): "succeeded",
        ("last", "1"): "succeeded",
    }
    assert parser.rows == 4  # the table: one row per attempt
    for bar, fills in zip(parser.bars, parser.fills, strict=True):
        assert COLOURS[bar["data-state"]] in fills  # filled by state
    host_stripes = {fills[-1] for fills in parser.fills}
    assert len(host_stripes) == 1  # one host, one stripe colour
    assert "bar warn" in out.read_text()  # hungry used more than it asked
    assert "<script" not in out.read_text()  # self-contained, nothing runs or is fetched
    by_name = ccspec(served.repo, "report", "runs")
    assert by_name.returncode == 0 and by_name.stdout.count('<g class="bar') == 4


def test_report_exit_codes(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    never = subprocess.run(
        [sys.executable, "-m", "ccspec", "report", "nothing-here"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert never.returncode == 2
    assert "'nothing-here' is neither a spec file nor an applied workflow" in never.stderr
    (tmp_path / "bad.yaml").write_text("version: 1\nname: bad\njobs: {a: {run: x, needs: [z]}}\n")
    invalid = ccspec(tmp_path, "report", "bad.yaml")
    assert invalid.returncode == 2 and "bad.yaml" in invalid.stderr
