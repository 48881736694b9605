"""Duty rosters (值班表) in the org file: the shift arithmetic (a shift named by the day it
starts, changing at `change_at` local time, in turn from `from`, a day's swap) and the
checks at load, every mistake named by file:line:col and key path, Chinese first, and
nothing loaded."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from models.errors import OrgInvalid
from models.org import load_org, load_org_text
from models.roster import Roster

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEMO = Path(__file__).resolve().parents[2] / "playbooks" / "org" / "demo-district.yaml"
CJK = re.compile(r"[\u4e00-\u9fff]")

ROSTER = Roster(unit_id="d", role="duty_officer", change_at=time(8, 30),
                rota=("a", "b", "c"), start=date(2026, 12, 1),
                swaps={date(2026, 12, 5): "c"})


def local(text: str) -> datetime:
    """A Shanghai wall-clock time, as UTC (what the engine stores)."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(UTC)


@pytest.mark.parametrize(("at", "person", "day"), [
    ("2026-12-01 08:30", "a", "2026-12-01"),  # rota[0] takes the `from` day's shift
    ("2026-12-02 03:00", "a", "2026-12-01"),  # 3 a.m. is still the previous day's shift
    ("2026-12-02 08:29", "a", "2026-12-01"),  # a minute before the change
    ("2026-12-02 08:30", "b", "2026-12-02"),  # at the change: the next in turn
    ("2026-12-03 23:59", "c", "2026-12-03"),
    ("2026-12-04 08:30", "a", "2026-12-04"),  # round again
    ("2026-12-05 08:30", "c", "2026-12-05"),  # swapped: b's turn taken by c
    ("2026-12-06 08:29", "c", "2026-12-05"),
    ("2026-12-06 08:30", "c", "2026-12-06"),  # the rota goes on as if no swap: c's own turn
    ("2027-03-01 09:00", "a", "2027-03-01"),  # 90 days on: 90 % 3 == 0
])
def test_the_shift_on_duty_changes_at_change_at_local_time(at: str, person: str,
                                                           day: str) -> None:
    shift = ROSTER.shift(local(at), SHANGHAI)
    assert shift is not None
    assert (shift.person_id, shift.day.isoformat()) == (person, day)
    assert shift.starts_at == local(f"{day} 08:30")
    assert shift.ends_at.astimezone(SHANGHAI).strftime("%H:%M") == "08:30"
    assert (shift.ends_at - shift.starts_at).days == 1


def test_the_shift_day_is_read_in_shanghai_time_not_utc() -> None:
    # 2026-12-02 00:10 UTC is 08:10 in Shanghai: still 12-01's shift, though the UTC date
    # is the 2nd; 00:30 UTC is 08:30 in Shanghai: the change.
    assert ROSTER.shift(datetime(2026, 12, 2, 0, 10, tzinfo=UTC), SHANGHAI).person_id == "a"
    assert ROSTER.shift(datetime(2026, 12, 2, 0, 30, tzinfo=UTC), SHANGHAI).person_id == "b"
    # In UTC the same instant reads 00:30, before the change: the roster counts in local time.
    assert ROSTER.shift(datetime(2026, 12, 2, 0, 30, tzinfo=UTC), UTC).person_id == "a"


def test_before_its_from_date_a_roster_is_not_in_force() -> None:
    assert ROSTER.shift(local("2026-11-30 12:00"), SHANGHAI) is None
    assert ROSTER.shift(local("2026-12-01 08:29"), SHANGHAI) is None  # 11-30's shift
    assert ROSTER.shift(local("2026-12-01 08:30"), SHANGHAI) is not None


def test_a_swap_is_marked_as_such() -> None:
    assert ROSTER.shift(local("2026-12-05 12:00"), SHANGHAI).swapped is True
    assert ROSTER.shift(local("2026-12-04 12:00"), SHANGHAI).swapped is False


def test_the_demo_district_rosters_its_three_duty_officers() -> None:
    org = load_org(DEMO)
    roster = org.roster("duty_officer", "pingshan")
    assert roster is not None
    assert roster.rota == ("pingshan-duty-1", "pingshan-duty-2", "pingshan-duty-3")
    assert roster.change_at == time(8, 30)
    # No roster for a role held elsewhere, nor for the one duty leader.
    assert org.roster("duty_officer", "maluan") is None
    assert org.roster("duty_leader", "pingshan") is None


# -- checked at load ----------------------------------------------------------------------------

