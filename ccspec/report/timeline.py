"""A run's timeline, after Nextflow's: one bar per attempt from its launch to its end (the
time it waited in a queue drawn lighter), filled by its state, with a stripe coloured by its
host, and its resource usage in the bar's tooltip. `timeline_svg` draws the picture the
dashboard's workflow page shows (/api/workflows/NAME/timeline.svg); `timeline_html` makes the
self-contained file of `ccspec report WF -o timeline.html` (the picture and a table of every
attempt, no scripts, nothing fetched)."""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ccspec.report.graph import COLOURS
from ccspec.state.records import Attempt
from ccspec.usage import Usage, format_bytes

__all__ = ["Bar", "bars_of", "timeline_html", "timeline_svg"]

# hosts take these colours in the order they first appear
HOST_COLOURS = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d")
LABEL_WIDTH, CHART_WIDTH, ROW, TOP = 240, 760, 18, 24


@dataclass(frozen=True)
class Bar:
    """One attempt on the timeline; times in seconds since the epoch."""

    job: str
    number: int
    host: str
    state: str
    launched: float
    started: float | None  # None: it never left its queue
    ended: float | None  # None: still going
    usage: Usage | None = None
    warning: str | None = None


def bars_of(attempts: Iterable[Attempt]) -> list[Bar]:
    """The attempts that were launched, by launch time."""
    bars = [
        Bar(
            a.job,
            a.number,
            a.host,
            a.state.value,
            a.created if a.created is not None else a.started or 0.0,
            a.started,
            a.finished,
            a.usage,
            a.usage_warning,
        )
        for a in attempts
        if a.created is not None or a.started is not None
    ]
    return sorted(bars, key=lambda b: (b.launched, b.job, b.number))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _tooltip(bar: Bar, now: float) -> str:
    end = bar.ended if bar.ended is not None else now
    lines = [f"{bar.job} attempt {bar.number} on {bar.host}: {bar.state}"]
    lines.append(f"took {_seconds(end - (bar.started or bar.launched))}")
    if bar.usage is not None:
        lines.append(
            f"cpu {_seconds(bar.usage.cpu)}, peak memory {format_bytes(bar.usage.max_rss)}"
        )
    if bar.warning:
        lines.append(f"warning: {bar.warning}")
    return "\n".join(lines)


def _host_colours(bars: Sequence[Bar]) -> dict[str, str]:
    colours: dict[str, str] = {}
    for bar in bars:
        if bar.host not in colours:
            colours[bar.host] = HOST_COLOURS[len(colours) % len(HOST_COLOURS)]
    return colours


def timeline_svg(bars: Sequence[Bar], now: float | None = None) -> str:
    """The timeline as one SVG picture (the text of the file)."""
    now = time.time() if now is None else now
    first = min((b.launched for b in bars), default=now)
    last = max([first + 1.0, *((b.ended if b.ended is not None else now) for b in bars)])
    scale = CHART_WIDTH / (last - first)
    hosts = _host_colours(bars)
    height = TOP + ROW * len(bars) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{LABEL_WIDTH + CHART_WIDTH + 20}"'
        f' height="{height}" font-family="sans-serif" font-size="11">',
        f'<text x="{LABEL_WIDTH}" y="14">0s</text>',
        f'<text x="{LABEL_WIDTH + CHART_WIDTH}" y="14" text-anchor="end">{last - first:.1f}s</text>',
    ]
    for i, bar in enumerate(bars):
        y = TOP + i * ROW
        x0 = LABEL_WIDTH + (bar.launched - first) * scale
        start = bar.started if bar.started is not None else bar.launched
        x1 = LABEL_WIDTH + (start - first) * scale
        end = bar.ended if bar.ended is not None else now
        x2 = max(x1 + 1.0, LABEL_WIDTH + (end - first) * scale)
        fill = COLOURS.get(bar.state, "#ffffff")
        tip = html.escape(_tooltip(bar, now))
        label = html.escape(f"{bar.job} #{bar.number}")
        warn = " warn" if bar.warning else ""
        out.append(
            f'<g class="bar{warn}" data-job="{html.escape(bar.job)}" data-attempt="{bar.number}"'
            f' data-state="{bar.state}" data-host="{html.escape(bar.host)}"><title>{tip}</title>'
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 12}" text-anchor="end">{label}</text>'
            f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(0.0, x1 - x0):.1f}" height="12"'
            f' fill="{fill}" fill-opacity="0.35"/>'
            f'<rect x="{x1:.1f}" y="{y + 2}" width="{x2 - x1:.1f}" height="12" fill="{fill}"'
            f' stroke="{"#b91c1c" if bar.warning else "#6b7280"}" stroke-width="0.5"/>'
            f'<rect x="{x1:.1f}" y="{y + 12}" width="{x2 - x1:.1f}" height="2"'
            f' fill="{hosts[bar.host]}"/></g>'
        )
    y = TOP + ROW * len(bars) + 18
    x = float(LABEL_WIDTH)
    for host, colour in hosts.items():
        out.append(f'<rect x="{x:.0f}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14:.0f}" y="{y}">{html.escape(host)}</text>')
        x += 24 + 7 * len(host)
    out.append("</svg>")
    return "\n".join(out) + "\n"


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #111827; }
table { border-collapse: collapse; margin-top: 1em; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 2px 8px; text-align: left; }
td.num { text-align: right; }
tr.warn td.warning { color: #b91c1c; }
"""


def timeline_html(workflow: str, bars: Sequence[Bar], now: float | None = None) -> str:
    """A self-contained HTML page: the timeline and a table of every attempt's usage."""
    now = time.time() if now is None else now
    name = html.escape(workflow)
    rows = []
    for bar in bars:
        used = bar.usage or Usage()
        start = bar.started if bar.started is not None else bar.launched
        rows.append(
            f'<tr class="attempt{" warn" if bar.warning else ""}"><td>{html.escape(bar.job)}</td>'
            f'<td class="num">{bar.number}</td><td>{html.escape(bar.host)}</td><td>{bar.state}</td>'
            f"<td>{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(start))}</td>"
            f'<td class="num">{_seconds(used.wall)}</td><td class="num">{_seconds(used.cpu)}</td>'
            f'<td class="num">{format_bytes(used.max_rss)}</td>'
            f'<td class="warning">{html.escape(bar.warning or "")}</td></tr>'
        )
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{name} · ccspec timeline</title><style>{STYLE}</style></head><body>\n"
        f"<h1>{name}</h1>\n<p>{len(bars)} attempts; generated by ccspec at "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(now))}</p>\n"
        + timeline_svg(bars, now)
        + "<table><thead><tr><th>Job</th><th>Attempt</th><th>Host</th><th>State</th>"
        "<th>Started (UTC)</th><th>Wall</th><th>CPU</th><th>Peak memory</th><th>Warning</th>"
        "</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n</body></html>\n"
    )
