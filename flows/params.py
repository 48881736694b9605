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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Literal

from flows.render import deadline_text
from models.errors import InvalidInput, clipped

if TYPE_CHECKING:
    from flows.spec import ParamSpec, Playbook

_INT = re.compile(r"^[+-]?\d+$")
_TRUE = {"true", "yes", "on", "1", "是"}
_FALSE = {"false", "no", "off", "0", "否"}
# The largest whole number every reader of a stored value holds exactly: the web pages read JSON
# with JavaScript, whose numbers are doubles, so 2**53 + 1 would silently become 2**53 there.
MAX_SAFE_INT = 2**53 - 1
_MAX_DIGITS = len(str(MAX_SAFE_INT))
# The longest text a string param (or step output) holds. A param is stored in the run, again
# in its run_started audit event, and sent in every list that shows the run: one 5 MB location
# made GET /api/runs 10 MB. 2,000 characters is more than a page of Chinese, far beyond any
# location, name or account a form asks for; a longer report is a document or evidence.
MAX_TEXT = 2000
# The most items a list param holds: units, roles or channels to fan out to, never thousands.
MAX_ITEMS = 1000
# What a text may not contain: C0 control characters but tab and line breaks (as the imports
# refuse them, flows/tabular.py), DEL, and the Unicode bidi embeddings, overrides and isolates,
# which make a location read backwards wherever it is shown (a register, an export, a SMS).
_BAD_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
# A phone's clock a little ahead of the server's is no time in the future.
CLOCK_SLACK = timedelta(minutes=5)
# Invisible format characters a copy-paste brings along: with whitespace only, still no content.
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff")


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
    return clipped(repr(value), 60)


def coerce_value(spec: ParamSpec, value: Any) -> Any:
    """`value` as `spec.type` wants it (text is parsed, as from the CLI), within the spec's
    `min`/`max`, and with content when it is required text; raises ParamValueError."""
    result = coerce(spec.type, value, values=spec.values)
    # Each check only where it applies: the bulk import comes here for every cell.
    if spec.min is not None or spec.max is not None:
        check_range(result, low=spec.min, high=spec.max)
    elif spec.required and spec.type == "string" and is_blank(result):  # text has no bounds
        # "" or "   " is no location: required means something to read.
        raise ParamValueError("required: must not be blank", "必填，不能为空白")
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
            # The common case inline: the bulk import checks every cell of 400,000 rows here.
            if len(value) <= MAX_TEXT and value.isprintable():
                return value
            return check_text(value)
        # A number is taken as its text on purpose: YAML (a module's or a child run's `with`)
        # and expressions give 12 for "12", and a JSON client may send a code as a number. Not
        # NaN or Infinity (JSON's extensions), which would be stored as the words "nan", "inf".
        if isinstance(value, int) and not isinstance(value, bool):
            return check_text(_int_text(value))
        if isinstance(value, float) and math.isfinite(value):
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
            return _items(list(value))
        if isinstance(value, str):
            # CLI form: --param units=a,b,c
            return _items([part.strip() for part in check_text(value).split(",")
                           if part.strip()])
        raise ParamValueError(f"expected a list; got {_shown(value)}",
                              f"应为列表；收到 {_shown(value)}")
    raise ParamValueError(f"unknown parameter type {kind!r}", f"未知的参数类型 {kind!r}")


def check_text(text: str) -> str:
    """`text` when it fits a string param (at most MAX_TEXT characters, no control or bidi
    characters); raises ParamValueError. The common case, printable text, costs one C call."""
    if len(text) > MAX_TEXT:
        raise ParamValueError(f"too long: {len(text)} characters (at most {MAX_TEXT})",
                              f"过长：{len(text)} 个字符（最多 {MAX_TEXT} 个）")
    if not text.isprintable():  # also False for line breaks, tabs and non-ASCII spaces
        bad = _BAD_CHAR.search(text)
        if bad is not None:
            code = f"U+{ord(bad.group()):04X}"
            raise ParamValueError(
                f"contains an invisible control character ({code}) at position "
                f"{bad.start() + 1}; remove it",
                f"第 {bad.start() + 1} 个字符是不可见的控制字符（{code}），请删除")
    return text


def is_blank(text: str) -> bool:
    """Nothing but whitespace (also U+3000, the full-width space) and invisible format
    characters: no content. Stops at the first visible character."""
    if text and not text[0].isspace() and text[0] not in _INVISIBLE:
        return False  # the usual answer, without a generator
    return all(ch.isspace() or ch in _INVISIBLE for ch in text)


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more than 4,300 digits: Python refuses to write it out
        raise ParamValueError(f"too long: more than {MAX_TEXT} characters",
                              f"过长：超过 {MAX_TEXT} 个字符") from None


def _items(items: list[Any]) -> list[Any]:
    if len(items) > MAX_ITEMS:
        raise ParamValueError(f"too many items: {len(items)} (at most {MAX_ITEMS})",
                              f"项数过多：{len(items)} 项（最多 {MAX_ITEMS} 项）")
    for position, item in enumerate(items, start=1):
        if isinstance(item, str):
            try:
                check_text(item)
            except ParamValueError as exc:
                raise ParamValueError(f"item {position}: {exc.en}",
                                      f"第 {position} 项：{exc.zh}") from None
    return items


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


