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
# The largest whole number every reader of a stored value holds exactly: the web pages read JSON
# with JavaScript, whose numbers are doubles, so 2**53 + 1 would silently become 2**53 there.
MAX_SAFE_INT = 2**53 - 1
_MAX_DIGITS = len(str(MAX_SAFE_INT))


class ParamValueError(ValueError):
    """A value that does not fit its parameter; `en` and `zh` say what was expected.

    str() is the English alone: playbook validation (operators, YAML) speaks English and wraps
    it; `text` is what a bureau user reads, Chinese first."""

    def __init__(self, en: str, zh: str) -> None:
        super().__init__(en)
        self.en = en
        self.zh = zh

    @property
    def text(self) -> str:
        return f"{self.zh} / {self.en}"


@dataclass(frozen=True)
class ParamProblem:
    name: str
    kind: Literal["unknown", "missing", "invalid"]
    message: str  # English, for callers that put their own words around it (loader, import)
    zh: str = ""

    @property
    def text(self) -> str:
        """Chinese first, then the English: what an API or CLI user reads."""
        return f"{self.zh} / {self.message}" if self.zh else self.message


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce_value(spec: ParamSpec, value: Any) -> Any:
    """`value` as `spec.type` wants it (text is parsed, as from the CLI) and within the spec's
    `min`/`max`; raises ParamValueError."""
    result = coerce(spec.type, value, values=spec.values)
    check_range(result, low=spec.min, high=spec.max)
    return result


def check_range(value: Any, *, low: float | None, high: float | None) -> None:
    """A number below `low` or above `high` (either may be None) raises ParamValueError."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if low is not None and value < low:
        raise ParamValueError(f"must be at least {_num(low)}; got {_shown(value)}",
                              f"不能小于 {_num(low)}；收到 {_shown(value)}")
    if high is not None and value > high:
        raise ParamValueError(f"must be at most {_num(high)}; got {_shown(value)}",
                              f"不能大于 {_num(high)}；收到 {_shown(value)}")


def _num(bound: float) -> str:
    # A bound written `max: 10000` may arrive as 10000.0; show it as the operator wrote it.
    return str(int(bound)) if isinstance(bound, float) and bound.is_integer() else str(bound)


def _too_big(shown: Any) -> ParamValueError:
    return ParamValueError(
        f"whole number out of range (at most {MAX_SAFE_INT} either way); got {_shown(shown)}",
        f"整数超出范围（绝对值不超过 {MAX_SAFE_INT}）；收到 {_shown(shown)}")


def _safe_int(value: int, shown: Any) -> int:
    if abs(value) > MAX_SAFE_INT:
        raise _too_big(shown)
    return value


def _parse_int(text: str) -> int:
    """Text matching _INT as an int; refused by length first, because int() of a very long
    digit string is slow, and raises a plain ValueError past 4,300 digits."""
    if len(text.strip().lstrip("+-").lstrip("0")) > _MAX_DIGITS:
        raise _too_big(text)
    return _safe_int(int(text), text)


def coerce(kind: str, value: Any, *, values: list[str] | None = None) -> Any:
    """`value` as a parameter of type `kind` (enum: one of `values`); raises ParamValueError."""
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ParamValueError(f"expected text; got {_shown(value)}",
                              f"应为文本；收到 {_shown(value)}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return _safe_int(value, value)
        if isinstance(value, float) and value.is_integer():
            return _safe_int(int(value), value)
        if isinstance(value, str) and _INT.match(value.strip()):
            return _parse_int(value)
        raise ParamValueError(f"expected a whole number; got {_shown(value)}",
                              f"应为整数；收到 {_shown(value)}")
    if kind == "number":
        return _number(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ParamValueError(f"expected true or false; got {_shown(value)}",
                              f"应为 是 或 否（true/false）；收到 {_shown(value)}")
    if kind == "enum":
        allowed = values or []
        text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
        if text is not None and text in allowed:
            return text
        raise ParamValueError(f"{_shown(value)} is not allowed (allowed: {', '.join(allowed)})",
                              f"{_shown(value)} 不是可选值（可选：{'、'.join(allowed)}）")
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
        raise ParamValueError(f"expected a list; got {_shown(value)}",
                              f"应为列表；收到 {_shown(value)}")
    raise ParamValueError(f"unknown parameter type {kind!r}", f"未知的参数类型 {kind!r}")


def _number(value: Any) -> int | float:
    result: int | float
    if isinstance(value, int) and not isinstance(value, bool):
        result = _safe_int(value, value)
    elif isinstance(value, float):
        result = value
    elif isinstance(value, str) and _INT.match(value.strip()):
        result = _parse_int(value)
    else:
        try:
            result = float(value) if isinstance(value, str) else math.nan
        except ValueError:
            result = math.nan
    if isinstance(result, float) and not math.isfinite(result):
        raise ParamValueError(f"expected a number; got {_shown(value)}",
                              f"应为数字；收到 {_shown(value)}")
    return result


# The years a date or time param may name. Generous (a building's construction date is a fair
# param), but it keeps out year 1 and 9999, whose conversion to UTC or to local time overflows
# in every list, export and deadline that later reads them.
FIRST_YEAR, LAST_YEAR = 1900, 2100


def _in_years(value: date, shown: str) -> None:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ParamValueError(f"must be within the years {FIRST_YEAR}-{LAST_YEAR}; got {shown}",
                              f"年份须在 {FIRST_YEAR} 至 {LAST_YEAR} 之间；收到 {shown}")


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        raise ParamValueError(f"expected a date without a time; got {value.isoformat()}",
                              f"应为不带时间的日期；收到 {value.isoformat()}")
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            pass
    if isinstance(value, date):
        _in_years(value, value.isoformat())
        return value.isoformat()
    raise ParamValueError(f"expected a date like 2026-11-23; got {_shown(value)}",
                          f"应为日期，如 2026-11-23；收到 {_shown(value)}")


def _datetime(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    if isinstance(value, datetime):
        _in_years(value, value.isoformat())
        return value.isoformat()
    raise ParamValueError(
        f"expected a date and time like 2026-11-23T08:00:00+08:00; got {_shown(value)}",
        f"应为日期和时间，如 2026-11-23T08:00:00+08:00；收到 {_shown(value)}",
    )


def check_values(
    specs: Mapping[str, ParamSpec], raw: Mapping[str, Any]
) -> tuple[dict[str, Any], list[ParamProblem]]:
    """Every problem with `raw` against `specs` (unknown keys first), and the values that fit."""
    problems: list[ParamProblem] = []
    for name in raw:
        if name not in specs:
            known = ", ".join(specs) or "none"
            problems.append(ParamProblem(
                str(name), "unknown", f"unknown parameter '{name}' (known: {known})",
                f"没有参数 '{name}'（可用：{'、'.join(specs) or '无'}）",
            ))
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        given = raw.get(name)
        if given is None:
            default = spec.default
            if default is not None:
                # Copy so a run that edits a list default cannot change the playbook.
                values[name] = list(default) if isinstance(default, list) else default
            elif spec.required:
                problems.append(ParamProblem(
                    name, "missing", f"missing required parameter '{name}'",
                    f"缺少必填参数 '{name}'",
                ))
            else:
                values[name] = None
            continue
        try:
            values[name] = coerce_value(spec, given)
        except ParamValueError as exc:
            problems.append(ParamProblem(name, "invalid", exc.en, exc.zh))
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
        raise InvalidInput(field=f"{prefix}.{first.name}", message=first.text)
    return values
