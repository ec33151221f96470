from __future__ import annotations

import pytest

from ccspec.spec.matrix import MatrixError, combinations, job_id, slug


def test_product_in_written_order() -> None:
    combos = combinations({"model": ["mlp", "cnn"], "size": [1, 2]})
    assert combos == [
        {"model": "mlp", "size": 1},
        {"model": "mlp", "size": 2},
        {"model": "cnn", "size": 1},
        {"model": "cnn", "size": 2},
    ]
    assert [job_id("train", c) for c in combos] == [
        "train-mlp-1",
        "train-mlp-2",
        "train-cnn-1",
        "train-cnn-2",
    ]


def test_exclude_and_include() -> None:
    combos = combinations(
        {
            "model": ["mlp", "cnn"],
            "size": [1, 2],
            "exclude": [{"model": "cnn", "size": 2}],
            "include": [{"model": "rnn", "size": 1}, {"model": "mlp", "size": 1}],
        }
    )
    assert [job_id("t", c) for c in combos] == ["t-mlp-1", "t-mlp-2", "t-cnn-1", "t-rnn-1"]


def test_list_of_combinations_from_upstream() -> None:
    assert combinations([{"part": 0}, {"part": 1}]) == [{"part": 0}, {"part": 1}]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Hello World", "hello-world"), (True, "true"), (0.5, "0.5"), ("a/b", "a-b"), ("x_y", "x_y")],
)
def test_slug(value: object, expected: str) -> None:
    assert slug(value) == expected


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ({"m": "abc"}, "must be a list"),
        ({"m": []}, "empty list"),
        ({"m": [{"a": 1}]}, "plain values"),
        ({"m": ["!!!"]}, "empty job id part"),
        ({"bad name": [1]}, "identifier"),
        ({"m": [1], "exclude": [{"x": 1}]}, "not a matrix dimension"),
        ({"m": [1], "exclude": [{"m": 1}]}, "no jobs at all"),
        ({"m": [1], "include": "x"}, "list of mappings"),
        ({"a": list(range(400)), "b": list(range(400))}, "over the limit"),
        ([], "no jobs at all"),
        ("x", "mapping of lists"),
    ],
)
def test_bad_matrices(matrix: object, message: str) -> None:
    with pytest.raises(MatrixError, match=message):
        combinations(matrix)
