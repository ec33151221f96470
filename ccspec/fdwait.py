"""Waiting until a file descriptor can be read, whatever its number.

`select.select` refuses descriptors numbered 1,024 and above (FD_SETSIZE), and a process
that watches many specs or serves many clients holds more than that. poll(2) has no such
limit. Called by the local launcher (its reply pipe) and the ssh shell (a channel's pipe).
"""

from __future__ import annotations

import math
import select

__all__ = ["wait_readable"]


def wait_readable(fd: int, timeout: float | None) -> bool:
    """Whether `fd` became readable (data, end of file or an error, so that a read does not
    block) within `timeout` seconds (None: no limit)."""
    # Windows has no poll(); its select() takes sockets only, and numbers them freely
    if not hasattr(select, "poll"):  # pragma: no cover
        return bool(select.select([fd], [], [], timeout)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))))
