from __future__ import annotations

import pytest

from ccspec.spec.units import format_duration, parse_duration, parse_memory


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        ("250ms", 0.25),
        ("1-12:00:00", 129600),
        ("01:00:00", 3600),
        ("10:00", 600),
        ("45", 45),
        (1.5, 1.5),
        (" 2 h ", 7200),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["forever", "", "-1m", "0", "1h x", "m", True, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        ("4G", 4096),
        ("512M", 512),
        ("1T", 1048576),
        ("4GiB", 4096),
        ("4gb", 4096),
        (2048, 2048),
        ("1024K", 1),
    ],
)
def test_memory(text: object, mb: int) -> None:
    assert parse_memory(text) == mb


@pytest.mark.parametrize("text", ["lots", "4X", "-1G", "0", True, 1.5])
def test_bad_memory(text: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_memory(text)


def test_format_round_trips() -> None:
    for seconds in (5, 59, 60, 5400, 90061):
        assert parse_duration(format_duration(seconds)) == seconds