# A day's 24:00, as deadlines are printed (flows/render.deadline_text) and exports write them:
# the next day's 00:00 (ISO 8601 allows it; Python's fromisoformat does not).
_END_OF_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]24:00(?::00(?:\.0+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def end_of_day(text: str) -> datetime | None:
    """"2026-11-30 24:00" (T or space, seconds, an offset) as the next day's 00:00; None for
    any other text. Raises ValueError for a day that does not exist (2026-02-30 24:00)."""
    end = _END_OF_DAY.match(text.strip())
    if end is None:
        return None
    return datetime.fromisoformat(f"{end[1]}T00:00{end[2] or ''}") + timedelta(days=1)


def _datetime(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = end_of_day(value) or datetime.fromisoformat(value.strip())
        except (ValueError, OverflowError):
            pass
    if isinstance(value, datetime):
        _in_years(value, value.isoformat())
        return value.isoformat()
    raise ParamValueError(
        f"expected a date and time like 2026-11-23T08:00:00+08:00; got {_shown(value)}",
        f"应为日期和时间，如 2026-11-23T08:00:00+08:00；收到 {_shown(value)}",
    )


# What a value is called in messages: a run's parameter, or what a step's form records.
PARAM_NOUN = ("参数", "parameter")
OUTPUT_NOUN = ("填报项", "output")


def check_values(
    specs: Mapping[str, ParamSpec], raw: Mapping[str, Any],
    noun: tuple[str, str] = PARAM_NOUN,
) -> tuple[dict[str, Any], list[ParamProblem]]:
    """Every problem with `raw` against `specs` (unknown keys first), and the values that fit."""
    problems: list[ParamProblem] = []
    zh, en = noun
    for name in raw:
        if name not in specs:
            known = ", ".join(specs) or "none"
            problems.append(ParamProblem(
                str(name), "unknown", f"unknown {en} '{name}' (known: {known})",
                f"没有{zh} '{name}'（可用：{'、'.join(specs) or '无'}）",
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
                # By the label people read beside the box (事发地点), with the key for whoever
                # calls the API; the English keeps its key as before.
                said = f"“{spec.title}”（{name}）" if spec.title else f" '{name}'"
                problems.append(ParamProblem(
                    name, "missing", f"missing required {en} '{name}'", f"缺少必填{zh}{said}",
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
    specs: Mapping[str, ParamSpec], raw: Mapping[str, Any], *, prefix: str = "params",
    now: datetime | None = None, tz: tzinfo = UTC, due_of: DueOf | None = None,
) -> dict[str, Any]:
    """As validate_params, for any set of specs (a child playbook's `with`, step outputs).
    With `now`, a `not_future` datetime later than now (and a few minutes' clock difference)
    is refused, as is a `not_past` one before it (a date: before today) and, given `due_of`,
    a `not_after_due` one after that step's deadline; a time without a zone is read in `tz`
    (the bureau's), as people write it."""
    values, problems = check_values(specs, raw,
                                    OUTPUT_NOUN if prefix == "outputs" else PARAM_NOUN)
    if problems:
        first, *rest = problems
        raise InvalidInput(field=f"{prefix}.{first.name}", message=first.text,
                           others=tuple((f"{prefix}.{p.name}", p.text) for p in rest))
    if now is not None:
        for name, spec in specs.items():
            value = values.get(name)
            if spec.type in ("date", "datetime") and isinstance(value, str):
                _check_time_rules(f"{prefix}.{name}", spec, value, now, tz, due_of)
    return values


# The deadline of another step of the run, by step id: (due, the step's title), or None while
# it has none. tasks.complete reads it from the run's step rows.
DueOf = Callable[[str], tuple[datetime, str] | None]


def _local(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _check_time_rules(field: str, spec: ParamSpec, value: str, now: datetime, tz: tzinfo,
                      due_of: DueOf | None) -> None:
    """not_future, not_past and not_after_due of one date or datetime value. A date is a day
    in the bureau's zone: compared with today and a deadline's day there."""
    if spec.type == "date":
        day = date.fromisoformat(value)
        moment = None
    else:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        day = moment.astimezone(tz).date()
    # Said in the bureau's time, as the person typed it on the page (2026-12-03 18:40), not
    # as the ISO text the page sent (2026-12-03T18:40:00+08:00); the English keeps the value.
    if spec.not_future and moment is not None and moment > now + CLOCK_SLACK:
        raise InvalidInput(field=field, message=(
            f"不能晚于现在（{_local(now, tz)}）；收到 {_local(moment, tz)} / must not be later "
            f"than now; got {value}"))
    if spec.not_past:
        today = now.astimezone(tz).date()
        if moment is not None and moment < now - CLOCK_SLACK:
            raise InvalidInput(field=field, message=(
                f"不能早于现在（{_local(now, tz)}）；收到 {_local(moment, tz)} / must not be "
                f"earlier than now; got {value}"))
        if moment is None and day < today:
            raise InvalidInput(field=field, message=(
                f"不能早于今天（{today.isoformat()}）；收到 {value} / must not be before today "
                f"({today.isoformat()}); got {value}"))
    if spec.not_after_due and due_of is not None:
        found = due_of(spec.not_after_due)
        if found is None:
            return
        due, title = found
        # A deadline at local midnight is 24:00 of the day it closes: that day is its last, a
        # date after it is late (a plan promising 1月4日 is past a 1月3日24时 rectification).
        last_day = (due - timedelta(microseconds=1)).astimezone(tz).date()
        late = day > last_day if moment is None else moment > due
        if late:
            shown = deadline_text(due.astimezone(tz))
            raise InvalidInput(field=field, message=(
                f"不能晚于“{title}”的期限 {shown}；确需延长的，请先申请延期 / must not be later "
                f"than the deadline of '{title}', {shown}; ask for more time first"))
