"""A response body of the status API as `Reader` builds and caches it: the bytes, their ETag,
the stamp they were built at (to tell when they are stale) and, for large bodies, their
gzipped form, made once. Used by the reader, the hot-path responses and the routes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ccspec.server.specs import StatKey, stat_key

__all__ = ["GZIP_FROM", "Built", "etag", "gzip_of"]

GZIP_FROM = 1400  # bytes: smaller bodies fit in a packet as they are


@dataclass(frozen=True)
class Built:
    """A response body built at one stamp: valid while the store and the files are unchanged.
    Large bodies are gzipped once, here, for the clients that accept it (browsers do)."""

    body: bytes
    media_type: str
    etag: str
    base: tuple[int, int | None]
    files: tuple[tuple[Path, StatKey], ...]
    gzipped: bytes | None = None

    def fresh(self, base: tuple[int, int | None]) -> bool:
        return base == self.base and all(stat_key(path) == stat for path, stat in self.files)


def etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def gzip_of(body: bytes) -> bytes | None:
    if len(body) < GZIP_FROM:
        return None
    import gzip

    # fast; zlib lets other threads run meanwhile
    return gzip.compress(body, compresslevel=1, mtime=0)
