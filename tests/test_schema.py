"""The committed JSON Schema matches the models, and editors' validation agrees with ccspec's."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml

from ccspec.schema import schema_text
from tests.conftest import REPO

SCHEMA_FILE = REPO / "schemas" / "workflow.schema.json"
EXAMPLES = sorted(p for p in (REPO / "specs").glob("*.yaml") if not p.name.endswith(".status.yaml"))


def test_committed_schema_is_not_stale() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "regenerate: ccspec schema > schemas/workflow.schema.json"
    )


def test_schema_command_prints_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ccspec", "schema"], capture_output=True, text=True, check=True
    ).stdout
    assert out == SCHEMA_FILE.read_text()


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.name)
def test_examples_carry_the_schema_comment_and_satisfy_it(spec: object) -> None:
    text = spec.read_text()  # type: ignore[attr-defined]
    assert text.startswith("# yaml-language-server: $schema=../schemas/workflow.schema.json\n")
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(
        yaml.safe_load(text)
    )


@pytest.mark.parametrize(
    ("document", "ok"),
    [
        (
            {
                "version": 1,
                "jobs": {"a": {"run": "x", "timeout": "1h30m", "resources": {"mem": "4G"}}},
            },
            True,
        ),
        ({"version": 1, "jobs": {"a": {"run": "x", "neds": []}}}, False),
        ({"version": 2, "jobs": {"a": {"run": "x"}}}, False),
        ({"version": 1, "jobs": {"Bad": {"run": "x"}}}, False),
        ({"version": 1, "jobs": {"a": {"run": "x", "timeout": "forever"}}}, False),
        (
            {
                "version": 1,
                "hosts": {"h": {"type": "slurm", "partition": "debug"}},
                "jobs": {"a": {"run": "x"}},
            },
            True,
        ),
        ({"version": 1, "hosts": {"h": {"type": "ssh"}}, "jobs": {"a": {"run": "x"}}}, False),
    ],
)
def test_schema_and_models_agree(document: dict[str, object], ok: bool) -> None:
    from pydantic import ValidationError

    from ccspec.spec.models import Workflow

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    assert validator.is_valid(document) is ok
    try:
        Workflow.model_validate(document)
        model_ok = True
    except ValidationError:
        model_ok = False
    assert model_ok is ok
