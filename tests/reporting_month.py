"""A month of reports on the demo district (坪山区), moved through the engine with a ManualClock,
for the 信息报送考核 tests (flows/reporting.py): gas leaks whose first report is on time, late,
missed (the run cancelled after the deadline, or left open) or called off before it was owed;
a major leak's reports and 续报 rounds (the second one late); and a typhoon stage whose street
answers on time and whose three communities never do. 六和社区 is in 坪山街道; 江岭 and 坪环
are in 马峦街道.

`independent_count` counts the same figures from every step row, by the playbooks' steps
rather than the rows' `report_kind`, for the tests to check the index-backed count against."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from factories import complete_answered
from gas_leak_walk import finish, rounds, walk_up_to_the_close
from sqlmodel import select

from flows import lifecycle, tasks
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.run import Run
from models.task import StepInstance

SHANGHAI = ZoneInfo("Asia/Shanghai")
MALUAN_COMMANDER = "maluan-commander"


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


@dataclass
class Seeded:
    major: int = 0  # 重大 at 六和: 首报, 口头报告, 系统首报 on time; 续报 round 1 on time, 2 late
    on_time: int = 0  # 六和: 首报 on time
    late: int = 0  # 六和: 首报 3 minutes late
    missed: int = 0  # 六和: 首报 not written, run cancelled after the deadline
    called_off: int = 0  # 六和: cancelled before the 首报 was due (not counted)
    maluan_on_time: int = 0  # 江岭: 首报 on time
    maluan_open: int = 0  # 坪环: 首报 left open (漏报)
    typhoon: int = 0  # 马峦街道: the street's 落实报告 on time, its 3 communities' never
    late_round: int = 0  # the step id of the major leak's second 续报
    runs: list[int] = field(default_factory=list)


def _first_report(rt: Runtime, clock: ManualClock, unit: str, *, write_after: int | None,
                  cancel_after: int | None) -> int:
    """A 一般 leak at `unit`: the alert taken a minute in; the 首报 (due 5 minutes from the
    alert) written `write_after` minutes from the alert (None: never); the run cancelled
    `cancel_after` minutes from the alert (None: left running)."""
    run = lifecycle.start_run(rt, playbook_id="gas-leak", unit_id=unit, actor="wang-qiang",
                              params={"location": f"{unit}某小区", "grade": "一般"})
    run_id = run.id or 0
    began = clock.now()
    clock.advance(timedelta(minutes=1))
    finish(rt, run_id, "receive")
    drain_wakes(rt)
    for at, act in sorted([(write_after, "write"), (cancel_after, "cancel")],
                          key=lambda p: p[0] if p[0] is not None else 10_000):
        if at is None:
            continue
        clock.set(began + timedelta(minutes=at))
        if act == "write":
            finish(rt, run_id, "report.write")
        else:
            lifecycle.cancel_run(rt, run_id=run_id, actor="wang-qiang", reason="误报")
        drain_wakes(rt)
    clock.advance(timedelta(minutes=1))
    return run_id


def seed(rt: Runtime, clock: ManualClock) -> Seeded:
    """The month up to Tuesday 03-03 00:00 (the clock left there)."""
    s = Seeded()
    s.major = walk_up_to_the_close(rt, clock)  # from Monday 09:00; close left open
    s.on_time = _first_report(rt, clock, "liuhe", write_after=2, cancel_after=20)
    s.late = _first_report(rt, clock, "liuhe", write_after=8, cancel_after=20)
    s.missed = _first_report(rt, clock, "liuhe", write_after=None, cancel_after=11)
    s.called_off = _first_report(rt, clock, "liuhe", write_after=None, cancel_after=2)
    s.maluan_on_time = _first_report(rt, clock, "jiangling", write_after=4, cancel_after=30)
    s.maluan_open = _first_report(rt, clock, "pinghuan", write_after=None, cancel_after=None)

    typhoon = lifecycle.start_run(rt, playbook_id="typhoon-633", unit_id="maluan",
                                  actor=MALUAN_COMMANDER, params={"name": "海葵"})
    s.typhoon = typhoon.id or 0
    drain_wakes(rt)
    clock.advance(timedelta(hours=1))
    street = [r for r in _rows(rt, s.typhoon) if r.step_key == "message-street"]
    assert [r.unit_id for r in street] == ["maluan"]
    complete_answered(rt, street[0])  # the street's answer, due 6 h after the stage

    # The major leak's second 续报, handed out at 16:00 for 17:00, written at 17:30.
    clock.set(shanghai(2, 16))
    sweep_once(rt)
    second = rounds(rt, s.major)[1]
    assert second.status == "ready" and second.due_at == shanghai(2, 17)
    s.late_round = second.id or 0
    clock.set(shanghai(2, 17, 30))
    tasks.complete(rt, step_id=s.late_round, actor=second.assignees[0],
                   outputs={"progress": "已恢复供气", "next_steps": "继续监测"})
    drain_wakes(rt)
    clock.set(shanghai(3, 0))  # the communities' answers (due 12 h after the stage) missed
    s.runs = [s.major, s.on_time, s.late, s.missed, s.called_off, s.maluan_on_time,
              s.maluan_open, s.typhoon]
    return s


def _rows(rt: Runtime, run_id: int) -> list[StepInstance]:
    with read_session(rt.db) as session:
        return list(session.exec(select(StepInstance).where(StepInstance.run_id == run_id)
                                 .order_by(StepInstance.id)).all())  # type: ignore[arg-type]


def independent_count(rt: Runtime, month_start: datetime, month_end: datetime,
                      now: datetime) -> dict[str, dict[str, Any]]:
    """Per street (by the event's unit), every step row read whole, the report kind taken from
    the run's pinned playbook: {street: {due, on_time, late, missed, late_seconds}}."""
    out: dict[str, dict[str, Any]] = {}
    cut = min(month_end, now)
    with read_session(rt.db) as session:
        runs = {r.id: r for r in session.exec(select(Run)).all()}
        for row in session.exec(select(StepInstance)).all():
            run = runs[row.run_id]
            spec = rt.catalog.pinned(session, run.playbook_sha).step(row.step_key)
            if spec.report is None or row.due_at is None:
                continue
            due = row.due_at.astimezone(UTC)
            if not month_start <= due < cut or row.status == "skipped":
                continue
            done = row.done_at.astimezone(UTC) if row.done_at else None
            if row.status == "cancelled" and done is not None and done <= due:
                continue
            street = _street(rt, row.origin_unit_id or row.unit_id)
            f = out.setdefault(street, {"due": 0, "on_time": 0, "late": 0, "missed": 0,
                                        "late_seconds": []})
            f["due"] += 1
            if row.status == "done" and done is not None and done <= due:
                f["on_time"] += 1
            elif row.status == "done" and done is not None:
                f["late"] += 1
                f["late_seconds"].append((done - due).total_seconds())
            else:
                f["missed"] += 1
    return out


def _street(rt: Runtime, unit_id: str) -> str:
    unit: str | None = unit_id
    while unit is not None:
        if rt.org.unit(unit).type == "street":
            return unit
        unit = rt.org.unit(unit).parent_id
    return rt.org.root_id
