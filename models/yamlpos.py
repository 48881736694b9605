"""YAML loading that keeps where every node came from, so errors can name file:line:col.

`load_with_positions(text, filename)` returns plain Python data (dict/list/scalars) plus a
`Positions` index from key paths (tuples like ("steps", 3, "needs")) to 1-based (line, col).
Only YAML's safe subset is accepted; duplicate mapping keys are an error, because a silently
overwritten `due:` in a playbook is exactly the kind of mistake that costs minutes at 3 a.m.
Anyone with a token may send a playbook to validate, so nesting and alias expansion are
bounded (MAX_DEPTH, MAX_NODES, MAX_ALIAS_NODES) before anything recurses or expands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, NoReturn

import yaml

from models.errors import clipped
from models.gc_pause import paused_gc

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
    # The id of each list item that has one (a step's `id`, a module entry's `as` or `use`),
    # so an error names `steps[3] (transfer)`, not a position the author must count to.
    names: dict[PathKey, str] = field(default_factory=dict)

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

    def named(self, path: PathKey) -> str:
        """`path` as format_path writes it, each list item that has an id named after its
        position: ("steps", 3, "needs", 0) -> "steps[3] (transfer).needs[0]"."""
        if not self.names:
            return format_path(path)
        out = ""
        for i, part in enumerate(path):
            if isinstance(part, int):
                out += f"[{part}]"
                name = self.names.get(tuple(path[: i + 1]))
                if name is not None:
                    out += f" ({name})"
            else:
                out += f".{part}" if out else str(part)
        return out


class YamlSyntaxError(ValueError):
    """The text is not YAML we accept; carries the position of the problem."""

    def __init__(self, filename: str, line: int, col: int, message: str, path: str = "",
                 named: str = "") -> None:
        shown = named or path
        super().__init__(f"{filename}:{line}:{col}: {shown + ': ' if shown else ''}{message}")
        self.path = path  # key path of the bad value, when known ("" for syntax errors)
        self.named = named  # the path with list items' ids (Positions.named), if it has any
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
    with paused_gc():  # millions of objects that all stay alive: see models/gc_pause.py
        return _load_with_positions(text, filename)


def _load_with_positions(text: str, filename: str) -> tuple[Any, Positions]:
    positions = Positions(filename=filename)
    try:
        loader = _Loader(text)
        try:
            node = _compose(loader, filename)
            data = None if node is None else _build(node, (), positions, loader)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise _syntax_error(text, filename, line, col, exc.problem or exc) from exc
    except yaml.reader.ReaderError as exc:
        # A control character such as NUL: not a MarkedYAMLError, but it has an offset.
        line, col = _line_col(text, exc.position)
        message = _invalid(exc.reason, "含有不允许的字符")
        raise YamlSyntaxError(filename, line, col, message) from exc
    except UnicodeEncodeError as exc:
        # libyaml re-encodes the text as UTF-8, which a lone surrogate cannot be.
        line, col = _line_col(text, exc.start, chars=True)
        raise YamlSyntaxError(
            filename, line, col, _invalid("not valid Unicode text", "不是有效的 Unicode 文本")
        ) from exc
    except yaml.YAMLError as exc:
        # Any other failure of the YAML library is still a bad file, never a crash.
        raise YamlSyntaxError(filename, 1, 1, _invalid(exc)) from exc
    return data, positions


def top_level_keys(stream: IO[bytes] | str, filename: str) -> Iterator[str]:
    """The keys of the document's top-level mapping, in order, from the parser's events alone:
    nothing is built and no alias expanded, and a file is read (16 KB at a time) only as far
    as the caller iterates. Deciding what kind of file this is (the CLI: an org chart or a
    playbook?) by parsing it in full made `closeloop validate` parse a 5 MB playbook twice.
    Nothing for a document that is not a mapping; a key that is not a scalar is passed over.
    Raises YamlSyntaxError where the text stops being YAML, if the caller reads that far."""
    loader = _Loader(stream)
    try:
        get_event = loader.get_event
        get_event()  # StreamStartEvent
        if not loader.check_event(yaml.DocumentStartEvent):
            return
        get_event()
        if not isinstance(get_event(), yaml.MappingStartEvent):
            return
        while not loader.check_event(yaml.MappingEndEvent):
            key = get_event()
            if isinstance(key, yaml.ScalarEvent):
                yield key.value
            else:
                _skip_rest(loader, key)
            _skip_rest(loader, get_event())  # the value
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(filename, line, col, _invalid(exc.problem or exc)) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(filename, 1, 1, _invalid(exc)) from exc
    finally:
        loader.dispose()


def _skip_rest(loader: Any, event: yaml.Event) -> None:
    """Reads past the node `event` starts (a collection's events up to its end)."""
    depth = int(isinstance(event, yaml.CollectionStartEvent))
    while depth:
        event = loader.get_event()
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


# libyaml's parser is ~5x faster than pure Python; it also keeps positions.
_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Limits checked while composing, before anything recurses or expands. A playbook nests about
# 6 deep and has a few thousand values (the 100-step bench playbook: ~5,400, ~54 a step); the
# limits are far above that but stop input that would take the process down: PyYAML's and
# libyaml's composers recurse once per level (200 KB of `[` segfaults them), and aliases of
# aliases expand exponentially ("billion laughs": 500 bytes -> 10^9 values, tens of GB).
MAX_DEPTH = 100  # nested collections
# Values in the document, aliases expanded. Text needs 2 bytes or more a value, so this only
# bounds files of megabytes (a 5,000-step playbook has ~270,000).
MAX_NODES = 1_000_000
# Values that aliases repeat, in all. Real anchors are a `when:` or a ladder reused by a few
# dozen steps; this bounds what a small text can cost (~100,000 values: ~30 MB, ~0.2 s).
MAX_ALIAS_NODES = 100_000


def _compose(loader: Any, filename: str) -> yaml.Node | None:
    """The single document of the stream as a node graph, like yaml.compose, but iterative
    over the parser's events (the parser does not recurse) and refusing, at the offending
    event, input beyond MAX_DEPTH, MAX_NODES or MAX_ALIAS_NODES."""
    get_event = loader.get_event
    get_event()  # StreamStartEvent
    if loader.check_event(yaml.StreamEndEvent):
        return None
    get_event()  # DocumentStartEvent
    anchors: dict[str, yaml.Node] = {}
    # Expanded size of each anchored node, known once the node is complete: an alias to an
    # anchor that is still open would make an infinite structure.
    sizes: dict[str, int] = {}
    # A complete node goes into the innermost open collection: a sequence takes it at once, a
    # mapping pairs a key with the value that follows it (`key` waits in between).
    items: list[Any] = []
    in_mapping = False
    key: yaml.Node | None = None
    # The open collections, innermost last, each with `total` when it opened, its anchor, and
    # the key that was waiting in the enclosing mapping (it gets its value when this closes).
    stack: list[tuple[yaml.CollectionNode, int, str | None, yaml.Node | None]] = []
    total = 0  # values so far, aliases expanded
    repeated = 0  # of which aliases added
    while True:
        event = get_event()
        kind = type(event)
        node: yaml.Node
        if kind is yaml.ScalarEvent:  # most events: checked first, built inline
            total += 1
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                                   style=event.style)
            if event.anchor is not None:
                _anchor(filename, event, node, anchors)
                sizes[event.anchor] = 1
        elif kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
            total += 1
            if total > MAX_NODES:
                _refuse(filename, event, f"the document has more than {MAX_NODES:,} values",
                        f"文件中的值超过 {MAX_NODES:,} 个")
            if len(stack) >= MAX_DEPTH:
                _refuse(filename, event, f"nested too deeply (more than {MAX_DEPTH} levels)",
                        f"嵌套过深（超过 {MAX_DEPTH} 层）")
            node_kind = yaml.SequenceNode if kind is yaml.SequenceStartEvent else yaml.MappingNode
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(node_kind, None, event.implicit)
            node = node_kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
            if event.anchor is not None:
                _anchor(filename, event, node, anchors)
            stack.append((node, total - 1, event.anchor, key))
            items, in_mapping, key = node.value, node_kind is yaml.MappingNode, None
            continue
        elif kind is yaml.AliasEvent:
            name = event.anchor
            if name not in anchors:
                _refuse(filename, event, f"found undefined alias {name!r}",
                        f"别名 *{name} 没有对应的锚点")
            if name not in sizes:
                _refuse(filename, event,
                        f"alias *{name} refers to a node that contains it (a recursive structure)",
                        f"别名 *{name} 指向包含它自己的节点（递归结构）")
            total += sizes[name]
            repeated += sizes[name]
            if repeated > MAX_ALIAS_NODES:
                _refuse(filename, event, f"alias *{name}: aliases would repeat more than "
                        f"{MAX_ALIAS_NODES:,} values in all",
                        f"别名 *{name}：别名展开的值总计将超过 {MAX_ALIAS_NODES:,} 个")
            node = anchors[name]
        else:  # SequenceEndEvent or MappingEndEvent
            node, start, name, key = stack.pop()
            node.end_mark = event.end_mark
            if name is not None:
                sizes[name] = total - start
            if not stack:
                break
            parent = stack[-1][0]
            items, in_mapping = parent.value, isinstance(parent, yaml.MappingNode)
        if total > MAX_NODES:
            _refuse(filename, event, f"the document has more than {MAX_NODES:,} values",
                    f"文件中的值超过 {MAX_NODES:,} 个")
        if not stack:  # a document that is a single scalar (or alias)
            break
        if not in_mapping:
            items.append(node)
        elif key is None:
            key = node
        else:
            items.append((key, node))
            key = None
    get_event()  # DocumentEndEvent
    if not loader.check_event(yaml.StreamEndEvent):
        _refuse(filename, get_event(), "expected a single document in the stream, "
                "but found another document", "一个文件只能有一个 YAML 文档（--- 之后又有一个）")
    return node


