"""The job output protocol: lines parsed from logs, incrementally, and the Python helpers."""

from __future__ import annotations

import io

import pytest

from ccspec import job
from ccspec.progress import LogMiner, parse_line, parse_value


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ('# ccspec progress=40 message="epoch 2 of 5"', ("progress", {"progress": "40", "message": "epoch 2 of 5"})),
        ("# ccspec output accuracy=0.973", ("output", {"accuracy": 0.973})),
        ("  #ccspec output path=/tmp/a b.csv", ("output", {"path": "/tmp/a b.csv"})),
        ('# ccspec output parts=[{"part": 1}]', ("output", {"parts": [{"part": 1}]})),
        ("# cloudmesh status=running progress=40 pid=123", ("progress", {"status": "running", "progress": "40", "pid": "123"})),
        ("ordinary output", None),
        ("# ccspec output novalue", None),
        ("# ccspec something else", None),
    ],
)
def test_parse_line(line: str, parsed: object) -> None:
    assert parse_line(line) == parsed


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("-2.5e3", -2500.0), ("true", True), ("null", None), ('"q"', "q"), ("[1,", "[1,"), ("abc", "abc")])
def test_parse_value(text: str, value: object) -> None:
    assert parse_value(text) == value


def test_miner_reads_incrementally_and_keeps_partial_lines() -> None:
    miner = LogMiner()
    assert miner.feed(b"start\n# ccspec progress=10\n# ccspec out") is True
    assert miner.progress == 10 and miner.outputs == {}
    assert miner.feed(b"put n=3\n# cloudmesh status=done progress=250\n") is True
    assert miner.outputs == {"n": 3} and miner.progress == 100 and miner.status == "done"
    assert miner.feed(b"no newline at the end: # ccspec output last=1", final=True) is False
    assert miner.feed(b"", final=True) is False
    tail = LogMiner()
    tail.feed(b"# ccspec output last=1", final=True)
    assert tail.outputs == {"last": 1}
    assert miner.offset == len(b"start\n# ccspec progress=10\n# ccspec output n=3\n# cloudmesh status=done progress=250\n") + len(b"no newline at the end: # ccspec output last=1")


def test_python_helpers_print_the_protocol() -> None:
    out = io.StringIO()
    job.progress(40, 'epoch "2"', file=out)
    job.output("scores", [0.5, 0.75], file=out)
    miner = LogMiner()
    miner.feed(out.getvalue().encode(), final=True)
    assert miner.progress == 40 and miner.message == 'epoch "2"' and miner.outputs == {"scores": [0.5, 0.75]}
    with pytest.raises(ValueError):
        job.output("two words", 1)