ORG = """\
units:
  - id: d
    name: 演练区
    type: district
    people:
      - {id: a, name: 甲, roles: [duty_officer]}
      - {id: b, name: 乙, roles: [duty_officer]}
      - {id: boss, name: 丁, roles: [commander]}
    children:
      - id: s
        name: 一街道
        type: street
        people:
          - {id: s-duty, name: 戊, roles: [duty_officer]}
"""


def errors(rosters: str) -> list[str]:
    """Every error of the org file with these rosters, as file:line:col: path: English part,
    each checked to say Chinese first."""
    text = ORG + textwrap.dedent(rosters).lstrip("\n")
    with pytest.raises(OrgInvalid) as info:
        load_org_text(text, filename="org.yaml")
    out = []
    for e in info.value.errors:
        zh, en = e.message.split(" / ", 1)
        assert CJK.search(zh), f"not Chinese first: {e}"
        out.append(f"{e.file}:{e.line}:{e.col}: {e.path}: {en}")
    return out


def test_a_good_roster_loads() -> None:
    org = load_org_text(ORG + textwrap.dedent("""\
        rosters:
          - unit: d
            role: duty_officer
            change_at: "08:30"
            rota: [a, b]
            from: "2026-12-01"
            swaps: {"2026-12-03": b}
        """), filename="org.yaml")
    roster = org.roster("duty_officer", "d")
    assert roster is not None
    assert (roster.start, dict(roster.swaps)) == (date(2026, 12, 1), {date(2026, 12, 3): "b"})


def test_an_unknown_unit_and_an_unknown_person_are_named_at_their_line() -> None:
    assert errors("""
        rosters:
          - unit: nowhere
            role: duty_officer
            change_at: "08:30"
            rota: [a, ghost]
            from: 2026-12-01
        """) == [
        "org.yaml:16:11: rosters[0].unit: unknown unit 'nowhere'",
        "org.yaml:19:15: rosters[0].rota[1]: unknown person 'ghost'",
    ]


def test_a_person_who_does_not_hold_the_role_in_that_unit_may_not_take_a_shift() -> None:
    assert errors("""
        rosters:
          - unit: d
            role: duty_officer
            change_at: "08:30"
            rota: [a, boss, s-duty]
            from: 2026-12-01
            swaps: {2026-12-05: s-duty}
        """) == [
        "org.yaml:19:15: rosters[0].rota[1]: 'boss' does not hold 'duty_officer' in unit 'd'",
        "org.yaml:19:21: rosters[0].rota[2]: 's-duty' does not hold 'duty_officer' in unit 'd'",
        "org.yaml:21:25: rosters[0].swaps.2026-12-05: 's-duty' does not hold 'duty_officer' "
        "in unit 'd'",
    ]


def test_a_role_misspelt_on_the_person_is_pointed_out_at_the_persons_line_too() -> None:
    # b's roles say duty_oficer: the roster is right, the person's line is the mistake, and
    # the operator reading only the roster's error would look for it in the wrong place.
    org = ORG.replace("{id: b, name: 乙, roles: [duty_officer]}",
                      "{id: b, name: 乙, roles: [duty_oficer]}")
    text = org + textwrap.dedent("""\
        rosters:
          - unit: d
            role: duty_officer
            change_at: "08:30"
            rota: [a, b]
            from: 2026-12-01
            swaps: {2026-12-05: b}
        """)
    with pytest.raises(OrgInvalid) as info:
        load_org_text(text, filename="org.yaml")
    said = sorted((e.line, e.path, e.message) for e in info.value.errors)
    person_line = org.splitlines().index("      - {id: b, name: 乙, roles: [duty_oficer]}") + 1
    assert [(line, path) for line, path, _ in said] == [
        (person_line, "units[0].people[1].roles"),
        (19, "rosters[0].rota[1]"), (21, "rosters[0].swaps.2026-12-05")]
    assert said[0][2] == ("角色 duty_oficer 疑为 duty_officer 之误：值班表排了乙的 "
                          "duty_officer 班 / role 'duty_oficer' looks like a misspelling of "
                          "'duty_officer', which a roster gives 'b' shifts of")
    assert "（其角色写作 duty_oficer，是否应为 duty_officer？）" in said[1][2]
    assert "(their roles say 'duty_oficer': meant 'duty_officer'?)" in said[1][2]


