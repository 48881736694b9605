"""The verifier's own deadline (verify.due, verify.escalate): work handed in waits for its
second person, and a verifier who never acts is chased like anyone else, while the assignee's
ladder stays paused; a rejection gives the assignee back their ladder where it stood."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from factories import ENGINE_PLAYBOOKS, SHIPPED_PLAYBOOKS, before_after, png_bytes, refused
from factories import step_row as step
from fastapi.testclient import TestClient
from sqlmodel import select

from api.auth import make_token
from api.main import create_app
from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.escalation import Escalation
from models.outbox import Notification
from models.task import StepInstance

PLAYBOOK = """\
id: verify-chase
version: 1
title: 核验催办演示
params:
  location: {type: string, required: true, title: 地点}
steps:
  - id: fix
    title: 整改
    role: grid_worker
    due: 1d
    escalate:
      - {after: 0m, notify: [street_head], title: 督办函}
    evidence: {photos: 1}
    verify:
      role: inspector
      distinct: true
      due: 2h
      escalate:
        - {after: 0m, notify: [inspector], title: 复查超时催办}
        - {after: 1h, notify: [section_chief], title: 复查超时督办, repeat: 1h}
  - id: patrol
    title: 巡查
    role: inspector
    due: 4h
  - id: sign
    title: 报告签发
    role: duty_officer
    due: {after: 1h, from: run}
    verify: {role: duty_leader, due: {after: 1h, from: run}}
