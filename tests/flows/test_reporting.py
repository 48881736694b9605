"""信息报送考核 (flows/reporting.py) over a month of real runs on the demo district
(tests/reporting_month.py): each figure checked by hand, and against an independent count over
every step row; the month's bounds, a finished month, the index the count goes through, and
the `report` key refused where it cannot be measured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import refused
from reporting_month import independent_count, seed, shanghai
from sqlalchemy import event

from flows.ranking import month_bounds
from flows.reporting import Reporting, monthly_reporting
from flows.runtime import Runtime
from models.clock import ManualClock
from models.db import read_session
from models.errors import InvalidInput


def count(rt: Runtime, month: str = "2026-03", **kw: Any) -> Reporting:
    with read_session(rt.db) as session:
        return monthly_reporting(session, org=rt.org, month=month, tz=rt.tz,
                                 now=rt.clock.now(), rt=rt, **kw)


def figures(f: Any) -> tuple[int, int, int, int]:
    return f.due, f.on_time, f.late, f.missed


def test_a_months_reports_on_time_late_and_missed_per_street_and_kind(
        demo: Runtime, clock: ManualClock) -> None:
    s = seed(demo, clock)
    got = count(demo)
    rows = {r.unit_id: r for r in got.rows}
    liuhe = rows["pingshan-street"]
    # 首报: two on time, one 3 minutes late, one missed (cancelled after it was due); the
    # leak cancelled before its 首报 was due is not counted. The major leak's 口头报告 and 系统
    # 首报 on time; its 续报 round 1 on time, round 2 half an hour late.
    assert {k: figures(f) for k, f in liuhe.kinds.items()} == {
        "首报": (4, 2, 1, 1), "口头报告": (1, 1, 0, 0), "系统首报": (1, 1, 0, 0),
        "续报": (2, 1, 1, 0)}
    assert figures(liuhe.all) == (8, 5, 2, 1)
    assert liuhe.all.on_time_rate == 0.625
    assert (liuhe.all.mean_late_minutes, liuhe.all.max_late_minutes) == (16.5, 30.0)
    assert liuhe.kinds["首报"].max_late_minutes == 3.0
    # 马峦: a 首报 on time and one left open; the typhoon street's answer on time, its three
    # communities' never.
    maluan = rows["maluan"]
    assert {k: figures(f) for k, f in maluan.kinds.items()} == {
        "首报": (2, 1, 0, 1), "落实报告": (4, 1, 0, 3)}
    assert maluan.all.on_time_rate == 0.3333 and maluan.all.mean_late_minutes is None
    # Ranked: the better on-time rate first; the four streets with nothing due share 3rd.
    assert [(r.unit_id, r.rank) for r in got.rows] == [
        ("pingshan-street", 1), ("maluan", 2), ("biling", 3), ("shijing", 3), ("kengzi", 3),
        ("longtian", 3)]
    assert figures(got.total.all) == (14, 7, 2, 5)

    # Each late or missed report, by deadline, with its run.
    said = [(r.run_id, r.kind, r.outcome, r.unit_id, r.late_seconds) for r in got.reports]
    assert said == [
        (s.late, "首报", "迟报", "liuhe", 180),
        (s.missed, "首报", "漏报", "liuhe", None),
        (s.maluan_open, "首报", "漏报", "pinghuan", None),
        (s.major, "续报", "迟报", "liuhe", 1800),
        (s.typhoon, "落实报告", "漏报", "maluan-community", None),
        (s.typhoon, "落实报告", "漏报", "jiangling", None),
        (s.typhoon, "落实报告", "漏报", "pinghuan", None),
    ]
    assert [r.step_id for r in got.reports if r.kind == "续报"] == [s.late_round]
    assert {r.status for r in got.reports if r.run_id == s.missed} == {"cancelled"}

    # The same figures from every step row, read whole, by the playbooks' own steps.
    start, end = month_bounds("2026-03", demo.tz)
    want = independent_count(demo, start, end, clock.now())
    assert set(want) == {"pingshan-street", "maluan"}
    for street, w in want.items():
        r = rows[street].all
        assert (r.due, r.on_time, r.late, r.missed) == (w["due"], w["on_time"], w["late"],
                                                        w["missed"])
        assert r.late_seconds == sum(w["late_seconds"])


def test_communities_count_their_own_and_the_street_above_counts_in_the_total(
        demo: Runtime, clock: ManualClock) -> None:
    seed(demo, clock)
    got = count(demo, level="community", within="maluan")
    rows = {r.unit_id: r for r in got.rows}
    # 江岭 half on time; 马峦社区 and 坪环 none, 马峦社区 with fewer missed.
    assert [(r.unit_id, r.rank) for r in got.rows] == [
        ("jiangling", 1), ("maluan-community", 2), ("pinghuan", 3)]
    assert figures(rows["maluan-community"].all) == (1, 0, 0, 1)
    assert figures(rows["jiangling"].all) == (2, 1, 0, 1)
    assert figures(rows["pinghuan"].all) == (2, 0, 0, 2)
    # The street's own 落实报告 is above the community level: in the total, in no row.
    assert figures(got.total.all) == (6, 2, 0, 4)
    assert {r.owner_id for r in got.reports} == {"maluan-community", "jiangling", "pinghuan"}
    # Nothing of another street comes into this scope.
    assert all(r.unit_id != "liuhe" for r in got.reports)


def test_a_report_not_yet_due_is_not_counted_and_a_late_one_moves_from_missed_to_late(
        demo: Runtime, clock: ManualClock) -> None:
    from gas_leak_walk import finish, start, steps

    from flows.segments import drain_wakes

    run_id = start(demo)
    clock.advance(timedelta(minutes=1))
    finish(demo, run_id, "receive")
    drain_wakes(demo)
    assert figures(count(demo).total.all) == (0, 0, 0, 0)  # due at 09:05, now 09:01
    clock.advance(timedelta(minutes=5))
    assert figures(count(demo).total.all) == (1, 0, 0, 1)  # 漏报 so far
    clock.advance(timedelta(minutes=2))
    finish(demo, run_id, "report.write")
    got = count(demo).total
    assert figures(got.all) == (1, 0, 1, 0)
    assert got.all.max_late_minutes == 3.0
    assert steps(demo, run_id)["report.write"].report_kind == "首报"


def test_a_finished_month_the_next_one_and_a_month_not_yet_come(
        demo: Runtime, clock: ManualClock) -> None:
    s = seed(demo, clock)
    march = count(demo)
    clock.set(datetime(2026, 4, 2, 1, 0, tzinfo=UTC))
    finished = count(demo)
    assert finished.as_of == finished.end == shanghai(31, 0) + timedelta(days=1)
    # One more since: the major leak's 终报, due a day after its close was handed out
    # (03-03), never written. The reports still open stay 漏报 of March.
    assert figures(march.total.all) == (14, 7, 2, 5)
    assert figures(finished.total.all) == (15, 7, 2, 6)
    assert [r.kind for r in finished.reports if r.run_id == s.major] == ["续报", "终报"]
    # April has none of them: its rounds were not handed out (no sweep ran since).
    assert figures(count(demo, "2026-04").total.all) == (0, 0, 0, 0)
    with pytest.raises(InvalidInput) as future:
        count(demo, "2026-05")
    assert future.value.field == "month"


def test_the_count_reads_the_report_rows_by_their_index(
        demo: Runtime, clock: ManualClock) -> None:
    seed(demo, clock)
    sent: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "report_kind IS NOT NULL" in statement:  # by kind: the month's report rows
            sent.append((statement, parameters))

    event.listen(demo.db, "before_cursor_execute", grab)
    try:
        count(demo)
    finally:
        event.remove(demo.db, "before_cursor_execute", grab)
    assert len(sent) == 1
    statement, parameters = sent[0]
    with demo.db.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters).all())
    assert "ix_step_report_due" in plan, plan
    assert "SCAN step_instance" not in plan, plan


BOOK = """id: drill
version: 1
title: 演练
steps:
  - id: write
    title: 撰写
    role: duty_officer
    report: {report}
    {due}
  - id: send
    title: 报送
    action: notify
    template: first-report.md.j2
    to: [county_duty_office]
    needs: [write]
    {send_report}
