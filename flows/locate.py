"""From "something is wrong at this key path" to `file:line:col: path: message`.

`Where` knows the file and YAML positions of one node (a playbook, or one step of a module
file), plus `origins`: values that were substituted from somewhere else (a module's `${due}`
filled from the playbook's `with: {due: 5m}`), so a bad value is reported where it was
written, not where it landed. `validation_errors` rewrites pydantic's error locations into
key paths and positions (the idea of Dagster's pydantic_yaml), and says in plain words
what was expected. Every message reads `中文 / English` (`zh_en`): Chinese first, as the
product speaks, with the English a bureau may need after it.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from flows.spec import NAME_PATTERN, SLUG_PATTERN, STEP_ID_PATTERN
from models.errors import SourceError
from models.yamlpos import Mark, PathKey, Positions, format_path

_MAX_CHOICES = 20


def zh_en(zh: str, en: str) -> str:
    """A message as the product writes them: Chinese first, then the English after " / "."""
    return f"{zh} / {en}"


def _pick(names: Iterable[str], given: str | None, limit: int) -> tuple[list[str], int | None]:
    """The names to show, and how many there are in all when only some are shown."""
    names = list(dict.fromkeys(names))
    if len(names) <= limit:
        return names, None
    close = difflib.get_close_matches(given or "", names, n=5, cutoff=0.5) if given else []
    return close or names[:5], len(names)


def choices(names: Iterable[str], given: str | None = None, *, limit: int = _MAX_CHOICES) -> str:
    """`a, b, c` for an error message; long lists keep the closest matches to `given`."""
    shown, total = _pick(names, given, limit)
    if not shown:
        return "none"
    return ", ".join(shown) if total is None else f"{', '.join(shown)}, ... ({total} in all)"


def choices_zh(names: Iterable[str], given: str | None = None, *, limit: int = _MAX_CHOICES
               ) -> str:
    """`a、b、c` for the Chinese half of a message, shortened as `choices` does."""
    shown, total = _pick(names, given, limit)
    if not shown:
        return "无"
    return "、".join(shown) if total is None else f"{'、'.join(shown)} 等，共 {total} 个"


def not_known(zh: str, en: str, name: str, names: Iterable[str], *,
              limit: int = _MAX_CHOICES) -> str:
    """`没有角色 x（可选：a、b）/ unknown role 'x' (known: a, b)`; `zh`, `en` name the kind."""
    names = list(names)
    hint_zh, hint_en = separator_hint(name)
    return zh_en(f"没有{zh} {name}（可选：{choices_zh(names, name, limit=limit)}）{hint_zh}",
                 f"unknown {en} '{name}' (known: {choices(names, name, limit=limit)})"
                 f"{hint_en}")


# A list typed with a Chinese input method: `[a，b]` is one item 'a，b' to YAML.
_CHINESE_SEPARATORS = ("，", "、", "；")


def separator_hint(name: str) -> tuple[str, str]:
    """For a name holding a Chinese comma (`rescue.arrive，sweep`): what went wrong, in both
    languages, to append to the "unknown" message; empty otherwise."""
    used = next((s for s in _CHINESE_SEPARATORS if s in str(name)), None)
    if used is None:
        return "", ""
    return (f"；其中有中文标点“{used}”：列表各项之间请用英文逗号“,”分隔",
            f"; it holds '{used}': separate list items with ','")


@dataclass(frozen=True)
class Origin:
    """Where a substituted value was written: its file, positions and key path."""

    file: str
    positions: Positions
    path: PathKey


@dataclass(frozen=True)
class Where:
    """Positions of one YAML node (`base`) in `file`; `at` makes a SourceError under it."""

    file: str
    positions: Positions
    base: PathKey = ()
    origins: Mapping[PathKey, Origin] = field(default_factory=dict)

    def child(self, *rel: str | int) -> Where:
        return Where(self.file, self.positions, (*self.base, *rel), self.origins)

    def at(self, rel: PathKey, message: str, *, key: bool = False) -> SourceError:
        full = (*self.base, *rel)
        if self.origins:
            for cut in range(len(full), len(self.base) - 1, -1):
                origin = self.origins.get(full[:cut])
                if origin is not None:
                    path = (*origin.path, *full[cut:])
                    mark = origin.positions.of(path)
                    return _error(origin.file, mark, path, origin.positions, message)
        mark = self.positions.of_key(full) if key else self.positions.of(full)
        return _error(self.file, mark, full, self.positions, message)

    def line(self) -> int:
        return self.positions.of(self.base).line


def _error(file: str, mark: Mark, path: PathKey, positions: Positions, message: str
           ) -> SourceError:
    plain, named = format_path(path), positions.named(path)
    return SourceError(file, mark.line, mark.col, plain, message,
                       named if named != plain else "")


def validation_errors(
    exc: ValidationError, data: Any, where: Where, model: type[BaseModel]
) -> list[SourceError]:
    """Every error of `exc` (from validating `data` as `model`) at its key path and position."""
    out: list[SourceError] = []
    for error in exc.errors(include_url=False):
        out.append(_one(error, data, where, model))
    return out


def _one(error: Any, data: Any, where: Where, model: type[BaseModel]) -> SourceError:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    loc = tuple(error["loc"])
    if kind == "closeloop":
        loc = (*loc, *ctx.get("at", ()))
    path: list[str | int] = []
    cursor = data
    on_key = False
    for seg in loc:
        if seg == "[key]":
            on_key = True
        elif isinstance(cursor, dict) and seg in cursor:
            path.append(seg)
            cursor = cursor[seg]
        elif isinstance(cursor, list) and isinstance(seg, int) and 0 <= seg < len(cursor):
            path.append(seg)
            cursor = cursor[seg]
        elif kind in ("missing", "closeloop") and isinstance(seg, str) and "[" not in seg:
            # A key that is not there: name it in the path; the position falls back to
            # the mapping that lacks it.
            path.append(seg)
            cursor = None
        # anything else is a pydantic-internal step (a union member, a validator): skip it
    rel = tuple(path)
    if kind == "extra_forbidden":
        name = str(rel[-1]) if rel else "?"
        known = _known_keys(model, rel[:-1])
        return where.at(rel, not_known("字段", "key", name, known, limit=len(known)), key=True)
    return where.at(rel, _message(kind, error, ctx), key=on_key)


def _message(kind: str, error: Any, ctx: dict[str, Any]) -> str:
    """Chinese first, then the English; our own validators' messages are already both."""
    if kind == "closeloop":
        return str(ctx.get("message", error["msg"]))
    if kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        # Every validator of flows/spec.py writes both halves; this keeps the rule if one forgets.
        return message if " / " in message else zh_en("取值无效", message)
    return zh_en(*_pydantic_message(kind, error, ctx))