"""


@pytest.fixture
def vrt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    shutil.copy(SHIPPED_PLAYBOOKS / "templates" / "alert-message.md.j2", books / "templates")
    (books / "verify-chase.yaml").write_text(PLAYBOOK, encoding="utf-8")
    rt = make_rt(playbooks=books)
    assert rt.catalog.errors == []
    return rt


def start(rt: Runtime) -> int:
    run = lifecycle.start_run(rt, playbook_id="verify-chase", unit_id="c1",
                              params={"location": "一社区"}, actor="s1-commander")
    return run.id or 0


def fired(rt: Runtime, step_id: int) -> list[tuple[str, int, int, list[str]]]:
    with read_session(rt.db) as session:
        rows = session.exec(select(Escalation).where(Escalation.step_id == step_id)
                            .order_by(Escalation.id)).all()
    return [(e.kind, e.level, e.repeat, sorted(e.recipients)) for e in rows]


def submit_fix(rt: Runtime, run_id: int) -> StepInstance:
    fix = step(rt, run_id, "fix")
    photo = store_evidence(rt, data=png_bytes(), filename="after.png", uploaded_by="c1-grid")
    return tasks.complete(rt, step_id=fix.id or 0, actor="c1-grid", note="已整改",
                          evidence=[photo.id])


def test_a_verifier_who_never_acts_is_chased_up_the_ladder_once_each(
    vrt: Runtime, clock: ManualClock
) -> None:
    run_id = start(vrt)
    clock.advance(timedelta(hours=3))
    submitted = submit_fix(vrt, run_id)
    assert submitted.status == "submitted"
    assert submitted.verify_due_at == clock.now() + timedelta(hours=2)
    assert submitted.next_check_at == submitted.verify_due_at
    fix_id = submitted.id or 0

    clock.advance(timedelta(hours=1, minutes=59))
    assert sweep_once(vrt).fired == 0
    clock.advance(timedelta(minutes=1))  # the verdict is due: level 1 to the inspectors
    assert sweep_once(vrt).fired == 1
    assert fired(vrt, fix_id) == [("verify", 1, 0, ["s1-insp1", "s1-insp2"])]
    sweep_once(vrt)  # nothing twice at the same moment
    clock.advance(timedelta(hours=1))  # +1h: level 2 to the section chief, then hourly
    sweep_once(vrt)
    clock.advance(timedelta(hours=1))
    sweep_once(vrt)
    assert fired(vrt, fix_id) == [
        ("verify", 1, 0, ["s1-insp1", "s1-insp2"]),
        ("verify", 2, 0, ["d1-chief"]),
        ("verify", 2, 1, ["d1-chief"]),
    ]
    row = step(vrt, run_id, "fix")
    # The grid worker handed the work in on time: their own ladder stayed paused, even though
    # their deadline (1 day) has now passed while the work waits for its verifier.
    clock.advance(timedelta(days=1))
    sweep_once(vrt)
    row = step(vrt, run_id, "fix")
    assert row.escalation_level == 0 and not row.overdue and row.verify_level == 2
    assert all(kind == "verify" for kind, *_ in fired(vrt, fix_id))
    with read_session(vrt.db) as session:
        notes = session.exec(select(Notification).where(
            Notification.step_id == fix_id, Notification.kind == "verify")).all()
        events = session.exec(select(AuditEvent).where(
            AuditEvent.step_id == fix_id, AuditEvent.action == "verify")).all()
    chase = [n for n in notes if n.recipient == "d1-chief"]
    assert chase and chase[0].title == "【核验超时·复查超时督办】整改·一社区"
    assert "检查员甲、检查员乙" in chase[0].body and "仍未核验" in chase[0].body
    assert "已超时 1 小时" in chase[0].body
    assert len(events) == len(fired(vrt, fix_id))  # each firing is in the timeline


def test_verifying_stops_the_chase_and_rejecting_resumes_the_assignees_ladder(
    vrt: Runtime, clock: ManualClock
) -> None:
    run_id = start(vrt)
    fix_id = submit_fix(vrt, run_id).id or 0
    clock.advance(timedelta(hours=2))
    sweep_once(vrt)
    assert fired(vrt, fix_id) == [("verify", 1, 0, ["s1-insp1", "s1-insp2"])]
    rejected = tasks.verify(vrt, step_id=fix_id, actor="s1-insp1", approve=False,
                            note="照片看不清")
    assert rejected.status == "rejected"
    clock.advance(timedelta(days=1))  # past the grid worker's own deadline
    sweep_once(vrt)
    assert [f[:2] for f in fired(vrt, fix_id)] == [("verify", 1), ("escalate", 1)]
    # Handed in again: a fresh verifier's deadline, counted from this submission.
    again = submit_fix(vrt, run_id)
    assert again.verify_due_at == clock.now() + timedelta(hours=2) and again.verify_level == 0
    done = tasks.verify(vrt, step_id=fix_id, actor="s1-insp2", approve=True)
    assert done.status == "done" and done.next_check_at is None
    clock.advance(timedelta(days=2))
    assert sweep_once(vrt).fired == 0


def test_a_sign_off_due_from_the_run_start(vrt: Runtime, clock: ManualClock) -> None:
    """A report that must be signed within the hour of the alert: handed in at 50 minutes, the
    duty leader has 10; without `escalate` the verifiers are told at the deadline."""
    run_id = start(vrt)
    started = clock.now()
    clock.advance(timedelta(minutes=50))
    sign = step(vrt, run_id, "sign")
    got = tasks.complete(vrt, step_id=sign.id or 0, actor="s1-duty", note="首报")
    assert got.verify_due_at == started + timedelta(hours=1)
    clock.advance(timedelta(minutes=10))
    sweep_once(vrt)
    assert fired(vrt, sign.id or 0) == [("verify", 1, 0, ["d1-leader"])]
    clock.advance(timedelta(hours=5))
    assert sweep_once(vrt).fired == 0  # told once


def test_an_extension_of_submitted_work_keeps_the_verifiers_ladder(
    vrt: Runtime, clock: ManualClock
) -> None:
    run_id = start(vrt)
    fix = submit_fix(vrt, run_id)
    tasks.extend(vrt, step_id=fix.id or 0, actor="d1-commander",
                 due_at=clock.now() + timedelta(days=5), reason="材料待补")
    assert step(vrt, run_id, "fix").next_check_at == fix.verify_due_at
    clock.advance(timedelta(hours=2))
    sweep_once(vrt)
    assert fired(vrt, fix.id or 0) == [("verify", 1, 0, ["s1-insp1", "s1-insp2"])]


def test_the_api_shows_the_verifiers_deadline(vrt: Runtime, clock: ManualClock) -> None:
    run_id = start(vrt)
    fix = submit_fix(vrt, run_id)
    client = TestClient(create_app(vrt, background=False, prefect=False))
    token = make_token("s1-insp1", vrt.settings.signing_secret())
    got = client.get(f"/api/tasks/{fix.id}", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["status"] == "submitted" and body["verify_level"] == 0
    assert body["verify_due_at_local"] == "2026-03-02 11:00"  # 09:00 + 2 h, Shanghai


@pytest.mark.parametrize(("verify", "message"), [
    ("{role: inspector, escalate: [{after: 0m, notify: [section_chief]}]}",
     "steps[0] (fix).verify.escalate: 核验升级从核验时限起算，请加上 verify.due / escalation count"
     "s "
     "from the verifier's deadline; add 'verify.due'"),
    ("{role: inspector, due: 2h, escalate: [{after: 0m, notify: [nobody]}]}",
     "steps[0] (fix).verify.escalate[0].notify[0]: 没有角色或通道 nobody"),
    ("{role: inspector, due: 2h, escalate: [{after: 2h, notify: [inspector]}, "
     "{after: 1h, notify: [director]}]}",
     "steps[0] (fix).verify.escalate[1].after: 升级各级须按 after 从短到长排列：1h 排在 2h 之后 / "
     "escalation levels must be in order of 'after'"),
    ("{role: inspector, due: {after: 2h, from: ready}}",
     "steps[0] (fix).verify.due.from"),
    ("{role: inspector, due: 2x}", "steps[0] (fix).verify.due"),
    ("{role: inspector, due: 2h, escalate: [{after: 0m, notify: [inspector], repeat: 0m}]}",
     "steps[0] (fix).verify.escalate[0].repeat: 重复间隔 repeat 须大于 0；收到 0m / repeat must be "
     "longer than 0; got 0m"),
])
def test_a_bad_verifier_deadline_is_refused_at_its_line(
    vrt: Runtime, verify: str, message: str
) -> None:
    text = ("id: bad\nversion: 1\ntitle: 坏\nsteps:\n  - id: fix\n    title: 整改\n"
            f"    role: grid_worker\n    verify: {verify}\n")
    shown = refused(vrt, text)
    assert "bad.yaml:8:" in shown and message in shown, shown


# --- the shipped hazard loop: a re-inspection nobody does ------------------------------------

def test_an_unreinspected_hazard_chases_the_inspectors_then_the_street(
    demo: Runtime, clock: ManualClock
) -> None:
    run = lifecycle.start_run(demo, playbook_id="hazard-3030", unit_id="liuhe", actor=(
        "pingshan-street-commander"), params={"location": "六和社区和平路18号", "grade": "一般"})
    drain_wakes(demo)
    rectify = step(demo, run.id or 0, "rectify")
    clock.advance(timedelta(days=3))
    evidence = [store_evidence(demo, data=png_bytes(2 + i, 2), filename=f"{i}.png",
                               uploaded_by="liuhe-safety").id for i in range(2)]
    handed = tasks.complete(demo, step_id=rectify.id or 0, actor="liuhe-safety",
                            note="已清理消防通道", outputs={"done_measures": "清理通道"},
                            evidence=evidence, evidence_labels=before_after(evidence))
    # 复查 within 10 days, whole days (民法典 §201/§203): handed in on Thursday 5 March, the
    # 10th day after it is Sunday the 15th, so the deadline is Monday 16 March 24:00.
    shanghai = ZoneInfo("Asia/Shanghai")
    assert handed.verify_due_at == datetime(2026, 3, 17, tzinfo=shanghai)
    clock.set(datetime(2026, 3, 16, 23, 59, tzinfo=shanghai))
    sweep_once(demo)
    assert fired(demo, rectify.id or 0) == []
    clock.advance(timedelta(minutes=2))
    sweep_once(demo)
    inspectors = ["pingshan-street-inspector-1", "pingshan-street-inspector-2"]
    assert fired(demo, rectify.id or 0) == [
        ("verify", 1, 0, sorted([*inspectors, "pingshan-street-chief"]))]
    clock.advance(timedelta(days=3))
    sweep_once(demo)
    assert fired(demo, rectify.id or 0)[-1] == ("verify", 2, 0, ["pingshan-street-head"])
    # The register shows the hazard as awaiting re-inspection, not as the unit's late work.
    clock.advance(timedelta(days=20))  # past the 30-day rectification deadline
    sweep_once(demo)
    row = step(demo, run.id or 0, "rectify")
    assert row.status == "submitted" and row.escalation_level == 0
    assert {kind for kind, *_ in fired(demo, rectify.id or 0)} == {"verify"}


@pytest.mark.parametrize("repeat", ["0m", "0s", "0wd"])
def test_a_level_repeated_every_zero_is_refused_at_its_line(vrt: Runtime, repeat: str) -> None:
    """It passed validation once, then stopped every deadline of the installation."""
    text = ("id: bad\nversion: 1\ntitle: 坏\nsteps:\n  - id: fix\n    title: 整改\n"
            "    role: grid_worker\n    due: 1d\n    escalate:\n"
            f"      - {{after: 0m, notify: [street_head], repeat: {repeat}}}\n")
    shown = refused(vrt, text)
    assert "bad.yaml:10:" in shown and "repeat must be longer than 0" in shown, shown


def test_a_rejection_keeps_the_deadline_and_says_so(vrt: Runtime, clock: ManualClock) -> None:
    """The deadline is the one the notice printed (or a report's legal hour): a late verdict
    does not move it, only an approved extension does. Sent back after it passed, the work is
    overdue at once and the assignee is told to rectify now or ask for more time."""
    run_id = start(vrt)
    first_due = step(vrt, run_id, "fix").due_at
    assert first_due is not None
    clock.advance(timedelta(hours=4))
    fix_id = submit_fix(vrt, run_id).id or 0
    clock.advance(timedelta(days=2, hours=2))
    sweep_once(vrt)  # the verifier is chased; the unit is not
    assert {kind for kind, *_ in fired(vrt, fix_id)} == {"verify"}
    back = tasks.verify(vrt, step_id=fix_id, actor="s1-insp1", approve=False, note="照片看不清")
    assert back.due_at == first_due and back.original_due_at is None
    with read_session(vrt.db) as session:
        told = session.exec(select(Notification).where(
            Notification.step_id == fix_id, Notification.kind == "rejected")).one()
    assert "已超过期限 2026-03-03 09:00，请立即整改；确需更多时间的，请申请延期" in told.body
    clock.advance(timedelta(seconds=1))
    sweep_once(vrt)
    assert fired(vrt, fix_id)[-1] == ("escalate", 1, 0, ["s1-head"])
    assert step(vrt, run_id, "fix").overdue


def test_a_report_handed_in_again_after_its_deadline_is_chased_again(
    vrt: Runtime, clock: ManualClock
) -> None:
    """A sign-off due within the hour of the run: rejected after the hour and handed in again,
    the new submission's verdict is due at once and its chase goes out (not swallowed as a
    repeat of the first submission's)."""
    run_id = start(vrt)
    sign_id = step(vrt, run_id, "sign").id or 0
    clock.advance(timedelta(minutes=50))
    tasks.complete(vrt, step_id=sign_id, actor="s1-duty", note="首报")
    clock.advance(timedelta(minutes=10))
    sweep_once(vrt)
    clock.advance(timedelta(minutes=5))
    tasks.verify(vrt, step_id=sign_id, actor="d1-leader", approve=False, note="伤亡数字待核实")
    clock.advance(timedelta(minutes=3))
    again = tasks.complete(vrt, step_id=sign_id, actor="s1-duty", note="首报（更正）")
    assert again.verify_due_at == clock.now()
    sweep_once(vrt)
    assert fired(vrt, sign_id) == [("verify", 1, 0, ["d1-leader"]),
                                   ("verify", 1, 0, ["d1-leader"])]
    with read_session(vrt.db) as session:
        chases = session.exec(select(Notification).where(
            Notification.step_id == sign_id, Notification.kind == "verify",
            Notification.recipient == "d1-leader")).all()
    assert len([n for n in chases if n.title.startswith("【核验超时")]) == 2


def test_the_verifiers_inbox_places_the_work_by_the_verdicts_deadline(
    vrt: Runtime, clock: ManualClock
) -> None:
    """The inspector's own patrol is due in 4 hours, the rectification awaiting their verdict
    in 2 (its assignee's own deadline is a day away): the verdict comes first."""
    run_id = start(vrt)
    submit_fix(vrt, run_id)
    client = TestClient(create_app(vrt, background=False, prefect=False))
    token = make_token("s1-insp1", vrt.settings.signing_secret())
    got = client.get("/api/tasks", params={"mine": "true", "status": "ready,submitted"},
                     headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200, got.text
    assert [t["step"] for t in got.json()["data"]] == ["fix", "patrol"]
