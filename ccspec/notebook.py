"""Run one notebook job with papermill: `python -m ccspec.notebook IN OUT PARAMS_JSON [KERNEL]`.

Started by the engine as the job's command. Cell output is streamed to this process's
stdout/stderr (`log_output=True`), so progress and output lines printed by cells reach the
job's log like any other job's. The executed notebook is kept at OUT, next to the log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: python -m ccspec.notebook IN OUT PARAMS_JSON [KERNEL]", file=sys.stderr)
        return 2
    source, executed, params = argv[0], argv[1], json.loads(argv[2])
    kernel = argv[3] if len(argv) > 3 and argv[3] else None
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # 0600 like the log beside it (papermill keeps the mode of a file there)
    with contextlib.suppress(OSError):
        os.close(os.open(executed, os.O_WRONLY | os.O_CREAT, 0o600))
    try:
        papermill.execute_notebook(
            source,
            executed,
            parameters=params,
            kernel_name=kernel,
            log_output=True,
            progress_bar=False,
            cwd=os.getcwd(),
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
        )
    except PapermillExecutionError as exc:
        print(
            f"notebook failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} (executed notebook: {executed})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
