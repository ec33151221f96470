"""Secret redaction (ccspec.redact): pure functions, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccspec.redact import (
    MASK,
    Redactor,
    environment_secrets,
    redactor_for,
    secret_values,
)


def test_secret_values_take_the_listed_vars_and_their_leaves() -> None:
    vars = {"token": "abcd1234", "pair": ["user1", {"key": "k3y-value"}], "rows": 5, "flag": True}
    assert secret_values(vars, ["token", "pair", "missing"]) == ["abcd1234", "user1", "k3y-value"]
    assert secret_values(vars, []) == []


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("API_TOKEN", True),
        ("DB_PASSWORD", True),
        ("github_token", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("SSH_PASSPHRASE", True),
        ("MY_APIKEY", True),
        ("PRIVATE_KEY", True),
        ("HTTP_AUTH", True),
        ("HOME", False),
        ("PATH", False),
        ("OMP_NUM_THREADS", False),
        ("TOKENIZERS_PARALLELISM", True),
    ],
)
def test_environment_secrets_go_by_name(name: str, secret: bool) -> None:
    assert environment_secrets({name: "some-value"}) == (["some-value"] if secret else [])


def test_short_environment_values_are_settings_not_secrets() -> None:
    assert (
        environment_secrets(
            {"API_TOKEN": "", "TOKENIZERS_PARALLELISM": "false", "AUTH_RETRIES": "3"}
        )
        == []
    )
    assert not Redactor(("",))


def test_text_masks_every_occurrence_longest_first() -> None:
    r = Redactor(("hunter2hunter2", "hunter2"))
    assert r.text("a hunter2hunter2 b hunter2 c") == f"a {MASK} b {MASK} c"
    assert r.text("nothing here") == "nothing here"


def test_short_values_are_masked_only_whole() -> None:
    r = Redactor(("ab", "1"))
    assert r.text("ab") == MASK and r.text("1") == MASK
    assert r.text("tab 10") == "tab 10"  # masking every 'ab' and '1' would make text unreadable


def test_value_masks_nested_data_and_secret_names() -> None:
    r = Redactor(("s3cr3t-value", "424242"), frozenset({"token"}))
    data = {
        "token": "anything",
        "nested": [{"msg": "x s3cr3t-value y"}, 424242, 4242, True],
        "ok": 1.5,
        "n": None,
    }
    assert r.value(data) == {
        "token": MASK,
        "nested": [{"msg": f"x {MASK} y"}, MASK, 4242, True],
        "ok": 1.5,
        "n": None,
    }


def test_empty_redactor_changes_nothing() -> None:
    r = Redactor()
    value = {"a": ["b", 1]}
    assert r.value(value) is value and r.text("x") == "x" and r.data(b"x") == b"x"


def test_bytes_keep_their_length() -> None:
    r = Redactor(("s3cr3t", "pässwörd"))
    data = "x s3cr3t y pässwörd z".encode()
    masked = r.data(data)
    assert len(masked) == len(data)
    assert masked == b"x ****** y " + b"*" * len("pässwörd".encode()) + b" z"


def test_redactor_for_a_workflow() -> None:
    r = redactor_for(
        {"token": "abcd1234", "rows": 10},
        ["token"],
        environ={"CI_JOB_TOKEN": "envsecret", "HOME": "/root"},
        extra=["servetoken"],
    )
    assert r.text("abcd1234 envsecret servetoken /root 10") == f"{MASK} {MASK} {MASK} /root 10"
    assert r.value({"token": "x"}) == {"token": MASK}


@given(
    secrets=st.lists(st.text(alphabet="abcxyz", min_size=4, max_size=9), min_size=1, max_size=3),
    parts=st.lists(st.text(alphabet="abcxyz \n", max_size=30), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10),
)
def test_stream_matches_whole_redaction_however_it_is_cut(
    secrets: list[str], parts: list[str], cuts: list[int]
) -> None:
    r = Redactor(tuple(secrets))
    data = "".join(p + secrets[i % len(secrets)] for i, p in enumerate(parts)).encode()
    stream = r.stream()
    out = b""
    previous = 0
    for cut in [*sorted({min(c, len(data)) for c in cuts}), len(data)]:
        out += stream.feed(data[previous:cut])
        previous = cut
    out += stream.flush()
    assert out == r.data(data)
    for secret in secrets:
        assert secret.encode() not in out