def _anchor(filename: str, event: yaml.NodeEvent, node: yaml.Node,
            anchors: dict[str, yaml.Node]) -> None:
    if event.anchor in anchors:
        _refuse(filename, event, f"found duplicate anchor {event.anchor!r}",
                f"锚点 &{event.anchor} 重复")
    anchors[event.anchor] = node


# A key written with the full-width colon of a Chinese input method (`due：2h`): YAML reads
# the line as plain text and stops at a later line ("could not find expected ':'"), so the
# error would name the line after the mistake. Keys are ASCII slugs (playbooks, org charts).
_FULL_WIDTH_KEY = re.compile(r"^[ \t]*(?:-[ \t]+)?[A-Za-z0-9_.\-]+[ \t]*(：)")
# A key with no space after its colon (`due:5m`, or the input method's full-width space
# `due:\u30005m`): YAML reads `due:5m` as one word, so again the error comes a line later. The
# key starts with a letter (a time like 08:30 is not a key) and what follows is not `//` (a
# URL such as json://host in a list is a value, not a key).
_NO_SPACE_KEY = re.compile(r"^[ \t]*(?:-[ \t]+)?[A-Za-z_][A-Za-z0-9_.\-]*:([^ \t\r\n/])")
# A line indented with the input method's full-width space (U+3000) in front of a key. Only
# before a key: a 说明 in a `|` block may open its paragraphs with 　　, as Chinese text does.
_WIDE_INDENT = re.compile(r"^[ \t\u3000]*?(\u3000)[ \t\u3000]*(?:-[ \t]+)?[A-Za-z_][\w.\-]*[ \t]*:")
# How many lines above the reported one the mistake may sit (a plain scalar running on).
_FULL_WIDTH_LOOKBACK = 3