def _pydantic_message(kind: str, error: Any, ctx: dict[str, Any]) -> tuple[str, str]:
    """pydantic's own errors in plain words: (Chinese, English)."""
    got = _short(error.get("input"))
    if kind == "missing":
        name = error["loc"][-1]
        return f"缺少必填字段 {name}", f"missing required key '{name}'"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        if pattern in (SLUG_PATTERN, STEP_ID_PATTERN):
            return (
                f"标识 {got} 无效：只能用小写字母、数字、- 和 _，以字母或数字开头",
                f"{got} is not a valid id: use lowercase letters, digits, '-' and '_', "
                "starting with a letter or digit",
            )
        if pattern == NAME_PATTERN:
            return (f"名称 {got} 无效：只能用小写字母、数字和 _",
                    f"{got} is not a valid name: use lowercase letters, digits and '_'")
    if kind == "literal_error":
        expected = str(ctx.get("expected"))
        allowed = expected.replace(" or ", ", ").replace(", ", "、")
        return (f"无效的取值 {got}（可选：{allowed}）",
                f"unknown value {got} (expected {expected})")
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"应为映射（键: 值）；收到 {got}", f"expected a mapping of keys; got {got}"
    if kind == "list_type":
        return f"应为列表；收到 {got}", f"expected a list; got {got}"
    if kind == "string_type":
        return f"应为文本；收到 {got}", f"expected text; got {got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"应为整数；收到 {got}", f"expected a whole number; got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"应为 true 或 false；收到 {got}", f"expected true or false; got {got}"
    if kind == "greater_than_equal":
        least = ctx.get("ge")
        return f"不能小于 {least}；收到 {got}", f"must be at least {least}; got {got}"
    if kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        return "不能为空", "must not be empty"
    if kind == "string_too_long":
        return f"过长：最多 {ctx.get('max_length')} 个字符", _lowered(error)
    return "取值无效", _lowered(error)


def _lowered(error: Any) -> str:
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _known_keys(model: type[BaseModel], rel: PathKey) -> list[str]:
    """The keys a mapping at `rel` (under `model`) accepts, by their YAML names."""
    target: Any = model
    for seg in rel:
        target = _inner(target, seg)
        if target is None:
            return []
    if isinstance(target, type) and issubclass(target, BaseModel):
        return [info.alias or name for name, info in target.model_fields.items()]
    return []


def _inner(annotation: Any, seg: str | int) -> Any:
    """The type one step below `annotation` along `seg` (a field, a list index, a dict key)."""
    for candidate in _unwrap(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            for name, info in candidate.model_fields.items():
                if seg in (name, info.alias):
                    return info.annotation
            continue
        origin = typing.get_origin(candidate)
        args = typing.get_args(candidate)
        if origin is list and isinstance(seg, int) and args:
            return args[0]
        if origin is dict and isinstance(seg, str) and len(args) == 2:
            return args[1]
    return None


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]
