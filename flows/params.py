"""Typed parameters: the values a run, a child run or a module use is given.

The same rules serve four callers: `closeloop start --param k=v` (every value arrives as
text), the API (JSON values), a step's `with` for a child playbook, and a module's `with` in
YAML. Values come out normalised and JSON-ready, because the engine stores them: dates and
datetimes as ISO strings, enums as the declared value, every declared parameter present
(None when optional and not given).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from models.errors import InvalidInput

if TYPE_CHECKING:
    from flows.spec import ParamSpec, Playbook

_INT = re.compile(r"^[+-]?\d+$")
_TRUE = {"true", "yes", "on", "1", "是"}
_FALSE = {"false", "no", "off", "0", "否"}


class ParamValueError(ValueError):
    """A value that does not fit its parameter's type; the message says what was expected."""


@dataclass(frozen=True)
class ParamProblem:
    name: str
    kind: Literal["unknown", "missing", "invalid"]
    message: str


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce_value(spec: ParamSpec, value: Any) -> Any:
    """`value` as `spec.type` wants it (text is parsed, as from the CLI); raises ParamValueError."""
    return coerce(spec.type, value, values=spec.values)


def coerce(kind: str, value: Any, *, values: list[str] | None = None) -> Any:
    """`value` as a parameter of type `kind` (enum: one of `values`); raises ParamValueError."""
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ParamValueError(f"expected text; got {_shown(value)}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT.match(value.strip()):
            return int(value)
        raise ParamValueError(f"expected a whole number; got {_shown(value)}")
    if kind == "number":
        return _number(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ParamValueError(f"expected true or false; got {_shown(value)}")
    if kind == "enum":
        allowed = values or []
        text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
        if text is not None and text in allowed:
            return text
        raise ParamValueError(f"{_shown(value)} is not allowed (allowed: {', '.join(allowed)})")
    if kind == "date":
        return _date(value)
    if kind == "datetime":
        return _datetime(value)
    if kind == "list":
        if isinstance(value, list | tuple):
            return list(value)
        if isinstance(value, str):
            # CLI form: --param units=a,b,c
            return [part.strip() for part in value.split(",") if part.strip()]
        raise ParamValueError(f"expected a list; got {_shown(value)}")
    raise ParamValueError(f"unknown parameter type {kind!r}")


def _number(value: Any) -> int | float:
    result: int | float
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = value
    elif isinstance(value, str) and _INT.match(value.strip()):
        result = int(value)
    else:
        try:
            result = float(value) if isinstance(value, str) else math.nan
        except ValueError:
            result = math.nan
    if isinstance(result, float) and not math.isfinite(result):
        raise ParamValueError(f"expected a number; got {_shown(value)}")
    return result


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        raise ParamValueError(f"expected a date without a time; got {value.isoformat()}")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise ParamValueError(f"expected a date like 2026-11-23; got {_shown(value)}")


def _datetime(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise ParamValueError(
        f"expected a date and time like 2026-11-23T08:00:00+08:00; got {_shown(value)}"
    )


def check_values(
    specs: Mapping[str, ParamSpec], raw: Mapping[str, Any]
) -> tuple[dict[str, Any], list[ParamProblem]]:
    """Every problem with `raw` against `specs` (unknown keys first), and the values that fit."""
    problems: list[ParamProblem] = []
    for name in raw:
        if name not in specs:
            known = ", ".join(specs) or "none"
            problems.append(
                ParamProblem(str(name), "unknown", f"unknown parameter '{name}' (known: {known})")
            )
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        given = raw.get(name)
        if given is None:
            default = spec.default
            if default is not None:
                # Copy so a run that edits a list default cannot change the playbook.
                values[name] = list(default) if isinstance(default, list) else default
            elif spec.required:
                problems.append(
                    ParamProblem(name, "missing", f"missing required parameter '{name}'")
                )
            else:
                values[name] = None
            continue
        try:
            values[name] = coerce_value(spec, given)
        except ParamValueError as exc:
            problems.append(ParamProblem(name, "invalid", str(exc)))
    return values, problems


def validate_params(playbook: Playbook, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The run's parameters, defaults filled in; raises InvalidInput for the first problem."""
    return validate_values(playbook.params, raw)


def validate_values(
    specs: Mapping[str, ParamSpec], raw: Mapping[str, Any], *, prefix: str = "params"
) -> dict[str, Any]:
    """As validate_params, for any set of specs (a child playbook's `with`, step outputs)."""
    values, problems = check_values(specs, raw)
    if problems:
        first = problems[0]
        raise InvalidInput(field=f"{prefix}.{first.name}", message=first.message)
    return values