_FULL_WIDTH = ("键后面用了全角冒号“：”，请改为半角冒号“:”并在其后加一个空格",
               "full-width colon '：' after a key; write ':' followed by a space")
_TAB = ("缩进里有制表符（Tab），YAML 只能用空格缩进，请把 Tab 换成空格",
        "a tab character; YAML indents with spaces only")
_WIDE_SPACE = ("缩进里有全角空格（U+3000），YAML 只能用半角空格缩进，请换成半角空格",
               "a full-width space (U+3000) in the indentation; YAML indents with ASCII spaces")
_NO_SPACE = ("键后面的冒号“:”之后缺少空格，请在冒号后加一个半角空格",
             "no space after the ':' of a key; write ': ' (colon and space)")
_WIDE_SPACE_AFTER = ("键后面的冒号“:”之后是全角空格（U+3000），请改为半角空格",
                     "a full-width space (U+3000) after the ':' of a key; write an ASCII space")


def _syntax_error(text: str, filename: str, line: int, col: int,
                  problem: object) -> YamlSyntaxError:
    """The parser's error, pointed at the mistake an operator typing Chinese makes, at its
    own line and column (YAML often gives up a line later, and its words do not say what the
    culprit is): a key with a full-width colon, a tab, a full-width space in the indentation,
    no space after a key's colon. Anything else keeps YAML's words, with a hint if one fits."""
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    said = str(problem)
    tab = _tab_column(here, col, said)
    if tab:
        english = problem if "tab" in said else _TAB[1]
        return YamlSyntaxError(filename, line, tab, _invalid(english, _TAB[0]))
    for n in range(min(line, len(lines)), max(line - _FULL_WIDTH_LOOKBACK, 1) - 1, -1):
        text_n = lines[n - 1]
        found = _FULL_WIDTH_KEY.match(text_n)
        if found:
            return YamlSyntaxError(filename, n, found.start(1) + 1,
                                   _invalid(_FULL_WIDTH[1], _FULL_WIDTH[0]))
        found = _WIDE_INDENT.match(text_n)
        if found:
            return YamlSyntaxError(filename, n, found.start(1) + 1,
                                   _invalid(_WIDE_SPACE[1], _WIDE_SPACE[0]))
        found = _NO_SPACE_KEY.match(text_n)
        if found:
            zh, english = _WIDE_SPACE_AFTER if found[1] == "\u3000" else _NO_SPACE
            return YamlSyntaxError(filename, n, found.start(1), _invalid(english, zh))
    for words, zh in _HINTS:
        if words in said:
            return YamlSyntaxError(filename, line, col, _invalid(problem, zh))
    return YamlSyntaxError(filename, line, col, _invalid(problem))


