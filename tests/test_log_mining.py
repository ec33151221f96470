"""Mining logs as a stream: protocol lines found whatever the chunks, over-long lines skipped
(never buffered whole), CRLF, a last line without a newline, and `mine_log` reading a real
file in bounded chunks."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ccspec.logfile import CHUNK, mine_log
from ccspec.progress import MAX_LINE, LogMiner

# no newline at the end
LOG = (
    b"start\n"
    b'  # ccspec progress=10 message="warming up"\n'
    b"ordinary # not a protocol line\n"
    b"# ccspec output n=3\r\n"
    b"# cloudmesh status=running progress=40 pid=12\n"
    b'#ccspec output name="a b"\n'
    b"# ccspec output last=[1, 2]"
)


def found(miner: LogMiner) -> tuple[float | None, str | None, str | None, dict[str, object]]:
    return miner.progress, miner.message, miner.status, dict(miner.outputs)


def mined(*chunks: bytes) -> LogMiner:
    miner = LogMiner()
    for chunk in chunks:
        miner.feed(chunk)
    miner.feed(b"", final=True)
    return miner


WHOLE = (40.0, "warming up", "running", {"n": 3, "name": "a b", "last": [1, 2]})


def test_the_whole_log_at_once() -> None:
    miner = LogMiner()
    assert miner.feed(LOG, final=True) is True
    assert found(miner) == WHOLE and miner.offset == len(LOG)


def test_every_split_point_finds_the_same() -> None:
    for cut in range(len(LOG) + 1):
        assert found(mined(LOG[:cut], LOG[cut:])) == WHOLE, cut


def test_byte_by_byte() -> None:
    miner = mined(*(LOG[i : i + 1] for i in range(len(LOG))))
    assert found(miner) == WHOLE and miner.offset == len(LOG)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"x" * 7,
                b"\n",
                b"\r\n",
                b"#",
                b" ",
                b"# ccspec output k=",
                b"1",
                b"2",
                b"# ccspec progress=",
                b"5",
                b"# cloudmesh status=ok",
                b"message=m",
            ]
        ),
        max_size=60,
    ),
    st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_any_chunking_finds_what_one_read_finds(pieces: list[bytes], cuts: list[int]) -> None:
    log = b"".join(pieces)
    bounds = sorted({min(c, len(log)) for c in cuts} | {0, len(log)})
    chunks = [log[a:b] for a, b in itertools.pairwise(bounds)]
    whole = LogMiner()
    whole.feed(log, final=True)
    assert found(mined(*chunks)) == found(whole)


def test_an_over_long_line_is_skipped_to_its_end() -> None:
    long_line = b"# ccspec output huge=" + b"z" * MAX_LINE + b"\n"
    after = b"# ccspec output after=1\n"
    # in one chunk, and in pieces that cross it
    assert found(mined(long_line + after))[3] == {"after": 1}
    pieces = [long_line[i : i + 4096] for i in range(0, len(long_line), 4096)]
    assert found(mined(b"# ccspec output before=0\n", *pieces, after))[3] == {
        "before": 0,
        "after": 1,
    }
    # a line of exactly MAX_LINE bytes is still read
    fits = b"# ccspec output fits=" + b"y" * (MAX_LINE - len(b"# ccspec output fits=")) + b"\n"
    assert found(mined(fits[:100], fits[100:]))[3] == {"fits": "y" * (MAX_LINE - 21)}


def test_an_over_long_last_line_without_newline_is_dropped_at_the_end() -> None:
    miner = mined(b"# ccspec output a=1\n", b"# ccspec output b=" + b"q" * MAX_LINE)
    assert found(miner)[3] == {"a": 1}
    one = LogMiner()
    one.feed(b"# ccspec output b=" + b"q" * MAX_LINE, final=True)
    assert one.outputs == {}


def test_crlf_and_a_final_line_without_newline() -> None:
    miner = LogMiner()
    assert miner.feed(b'# ccspec progress=20 message="crlf"\r\n# ccspec output x=') is True
    assert (miner.progress, miner.message) == (20.0, "crlf")
    assert miner.feed(b"5") is False  # the line is not finished yet
    assert miner.feed(b"", final=True) is True  # the end of the log finishes it
    assert miner.outputs == {"x": 5}
    assert miner.feed(b"", final=True) is False


def test_memory_stays_bounded_on_a_line_that_never_ends() -> None:
    miner = LogMiner()
    chunk = b"w" * (64 * 1024)
    tracemalloc.start()
    try:
        for _ in range(320):  # 20 MiB without a newline
            miner.feed(chunk)
        miner.feed(b"\n# ccspec output done=1\n", final=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert miner.outputs == {"done": 1}
    assert peak < 3 * MAX_LINE


def test_mine_log_reads_a_file_in_chunks(tmp_path: Path) -> None:
    log = tmp_path / "1.log"
    line = b"# ccspec output edge=7\n"
    with open(log, "wb") as fh:
        fh.write(b"." * (CHUNK - 10) + b"\n")  # the output line straddles the first read's end
        fh.write(line)
        fh.write((b"x" * 99 + b"\n") * (3 * CHUNK // 100))
        fh.write(b"# ccspec progress=99")
    size = log.stat().st_size
    miner = LogMiner()
    # a running job: at most the budget, then later
    assert mine_log(miner, log, budget=CHUNK) is False
    assert miner.offset == CHUNK
    assert mine_log(miner, log, budget=CHUNK) is True
    assert miner.offset == 2 * CHUNK and miner.outputs == {"edge": 7}
    assert mine_log(miner, log, final=True) is True  # it ended: to the end, the last line too
    assert miner.offset == size and miner.progress == 99.0
    assert mine_log(LogMiner(), tmp_path / "missing.log", final=True) is False


def test_the_status_api_reads_tails_and_ranges_of_a_long_log_in_bounded_chunks(
    tmp_path: Path,
) -> None:
    from ccspec.redact import Redactor
    from ccspec.server.logs import locate, read_slice

    log = tmp_path / "1.log"
    with open(log, "wb") as fh:
        for _ in range(16):  # 16 MiB of short lines, a secret at the very end
            fh.write((b"y" * 63 + b"\n") * (CHUNK // 64))
        fh.write(b"token sk-secret-123456\n")
    redactor = Redactor(("sk-secret-123456",))
    tracemalloc.start()
    try:
        size, piece = locate(log, 200_000, None, None, None)  # the last 200,000 lines
        total = sum(len(part) for part in read_slice(log, piece, redactor))
        _, whole = locate(log, None, None, None, None)
        last = b""
        for part in read_slice(log, whole, redactor):
            last = (last + part)[-64:]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size - piece.start == 64 * 199_999 + len(b"token sk-secret-123456\n")
    assert last.endswith(b"token " + b"*" * 16 + b"\n")
    assert peak < 2 * CHUNK
