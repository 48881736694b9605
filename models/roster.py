"""Duty rosters (值班表): who of a role's holders in a unit is on duty at a given moment.

A bureau keeps 24-hour duty (24小时在岗带班值班制度): the duty officers (and duty leaders) of its
duty room take turns, one shift a day, the shift changing at the same local time every day.
The org file says so in `rosters:`:

    rosters:
      - unit: pingshan            # where the role is held
        role: duty_officer
        change_at: "08:30"        # local time the shift changes, every day
        rota: [pingshan-duty-1, pingshan-duty-2, pingshan-duty-3]  # one shift each, in turn
        from: 2026-12-01          # rota[0] takes the shift that starts this day at change_at
        swaps: {2026-12-05: pingshan-duty-3}  # that day's shift taken by someone else

A shift is named by the day it starts: the 12-04 shift runs from 12-04 08:30 to 12-05 08:30,
so at 03:00 on 12-05 the 12-04 shift is on duty. Before `from` the roster is not in force.

Pure arithmetic here, and the org file's `rosters:` section read and checked
(`read_rosters`, called by models/org.py's builder with the units and people it built); who
gets a message is decided in flows/duty.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from models.clock_time import parse_clock_time
from models.errors import clipped
from models.yamlpos import PathKey

if TYPE_CHECKING:
    from models.org import Person, Unit

_KEYS = ("unit", "role", "change_at", "rota", "from", "swaps")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Shift:
    """One day's shift of a roster: whose it is and when it starts and ends (UTC)."""

    person_id: str
    day: date  # the local date the shift starts on
    starts_at: datetime
    ends_at: datetime
    swapped: bool  # taken by a swap, not by the rota's turn


@dataclass(frozen=True)
class Roster:
    unit_id: str
    role: str
    change_at: time  # local time of day
    rota: tuple[str, ...]
    start: date  # `from`: the day whose shift rota[0] takes
    swaps: Mapping[date, str] = field(default_factory=dict)

    def shift_day(self, at: datetime, tz: tzinfo) -> date:
        """The local date whose shift is on at `at`: before change_at it is still yesterday's."""
        local = at.astimezone(tz)
        if local.time().replace(tzinfo=None) < self.change_at:
            return local.date() - timedelta(days=1)
        return local.date()

    def shift(self, at: datetime, tz: tzinfo) -> Shift | None:
        """The shift on duty at `at`, or None before the roster is in force (`from`)."""
        day = self.shift_day(at, tz)
        if day < self.start:
            return None
        return self.shift_of(day, tz)

    def shift_of(self, day: date, tz: tzinfo) -> Shift:
        """The shift that starts on local date `day` (at or after `from`)."""
        swapped = self.swaps.get(day)
        person = swapped or self.rota[(day - self.start).days % len(self.rota)]
        starts = datetime.combine(day, self.change_at, tzinfo=tz)
        ends = datetime.combine(day + timedelta(days=1), self.change_at, tzinfo=tz)
        return Shift(person_id=person, day=day, starts_at=starts.astimezone(UTC),
                     ends_at=ends.astimezone(UTC), swapped=swapped is not None)


# -- reading the org file's `rosters:` ---------------------------------------------------------

Report = Callable[..., None]  # the builder's error(path, message, *, at_key=False)


