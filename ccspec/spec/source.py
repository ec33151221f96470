"""Read a spec file into plain Python data that remembers where every value came from.

Called by `ccspec.spec.validate` before anything else. Parsing uses libyaml's C composer
(PyYAML's `CSafeLoader`): it is several times faster than a pure-Python loader and its nodes
keep line and column marks, so every later diagnostic can point at a line. The node tree is
kept beside the data; `Source.locate(path)` walks it only when a diagnostic needs a position.

Guards against hostile or broken input: a size cap, duplicate keys, several documents, a root
that is not a mapping, unknown tags, recursive aliases, and alias "bombs" (documents whose
expanded size is far beyond the file's own).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ccspec.errors import Diagnostic

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "Source", "ValuePath", "read_source"]

MAX_BYTES = 10 * 1024 * 1024
MAX_NODES = 2_000_000  # values after alias expansion; a 10 MiB spec has far fewer
MAX_DEPTH = 100

ValuePath = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONSTRUCT = yaml.constructor.SafeConstructor()
_SCALARS = {
    "tag:yaml.org,2002:int": _CONSTRUCT.construct_yaml_int,
    "tag:yaml.org,2002:float": _CONSTRUCT.construct_yaml_float,
    "tag:yaml.org,2002:bool": _CONSTRUCT.construct_yaml_bool,
    "tag:yaml.org,2002:null": _CONSTRUCT.construct_yaml_null,
}
# Kept as written: a date in a spec is text for a template, not a datetime object.
_COLLECTION_TAGS = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}
_AS_TEXT = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary", "tag:yaml.org,2002:value"}


@dataclass
class Source:
    """A loaded spec file: its text, its data, and the node tree to locate values."""

    file: str  # as shown in diagnostics
    text: str
    data: Any
    root: Node | None
    _index: dict[int, dict[str, tuple[Node, Node]]] = field(default_factory=dict, repr=False)

    def locate(self, path: ValuePath, *, key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of the value at `path`, or of its key with `key=True`.

        A path that goes deeper than the document (a default, a derived value) resolves to
        the deepest node that exists, so a diagnostic always points somewhere useful.
        """
        node = self.root
        if node is None:
            return (1, 1)
        mark_node: Node = node
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, MappingNode):
                pair = self._pairs(node).get(str(part))
                if pair is None:
                    break
                mark_node = pair[0] if (key and last) else pair[1]
                node = pair[1]
            elif isinstance(node, SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    break
                node = node.value[part]
                mark_node = node
            else:
                break
        mark = mark_node.start_mark
        return (mark.line + 1, mark.column + 1)

    def diagnostic(
        self, path: ValuePath, message: str, code: str, *, key: bool = False
    ) -> Diagnostic:
        line, col = self.locate(path, key=key)
        return Diagnostic(self.file, line, col, message, code)

    def _pairs(self, node: MappingNode) -> dict[str, tuple[Node, Node]]:
        index = self._index.get(id(node))
        if index is None:
            index = {}
            merges: list[Node] = []
            for k, v in node.value:
                if k.tag == _MERGE:
                    merges.extend(v.value if isinstance(v, SequenceNode) else [v])
                elif isinstance(k, ScalarNode):
                    index.setdefault(k.value, (k, v))
            for m in merges:
                if isinstance(m, MappingNode):
                    for name, pair in self._pairs(m).items():
                        index.setdefault(name, pair)
            self._index[id(node)] = index
        return index


class _LoadError(Exception):
    def __init__(self, node: Node | None, message: str, code: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message
        self.code = code


def read_source(
    path: str | os.PathLike[str], display: str | None = None
) -> tuple[Source | None, list[Diagnostic]]:
    """Read and parse one spec file; never raises for bad input."""
    file = display if display is not None else os.fspath(path)
    try:
        size = os.stat(path).st_size
        if size > MAX_BYTES:
            return None, [
                Diagnostic(
                    file,
                    1,
                    1,
                    f"file is {size:,} bytes, over the {MAX_BYTES:,}-byte limit for a spec; split it into several specs",
                    "too-large",
                )
            ]
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        return None, [
            Diagnostic(file, 0, 0, f"cannot read the spec: {exc.strerror or exc}", "unreadable")
        ]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [
            Diagnostic(file, line, 1, "the spec is not UTF-8 text; save it as UTF-8", "encoding")
        ]
    return parse_text(text, file)


def parse_text(text: str, file: str = "<spec>") -> tuple[Source | None, list[Diagnostic]]:
    """Parse spec text. Returns the source (None when unusable) and the problems found."""
    if len(text) > MAX_BYTES:
        return None, [
            Diagnostic(
                file,
                1,
                1,
                f"spec is over the {MAX_BYTES:,}-byte limit; split it into several specs",
                "too-large",
            )
        ]
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_diagnostic(file, exc, text)]
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return None, [
            Diagnostic(
                file,
                line,
                col,
                f"control character U+{ord(char):04X} is not allowed in YAML; remove it",
                "yaml-syntax",
            )
        ]
    except yaml.YAMLError as exc:
        return None, [
            Diagnostic(file, 1, 1, f"YAML error: {str(exc).splitlines()[0]}", "yaml-syntax")
        ]
    except RecursionError:
        return None, [Diagnostic(file, 1, 1, "the YAML nesting is too deep", "yaml-depth")]
    if root is None:
        return None, [
            Diagnostic(
                file,
                1,
                1,
                "the spec is empty; start it with `version: 1` and a `jobs:` mapping",
                "empty",
            )
        ]
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else f"the value {root.value!r}"
        line, col = root.start_mark.line + 1, root.start_mark.column + 1
        return None, [
            Diagnostic(
                file,
                line,
                col,
                f"the top level of a spec must be a mapping of keys (version, jobs, ...), found {kind}",
                "root-not-mapping",
            )
        ]
    converter = _Converter()
    try:
        data, _ = converter.convert(root, 0)
    except _LoadError as exc:
        mark = exc.node.start_mark if exc.node is not None else None
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [*converter.problems(file), Diagnostic(file, line, col, exc.message, exc.code)]
    return Source(file, text, data, root), converter.problems(file)


def _syntax_diagnostic(file: str, exc: yaml.MarkedYAMLError, text: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "invalid YAML"
    lines = text.splitlines()
    if 0 < line <= len(lines) and "\t" in lines[line - 1][:col]:
        problem += "; YAML indentation must use spaces, not tabs"
    if (
        "expected a single document" in str(exc.context or "")
        or "but found another document" in problem
    ):
        return Diagnostic(
            file,
            line,
            col,
            "a spec file holds one YAML document; remove the second `---` or split the file",
            "multiple-documents",
        )
    hint = ""
    if "mapping values are not allowed" in problem:
        hint = "; a value containing ': ' must be quoted"
    elif "did not find expected key" in problem or "expected <block end>" in problem:
        hint = "; check the indentation of this line: keys of one mapping must line up"
    elif "found undefined alias" in (exc.context or "") + problem:
        hint = "; define the anchor (&name) before using it (*name)"
    context = f" {exc.context}" if exc.context else ""
    start = exc.context_mark
    if (
        start is not None
        and mark is not None
        and (start.line, start.column) != (mark.line, mark.column)
    ):
        hint += f" (it started on line {start.line + 1}, column {start.column + 1})"
    return Diagnostic(
        file, line, col, f"YAML syntax error{context}: {problem}{hint}", "yaml-syntax"
    )


def _short_tag(tag: str) -> str:
    return (
        "!!" + tag.removeprefix("tag:yaml.org,2002:")
        if tag.startswith("tag:yaml.org,2002:")
        else tag
    )


class _Converter:
    """Turns a node tree into dicts/lists/scalars, guarding against aliases gone wild."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[Any, int]] = {}
        self._active: set[int] = set()
        self._duplicates: list[tuple[Node, str, MappingNode]] = []

    def problems(self, file: str) -> list[Diagnostic]:
        out = []
        for key, name, mapping in self._duplicates:
            first = next(k for k, _ in mapping.value if type(k) is ScalarNode and k.value == name)
            out.append(
                Diagnostic(
                    file,
                    key.start_mark.line + 1,
                    key.start_mark.column + 1,
                    f"duplicate key {name!r} (first on line {first.start_mark.line + 1}); remove or rename one of them",
                    "duplicate-key",
                )
            )
        return out

    def convert(self, node: Node, depth: int) -> tuple[Any, int]:
        """Return (value, expanded size in nodes). Scalars are handled inline: this loop is
        the hot path of loading a large spec."""
        if type(node) is ScalarNode:
            return self._scalar(node), 1
        key = id(node)
        done = self._memo.get(key)
        if done is not None:
            return done
        if key in self._active:
            raise _LoadError(
                node, "recursive alias: an anchored value contains itself", "yaml-alias"
            )
        if depth >= MAX_DEPTH:
            raise _LoadError(
                node, f"values are nested more than {MAX_DEPTH} levels deep", "yaml-depth"
            )
        if node.tag not in _COLLECTION_TAGS:
            raise _LoadError(
                node,
                f"unsupported YAML tag {_short_tag(node.tag)!r}; ccspec specs use plain YAML values",
                "yaml-tag",
            )
        self._active.add(key)
        if type(node) is SequenceNode:
            items: list[Any] = []
            size = 1
            for child in node.value:
                if type(child) is ScalarNode:
                    items.append(child.value if child.tag == _STR else self._scalar(child))
                    size += 1
                else:
                    value, n = self.convert(child, depth + 1)
                    items.append(value)
                    size += n
            result: tuple[Any, int] = (items, size)
        elif type(node) is MappingNode:
            result = self._mapping(node, depth)
        else:  # pragma: no cover - libyaml only makes these three kinds
            raise _LoadError(node, "unsupported YAML node", "yaml-syntax")
        self._active.discard(key)
        if result[1] > MAX_NODES:
            raise _LoadError(
                node,
                f"aliases expand this value to more than {MAX_NODES:,} nodes; write the values out or reduce the aliases",
                "yaml-alias-bomb",
            )
        self._memo[key] = result
        return result

    def _mapping(self, node: MappingNode, depth: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        merges: list[tuple[Node, Node]] = []
        size = 1
        for k, v in node.value:
            if type(k) is not ScalarNode:
                raise _LoadError(
                    k, "mapping keys must be plain text, not lists or mappings", "yaml-key"
                )
            if k.tag == _MERGE:
                merges.extend((k, m) for m in (v.value if type(v) is SequenceNode else [v]))
                continue
            name = k.value
            if name in out:
                self._duplicates.append((k, name, node))
                continue
            if type(v) is ScalarNode:
                out[name] = v.value if v.tag == _STR else self._scalar(v)
                size += 1
            else:
                out[name], n = self.convert(v, depth + 1)
                size += n
        for merge_key, m in merges:  # explicit keys win over merged ones, earlier merges over later
            if type(m) is not MappingNode:
                raise _LoadError(
                    merge_key, "`<<` merges only mappings (or a list of mappings)", "yaml-merge"
                )
            merged, n = self.convert(m, depth + 1)
            size += n
            for name, value in merged.items():
                out.setdefault(name, value)
        return out, size

    @staticmethod
    def _scalar(node: ScalarNode) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        build = _SCALARS.get(tag)
        if build is not None:
            try:
                return build(node)
            except (ValueError, KeyError, TypeError):
                kind = tag.rsplit(":", 1)[-1]
                raise _LoadError(
                    node,
                    f"the tag !!{kind} cannot read {node.value!r} as a {kind}; remove the tag or fix the value",
                    "yaml-tag",
                ) from None
        if tag in _AS_TEXT:
            return node.value
        raise _LoadError(
            node,
            f"unsupported YAML tag {_short_tag(tag)!r}; ccspec specs use plain YAML values",
            "yaml-tag",
        )
