"""Where the time of `ccspec apply` over ssh goes (issue 17, item 3). Not a test.

In each of --rounds rounds, for each ccspec source tree given (in turn, the order changing
every round): `ccspec apply` of --jobs trivial jobs (`run: echo $CCSPEC_JOB > /dev/null`) on
the test sshd, from a fresh folder, state and remote workdir, run in a child process of that
tree's interpreter with `SshShell.run` wrapped to record when each remote command starts and
ends. Prints the medians of the parts of a run, per tree:

    start-up      from the interpreter's start to the first remote command
    connection    the first remote command: `ssh -G`, the import of paramiko, the handshake,
                  the first session and the workdir's set-up command
    launches      the launch commands (count and seconds)
    polls         the poll commands (count and seconds)
    idle          between remote commands (the engine's turn, the worker's timers)
    after         from the last remote command to the end of `apply`

    python bench/ssh_timeline.py [--rounds 5] [--jobs 200] LABEL=TREE=PYTHON ...

e.g. `after=.=.venv/bin/python before=/work/main=/work/main/.venv/bin/python`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = "--child"  # python ssh_timeline.py --child TREE OUT.json: apply remote.yaml, timed


def child(tree: str, out: str) -> None:
    t0 = float(os.environ["CCSPEC_TIMELINE_T0"])
    sys.path.insert(0, tree)
    from ccspec.targets import shells

    events: list[tuple[str, float, float]] = []
    original = shells.SshShell.run

    def run(self, script, *, stdin=None, timeout=shells.COMMAND_TIMEOUT):  # type: ignore[no-untyped-def]
        began = time.time()
        try:
            return original(self, script, stdin=stdin, timeout=timeout)
        finally:
            kind = "launch" if "\nL() {" in script else "poll" if "\nP " in script else "other"
            events.append((kind, began - t0, time.time() - t0))

    shells.SshShell.run = run  # type: ignore[method-assign]
    import gc

    from ccspec.cli import main
    from ccspec.cli.startup import skip_pydantic_plugin_discovery

    skip_pydantic_plugin_discovery()  # as the console script does
    gc.disable()
    with contextlib.suppress(SystemExit):
        main(["apply", "remote.yaml"])
    Path(out).write_text(json.dumps({"events": events, "end": time.time() - t0}))


def parts(record: dict) -> dict[str, float]:
    events = sorted(record["events"], key=lambda e: e[1])
    first, last = events[0], events[-1]
    busy = sum(e[2] - e[1] for e in events)
    launches = [e for e in events if e[0] == "launch"]
    polls = [e for e in events if e[0] == "poll"]
    return {
        "start-up until the first remote command": first[1],
        "connection: ssh -G, paramiko, handshake, first session, workdir": first[2] - first[1],
        "launch commands (s)": sum(e[2] - e[1] for e in launches),
        "launch commands (count)": len(launches),
        "poll commands (s)": sum(e[2] - e[1] for e in polls),
        "poll commands (count)": len(polls),
        "idle between commands": last[2] - first[1] - busy,
        "after the last command": record["end"] - last[2],
        "total, in the process": record["end"],
    }


def spec(jobs: int, workdir: str) -> str:
    port = os.environ.get("CCSPEC_TEST_SSH_PORT", "2222")
    user = os.environ.get("CCSPEC_TEST_SSH_USER", "ccspec")
    key = os.environ.get("CCSPEC_TEST_SSH_KEY", str(Path.home() / ".ccspec-test/id_ed25519"))
    host = f"{{type: ssh, host: 127.0.0.1, port: {port}, user: {user}, key: {key}, workdir: ~/{workdir}}}"
    lines = ["version: 1", "name: bench", "hosts:", f"  box: {host}", "defaults: {host: box}"]
    lines += ["jobs:", *(f"  j{i}:\n    run: echo $CCSPEC_JOB > /dev/null" for i in range(jobs))]
    return "\n".join(lines) + "\n"


def once(tree: str, python: str, jobs: int, tmp: Path) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(dir=tmp))
    workdir = f"bench-{secrets.token_hex(4)}"
    (folder / "remote.yaml").write_text(spec(jobs, workdir))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["CCSPEC_TIMELINE_T0"] = repr(time.time())
    out = folder / "timeline.json"
    try:
        subprocess.run(
            [python, __file__, CHILD, tree, str(out)],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            check=True,
            timeout=300,
        )
    finally:
        ssh = ["ssh", "-F", os.environ.get("CCSPEC_TEST_SSH_CONFIG", ""), "ccspec-test"]
        subprocess.run([*ssh, f"rm -rf ~/{workdir}"], check=False, timeout=120)
    return parts(json.loads(out.read_text()))


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == CHILD:
        child(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("trees", nargs="+", help="LABEL=TREE=PYTHON")
    args = parser.parse_args()
    trees = [tuple(t.split("=", 2)) for t in args.trees]
    trees = [
        (label, tree, str(Path(py).absolute()) if "/" in py else py) for label, tree, py in trees
    ]
    found: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for label, tree, python in random.sample(trees, len(trees)):
                found[label].append(once(str(Path(tree).resolve()), python, args.jobs, Path(tmp)))
                print(f"round {i + 1}: {label} {found[label][-1]['total, in the process']:.2f} s",
                      file=sys.stderr)  # fmt: skip
    load = os.getloadavg()
    print(f"\n{args.rounds} rounds, {args.jobs} jobs, medians (s); load {load[0]:.1f} at the end\n")
    labels = list(found)
    print("| part | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for key in found[labels[0]][0]:
        cells = [statistics.median(r[key] for r in found[label]) for label in labels]
        text = [f"{c:.0f}" if "count" in key else f"{c:.3f}" for c in cells]
        print(f"| {key} | " + " | ".join(text) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
