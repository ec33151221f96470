"""The README says one thing about what it states twice: where `/docs` gets Swagger UI
(from ccspec's own files: tests/test_server.py checks the page), and how long `watch` takes
from a save to the first job (bench/README.md's measured medians)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_never_says_a_page_loads_from_a_cdn() -> None:
    text = " ".join(ROOT.joinpath("README.md").read_text().split())
    for found in re.finditer(r"CDN", text):
        before = text[max(0, found.start() - 40) : found.start()]
        assert re.search(r"\b(nothing|not) from an? $", before), before + "CDN"


def test_the_watch_latency_is_the_measured_one_wherever_it_is_given() -> None:
    bench = ROOT.joinpath("bench", "README.md").read_text()
    section = bench[bench.index("## watch_bench.py") :]
    new = re.search(r"^\| new spec \| (\d+) ms \|", section, re.M)
    edited = re.search(r"^\| edited spec \| (\d+) ms \|", section, re.M)
    assert new and edited
    readme = " ".join(ROOT.joinpath("README.md").read_text().split())
    said = re.findall(r"(\d+) ms median for a new spec, (\d+) ms for an edited one", readme)
    assert said == [(new.group(1), edited.group(1))]
    row = re.findall(
        r"\| `watch`: from saving a spec to its first job starting \| (\d+) ms \|", readme
    )
    assert row == [new.group(1)]