def read_rosters(raw: Any, *, units: Mapping[str, Unit], people: Mapping[str, Person],
                 error: Report, declared_units: Collection[str] = (),
                 declared_people: Mapping[str, PathKey] | None = None,
                 ) -> dict[tuple[str, str], Roster]:
    """The rosters of an org file, by (unit id, role); every mistake reported through `error`
    (file:line:col comes from the path), and a roster with any mistake left out. `declared_*`:
    the unit and person ids the file has, built or not: one with a mistake of its own is
    reported there, not again as unknown here (people with where each is written, so a role
    misspelt on the person is pointed out there too)."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        error(("rosters",), "rosters 应为值班表列表 / 'rosters' must be a list of rosters")
        return {}
    out: dict[tuple[str, str], Roster] = {}
    first: dict[tuple[str, str], int] = {}
    hinted: set[str] = set()  # people whose misspelt role was pointed out already
    for i, entry in enumerate(raw):
        path: PathKey = ("rosters", i)
        roster = _Entry(path, units, people, error,
                        (set(declared_units), dict(declared_people or {})), hinted).read(entry)
        if roster is None:
            continue
        key = (roster.unit_id, roster.role)
        if key in first:
            error((*path, "role"), f"单位 {roster.unit_id} 的 {roster.role} 已有值班表（rosters"
                                   f"[{first[key]}]），一个角色只能有一张 / unit "
                                   f"'{roster.unit_id}' already has a roster for "
                                   f"'{roster.role}' (rosters[{first[key]}]); one per role")
            continue
        first[key] = i
        out[key] = roster
    return out


class _Entry:
    """One entry of `rosters:`; `ok` drops to False at the first mistake, but every field is
    still checked so all mistakes are reported at once."""

    def __init__(self, path: PathKey, units: Mapping[str, Unit], people: Mapping[str, Person],
                 error: Report, declared: tuple[set[str], dict[str, PathKey]],
                 hinted: set[str]) -> None:
        self.path = path
        self.units = units
        self.people = people
        self.declared_units, self.declared_people = declared
        self.hinted = hinted
        self._error = error
        self.ok = True

    def error(self, path: PathKey, message: str, *, at_key: bool = False) -> None:
        self.ok = False
        self._error(path, message, at_key=at_key)

    def read(self, raw: Any) -> Roster | None:
        if not isinstance(raw, dict):
            self.error(self.path, "值班表应为含 unit、role、change_at、rota、from 的映射 / "
                                  "a roster is a mapping with unit, role, change_at, rota "
                                  "and from")
            return None
        for key in raw:
            if key not in _KEYS:
                self.error((*self.path, key), f"没有字段 {key}（可选：{'、'.join(_KEYS)}） / "
                                              f"unknown key '{key}' (allowed: {', '.join(_KEYS)})",
                           at_key=True)
        for key in ("unit", "role", "change_at", "rota", "from"):
            if key not in raw:
                self.error(self.path, f"值班表缺少 {key} / roster is missing '{key}'")
        unit = self.unit(raw.get("unit")) if "unit" in raw else None
        role = self.role(raw.get("role")) if "role" in raw else None
        change_at = self.clock(raw.get("change_at")) if "change_at" in raw else None
        start = self.day(raw.get("from"), (*self.path, "from")) if "from" in raw else None
        rota = self.rota(raw.get("rota"), unit, role) if "rota" in raw else None
        swaps = self.swaps(raw.get("swaps"), unit, role, start)
        if not self.ok or unit is None or role is None or change_at is None or start is None \
                or not rota:
            return None
        return Roster(unit_id=unit, role=role, change_at=change_at, rota=tuple(rota),
                      start=start, swaps=swaps)

    def unit(self, value: Any) -> str | None:
        path = (*self.path, "unit")
        if isinstance(value, str) and value not in self.units and value in self.declared_units:
            self.ok = False  # the unit's own mistake is reported at the unit
            return None
        if not isinstance(value, str) or value not in self.units:
            self.error(path, f"单位 {clipped(repr(value), 40)} 不在组织架构中 / unknown unit "
                             f"{clipped(repr(value), 40)}")
            return None
        return value

    def role(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            self.error((*self.path, "role"), f"role 应为角色名；收到 {clipped(repr(value), 40)} / "
                                             f"'role' must be a role name; got "
                                             f"{clipped(repr(value), 40)}")
            return None
        return value

    def clock(self, value: Any) -> time | None:
        try:
            return parse_clock_time(value, name_zh="交接班时刻", examples_zh='"08:30"',
                                    subject_en="change_at is a time of day",
                                    example_en='"08:30"')
        except ValueError as exc:
            self.error((*self.path, "change_at"), str(exc))
            return None

    def day(self, value: Any, path: PathKey, *, at_key: bool = False) -> date | None:
        # YAML reads an unquoted 2026-12-01 as a date already; a quoted one is text.
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str) and _DATE.match(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        shown = clipped(repr(value), 40)
        self.error(path, f"日期写作 YYYY-MM-DD（如 2026-12-01）；收到 {shown} / a date is "
                         f"written YYYY-MM-DD (e.g. 2026-12-01); got {shown}", at_key=at_key)
        return None

    def holder(self, value: Any, path: PathKey, unit: str | None, role: str | None) -> bool:
        """True when `value` names a person holding `role` in `unit` (what a shift needs)."""
        person = self.people.get(value) if isinstance(value, str) else None
        if person is None and value in self.declared_people:
            self.ok = False  # the person's own mistake is reported at the person
            return False
        if person is None:
            self.error(path, f"人员 {clipped(repr(value), 40)} 不在组织架构中 / unknown person "
                             f"{clipped(repr(value), 40)}")
            return False
        if unit is None or role is None:
            return True  # the unit or role is wrong already, and said so
        if person.unit_id != unit or role not in person.roles:
            misspelt = _misspelt(role, person.roles) if person.unit_id == unit else None
            hint_zh = f"（其角色写作 {misspelt}，是否应为 {role}？）" if misspelt else ""
            hint_en = f" (their roles say '{misspelt}': meant '{role}'?)" if misspelt else ""
            self.error(path, f"{person.name}（{person.id}）不是单位 {unit} 的 {role}，不能排班"
                             f"{hint_zh} / '{person.id}' does not hold '{role}' in unit "
                             f"'{unit}'{hint_en}")
            if misspelt:
                self._point_at_person(person, misspelt, role)
            return False
        return True

    def _point_at_person(self, person: Person, misspelt: str, role: str) -> None:
        # The mistake is the person's roles line, not the roster's: say so there as well, so
        # the operator mending the roster is not sent to the wrong line.
        where = self.declared_people.get(person.id)
        if where is None or person.id in self.hinted:
            return
        self.hinted.add(person.id)
        self.error((*where, "roles"), f"角色 {misspelt} 疑为 {role} 之误：值班表排了"
                                      f"{person.name}的 {role} 班 / role '{misspelt}' looks "
                                      f"like a misspelling of '{role}', which a roster gives "
                                      f"'{person.id}' shifts of")

    def rota(self, value: Any, unit: str | None, role: str | None) -> list[str] | None:
        path = (*self.path, "rota")
        if not isinstance(value, list) or not value:
            self.error(path, "rota 应为非空的人员 id 列表（每班一人，依次轮换） / 'rota' must be a "
                             "non-empty list of person ids (one per shift, in turn)")
            return None
        good = [self.holder(pid, (*path, i), unit, role) for i, pid in enumerate(value)]
        return list(value) if all(good) else None

    def swaps(self, value: Any, unit: str | None, role: str | None,
              start: date | None) -> dict[date, str]:
        path = (*self.path, "swaps")
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, "swaps 应为“日期: 人员 id”的映射 / 'swaps' must be a mapping of "
                             "date to person id")
            return {}
        out: dict[date, str] = {}
        for key, pid in value.items():
            day = self.day(key, (*path, key), at_key=True)
            if day is not None and start is not None and day < start:
                self.error((*path, key), f"换班日期 {day} 早于值班表的起始日期 from（{start}） / "
                                         f"swap date {day} is before the roster's 'from' "
                                         f"({start})", at_key=True)
                day = None
            if self.holder(pid, (*path, key), unit, role) and day is not None:
                out[day] = pid
        return out


def _misspelt(role: str, held: Iterable[str]) -> str | None:
    """The role among `held` that looks like `role` misspelt (duty_oficer for duty_officer)."""
    close = get_close_matches(role, [r for r in held if r != role], n=1, cutoff=0.8)
    return close[0] if close else None