def _tab_column(line: str, col: int, said: str) -> int:
    """1-based column of the tab YAML stopped at, or 0 when a tab is not the problem: the
    character at the error ("found character that cannot start any token" is a tab before
    `-` or after it), or, when YAML says "tab", the first tab of the line's indentation."""
    if line[col - 1:col] == "\t":
        return col
    if "tab" in said:
        indent = line[:len(line) - len(line.lstrip(" \t"))]
        return indent.index("\t") + 1 if "\t" in indent else col
    return 0


# What the parser's usual complaints mean for someone editing by hand, in Chinese first.
_HINTS = (
    ("mapping values are not allowed", "格式有误：这一行的缩进与同级的行没有对齐，"
     "或值里有未加引号的“: ”（请加引号）"),
    ("expected <block end>", "格式有误：这一行的缩进与同级的行没有对齐"),
    ("did not find expected '-' indicator", "格式有误：这一行的缩进与同级的行没有对齐"),
    ("did not find expected key", "格式有误：这一行的缩进与同级的行没有对齐"),
    ("could not find expected ':'", "格式有误：这一行或上一行缺少冒号“:”，或缩进没有对齐"),
)


def _invalid(problem: object, zh: str = "格式有误，不是有效的 YAML") -> str:
    """`中文 / invalid YAML: ...`: the YAML library says what is wrong in English only, so the
    Chinese half is ours (the product's messages read Chinese first)."""
    return f"{zh} / invalid YAML: {problem}"


def _refuse(filename: str, event: yaml.Event, message: str, zh: str) -> NoReturn:
    mark = event.start_mark
    raise YamlSyntaxError(filename, mark.line + 1, mark.column + 1, _invalid(message, zh))


