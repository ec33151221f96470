"""Warn when the `q` filter's output is placed inside quotes in a `run:` command.

`q` turns a value into one single-quoted shell word. Written inside quotes, as in
`echo "{{ v | q }}"`, its quotes become literal characters or close the surrounding ones, and
a value holding `$(...)`, backticks or quotes runs as shell. Called by `ccspec.spec.validate`;
the result is a warning (the spec stays valid), one per place.
"""

from __future__ import annotations

import dataclasses
import re

from ccspec.errors import Diagnostic
from ccspec.spec.models import Workflow
from ccspec.spec.source import Source

__all__ = ["CODE", "check_quoted_q", "quoted_q_uses"]

CODE = "q-inside-quotes"
_USES_Q = re.compile(r"\|\s*(?:q|shell_quote)\b")
_TAG = re.compile(r"\{\{(?P<expression>.*?)\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_NAMES = {"'": "single quotes", '"': "double quotes", "$'": "$'...' quotes"}


def check_quoted_q(workflow: Workflow, source: Source) -> list[Diagnostic]:
    """One warning for each `| q` expression that sits inside quotes in a job's `run:`."""
    found: list[Diagnostic] = []
    for name, job in workflow.jobs.items():
        if job.run is None or not _USES_Q.search(job.run):
            continue
        for line, quote, expression in quoted_q_uses(job.run):
            where = f" (line {line} of the command)" if line > 1 else ""
            message = (
                f"{{{{ {expression} }}}} sits inside {_NAMES[quote]}{where}; `q` adds its own quotes, "
                "so these undo them and a value holding $(...) or a quote runs as shell code: "
                "remove the quotes around it"
            )
            diagnostic = source.diagnostic(("jobs", name, "run"), message, CODE)
            found.append(dataclasses.replace(diagnostic, severity="warning"))
    return found


def quoted_q_uses(command: str) -> list[tuple[int, str, str]]:
    """(template line, enclosing quote, expression) for each `q` expression inside quotes.

    The command's literal text is read as a POSIX shell reads it (quotes, backslashes,
    `$(...)` and backticks, comments); other template expressions count as plain words and
    `{% %}` tags as nothing (both branches of an `if` are read one after the other).
    """
    shell = _ShellState()
    found: list[tuple[int, str, str]] = []
    at = 0
    for tag in _TAG.finditer(command):
        shell.feed(command[at : tag.start()])
        at = tag.end()
        expression = tag["expression"]
        if expression is None:
            continue  # a {% statement %} or {# comment #}
        quote = shell.quote()
        if quote is not None and _USES_Q.search(expression):
            found.append(
                (command.count("\n", 0, tag.start()) + 1, quote, expression.strip("-+ \t\n"))
            )
        shell.feed("x")  # the expression's output is a word
    return found


# Runs of characters that change no state, by state (None: unquoted, in $(...) or backticks).
_PLAIN = {
    "'": re.compile(r"[^']+"),
    "$'": re.compile(r"[^'\\]+"),
    '"': re.compile(r'[^"\\$`]+'),
    "#": re.compile(r"[^\n]+"),
    None: re.compile(r"[^'\"\\$`()#\n]+"),
}


class _ShellState:
    """Where a POSIX shell is after reading some text: a stack of open quotes and `$(`."""

    def __init__(self) -> None:
        self.stack: list[str] = []  # "'", '"', "$'", "`", "$("
        self.escaped = False
        self.comment = False
        self.word_start = True

    def quote(self) -> str | None:
        """The quotes the next character is inside (None: unquoted or in a `$(...)`)."""
        top = self.stack[-1] if self.stack else None
        return top if top in ("'", '"', "$'") else None

    def feed(self, text: str) -> None:
        i, end = 0, len(text)
        while i < end:
            if not self.escaped:  # skip a run of characters that change nothing at once
                state = "#" if self.comment else self.quote()
                plain = _PLAIN[state].match(text, i)
                if plain is not None:
                    i = plain.end()
                    if state is None:
                        self.word_start = text[i - 1] in " \t;&|<>"
                    continue
            i = self._step(text, i)

    def _step(self, text: str, i: int) -> int:
        """Read the character at `i`; return where the next one starts."""
        c = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        top = self.stack[-1] if self.stack else None
        if self.escaped:
            self.escaped, self.word_start = False, False
            return i + 1
        if self.comment:
            self.comment = c != "\n"
            self.word_start = True
            return i + 1
        if top == "'":
            if c == "'":
                self.stack.pop()
            return i + 1
        if c == "\\":
            self.escaped = True
            return i + 1
        if top == "$'":
            if c == "'":
                self.stack.pop()
            return i + 1
        if top == '"':
            if c == '"':
                self.stack.pop()
            elif c == "$" and nxt == "(":
                self.stack.append("$(")
                return i + 2
            elif c == "`":
                self.stack.append("`")
            return i + 1
        # unquoted: at the top level, inside $(...) or inside backticks
        if c == "#" and self.word_start:
            self.comment = True
            return i + 1
        self.word_start = c in " \t\n;&|()<>"
        if c == "'":
            self.stack.append("'")
        elif c == '"':
            self.stack.append('"')
        elif c == "$" and nxt == "'":
            self.stack.append("$'")
            return i + 2
        elif c == "$" and nxt == "(":
            self.stack.append("$(")
            self.word_start = True
            return i + 2
        elif c == "`":
            if top == "`":
                self.stack.pop()
            else:
                self.stack.append("`")
        elif c == "(" and top == "$(":
            self.stack.append("$(")  # a nested parenthesis closes with its own ")"
        elif c == ")" and top == "$(":
            self.stack.pop()
        return i + 1
