"""From "something is wrong at this key path" to `file:line:col: path: message`.

`Where` knows the file and YAML positions of one node (a playbook, or one step of a module
file), plus `origins`: values that were substituted from somewhere else (a module's `${due}`
filled from the playbook's `with: {due: 5m}`), so a bad value is reported where it was
written, not where it landed. `validation_errors` rewrites pydantic's error locations into
key paths and positions (the idea of Dagster's pydantic_yaml), and says in plain words
what was expected.
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
from models.yamlpos import PathKey, Positions, format_path

_MAX_CHOICES = 20


def choices(names: Iterable[str], given: str | None = None, *, limit: int = _MAX_CHOICES) -> str:
    """`a, b, c` for an error message; long lists keep the closest matches to `given`."""
    names = list(dict.fromkeys(names))
    if not names:
        return "none"
    if len(names) <= limit:
        return ", ".join(names)
    close = difflib.get_close_matches(given or "", names, n=5, cutoff=0.5) if given else []
    shown = close or names[:5]
    return f"{', '.join(shown)}, ... ({len(names)} in all)"


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
                    return SourceError(origin.file, mark.line, mark.col, format_path(path), message)
        mark = self.positions.of_key(full) if key else self.positions.of(full)
        return SourceError(self.file, mark.line, mark.col, format_path(full), message)

    def line(self) -> int:
        return self.positions.of(self.base).line


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
        name = rel[-1] if rel else "?"
        known = _known_keys(model, rel[:-1])
        message = f"unknown key '{name}' (known: {choices(known, limit=len(known))})"
        return where.at(rel, message, key=True)
    return where.at(rel, _message(kind, error, ctx, cursor), key=on_key)


def _message(kind: str, error: Any, ctx: dict[str, Any], value: Any) -> str:
    given = error.get("input")
    if kind == "missing":
        return f"missing required key '{error['loc'][-1]}'"
    if kind == "closeloop":
        return str(ctx.get("message", error["msg"]))
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        if pattern in (SLUG_PATTERN, STEP_ID_PATTERN):
            return (
                f"{given!r} is not a valid id: use lowercase letters, digits, '-' and '_', "
                "starting with a letter or digit"
            )
        if pattern == NAME_PATTERN:
            return f"{given!r} is not a valid name: use lowercase letters, digits and '_'"
    if kind == "literal_error":
        return f"unknown value {given!r} (expected {ctx.get('expected')})"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping of keys; got {_short(given)}"
    if kind == "list_type":
        return f"expected a list; got {_short(given)}"
    if kind == "string_type":
        return f"expected text; got {_short(given)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number; got {_short(given)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false; got {_short(given)}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}; got {_short(given)}"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
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
