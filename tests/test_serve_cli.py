"""`ccspec serve PATHS...`: the folder of specs named as every other command names it (a
folder, or a spec file in it), or with `--specs`; a real server process each time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving import ccspec, start_server

FLOW = "version: 1\nname: {name}\njobs: {{a: {{run: 'true'}}}}\n"


@pytest.mark.parametrize("named", [["flows"], ["flows/one.yaml"], ["--specs", "flows"]])
def test_serve_shows_the_workflows_of_the_folder_it_is_given(
    tmp_path: Path, named: list[str]
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "one.yaml").write_text(FLOW.format(name="one"))
    (tmp_path / "specs").mkdir()  # the default folder: not the one asked for
    (tmp_path / "specs" / "other.yaml").write_text(FLOW.format(name="other"))
    server = start_server(tmp_path, *named)
    try:
        with server.client() as http:
            names = [w["name"] for w in http.get("/api/workflows").json()["workflows"]]
    finally:
        err = server.stop()
    assert names == ["one"]
    assert "specs flows/" in err


def test_a_missing_path_or_two_folders_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    missing = ccspec(tmp_path, "serve", "nowhere")
    assert missing.returncode == 2 and "no such file or folder: nowhere" in missing.stderr
    two = ccspec(tmp_path, "serve", "a", "--specs", "b")
    assert two.returncode == 2 and "a and b are different folders" in two.stderr
