"""The shipped gas-leak playbook (playbooks/gas-leak.yaml and its modules) on the shipped demo
district (playbooks/org/demo-district.yaml): who gets the first steps, the five-minute first
report counted from the alert, the major-only branch (半小时口头报告, 1小时系统首报, the 四个一
set-up 设→召→管→研→处→报) skipped for 一般 and timed from the start for 重大, a whole run walked
to completion by the people the org chart names, and the Order 493 §12 first report it files.
Segments run bare (drain_wakes), so notify and document steps execute without Prefect."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from factories import SHIPPED_PLAYBOOKS, png_bytes
from gas_leak_walk import (
    COMMANDER,
    FACTS,
    LOCATION,
    complete,
    finish,
    get_run,
    playbook,
    start,
    steps,
    verifier_for,
    walk_to_the_end,
)
from sqlmodel import select

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import _template_context, drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document, Evidence
from models.errors import Forbidden, InvalidInput
from models.escalation import Escalation
from models.outbox import Notification
from models.queries import run_detail
from models.run import Run
from models.task import StepInstance

# Steps that run only for 重大 and 特别重大, in the order of 设→召→管→研→处→报.
SET_UP = ["post.centre", "post.setup", "post.convene", "post.mechanism"]  # 设 (四个一)
SUMMON = ["summon"]  # 召
CONTROL = ["control", "env-monitor"]  # 管
ASSESS = ["joint-assessment"]  # 研
RELEASE = ["release.draft", "release.document", "release.publish",  # 报 (one window)
           "follow-up", "follow-up-send"]
REPORTS = ["verbal-points", "verbal", "system-report", "system-report-send"]
# The district duty room (区应急指挥中心值班室): duty_officer at the root, where the duty
# room's steps are held (`at: district`).
DUTY_ROOM = ["pingshan-duty-1", "pingshan-duty-2", "pingshan-duty-3"]
MAJOR_ONLY = SET_UP + SUMMON + CONTROL + ASSESS + RELEASE + REPORTS

ORDER_493_HEADINGS = ["事发单位", "发生时间", "发生地点", "简要经过", "伤亡", "直接经济损失",
                      "已经采取的措施"]

# The helpers that start, complete and walk a run are tests/gas_leak_walk.py's.


# --- starting --------------------------------------------------------------------------------

def test_start_as_district_commander_gives_first_step_to_the_named_duty_officer(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo)
    run = get_run(demo, run_id)
    assert run.started_by == COMMANDER and run.unit_id == "liuhe"
    assert run.title == f"燃气泄漏模块化应急处置·{LOCATION}"
    keyed = steps(demo, run_id)
    # Only the first step has a row; the rest materialise as their needs finish.
    assert list(keyed) == ["receive"]
    receive = keyed["receive"]
    assert receive.status == "ready"
    # `at: district`: the bureau's 24-hour duty room takes the alert, not the street's duty
    # officer 梁子健, who is the duty_officer nearest the community.
    assert receive.unit_id == "pingshan"
    assert receive.assignees == DUTY_ROOM
    assert demo.org.people["pingshan-duty-1"].name == "黄磊"
    assert receive.due_at == clock.now() + timedelta(minutes=3)
    assert [k for k, s in keyed.items() if s.status != "pending"] == ["receive"]
    with read_session(demo.db) as session:
        inbox = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "assigned")).all()
    assert [n.recipient for n in inbox] == DUTY_ROOM


def test_first_steps_after_the_alert_go_to_named_people(demo: Runtime) -> None:
    run_id = start(demo)
    finish(demo, run_id, "receive", "一般")
    ready = {k: s.assignees for k, s in steps(demo, run_id).items() if s.status == "ready"}
    assert ready == {
        "report.write": DUTY_ROOM,  # 报: the district duty room writes and signs it
        "rescue.dispatch": ["pingshan-street-duty"],  # the street sends its own team
        "assess": ["liu-yang"],  # 判: 刘洋, the district's duty leader
        "verify": ["liuhe-grid"],  # 核: the community's grid worker, 熊淑芬
        "cut-gas": ["deng-hui"],  # the gas company's dispatcher
        "cordon": ["tang-jian"],  # police
    }
    names = {p: demo.org.people[p].name for a in ready.values() for p in a}
    assert names["liu-yang"] == "刘洋" and names["liuhe-grid"] == "熊淑芬"


def test_commander_of_another_street_cannot_start_it_for_liuhe(demo: Runtime) -> None:
    with pytest.raises(Forbidden):
        lifecycle.start_run(demo, playbook_id="gas-leak", unit_id="liuhe",
                            params={"location": LOCATION}, actor="maluan-commander")
    run = lifecycle.start_run(demo, playbook_id="gas-leak", unit_id="liuhe",
                              params={"location": LOCATION}, actor="pingshan-street-commander")
    assert run.params["grade"] == "一般"  # the default



@pytest.mark.parametrize("name", ["casualties", "missing"])
def test_a_negative_count_of_people_is_refused_at_start(demo: Runtime, name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        start(demo, **{name: -5})
    assert caught.value.field == f"params.{name}"
    assert caught.value.message == "不能小于 0；收到 -5 / must be at least 0; got -5"
    assert start(demo, **{name: 0}) > 0


def test_every_count_the_playbook_asks_for_is_at_least_zero(demo: Runtime) -> None:
    pb = playbook(demo)
    counts = {f"params.{n}": p for n, p in pb.params.items() if p.type == "int"}
    # The playbook's own steps; a module's (`report.write`) are the module file's to bound.
    for step in (s for s in pb.steps if "." not in s.id):
        counts |= {f"{step.id}.{n}": o for n, o in (step.outputs or {}).items()
                   if o.type == "int"}
    assert {"params.casualties", "verify.casualties", "medical.deaths"} <= set(counts)
    assert {k: p.min for k, p in counts.items() if p.min != 0} == {}


def test_verifying_on_site_refuses_a_blank_situation_and_negative_casualties(
    demo: Runtime
) -> None:
    run_id = start(demo)
    finish(demo, run_id, "receive", "一般")
    verify = steps(demo, run_id)["verify"]
    photo = store_evidence(demo, data=png_bytes(), filename="现场.png",
                           uploaded_by="liuhe-grid").id
    for outputs, field in [({"scene": "   "}, "outputs.scene"),
                           ({"scene": "泄漏", "casualties": -5}, "outputs.casualties")]:
        with pytest.raises(InvalidInput) as caught:
            tasks.complete(demo, step_id=verify.id or 0, actor="liuhe-grid", note="已核实",
                           outputs=outputs, evidence=[photo])
        assert caught.value.field == field
    done = tasks.complete(demo, step_id=verify.id or 0, actor="liuhe-grid", note="已核实",
                          outputs={"scene": "泄漏", "casualties": 0}, evidence=[photo])
    assert done.outputs["casualties"] == 0

# --- the five-minute first report ------------------------------------------------------------

def test_first_report_is_due_five_minutes_after_the_run_started(
    demo: Runtime, clock: ManualClock
) -> None:
    five_minutes_from_run = [
        s.id for s in playbook(demo).steps
        if s.due is not None and s.due.from_ == "run" and s.due.after.seconds() == 300
    ]
    assert five_minutes_from_run == ["report.write"]
    started = clock.now()
    run_id = start(demo)
    clock.advance(timedelta(minutes=2))  # the alert took two minutes to register
    finish(demo, run_id, "receive", "一般")
    write = steps(demo, run_id)["report.write"]
    assert write.status == "ready" and write.ready_at == started + timedelta(minutes=2)
    assert write.due_at == started + timedelta(minutes=5)  # from the alert, not from ready
    assert write.assignees == DUTY_ROOM


def test_late_first_report_escalates_to_the_duty_leader_then_the_director(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo)
    finish(demo, run_id, "receive", "一般")
    clock.advance(timedelta(minutes=11))  # 6 minutes past the 5-minute deadline
    sweep_once(demo)
    write = steps(demo, run_id)["report.write"]
    assert write.overdue and write.escalation_level == 2
    with read_session(demo.db) as session:
        fired = session.exec(select(Escalation).where(
            Escalation.step_id == write.id, Escalation.kind == "escalate")
            .order_by(Escalation.level)).all()
    assert [(e.level, e.recipients) for e in fired] == [(1, ["liu-yang"]),
                                                         (2, ["chen-jianguo"])]


# --- the major-only branch -------------------------------------------------------------------

def test_minor_grade_skips_every_major_only_step_when_reached(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo, "一般")
    for key in ("receive", "report.write", "assess", "verify"):
        clock.advance(timedelta(minutes=1))
        finish(demo, run_id, key, "一般")
    drain_wakes(demo)
    keyed = steps(demo, run_id)
    assert {k: keyed[k].status for k in MAJOR_ONLY} == dict.fromkeys(MAJOR_ONLY, "skipped")
    assert all(keyed[k].due_at is None and not keyed[k].assignees for k in MAJOR_ONLY)
    with read_session(demo.db) as session:
        _, _, events = run_detail(session, run_id=run_id)
    skipped = {e.step_id for e in events if e.action == "skipped"}
    assert {keyed[k].id for k in MAJOR_ONLY} <= skipped
    # Nobody is asked for a verbal or system report.
    with read_session(demo.db) as session:
        asked = session.exec(select(Notification.step_id).where(
            Notification.run_id == run_id, Notification.kind == "assigned")).all()
    assert not {keyed[k].id for k in MAJOR_ONLY} & set(asked)


def test_major_grade_makes_verbal_and_system_reports_due_from_the_start(
    demo: Runtime, clock: ManualClock
) -> None:
    started = clock.now()
    run_id = start(demo, "重大")
    clock.advance(timedelta(minutes=1))
    finish(demo, run_id, "receive", "重大")
    clock.advance(timedelta(minutes=2))
    finish(demo, run_id, "assess", "重大")
    drain_wakes(demo)  # verbal-points is a document step: the segment files it
    keyed = steps(demo, run_id)
    assert keyed["verbal-points"].status == "done"
    verbal = keyed["verbal"]
    assert verbal.status == "ready" and verbal.assignees == ["liu-yang"]
    assert verbal.due_at == started + timedelta(minutes=30)  # 半小时口头报告
    assert "system-report" not in keyed  # waits for the written first report
    clock.advance(timedelta(minutes=1))
    finish(demo, run_id, "report.write", "重大")
    system = steps(demo, run_id)["system-report"]
    assert system.status == "ready" and system.assignees == DUTY_ROOM
    assert system.due_at == started + timedelta(hours=1)  # 1小时系统首报
    # 设: the command centre opens at once under the duty leader.
    centre = steps(demo, run_id)["post.centre"]
    assert centre.status == "ready" and centre.assignees == ["liu-yang"]
    with read_session(demo.db) as session:
        doc = session.exec(select(Document).where(Document.run_id == run_id,
                                                  Document.step_id == keyed["verbal-points"].id)
                           ).one()
    assert LOCATION in doc.body


def test_duty_leaders_major_judgement_turns_on_the_major_branch(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo, "一般")  # reported as ordinary ...
    finish(demo, run_id, "receive", "重大")
    finish(demo, run_id, "assess", "重大")  # ... judged major by the duty leader
    drain_wakes(demo)
    keyed = steps(demo, run_id)
    assert keyed["post.centre"].status == "ready"
    assert keyed["verbal"].status == "ready"


def test_major_set_up_follows_set_summon_control_assess_release(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo, "重大")
    walk_to_the_end(demo, clock, run_id, "重大")
    keyed = steps(demo, run_id)
    assert all(keyed[k].status == "done" for k in MAJOR_ONLY), {
        k: keyed[k].status for k in MAJOR_ONLY}

    def ready(key: str) -> datetime:
        at = keyed[key].ready_at
        assert at is not None, key
        return at

    # 设 → 召 / 管 → 研 → 报
    assert ready("post.centre") < ready("post.setup")
    assert ready("post.setup") < ready("summon") == ready("control") == ready("env-monitor")
    assert ready("summon") < ready("joint-assessment")
    assert ready("joint-assessment") < ready("release.draft") == ready("follow-up")
    assert ready("release.draft") < ready("release.publish")
    # 一个窗口发布: the release wording was approved by the director, not its writer.
    draft = keyed["release.draft"]
    assert draft.submitted_by == "xu-nuo" and draft.verified_by == "chen-jianguo"


# --- a whole run -----------------------------------------------------------------------------

@pytest.mark.parametrize("grade", ["一般", "重大"])
def test_walk_the_whole_run_to_completion(
    demo: Runtime, clock: ManualClock, grade: str
) -> None:
    run_id = start(demo, grade)
    rounds = walk_to_the_end(demo, clock, run_id, grade)
    run = get_run(demo, run_id)
    assert run.status == "completed" and run.finished_at is not None
    keyed = steps(demo, run_id)
    assert {s.status for s in keyed.values()} <= {"done", "skipped"}
    assert keyed["close"].status == "done" and keyed["medical"].status == "skipped"
    done_major = {k for k in MAJOR_ONLY if keyed[k].status == "done"}
    assert done_major == (set(MAJOR_ONLY) if grade == "重大" else set())
    worked = {k for r in rounds for k in r}
    assert {"receive", "report.write", "verify", "cut-gas", "restore", "close"} <= worked
    pb = playbook(demo)
    with read_session(demo.db) as session:
        _, _, events = run_detail(session, run_id=run_id)
        attached = session.exec(select(Evidence).where(Evidence.step_id.in_(  # type: ignore[attr-defined]
            [s.id for s in keyed.values()]))).all()
    photos_of = {s.step_key: 0 for s in keyed.values()}
    by_id = {s.id: s.step_key for s in keyed.values()}
    for ev in attached:
        photos_of[by_id[ev.step_id]] += 1
    for key, step in keyed.items():
        spec = pb.step(key)
        if step.status != "done" or spec.action != "task":
            continue
        if spec.evidence and spec.evidence.photos:
            assert photos_of[key] >= spec.evidence.photos, key
        if spec.verify:
            assert step.verified_by and step.verified_by != step.submitted_by, key
            assert demo.org.can_act_as(step.verified_by, spec.verify.role, step.unit_id), key
        assert step.submitted_by and demo.org.can_act_as(step.submitted_by, spec.role or "",
                                                         step.unit_id), key
    actions = [e.action for e in events]
    assert actions[0] == "run_started" and actions[-1] == "run_completed"
    assert "render_failed" not in actions and "expression_failed" not in actions


def test_completed_run_filed_the_order_493_first_report(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo, "一般")
    walk_to_the_end(demo, clock, run_id, "一般")
    keyed = steps(demo, run_id)
    with read_session(demo.db) as session:
        docs = session.exec(select(Document).where(Document.run_id == run_id)).all()
        sent = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.step_id == keyed["report.send"].id)
        ).all()
    first = [d for d in docs if d.step_id == keyed["report.document"].id]
    assert len(first) == 1 and first[0].template == "first-report.md.j2"
    body = first[0].body
    assert "首报" in body and LOCATION in body
    for heading in ORDER_493_HEADINGS:
        assert heading in body, heading
    for fact in ("enterprise", "occurred_at", "scene", "brief", "measures"):
        assert FACTS[fact] in body, fact
    assert "0.5 万元" in body  # a bare loss figure is in 万元
    assert "待核实" not in body.split("可能造成的伤亡")[0]  # every fact given is reported
    # The same report went to the county duty office and the district duty room.
    assert {n.recipient for n in sent} == {"county_duty_office", "district_duty_room"}
    assert all(LOCATION in n.body for n in sent)


# --- templates ---------------------------------------------------------------------------------

SHIPPED_TEMPLATES = sorted(p.name for p in (SHIPPED_PLAYBOOKS / "templates").glob("*.j2"))


def contexts(rt: Runtime, run_id: int) -> dict[str, dict[str, Any]]:
    """The context the engine renders a step's template with, for a few of the run's steps."""
    with read_session(rt.db) as session:
        run = session.get(Run, run_id)
        assert run is not None
        rows = session.exec(select(StepInstance).where(StepInstance.run_id == run_id)).all()
        return {row.step_key: _template_context(session, rt, run, row) for row in rows
                if row.step_key in ("receive", "report.document", "close")}


def test_every_shipped_template_renders_with_a_runs_context(
    demo: Runtime, clock: ManualClock
) -> None:
    assert "first-report.md.j2" in SHIPPED_TEMPLATES and len(SHIPPED_TEMPLATES) >= 9
    fresh = start(demo, "一般")  # nothing known yet: reports must say 待核实, never fail
    walked = start(demo, "重大")
    walk_to_the_end(demo, clock, walked, "重大")
    rendered = 0
    seen = 0
    for run_id in (fresh, walked):
        found = contexts(demo, run_id)
        seen += len(found)
        for key, context in found.items():
            for template in SHIPPED_TEMPLATES:
                text = demo.renderer.render(template, context)
                rendered += 1
                if template.startswith("_"):
                    continue  # macros only
                assert text.strip(), (template, run_id, key)
                assert "Undefined" not in text and "None" not in text, (template, key, text)
                # Documents and messages go to Chinese offices and units: no English
                # subtitle under the title (an italic line of English).
                english = [ln for ln in text.splitlines() if re.match(r"^_[A-Za-z]", ln)]
                assert english == [], (template, english)
    assert seen == 1 + 3  # the fresh run has only `receive`; the finished one all three
    assert rendered == seen * len(SHIPPED_TEMPLATES)


def test_an_unsigned_system_report_chases_the_duty_leader_from_the_hour(
    demo: Runtime, clock: ManualClock
) -> None:
    """The 1-hour system report is handed in at 50 minutes and waits for the duty leader's
    signature: at the hour the duty leader and the director are told, every 10 minutes after,
    while the duty officer who handed it in on time is not chased."""
    run_id = start(demo, "重大")
    started = clock.now()
    for _ in range(20):
        drain_wakes(demo)
        if steps(demo, run_id).get("system-report") is not None:
            break
        for key, step in steps(demo, run_id).items():
            if step.action == "task" and step.status in ("ready", "acked", "rejected"):
                complete(demo, step, "重大")
            elif step.status == "submitted" and key != "system-report":
                tasks.verify(demo, step_id=step.id or 0, actor=verifier_for(demo, step),
                             approve=True, note="核验无误")
        clock.advance(timedelta(minutes=1))
    clock.set(started + timedelta(minutes=50))
    report = steps(demo, run_id)["system-report"]
    handed = complete(demo, report, "重大")
    assert handed.status == "submitted" and handed.verify_due_at == started + timedelta(hours=1)
    clock.set(started + timedelta(minutes=60))
    sweep_once(demo)
    clock.set(started + timedelta(minutes=70))
    sweep_once(demo)
    with read_session(demo.db) as session:
        rows = session.exec(select(Escalation).where(
            Escalation.step_id == report.id).order_by(Escalation.id)).all()
        notes = session.exec(select(Notification).where(
            Notification.step_id == report.id, Notification.kind == "verify")).all()
    assert [(e.kind, e.level, e.repeat) for e in rows] == [("verify", 1, 0), ("verify", 1, 1)]
    leader, director = "liu-yang", "chen-jianguo"
    assert {leader, director} <= {n.recipient for n in notes}
    assert any("系统首报签发超时" in n.title for n in notes)


def test_a_late_evacuation_reaches_the_district_commander_past_the_streets(
    demo: Runtime, clock: ManualClock
) -> None:
    """疏散 late in a community of 坪山街道: the street head at the deadline, the street's own
    commander a quarter of an hour on, and half an hour on the district's commander (王强),
    whom `commander` alone never reached: the street's 胡红霞 holds the role nearer."""
    run_id = start(demo)
    finish(demo, run_id, "receive")
    finish(demo, run_id, "verify")
    evacuate = steps(demo, run_id)["evacuate"]
    assert evacuate.status == "ready"
    clock.advance(timedelta(minutes=61))  # 31 minutes past its 30-minute deadline
    sweep_once(demo)
    with read_session(demo.db) as session:
        fired = session.exec(select(Escalation).where(
            Escalation.step_id == evacuate.id, Escalation.kind == "escalate")
            .order_by(Escalation.level)).all()
    assert [(e.level, e.recipients) for e in fired] == [
        (1, ["pingshan-street-head"]), (2, ["pingshan-street-commander"]), (3, [COMMANDER])]
