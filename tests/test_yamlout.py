"""ccspec's fast YAML writer: what it writes, YAML reads back unchanged."""

from __future__ import annotations

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ccspec.report.yamlout import dump

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(
        [
            "yes",
            "no",
            "on",
            "1.5",
            "0x10",
            "~",
            "a: b",
            "a #b",
            "- x",
            "",
            " pad ",
            "2026-11-25",
            "sha256:ab",
            "null",
            "1e3",
        ]
    )
)
VALUES = st.recursive(
    SCALARS,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), VALUES, max_size=6))
def test_round_trip(document: dict[str, object]) -> None:
    assert (
        yaml.safe_load(dump(document)) == document
        if document
        else yaml.safe_load(dump(document)) is None
    )


def test_status_shape_reads_naturally() -> None:
    text = dump(
        {
            "workflow": "quickstart",
            "phase": "succeeded",
            "counts": {"succeeded": 3},
            "errors": [],
            "jobs": {
                "a": {
                    "state": "succeeded",
                    "fingerprint": "sha256:3f2a",
                    "started": "2026-11-25T10:00:00Z",
                    "message": "wrote 500 rows",
                    "outputs": {"rows": 1797, "csv": "/tmp/x.csv"},
                }
            },
        }
    )
    assert "  a:\n    state: succeeded\n" in text
    assert "    message: wrote 500 rows\n" in text
    # quoted: plain would read as a timestamp
    assert '    started: "2026-11-25T10:00:00Z"\n' in text
    assert "      rows: 1797\n" in text


def test_special_floats() -> None:
    loaded = yaml.safe_load(dump({"a": float("inf"), "b": float("-inf"), "c": float("nan")}))
    assert loaded["a"] == math.inf and loaded["b"] == -math.inf and math.isnan(loaded["c"])


def test_the_kept_status_renderer_writes_what_render_status_writes() -> None:
    from ccspec.report.status import StatusRenderer, render_status

    doc = {
        "workflow": "w",
        "phase": "running",
        "counts": {"running": 1, "pending": 1},
        "errors": [],
        "jobs": {
            "a": {
                "state": "running",
                "progress": 40.0,
                "outputs": {"x": [1, "two"], "n": {"m": None}},
            },
            "b-1": {"state": "pending", "host": "box", "reason": "needs: a"},
        },
    }
    renderer = StatusRenderer()
    assert renderer.render(doc) == render_status(doc)
    doc["jobs"]["a"] = {"state": "succeeded", "progress": 100.0, "exit_code": 0}  # one job changes
    doc["jobs"]["c"] = {"state": "pending"}  # and one is new (a fan-out)
    assert renderer.render(doc) == render_status(doc)
    assert renderer.render({**doc, "jobs": {}}) == render_status({**doc, "jobs": {}})
