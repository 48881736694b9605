"""YAML loading that keeps where every node came from, so errors can name file:line:col.

`load_with_positions(text, filename)` returns plain Python data (dict/list/scalars) plus a
`Positions` index from key paths (tuples like ("steps", 3, "needs")) to 1-based (line, col).
Only YAML's safe subset is accepted; duplicate mapping keys are an error, because a silently
overwritten `due:` in a playbook is exactly the kind of mistake that costs minutes at 3 a.m.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    col: int  # 1-based


@dataclass
class Positions:
    """Where each node sits in the source; lookups fall back to the nearest known parent."""

    filename: str
    marks: dict[PathKey, Mark] = field(default_factory=dict)
    key_marks: dict[PathKey, Mark] = field(default_factory=dict)

    def of(self, path: PathKey) -> Mark:
        """Position of the value at `path` (or of its closest ancestor that has one)."""
        p = tuple(path)
        while p:
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get((), Mark(1, 1))

    def of_key(self, path: PathKey) -> Mark:
        """Position of the mapping key that introduces `path` (falls back to the value)."""
        return self.key_marks.get(tuple(path)) or self.of(path)


class YamlSyntaxError(ValueError):
    """The text is not YAML we accept; carries the position of the problem."""

    def __init__(self, filename: str, line: int, col: int, message: str, path: str = "") -> None:
        super().__init__(f"{filename}:{line}:{col}: {path + ': ' if path else ''}{message}")
        self.path = path  # key path of the bad value, when known ("" for syntax errors)
        self.filename = filename
        self.line = line
        self.col = col
        self.message = message


def format_path(path: PathKey) -> str:
    """("steps", 3, "needs") -> "steps[3].needs"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_with_positions(text: str, filename: str) -> tuple[Any, Positions]:
    positions = Positions(filename=filename)
    try:
        # libyaml's composer keeps positions too and is ~5x faster than pure Python.
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except RecursionError:
        raise YamlSyntaxError(filename, 1, 1, "invalid YAML: nested too deeply") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(filename, line, col, f"invalid YAML: {exc.problem or exc}") from exc
    if node is None:
        return None, positions
    constructor = yaml.SafeLoader(text)
    try:
        data = _build(node, (), positions, constructor)
    except RecursionError:
        raise YamlSyntaxError(filename, 1, 1, "invalid YAML: nested too deeply") from None
    finally:
        constructor.dispose()
    return data, positions


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _build(node: yaml.Node, path: PathKey, positions: Positions, constructor: Any) -> Any:
    positions.marks[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlSyntaxError(
                    positions.filename, *_pair(key_node), "YAML merge keys (<<) are not supported"
                )
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | bool | float) or isinstance(key, bool):
                key = str(key)
            if key in out:
                line, col = _pair(key_node)
                where = format_path(path) or "top level"
                raise YamlSyntaxError(
                    positions.filename, line, col, f"{where}: duplicate key '{key}'"
                )
            child = (*path, key)
            positions.key_marks[child] = _mark(key_node)
            out[key] = _build(value_node, child, positions, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, i), positions, constructor) for i, item in enumerate(node.value)
        ]
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.constructor.ConstructorError, ValueError) as exc:
        # PyYAML raises a bare ValueError for impossible dates such as 2025-02-30.
        line, col = _pair(node)
        problem = getattr(exc, "problem", None) or (
            f"not a valid value: {getattr(node, 'value', '')!r} ({exc})"
        )
        raise YamlSyntaxError(
            positions.filename, line, col, str(problem), format_path(path)
        ) from exc


def _pair(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