def test_a_bad_time_a_bad_date_and_an_empty_rota_are_refused() -> None:
    assert errors("""
        rosters:
          - unit: d
            role: duty_officer
            change_at: 17:00
            rota: []
            from: "2026-13-01"
            swaps: {12-05: a, 2026-11-30: b}
          - unit: d
            role: duty_officer
            change_at: "8.30"
            rota: [a]
            from: yesterday
        """) == [
        'org.yaml:18:16: rosters[0].change_at: quote the time: YAML reads an unquoted 17:00 '
        'as the number 1020; write "17:00"',
        "org.yaml:19:11: rosters[0].rota: 'rota' must be a non-empty list of person ids (one "
        "per shift, in turn)",
        "org.yaml:20:11: rosters[0].from: a date is written YYYY-MM-DD (e.g. 2026-12-01); "
        "got '2026-13-01'",
        "org.yaml:21:13: rosters[0].swaps.12-05: a date is written YYYY-MM-DD (e.g. "
        "2026-12-01); got '12-05'",
        'org.yaml:24:16: rosters[1].change_at: change_at is a time of day HH:MM (24-hour, '
        'quoted, e.g. "08:30"); got \'8.30\'',
        "org.yaml:26:11: rosters[1].from: a date is written YYYY-MM-DD (e.g. 2026-12-01); "
        "got 'yesterday'",
    ]


def test_an_impossible_unquoted_date_is_refused_by_the_yaml_reader() -> None:
    assert errors("""
        rosters:
          - {unit: d, role: duty_officer, change_at: "08:30", rota: [a], from: 2026-13-01}
        """) == [
        "org.yaml:16:72: rosters[0].from: not a valid value: '2026-13-01' (month must be in "
        "1..12)",
    ]


def test_a_swap_before_from_a_second_roster_and_missing_keys_are_refused() -> None:
    assert errors("""
        rosters:
          - unit: d
            role: duty_officer
            change_at: "08:30"
            rota: [a, b]
            from: 2026-12-01
            swaps: {2026-11-30: b}
          - unit: d
            role: duty_officer
            change_at: "20:00"
            rota: [b]
            from: 2026-12-01
            shift: 24h
          - {unit: d, role: duty_officer}
        """) == [
        "org.yaml:21:13: rosters[0].swaps.2026-11-30: swap date 2026-11-30 is before the "
        "roster's 'from' (2026-12-01)",
        "org.yaml:27:5: rosters[1].shift: unknown key 'shift' (allowed: unit, role, change_at, "
        "rota, from, swaps)",
        "org.yaml:28:5: rosters[2]: roster is missing 'change_at'",
        "org.yaml:28:5: rosters[2]: roster is missing 'rota'",
        "org.yaml:28:5: rosters[2]: roster is missing 'from'",
    ]


def test_two_rosters_for_one_role_in_one_unit_are_refused() -> None:
    assert errors("""
        rosters:
          - {unit: d, role: duty_officer, change_at: "08:30", rota: [a, b], from: 2026-12-01}
          - {unit: d, role: duty_officer, change_at: "08:30", rota: [b, a], from: 2026-12-01}
        """) == [
        "org.yaml:17:21: rosters[1].role: unit 'd' already has a roster for 'duty_officer' "
        "(rosters[0]); one per role",
    ]


def test_rosters_must_be_a_list() -> None:
    assert errors("rosters: {unit: d}\n") == [
        "org.yaml:15:10: rosters: 'rosters' must be a list of rosters",
    ]


def test_a_unit_or_person_with_its_own_mistake_is_not_reported_again_as_unknown() -> None:
    # 乙's roles are wrong and 一街道's type: each is said once, at its own line; a person id
    # given as the roster's unit is still unknown as a unit.
    text = ORG.replace("{id: b, name: 乙, roles: [duty_officer]}", "{id: b, name: 乙, roles: []}")
    text = text.replace("type: street", "type: Street")
    with pytest.raises(OrgInvalid) as info:
        load_org_text(text + textwrap.dedent("""\
            rosters:
              - {unit: d, role: duty_officer, change_at: "08:30", rota: [a, b], from: 2026-12-01}
              - {unit: s, role: duty_officer, change_at: "08:30", rota: [s-duty], from: 2026-12-01}
              - {unit: a, role: duty_officer, change_at: "08:30", rota: [a], from: 2026-12-01}
            """), filename="org.yaml")
    assert [(e.line, e.path) for e in info.value.errors] == [
        (7, "units[0].people[1].roles"), (12, "units[0].children[0].type"),
        (18, "rosters[2].unit")]
