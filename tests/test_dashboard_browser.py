"""The dashboard in a real headless browser (Debian's chromium), driven over the DevTools
protocol on a pipe (no driver, no extra package): pages render, the live table follows a job
from running to succeeded through server-sent events, and screenshots are taken (under the
test's tmp folder) and checked to be real pictures."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.serving import DEMO, SLOW, Server, ccspec, make_repo, start_server

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "no headless browser: install Debian's chromium (`apt-get install -y chromium`; "
        "`bash .ci/bootstrap test` does it when run as root)",
        pytrace=False,
    )


class Browser:
    """Chromium with `--remote-debugging-pipe`: DevTools messages are JSON ended by NUL,
    written to its fd 3 and read from its fd 4."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()

        def fds() -> None:  # the protocol wants these exact descriptors in the child
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "--window-size=1280,900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=fds,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read(self, timeout: float) -> dict[str, Any]:
        import select

        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("the browser did not answer")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError("the browser closed its pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)  # type: ignore[no-any-return]

    def call(
        self, method: str, *, session: bool = False, timeout: float = 30, **params: Any
    ) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})  # type: ignore[no-any-return]
            self.events.append(reply)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait(
            lambda: (
                any(e.get("method") == "Page.loadEventFired" for e in self.events)
                or self.js("document.readyState") == "complete"
            ),
            "the page to load",
        )

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def screenshot(self, path: Path) -> Path:
        data = self.call(
            "Page.captureScreenshot", session=True, format="png", captureBeyondViewport=False
        )["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def check_png(path: Path) -> None:
    """A real screenshot: a PNG of the window's size whose pixels are far from uniform."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 900), (width, height)
    assert len(data) > 15_000, f"{path}: {len(data)} bytes, too small for a rendered page"
    chunks, at = [], 8
    while at < len(data):
        length = struct.unpack(">I", data[at : at + 4])[0]
        if data[at + 4 : at + 8] == b"IDAT":
            chunks.append(data[at + 8 : at + 8 + length])
        at += 12 + length
    pixels = zlib.decompress(b"".join(chunks))
    assert len(set(pixels)) > 40, f"{path}: almost uniform"


def test_dashboard_follows_a_job_live(tmp_path: Path) -> None:
    browser_binary = find_browser()
    repo = make_repo(tmp_path / "repo", demo=DEMO, slow=SLOW)
    applied = ccspec(repo, "apply", "specs/demo.yaml")
    assert applied.returncode == 1, applied.stdout + applied.stderr
    server: Server = start_server(repo)
    browser = Browser(browser_binary, tmp_path / "profile")
    gate = repo / "specs" / "gate"
    run: subprocess.Popen[str] | None = None
    try:
        browser.open(server.url + "/")
        rows = browser.js(
            "[...document.querySelectorAll('#workflows tbody tr')].map(r => [r.dataset.workflow, r.dataset.phase])"
        )
        assert rows == [["demo", "failed"], ["slow", "pending"]]
        check_png(browser.screenshot(tmp_path / "workflows.png"))

        browser.open(server.url + "/workflows/demo")
        states = browser.js(
            "Object.fromEntries([...document.querySelectorAll('#jobs tbody tr')]"
            ".map(r => [r.dataset.job, r.dataset.state]))"
        )
        assert states == {
            "a": "succeeded",
            "d": "succeeded",
            "train-mlp": "succeeded",
            "train-cnn": "succeeded",
            "b": "failed",
            "c": "skipped",
        }
        browser.wait(
            lambda: browser.js(
                "document.getElementById('graph').complete && "
                "document.getElementById('graph').naturalWidth > 0"
            ),
            "the graph",
        )
        assert "s3cr3t" not in browser.js("document.body.innerText")
        check_png(browser.screenshot(tmp_path / "demo.png"))

        run = subprocess.Popen(
            [sys.executable, "-m", "ccspec", "apply", "specs/slow.yaml"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with server.client() as http:
            browser.wait(
                lambda: (
                    (http.get("/api/workflows/slow").json()["jobs"] or [{}])[0].get("state")
                    == "running"
                ),
                "the job to run",
            )
        browser.open(server.url + "/workflows/slow")
        row = "document.querySelector('#jobs tr[data-job=\"wait\"]')"
        assert browser.js(f"{row}.dataset.state") == "running"
        browser.wait(lambda: browser.js("document.body.dataset.sse") == "open", "the event stream")
        browser.wait(
            lambda: browser.js(f"{row}.querySelector('progress').value") == 10, "progress 10%"
        )
        check_png(browser.screenshot(tmp_path / "running.png"))

        gate.write_text("open")  # the job goes on and ends; only server-sent events tell the page
        browser.wait(
            lambda: browser.js(f"{row}.dataset.state") == "succeeded",
            "the live update to succeeded",
        )
        browser.wait(
            lambda: browser.js("document.getElementById('phase').textContent") == "succeeded",
            "the phase to follow",
        )
        browser.wait(
            lambda: browser.js(f"{row}.querySelector('progress').value") == 100, "the progress bar"
        )
        shown = "fetch(document.getElementById('graph').src).then(r => r.text())"
        browser.wait(
            lambda: ">succeeded<" in browser.js(shown),
            "the graph to show the job succeeded",
            timeout=15,
        )
        dom = browser.js("document.documentElement.outerHTML")
        (tmp_path / "slow.html").write_text(dom)
        assert 'data-job="wait" data-state="succeeded"' in dom
        check_png(browser.screenshot(tmp_path / "succeeded.png"))

        browser.open(server.url + "/workflows/slow/jobs/wait")
        browser.wait(
            lambda: "passed the gate" in browser.js("document.getElementById('log').textContent"),
            "the log",
        )
        check_png(browser.screenshot(tmp_path / "job.png"))

        # the OpenAPI GUI renders from ccspec's own files, no CDN
        browser.open(server.url + "/docs")
        browser.wait(
            lambda: browser.js("document.querySelectorAll('.opblock').length") >= 10,
            "Swagger UI's operations",
        )
        assert "/api/workflows/{name}" in browser.js("document.body.innerText")
        check_png(browser.screenshot(tmp_path / "docs.png"))
    finally:
        gate.write_text("open")
        if run is not None:
            run.communicate(timeout=60)
        browser.close()
        server.stop()
    assert run is not None and run.returncode == 0