"""


def test_an_unknown_kind_names_its_line_and_the_kinds(demo: Runtime) -> None:
    said = refused(demo, BOOK.format(report="首报告", due="due: 5m", send_report=""))
    assert "bad.yaml:8:" in said and "steps[0] (write).report" in said
    for kind in ("首报", "续报", "终报", "补报", "口头报告", "系统首报", "零报告", "落实报告"):
        assert kind in said


def test_a_report_needs_a_deadline_and_a_person(demo: Runtime) -> None:
    said = refused(demo, BOOK.format(report="首报", due="", send_report=""))
    assert "bad.yaml:8:" in said and "请加上 due" in said
    said = refused(demo, BOOK.format(report="首报", due="due: 5m",
                                     send_report="report: 首报\n    due: 5m"))
    assert "steps[1] (send).report" in said and "撰写报告的步骤" in said


def test_the_shipped_playbooks_mark_their_writing_steps(demo: Runtime) -> None:
    def kinds(playbook: str) -> dict[str, str]:
        return {s.id: s.report for s in demo.catalog.get(playbook).steps if s.report}

    assert kinds("gas-leak") == {"report.write": "首报", "verbal": "口头报告",
                                 "system-report": "系统首报", "follow-up": "续报",
                                 "close": "终报"}
    typhoon = kinds("typhoon-633")
    assert set(typhoon.values()) == {"落实报告"} and len(typhoon) == 12
    assert all(k.endswith(("-street", "-community")) for k in typhoon)
    assert kinds("hazard-3030") == {}
