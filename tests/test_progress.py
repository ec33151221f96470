"""The job output protocol: lines parsed from logs, incrementally, and the Python helpers."""

from __future__ import annotations

import io
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccspec import job
from ccspec.progress import LogMiner, parse_line, parse_value


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (
            '# ccspec progress=40 message="epoch 2 of 5"',
            ("progress", {"progress": "40", "message": "epoch 2 of 5"}),
        ),
        ("# ccspec output accuracy=0.973", ("output", {"accuracy": 0.973})),
        ("  #ccspec output path=/tmp/a b.csv", ("output", {"path": "/tmp/a b.csv"})),
        ('# ccspec output parts=[{"part": 1}]', ("output", {"parts": [{"part": 1}]})),
        (
            "# cloudmesh status=running progress=40 pid=123",
            ("progress", {"status": "running", "progress": "40", "pid": "123"}),
        ),
        ("ordinary output", None),
        ("# ccspec output novalue", None),
        ("# ccspec something else", None),
    ],
)
def test_parse_line(line: str, parsed: object) -> None:
    assert parse_line(line) == parsed


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("-2.5e3", -2500.0),
        ("true", True),
        ("null", None),
        ('"q"', "q"),
        ("[1,", "[1,"),
        ("abc", "abc"),
    ],
)
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
    assert miner.offset == len(
        b"start\n# ccspec progress=10\n# ccspec output n=3\n# cloudmesh status=done progress=250\n"
    ) + len(b"no newline at the end: # ccspec output last=1")


def test_python_helpers_print_the_protocol() -> None:
    out = io.StringIO()
    job.progress(40, 'epoch "2"', file=out)
    job.output("scores", [0.5, 0.75], file=out)
    miner = LogMiner()
    miner.feed(out.getvalue().encode(), final=True)
    assert (
        miner.progress == 40
        and miner.message == 'epoch "2"'
        and miner.outputs == {"scores": [0.5, 0.75]}
    )
    with pytest.raises(ValueError):
        job.output("two words", 1)


_PREFIXES = [
    b"# ccspec output ",
    b"# ccspec progress=",
    b"# ccspec progress ",
    b"# cloudmesh ",
    b"#ccspec ",
    b"  # ccspec ",
    b"",
]
_PIECES = [
    b"=",
    b" ",
    b'"',
    b"'",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\\",
    b"message=",
    b"progress=",
    b"status=",
    b"nan",
    b"inf",
    b"-1e999",
    b"1e999",
    b"NaN",
    b"\r",
    b"\xff\xfe",
    b"\x00",
    b"k",
    b"1",
    b"-",
    b".",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_PREFIXES),
            st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=8)), max_size=12),
        ),
        max_size=20,
    )
)
def test_any_job_output_leaves_the_miner_consistent(lines: list[tuple[bytes, list[bytes]]]) -> None:
    """Whatever a job prints, mining never raises, progress is a finite percentage, and
    outputs are named by text and can be recorded as JSON."""
    miner = LogMiner()
    for prefix, pieces in lines:
        miner.feed(prefix + b"".join(pieces) + b"\n")
    assert miner.progress is None or (math.isfinite(miner.progress) and 0 <= miner.progress <= 100)
    assert all(isinstance(k, str) for k in miner.outputs)
    json.dumps(miner.outputs)


@pytest.mark.parametrize(
    "line",
    [b"# ccspec output deep=" + b"[" * 100_000, b"# ccspec output deep=" + b'{"a": ' * 5_000],
)
def test_an_output_nested_too_deep_for_json_is_kept_as_text(line: bytes) -> None:
    miner = LogMiner()
    miner.feed(line + b"\n")
    assert miner.outputs["deep"] == line.decode().partition("=")[2].strip()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999"])
def test_a_progress_that_is_no_number_is_ignored(value: str) -> None:
    miner = LogMiner()
    miner.feed(b"# ccspec progress=40\n")
    miner.feed(f"# ccspec progress={value}\n".encode())
    assert miner.progress == 40