def _line_col(text: str, offset: int, *, chars: bool = False) -> tuple[int, int]:
    """1-based line and column of an offset into `text`; libyaml counts UTF-8 bytes, PyYAML's
    pure-Python reader (and `chars=True`) characters."""
    if not chars and _Loader is not yaml.SafeLoader:
        offset = len(text.encode("utf-8")[:offset].decode("utf-8", "ignore"))
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _build(node: yaml.Node, path: PathKey, positions: Positions, constructor: Any) -> Any:
    positions.marks[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlSyntaxError(
                    positions.filename, *_pair(key_node),
                    "不支持 YAML 合并键（<<） / YAML merge keys (<<) are not supported",
                )
            key = _scalar(key_node, constructor)
            if isinstance(key, str) and not key_node.style:  # plain: libyaml says "", PyYAML None
                _check_plain_key(key, key_node, positions.filename, format_path(path))
            if not isinstance(key, str | int | bool | float) or isinstance(key, bool):
                key = str(key)
            if key in out:
                line, col = _pair(key_node)
                message = f"重复的键 {key} / duplicate key '{key}'"
                if not path:
                    message = f"顶层重复的键 {key} / top level: duplicate key '{key}'"
                raise YamlSyntaxError(positions.filename, line, col, message,
                                      format_path(path), positions.named(path))
            child = (*path, key)
            positions.key_marks[child] = _mark(key_node)
            out[key] = _build(value_node, child, positions, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            if isinstance(item, yaml.MappingNode):
                _name_item(item, (*path, i), positions)
        return [
            _build(item, (*path, i), positions, constructor) for i, item in enumerate(node.value)
        ]
    try:
        return _scalar(node, constructor)
    except (yaml.constructor.ConstructorError, ValueError) as exc:
        # PyYAML raises a bare ValueError for impossible dates such as 2025-02-30.
        line, col = _pair(node)
        shown = clipped(repr(getattr(node, "value", "")), 60)
        problem = getattr(exc, "problem", None)
        message = (
            f"无法识别的值 {shown} / {problem}" if problem
            else f"不是有效的值 {shown} / not a valid value: {shown} ({exc})"
        )
        raise YamlSyntaxError(positions.filename, line, col, message, format_path(path)) from exc


_NAME_KEYS = ("id", "as", "use")  # a step's id; a module entry's prefix, else its module


def _name_item(node: yaml.MappingNode, path: PathKey, positions: Positions) -> None:
    """Records the id of the list item at `path` before its contents are built, so an error
    inside it (a duplicate key too) can name it. Only a plain text id is a name."""
    found: dict[str, str] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        if key in _NAME_KEYS and isinstance(value_node, yaml.ScalarNode) and value_node.value:
            found.setdefault(key, value_node.value)
    name = found.get("id") or (found.get("as") or found.get("use") if "use" in found else None)
    if name:
        positions.names[path] = clipped(name, 40)


def _check_plain_key(key: str, node: yaml.Node, filename: str, path: str) -> None:
    """The input method's mistakes that still parse, caught at the key rather than later as an
    unknown key that nobody recognises: `　　kind: x` indented with full-width spaces (a key
    `　　kind`), and `{type：string}` or `{type:string}` in braces (a key `type：string` with no
    value, so `type` is missing). Keys are ASCII slugs, so neither is ever meant."""
    if key[0] == "\u3000":
        line, col = _pair(node)
        raise YamlSyntaxError(filename, line, col, _invalid(_WIDE_SPACE[1], _WIDE_SPACE[0]), path)
    if "：" in key or ":" in key:
        found = _FULL_WIDTH_KEY.match(key) or _NO_SPACE_KEY.match(key)
        if found is None:
            return
        line, col = _pair(node)
        col += found.start(1) - (found[1] != "：")  # at the colon
        if found[1] == "：":
            zh, english = _FULL_WIDTH
        else:
            zh, english = _WIDE_SPACE_AFTER if found[1] == "\u3000" else _NO_SPACE
        raise YamlSyntaxError(filename, line, col, _invalid(english, zh), path)


_STR = "tag:yaml.org,2002:str"


# A Chinese character, or Chinese (full-width) punctuation.
_WIDE = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"
_FOLD_GAP = re.compile(f"(?<=[{_WIDE}]) (?=[{_WIDE}])")


def _scalar(node: yaml.Node, constructor: Any) -> Any:
    # Most values of a playbook are strings, which are the node's own text: the constructor's
    # dispatch (four calls and a cache entry per value) was a fifth of parsing a large file.
    if node.tag == _STR and isinstance(node, yaml.ScalarNode):
        return unfold_chinese(node.value) if node.style == ">" else node.value
    return constructor.construct_object(node, deep=True)


def unfold_chinese(folded: str) -> str:
    """A folded (`>`) scalar with its line breaks between Chinese joined without a space.

    YAML folds a line break into a space, right for English and wrong for Chinese, which has
    none between words: a long 说明 wrapped in the file read 「限期整改、 异人复查」 on the task.
    Chinese has no use for a single space between two of its characters, so any such space
    in a folded scalar is taken for a fold (English and numbers keep theirs).
    """
    return _FOLD_GAP.sub("", folded)


def _pair(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
