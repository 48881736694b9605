"""信息报送考核's reports never handed out (flows/report_owed.py): a 重大 gas leak whose duty
leader never makes the first judgement owes its 半小时口头报告 and 1小时系统首报 all the same,
counted from the alert; a 一般 one never judged is 待核实 (whether they were owed cannot be
known), never counted; a run ended before the deadline owes nothing; a drill never counts; a
report handed out once the judgement comes is counted once, from its row. The figures are
checked against an independent count over every run and step row, and the queries against
their indexes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import hotspot_case
from gas_leak_walk import complete, finish, start, steps
from sqlalchemy import event
from sqlmodel import select

from flows import lifecycle
from flows.drills import Drill
from flows.ranking import month_bounds
from flows.reporting import Reporting, monthly_reporting
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.clock import ManualClock
from models.db import read_session, session_scope
from models.documents import PlaybookVersion
from models.run import Run
from models.task import StepInstance

MAJOR = ("重大", "特别重大")
ASSESS = "初步研判事件等级和影响范围"
FIRST_REPORT = "撰写突发事件首报"  # the system report waits on it and on the judgement


def count(rt: Runtime, month: str = "2026-03", **kw: Any) -> Reporting:
    with read_session(rt.db) as session:
        return monthly_reporting(session, org=rt.org, month=month, tz=rt.tz,
                                 now=rt.clock.now(), rt=rt, **kw)


def figures(f: Any) -> tuple[int, int, int, int]:
    return f.due, f.on_time, f.late, f.missed


def alerted(rt: Runtime, clock: ManualClock, grade: str) -> int:
    """A leak at 六和 whose alert is taken a minute in; nobody judges it."""
    run_id = start(rt, grade)
    clock.advance(timedelta(minutes=1))
    finish(rt, run_id, "receive")
    drain_wakes(rt)
    return run_id


def independent(rt: Runtime, now: datetime) -> dict[str, int]:
    """The month's 首报/口头报告/系统首报 of every real gas leak, read from every run and row:
    a report with a row as the row says; one without, owed when the grade given at the start
    is 重大 or above and its deadline (the start plus the playbook's minutes) has passed
    before the run ended. {due, missed}: the rows' misses and the owed ones never written."""
    start_, end = month_bounds("2026-03", rt.tz)
    cut = min(end, now)
    minutes = {"report.write": 5, "verbal": 30, "system-report": 60}
    got = {"due": 0, "missed": 0}
    with read_session(rt.db) as session:
        for run in session.exec(select(Run)).all():
            if run.drill_kind is not None or run.playbook_id != "gas-leak":
                continue
            rows = {r.step_key: r for r in session.exec(
                select(StepInstance).where(StepInstance.run_id == run.id)).all()}
            began = run.started_at.replace(tzinfo=UTC)
            ended = run.finished_at.replace(tzinfo=UTC) if run.finished_at else None
            for key, after in minutes.items():
                due = began + timedelta(minutes=after)
                row = rows.get(key)
                if row is not None:
                    if row.status == "skipped" or not start_ <= due < cut:
                        continue
                    done = row.done_at.replace(tzinfo=UTC) if row.done_at else None
                    if row.status == "cancelled" and done is not None and done <= due:
                        continue
                    got["due"] += 1
                    got["missed"] += row.status != "done"
                    continue
                owed = key == "report.write" or run.params.get("grade") in MAJOR
                if owed and start_ <= due < cut and (ended is None or ended > due) \
                        and key not in (run.skipped or []):
                    got["due"] += 1
                    got["missed"] += 1
    return got


def test_a_major_leak_never_judged_misses_its_verbal_and_system_reports(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = alerted(demo, clock, "重大")  # 09:00 alert, taken 09:01
    clock.set(datetime(2026, 3, 2, 1, 29, tzinfo=UTC))  # 09:29: the 首报 (09:05) missed
    got = count(demo)
    assert {k: figures(f) for k, f in got.total.kinds.items()} == {"首报": (1, 0, 0, 1)}
    clock.advance(timedelta(minutes=2))  # 09:31: the verbal report's half hour is up
    got = count(demo)
    assert {k: figures(f) for k, f in got.total.kinds.items()} == {
        "首报": (1, 0, 0, 1), "口头报告": (1, 0, 0, 1)}
    verbal = got.reports[-1]
    assert (verbal.run_id, verbal.kind, verbal.outcome, verbal.step_id, verbal.handed_out,
            verbal.step_key) == (run_id, "口头报告", "漏报", None, False, "verbal")
    assert verbal.due_at == datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    assert verbal.held_up_by == ASSESS and verbal.unit_id == "liuhe"
    assert verbal.owner_id == "pingshan-street" and got.unsure == []
    # The street's row counts them, as the ranking reads it.
    street = {r.unit_id: r for r in got.rows}["pingshan-street"]
    assert figures(street.all) == (2, 0, 0, 2)

    clock.set(datetime(2026, 3, 2, 2, 1, tzinfo=UTC))  # 10:01: the system report's hour too
    got = count(demo)
    assert [(r.kind, r.handed_out) for r in got.reports] == [
        ("首报", True), ("口头报告", False), ("系统首报", False)]
    assert figures(got.total.all) == (3, 0, 0, 3)
    assert independent(demo, clock.now()) == {"due": 3, "missed": 3}

    # Judged at 10:10: the verbal report is handed out with its 09:30 deadline, and counted
    # once, from its row; the system report waits for the 首报 still (never written).
    clock.set(datetime(2026, 3, 2, 2, 10, tzinfo=UTC))
    finish(demo, run_id, "assess", "重大")
    drain_wakes(demo)
    verbal_row = steps(demo, run_id)["verbal"]
    assert verbal_row.status == "ready"
    assert verbal_row.due_at.replace(tzinfo=UTC) == datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    got = count(demo)
    assert figures(got.total.all) == (3, 0, 0, 3)
    assert [(r.kind, r.handed_out, r.step_id) for r in got.reports] == [
        ("首报", True, steps(demo, run_id)["report.write"].id),
        ("口头报告", True, verbal_row.id), ("系统首报", False, None)]
    assert [r.held_up_by for r in got.reports if not r.handed_out] == [FIRST_REPORT]
    assert independent(demo, clock.now()) == {"due": 3, "missed": 3}
    # Done at 10:12: 迟报 by 42 minutes.
    clock.advance(timedelta(minutes=2))
    complete(demo, steps(demo, run_id)["verbal"], "重大")
    got = count(demo)
    assert figures(got.total.kinds["口头报告"]) == (1, 0, 1, 0)
    assert got.total.kinds["口头报告"].max_late_minutes == 42.0


def test_a_general_leak_never_judged_is_listed_as_unsure_and_not_counted(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = alerted(demo, clock, "一般")
    clock.set(datetime(2026, 3, 2, 2, 30, tzinfo=UTC))  # 10:30: both deadlines passed
    got = count(demo)
    # Counted: the 首报 alone (missed). Whether the verbal and system reports were owed
    # depends on the judgement never made: listed, not counted.
    assert {k: figures(f) for k, f in got.total.kinds.items()} == {"首报": (1, 0, 0, 1)}
    assert [(r.kind, r.outcome, r.depends_on, r.held_up_by, r.step_id)
            for r in got.unsure] == [("口头报告", "待核实", ASSESS, ASSESS, None),
                                     ("系统首报", "待核实", ASSESS, FIRST_REPORT, None)]
    assert all(r.run_id == run_id for r in got.unsure)
    assert independent(demo, clock.now()) == {"due": 1, "missed": 1}
    # Judged 一般 at last: the reports are passed over; nothing is owed, nothing unsure.
    finish(demo, run_id, "assess", "一般")
    drain_wakes(demo)
    got = count(demo)
    assert got.unsure == [] and figures(got.total.all) == (1, 0, 0, 1)


def test_a_general_leak_judged_major_late_hands_its_reports_out_overdue(
        demo: Runtime, clock: ManualClock) -> None:
    run_id = alerted(demo, clock, "一般")
    clock.set(datetime(2026, 3, 2, 1, 40, tzinfo=UTC))  # 09:40: judged 重大
    assert [r.kind for r in count(demo).unsure] == ["口头报告"]
    finish(demo, run_id, "assess", "重大")
    drain_wakes(demo)
    got = count(demo)
    assert got.unsure == []
    assert [(r.kind, r.handed_out, r.outcome) for r in got.reports] == [
        ("首报", True, "漏报"), ("口头报告", True, "漏报")]


def test_a_run_ended_before_the_deadline_owes_nothing_and_after_it_misses(
        demo: Runtime, clock: ManualClock) -> None:
    early = alerted(demo, clock, "重大")
    clock.set(datetime(2026, 3, 2, 1, 20, tzinfo=UTC))
    lifecycle.cancel_run(demo, run_id=early, actor="wang-qiang", reason="误报")
    late = alerted(demo, clock, "重大")  # 09:20 alert
    clock.set(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))  # 10:00: its verbal report due 09:50
    lifecycle.cancel_run(demo, run_id=late, actor="wang-qiang", reason="处置完毕")
    clock.set(datetime(2026, 3, 3, 0, 0, tzinfo=UTC))
    got = count(demo)
    unsent = [(r.run_id, r.kind, r.done_at) for r in got.reports if not r.handed_out]
    # The second leak's verbal report was owed at 09:50 and the run cancelled at 10:00; its
    # system report (10:20) was not owed yet. The first leak owed nothing unwritten.
    assert unsent == [(late, "口头报告", datetime(2026, 3, 2, 2, 0, tzinfo=UTC))]
    assert got.unsure == []
    assert independent(demo, clock.now()) == {"due": figures(got.total.all)[0],
                                              "missed": figures(got.total.all)[3]}


def test_a_drill_never_judged_is_not_counted(demo: Runtime, clock: ManualClock) -> None:
    run = lifecycle.start_run(demo, playbook_id="gas-leak", unit_id="liuhe",
                              params={"location": "六和社区某小区", "grade": "重大"},
                              actor="wang-qiang", drill=Drill(kind="盲演"))
    clock.advance(timedelta(minutes=1))
    finish(demo, run.id or 0, "receive")
    drain_wakes(demo)
    clock.set(datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    got = count(demo)
    assert figures(got.total.all) == (0, 0, 0, 0) and got.reports == [] and got.unsure == []


def test_the_unsent_count_reads_runs_and_steps_through_their_indexes(
        demo: Runtime, clock: ManualClock) -> None:
    alerted(demo, clock, "重大")
    clock.set(datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    sent: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM run" in statement and "run.playbook_id IN" in statement \
                or "SELECT DISTINCT step_instance.run_id, step_instance.step_key" in statement:
            sent.append((statement, parameters))

    event.listen(demo.db, "before_cursor_execute", grab)
    try:
        got = count(demo)
    finally:
        event.remove(demo.db, "before_cursor_execute", grab)
    assert [r.handed_out for r in got.reports] == [True, False, False]
    assert len(sent) == 2
    with demo.db.connect() as conn:
        # The gas leaks by playbook (not the month's hazards by start), then their rows.
        for (statement, parameters), index in zip(
                sent, ["ix_run_playbook_status", "ux_step_item"], strict=True):
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters).all())
            assert index in plan, plan
            assert "SCAN run" not in plan and "SCAN step_instance" not in plan, plan


def test_a_run_pinned_before_report_existed_is_not_counted(
        demo: Runtime, clock: ManualClock) -> None:
    """No backfill (flows/reporting.py): a run started before `report:` pinned a version
    without it, and is held to no report it never had, handed out or not."""
    run_id = alerted(demo, clock, "重大")
    with session_scope(demo.db) as session:
        run = session.get(Run, run_id)
        assert run is not None
        pinned = session.get(PlaybookVersion, run.playbook_sha)
        assert pinned is not None
        compiled = copy.deepcopy(pinned.compiled)
        for step in compiled["steps"]:
            step.pop("report", None)
        session.add(PlaybookVersion(sha256="0" * 64, playbook_id="gas-leak", version=1,
                                    compiled=compiled, first_used_at=pinned.first_used_at))
        run.playbook_sha = "0" * 64
        session.add(run)
        # Its rows as they were written then: no kind.
        for row in session.exec(select(StepInstance).where(StepInstance.run_id == run_id)):
            row.report_kind = None
            session.add(row)
    clock.set(datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    got = count(demo)
    assert figures(got.total.all) == (0, 0, 0, 0) and got.reports == [] and got.unsure == []


def test_a_hotspot_never_checked_on_site_misses_its_hours_feedback(
        demo: Runtime, clock: ManualClock) -> None:
    """The hotspot's 核查反馈 has no condition: owed an hour after the alert, though nobody
    took the alert, so the community never checked on site (the chain it waits on)."""
    run = lifecycle.start_run(demo, playbook_id=hotspot_case.PLAYBOOK, unit_id="jiangling",
                              params=hotspot_case.PARAMS, actor=hotspot_case.DUTY_OFFICER)
    drain_wakes(demo)
    clock.advance(timedelta(minutes=59))
    assert count(demo).reports == []
    clock.advance(timedelta(minutes=2))
    got = count(demo)
    assert [(r.run_id, r.kind, r.step_key, r.handed_out, r.unit_id, r.owner_id)
            for r in got.reports] == [(run.id, "首报", "feedback", False, "jiangling", "maluan")]
    with read_session(demo.db) as session:
        taking = session.exec(select(StepInstance).where(
            StepInstance.run_id == run.id, StepInstance.step_key == "receive")).one()
    assert taking.status == "ready"  # the first unfinished step of the chain, handed out
    assert got.reports[0].held_up_by == taking.title
    assert figures(got.total.all) == (1, 0, 0, 1)
