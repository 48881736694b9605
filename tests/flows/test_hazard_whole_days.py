"""hazard-3030's deadlines in days counted as the law counts a period (民法典 §201/§203,
`whole_days: true`), on the shipped playbook and demo district with a ManualClock: the day of
registration is not counted, 30 days end at 24:00 of the last day (moved off a weekend or
holiday), and everything that computes or prints that deadline agrees: the step, the register,
the notice, the ladder (which fires after 24:00, not at the minute of registration), the task
view, a hazard imported at the same moment, and the plan's `not_after_due` check."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime, png_bytes, run_steps
from fastapi.testclient import TestClient
from sqlmodel import select

from api.auth import make_token
from api.main import create_app
from flows import lifecycle, tasks
from flows.deadline_basis import deadline_basis
from flows.evidence import store_evidence
from flows.hazard_import import import_hazards
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.errors import InvalidInput
from models.escalation import Escalation
from models.hazard import Hazard
from models.run import Run
from models.task import StepInstance

SHANGHAI = ZoneInfo("Asia/Shanghai")
COMMANDER = "pingshan-street-commander"
MANAGER = "sun-li"
CHIEF = "pingshan-street-chief"
SAFETY = "liuhe-safety"
UNIT_HEAD = "liuhe-head"
FACTS: dict[str, Any] = {"location": "六和社区和平路18号富达五金厂", "grade": "重大",
                         "description": "打磨车间除尘系统未设泄爆装置"}
LISTING = {"responsible_unit": "深圳市富达五金制品有限公司", "responsible_person": "李富达"}
CONTROLS = {"evacuated": True, "stopped": True, "signs": True, "watch": True}
PLAN = {"measures": "加装泄爆片", "funds": 3, "responsible": "李富达", "contingency": "停产整改",
        "deadline": "2026-03-28"}


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI).astimezone(UTC)


def end_of(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=SHANGHAI).astimezone(UTC) + timedelta(days=1)


def start(rt: Runtime, **params: Any) -> int:
    run = lifecycle.start_run(rt, playbook_id="hazard-3030", unit_id="liuhe",
                              params={**FACTS, **params}, actor=COMMANDER)
    drain_wakes(rt)
    return run.id or 0


def steps(rt: Runtime, run_id: int) -> dict[str, StepInstance]:
    return {row.step_key: row for row in run_steps(rt, run_id)}


def hazard(rt: Runtime, run_id: int) -> Hazard:
    with read_session(rt.db) as session:
        row = session.get(Hazard, run_id)
        assert row is not None
        return row


def photos(rt: Runtime, n: int) -> list[str]:
    return [store_evidence(rt, data=png_bytes(2 + i, 2), filename=f"现场{i + 1}.png",
                           uploaded_by=SAFETY).id for i in range(n)]


def complete(rt: Runtime, run_id: int, key: str, who: str, outputs: dict[str, Any],
             evidence: list[str] | None = None) -> None:
    tasks.complete(rt, step_id=steps(rt, run_id)[key].id or 0, actor=who, note="已办理",
                   outputs=outputs, evidence=evidence or [])
    drain_wakes(rt)


@pytest.mark.parametrize(("hh", "mm"), [(0, 5), (9, 0), (23, 55)])
def test_thirty_days_end_at_24_00_of_the_thirtieth_day_whatever_the_minute(
    demo: Runtime, clock: ManualClock, hh: int, mm: int
) -> None:
    # Registered on Monday 2 March 2026 at any minute: 2 March is not counted, the 30th day
    # after it is Wednesday 1 April, a working day.
    clock.set(local(2026, 3, 2, hh, mm))
    run_id = start(demo)
    registered = clock.now()
    due = end_of(2026, 4, 1)
    assert hazard(demo, run_id).due_at == due  # the register, before rectify is reached
    rows = steps(demo, run_id)
    assert rows["list"].due_at == end_of(2026, 3, 5)  # 3wd, as before
    # The interim controls stay 24 hours of elapsed time: people are withdrawn now.
    assert rows["interim"].due_at == registered + timedelta(days=1)
    clock.advance(timedelta(minutes=3))  # 23:58 or later: listed on the day, or the next
    complete(demo, run_id, "list", CHIEF, LISTING)
    rows = steps(demo, run_id)
    assert rows["notice"].due_at == due and rows["plan"].status == "ready"


def test_a_last_day_in_a_holiday_moves_to_the_first_working_day_after_it(
    demo: Runtime, clock: ManualClock
) -> None:
    # 3 September + 30 days = 3 October, inside 国庆 (1-7 October 2026): due 8 October 24:00.
    clock.set(local(2026, 9, 3, 16, 20))
    run_id = start(demo)
    assert hazard(demo, run_id).due_at == end_of(2026, 10, 8)
    # Into 2027, which the shipped calendar does not list yet: Sunday 3 January moves to
    # Monday, and the task says the day was judged on Mon-Fri alone.
    clock.set(local(2026, 12, 4, 1, 25))
    later = start(demo)
    assert hazard(demo, later).due_at == end_of(2027, 1, 4)


def test_the_ladder_fires_after_24_00_not_at_the_minute_of_registration(
    demo: Runtime, clock: ManualClock
) -> None:
    clock.set(local(2026, 3, 2, 9, 0))
    run_id = start(demo)
    clock.advance(timedelta(hours=2))
    complete(demo, run_id, "list", CHIEF, LISTING)
    complete(demo, run_id, "interim", SAFETY, CONTROLS, photos(demo, 1))
    complete(demo, run_id, "plan", SAFETY, PLAN)
    tasks.verify(demo, step_id=steps(demo, run_id)["plan"].id or 0, actor=CHIEF,
                 approve=True, note="同意备案")
    drain_wakes(demo)
    rectify = steps(demo, run_id)["rectify"]
    # Rectification counts from registration, through listing and the plan.
    assert rectify.due_at == end_of(2026, 4, 1)
    with read_session(demo.db) as session:
        run = session.get(Run, run_id)
        assert run is not None
        playbook = demo.catalog.pinned(session, run.playbook_sha)
        basis = deadline_basis(session, demo, run, playbook, playbook.step("rectify"), rectify)
    assert basis is not None
    assert basis.text == "时限自流程启动（03-02 09:00）次日起算，应于04-01 24:00前完成"
    sid = rectify.id or 0

    def fired() -> list[tuple[str, int, int]]:
        with read_session(demo.db) as session:
            rows = session.exec(select(Escalation).where(Escalation.step_id == sid)
                                .order_by(Escalation.id)).all()  # type: ignore[arg-type]
        return [(e.kind, e.level, e.repeat) for e in rows]

    # Reminders 7 days and 1 day before: at 24:00 of 25 and 31 March.
    clock.set(local(2026, 3, 25, 23, 59))
    sweep_once(demo)
    assert fired() == []
    clock.set(local(2026, 3, 26, 0, 1))
    sweep_once(demo)
    assert fired() == [("remind", 1, 0)]
    # Elapsed 30 days would have sent the 督办函 at 09:00 on 1 April; the day is the unit's
    # to its end.
    clock.set(local(2026, 4, 1, 9, 1))
    sweep_once(demo)
    clock.set(local(2026, 4, 1, 23, 59))
    sweep_once(demo)
    assert fired() == [("remind", 1, 0), ("remind", 2, 0)]
    assert not steps(demo, run_id)["rectify"].overdue
    clock.set(local(2026, 4, 2, 0, 1))
    sweep_once(demo)
    assert fired()[-1] == ("escalate", 1, 0)
    assert steps(demo, run_id)["rectify"].overdue
    # The ladder's `after` stays elapsed time from that 24:00: 提级督办函 3 days later.
    clock.set(local(2026, 4, 4, 23, 59))
    sweep_once(demo)
    assert fired()[-1] == ("escalate", 1, 0)
    clock.set(local(2026, 4, 5, 0, 1))
    sweep_once(demo)
    assert fired()[-1] == ("escalate", 2, 0)


def test_the_notice_prints_the_last_day_s_24_00(demo: Runtime, clock: ManualClock) -> None:
    clock.set(local(2026, 3, 2, 1, 25))
    run_id = start(demo)
    clock.advance(timedelta(hours=2))
    complete(demo, run_id, "list", CHIEF, LISTING)
    with read_session(demo.db) as session:
        text = session.exec(select(Document.body).where(
            Document.run_id == run_id, Document.step_id == steps(demo, run_id)["notice"].id)
        ).one()
    assert "| **整改期限** | 2026年4月1日 24:00 前完成整改并申请复查 |" in text
    assert "09:25" not in text.split("整改期限")[1].split("\n")[0]


def test_a_plan_dated_after_the_last_day_is_refused(demo: Runtime, clock: ManualClock) -> None:
    clock.set(local(2026, 3, 2, 9, 0))
    run_id = start(demo)
    complete(demo, run_id, "list", CHIEF, LISTING)
    plan = {"measures": "加装泄爆片", "funds": 3, "responsible": "李富达",
            "contingency": "停产整改"}
    plan_id = steps(demo, run_id)["plan"].id or 0
    # 2 April is past 1 April 24:00, though the deadline is stored as 2 April 00:00.
    with pytest.raises(InvalidInput) as caught:
        tasks.complete(demo, step_id=plan_id, actor=SAFETY, note="方案",
                       outputs={**plan, "deadline": "2026-04-02"}, evidence=[])
    assert caught.value.field == "outputs.deadline"
    assert "2026-04-01 24:00" in str(caught.value)
    tasks.complete(demo, step_id=plan_id, actor=SAFETY, note="方案",
                   outputs={**plan, "deadline": "2026-04-01"}, evidence=[])


def test_the_task_view_and_the_register_export_agree(demo: Runtime, clock: ManualClock) -> None:
    clock.set(local(2026, 3, 2, 9, 0))
    run_id = start(demo)
    token = make_token(MANAGER, demo.settings.signing_secret())
    with TestClient(create_app(demo, background=False, prefect=False)) as client:
        run = client.get(f"/api/runs/{run_id}", headers={"Authorization": f"Bearer {token}"})
        export = client.get("/api/hazards/export?format=csv",
                            headers={"Authorization": f"Bearer {token}"})
    assert export.status_code == 200, export.text
    lines = export.content.decode("utf-8-sig").splitlines()
    column = lines[0].split(",").index("整改期限")
    assert [line.split(",")[column] for line in lines[1:]] == ["2026-04-01 24:00"]
    assert run.status_code == 200, run.text
    notice = next(s for s in run.json()["steps"] if s["step"] == "notice-send")
    assert notice["due_at_local"] == "2026-04-01 24:00"
    assert notice["due_whole_days"] is True and notice["due_working_days"] is False
    assert notice["due_rule"] == "30日（自流程启动次日起算，届满日24时止，遇休息日、节假日顺延）"


def test_an_imported_hazard_gets_the_deadlines_of_one_registered_by_hand(
    demo: Runtime, clock: ManualClock
) -> None:
    clock.set(local(2026, 3, 2, 23, 55))
    by_hand = start(demo, grade="重大")
    general = start(demo, grade="一般")
    data = ("隐患编号,单位编号,隐患等级,隐患地点\n"
            "PS-1,liuhe,重大,六和社区和平路18号\nPS-2,liuhe,一般,六和社区和平路20号\n"
            ).encode()
    result = import_hazards(demo, data=data, filename="隐患清单.csv", actor=MANAGER)
    imported_major, imported_general = result.run_ids

    def dues(run_id: int) -> dict[str, datetime | None]:
        return {key: row.due_at for key, row in steps(demo, run_id).items()}

    assert dues(imported_major) == dues(by_hand)
    assert dues(imported_general) == dues(general)
    assert dues(general)["rectify"] == end_of(2026, 4, 1)
    assert hazard(demo, imported_major).due_at == hazard(demo, by_hand).due_at == \
        end_of(2026, 4, 1)
    assert hazard(demo, imported_general).due_at == end_of(2026, 4, 1)


def test_a_hazard_registered_on_version_3_keeps_its_elapsed_days(
    clock: ManualClock, tmp_path: Path
) -> None:
    # The installation before this change: hazard-3030 version 3, elapsed 30 days.
    old_books = tmp_path / "books-v3"
    shutil.copytree(SHIPPED_PLAYBOOKS, old_books)
    path = old_books / "hazard-3030.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count("version: 4\n") == 1
    text = text.replace("version: 4\n", "version: 3\n").replace(", whole_days: true}", "}")
    for days in ("10d", "30d"):
        text = text.replace(f"{{after: {days}}}", days)
    assert "whole_days" not in text.split("\nid: hazard-3030")[1]
    path.write_text(text, encoding="utf-8")
    clock.set(local(2026, 3, 2, 9, 0))
    old = make_runtime(tmp_path / "old", clock=clock, playbooks=old_books, org_path=DEMO_ORG)
    try:
        assert old.catalog.get("hazard-3030").version == 3
        run_id = start(old)
        registered = clock.now()
        assert hazard(old, run_id).due_at == registered + timedelta(days=30)
        old_db = str(old.db.url)
    finally:
        old.db.dispose()
    # Upgraded: the same database with version 4 shipped.
    new = make_runtime(tmp_path / "new", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                       org_path=DEMO_ORG, db_url=old_db)
    try:
        assert new.catalog.get("hazard-3030").version == 4
        clock.advance(timedelta(hours=2))
        complete(new, run_id, "list", CHIEF, LISTING)
        assert steps(new, run_id)["notice"].due_at == registered + timedelta(days=30)
        assert hazard(new, run_id).due_at == registered + timedelta(days=30)
        fresh = start(new)
        assert hazard(new, fresh).due_at == end_of(2026, 4, 1)
    finally:
        new.db.dispose()
