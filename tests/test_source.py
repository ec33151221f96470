"""Loading spec text: marks, guards against broken and hostile YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccspec.spec import source
from ccspec.spec.source import parse_text, read_source


def codes(text: str) -> list[tuple[int, int, str]]:
    _, problems = parse_text(text, "s.yaml")
    return [(d.line, d.col, d.code) for d in problems]


def test_locate_values_and_keys() -> None:
    src, problems = parse_text(
        "version: 1\njobs:\n  a:\n    run: echo\n    needs: [b, c]\n", "s.yaml"
    )
    assert not problems and src is not None
    assert src.locate(("jobs", "a", "run")) == (4, 10)
    assert src.locate(("jobs", "a", "run"), key=True) == (4, 5)
    assert src.locate(("jobs", "a", "needs", 1)) == (5, 16)
    # a path deeper than the document resolves to the deepest node that exists
    assert src.locate(("jobs", "a", "timeout")) == (4, 5)
    assert src.locate(("nothing",)) == (1, 1)


def test_scalars_keep_their_types_and_keys_stay_text() -> None:
    src, _ = parse_text("a: 1\nb: 1.5\nc: true\nd: ~\ne: 2026-01-01\n1: x\non: y\n")
    assert src is not None
    assert src.data == {
        "a": 1,
        "b": 1.5,
        "c": True,
        "d": None,
        "e": "2026-01-01",
        "1": "x",
        "on": "y",
    }


def test_merge_keys_and_aliases() -> None:
    src, problems = parse_text("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")
    assert not problems and src is not None
    assert src.data["c"] == {"x": 1, "y": 3}
    assert src.locate(("c", "x")) == (1, 14)  # the merged value points at its anchor's line


def test_duplicate_keys_report_both_lines() -> None:
    _, problems = parse_text("version: 1\njobs:\n  a: {run: x}\n  a: {run: y}\n", "s.yaml")
    assert [(d.line, d.col, d.code) for d in problems] == [(4, 3, "duplicate-key")]
    assert "first on line 3" in problems[0].message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [1,\nb: 2", (3, 1, "yaml-syntax")),
        ("a:\n\tb: 1\n", (2, 1, "yaml-syntax")),
        ("a: 1\n---\nb: 2\n", (2, 1, "multiple-documents")),
        ("", (1, 1, "empty")),
        ("# only a comment\n", (1, 1, "empty")),
        ("- a\n- b\n", (1, 1, "root-not-mapping")),
        ("just text\n", (1, 1, "root-not-mapping")),
        ("a: &x [1, *x]\n", (1, 4, "yaml-alias")),
        ("a: !!python/object:os.system {}\n", (1, 4, "yaml-tag")),
        ("a: !custom 1\n", (1, 4, "yaml-tag")),
        ("? [a]\n: 1\n", (1, 3, "yaml-key")),
        ("a: *nowhere\n", (1, 4, "yaml-syntax")),
    ],
)
def test_bad_yaml(text: str, expected: tuple[int, int, str]) -> None:
    assert codes(text) == [expected]


def test_tab_hint() -> None:
    _, problems = parse_text("a:\n\tb: 1\n")
    assert "spaces, not tabs" in problems[0].message


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join(f"*{prev}" for _ in range(9)) + "]")
    _, problems = parse_text("\n".join(lines) + "\n")
    assert [p.code for p in problems] == ["yaml-alias-bomb"]
    assert problems[0].line < 10


def test_deep_nesting_is_refused() -> None:
    depth = source.MAX_DEPTH + 5
    _, problems = parse_text("a: " + "[" * depth + "]" * depth + "\n")
    assert [p.code for p in problems] in (["yaml-depth"], ["yaml-syntax"])


def test_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "MAX_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * 200 + "\n")
    src, problems = read_source(path)
    assert src is None and problems[0].code == "too-large"
    assert "split it" in problems[0].message


def test_not_utf8_and_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\nname: caf\xe9\n")
    _, problems = read_source(path)
    assert [(p.line, p.code) for p in problems] == [(2, "encoding")]
    _, problems = read_source(tmp_path / "missing.yaml")
    assert problems[0].code == "unreadable"


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffversion: 1\n".encode())
    src, problems = read_source(path)
    assert not problems and src is not None and src.data == {"version": 1}
