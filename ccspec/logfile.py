"""Reading job logs in bounded chunks, whatever their size.

`mine_log` feeds a `LogMiner` what a log grew by since the miner's offset (the engine, while
a job runs and when it ends; `settle` for attempts that ended unwatched). `copy_log` writes a
log, secrets masked, to a binary stream and can follow it while the attempt runs
(`ccspec logs`). Neither holds more than one chunk of the log at a time: a job that prints
gigabytes costs ccspec time, not memory. A small log is one read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from ccspec.progress import LogMiner
from ccspec.redact import Redactor, environment_secrets, redactor_for

__all__ = ["CHUNK", "MINE_BUDGET", "copy_log", "log_redactor", "mine_log"]

CHUNK = 1 << 20  # bytes of one read
# bytes one look at a running job's log reads at most: the loop stays responsive
MINE_BUDGET = 64 * CHUNK
FOLLOW_EVERY = 0.2  # seconds between reads of a followed log that has not grown


def mine_log(
    miner: LogMiner, path: Path | str, *, final: bool = False, budget: int | None = None
) -> bool:
    """Feed `miner` the log from its offset on, a chunk at a time; True when what it found
    changed. `final`: the attempt has ended, read to the end of the log and flush the last
    line. Otherwise read at most `budget` bytes (default MINE_BUDGET); the rest waits for the
    next call. A missing log reads as empty."""
    limit = None if final else (MINE_BUDGET if budget is None else budget)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return miner.feed(b"", final=final)
    changed = False
    read = 0
    try:
        while True:
            try:
                chunk = os.pread(fd, CHUNK, miner.offset)
            except OSError:
                chunk = b""
            last = len(chunk) < CHUNK  # a short read is the end of the log, for now
            changed = miner.feed(chunk, final=final and last) or changed
            read += len(chunk)
            if last or (limit is not None and read >= limit):
                return changed
    finally:
        os.close(fd)


def copy_log(
    path: Path | str,
    out: BinaryIO,
    redactor: Redactor,
    *,
    ended: Callable[[], bool] | None = None,
    every: float = FOLLOW_EVERY,
    chunk: int = CHUNK,
) -> int:
    """Write the log to `out` with secrets masked (`StreamRedactor`: a secret split across
    two chunks is masked too); returns the bytes written. With `ended`, follow the log as it
    grows until `ended()` is true and everything is written (a log that does not exist yet
    is waited for)."""
    stream = redactor.stream()
    written = 0
    position = 0
    fh: BinaryIO | None = None
    try:
        while True:
            if fh is None:
                try:
                    fh = open(path, "rb")  # noqa: SIM115 - kept open while following
                except OSError:
                    if ended is None or ended():
                        break
                    time.sleep(every)
                    continue
            data = fh.read(chunk)
            if data:
                position += len(data)
                masked = stream.feed(data)
                out.write(masked)
                written += len(masked)
                continue
            if ended is None:
                break
            out.flush()
            if ended():  # it ended: what it wrote before is in the file now
                if os.fstat(fh.fileno()).st_size > position:
                    continue
                break
            time.sleep(every)
    finally:
        if fh is not None:
            fh.close()
    tail = stream.flush()
    out.write(tail)
    out.flush()
    return written + len(tail)


def log_redactor(spec_path: str | None, environ: Mapping[str, str] | None = None) -> Redactor:
    """What `ccspec logs` masks for a workflow, as the status API does: the values of its
    spec's `secrets:` vars (the spec it was last applied from, `StateStore.spec_path`) and
    the environment's secrets. The spec is only read, not validated (vars are not templated):
    a large spec costs no more than its YAML. A spec that is gone or unreadable masks the
    environment's secrets only."""
    extra = environment_secrets(os.environ if environ is None else environ)
    if not spec_path or not os.path.isfile(spec_path):
        return Redactor(tuple(extra))
    from ccspec.spec.source import read_source

    source, _ = read_source(spec_path)
    data = source.data if source is not None and isinstance(source.data, dict) else {}
    found, variables = data.get("secrets"), data.get("vars")
    secrets = [s for s in found if isinstance(s, str)] if isinstance(found, list) else []
    return redactor_for(variables if isinstance(variables, dict) else {}, secrets, extra=extra)
