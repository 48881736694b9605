"""The shipped hazard playbook (playbooks/hazard-3030.yaml) on the shipped demo district: a
major hazard (重大) walked through listing (挂牌督办), the supervision notice, interim controls,
the five-in-place plan (五落实), rectification, a rejection at re-inspection, rectification
again, acceptance, the closure form, closure (销号) and the look-back visit (回头看) 30 days
later; the register entry (台账) following the run; the four-eyes rule and the unit boundary;
the escalation ladder fired in order, once each; and a general hazard (一般) that skips the
major-only steps. Segments run bare (drain_wakes); the clock is a ManualClock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from factories import before_after, png_bytes, run_steps
from factories import run_row as get_run
from sqlmodel import select

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import _template_context, drain_wakes
from flows.sweeper import sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document, Evidence
from models.errors import Forbidden, InvalidInput
from models.escalation import Escalation
from models.hazard import Hazard
from models.outbox import Notification
from models.queries import run_detail
from models.run import Run
from models.task import StepInstance

PLAYBOOK = "hazard-3030"
UNIT = "liuhe"  # 六和社区, under 坪山街道
COMMANDER = "pingshan-street-commander"  # 胡红霞, may start runs for the street and below
SAFETY = "liuhe-safety"  # 尹秀英, the community's safety officer: controls, plan, rectification
UNIT_HEAD = "liuhe-head"  # 贾丽萍, the community head: 督办函
CHIEF = "pingshan-street-chief"  # 赵丽娟, the street's safety office: lists, reviews, accepts
INSPECTOR_1 = "pingshan-street-inspector-1"  # 邓思远
INSPECTOR_2 = "pingshan-street-inspector-2"  # 潘立新
STREET_HEAD = "pingshan-street-head"  # 王建华
DIRECTOR = "chen-jianguo"  # 陈建国, the bureau's director
MANAGER = "sun-li"  # 孙丽, the bureau's 综合科 (考核)

LOCATION = "六和社区和平路18号富达五金厂"
FACTS: dict[str, Any] = {
    "location": LOCATION,
    "source": "执法检查",
    "category": "粉尘防爆",
    "description": "打磨车间除尘系统未设泄爆装置，粉尘积聚严重",
    "enterprise": "深圳市富达五金制品有限公司",
    "found_at": "2026-03-01T10:30:00+08:00",
    "found_by": "邓思远",
    "code": "PS-2026-0301-007",
}
PLAN = {
    "measures": "加装泄爆片和隔爆阀，更换防爆型除尘器，建立每班清扫制度",
    "funds": 12.5,
    "deadline": "2026-03-28",
    "responsible": "企业法定代表人李富达负总责，设备科负责实施",
    "contingency": "整改期间打磨车间停产，编制粉尘爆炸专项应急预案并组织演练",
}
LISTING = {
    "responsible_unit": "深圳市富达五金制品有限公司",
    "responsible_person": "李富达",
    "supervising_unit": "坪山区安全生产委员会办公室",
    "contact": "赵丽娟 0755-28888888",
}
CONTROLS = {"evacuated": True, "stopped": True, "signs": True, "watch": True}
MAJOR_ONLY = ["list", "notice", "notice-send", "interim", "plan", "accept"]
EVERY_GRADE = ["rectify", "closure-form", "close", "lookback-wait", "lookback",
               "lookback-record"]
REBOUND = ["lookback-rebound"]  # only when the look-back finds the hazard back (隐患反弹)
# 30 whole days from registration at START (Monday 2 March 2026 09:00, bureau time): the 2nd
# is not counted, the 30th day after it is Wednesday 1 April, due at its 24:00 (民法典 §201).
RECTIFY_DUE = datetime(2026, 4, 1, 16, 0, tzinfo=UTC)


# --- helpers ---------------------------------------------------------------------------------

def start(rt: Runtime, grade: str = "重大", **params: Any) -> int:
    run = lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id=UNIT,
                              params={**FACTS, "grade": grade, **params}, actor=COMMANDER)
    drain_wakes(rt)
    return run.id or 0


def steps(rt: Runtime, run_id: int) -> dict[str, StepInstance]:
    return {row.step_key: row for row in run_steps(rt, run_id)}


def step(rt: Runtime, run_id: int, key: str) -> StepInstance:
    return steps(rt, run_id)[key]


def hazard(rt: Runtime, run_id: int) -> Hazard:
    with read_session(rt.db) as session:
        row = session.get(Hazard, run_id)
        assert row is not None
        return row


def photos(rt: Runtime, who: str, n: int) -> list[str]:
    return [store_evidence(rt, data=png_bytes(2 + i, 2), filename=f"整改照片{i + 1}.png",
                           uploaded_by=who).id for i in range(n)]


def do(rt: Runtime, run_id: int, key: str, who: str, outputs: dict[str, Any] | None = None,
       *, n_photos: int = 0, note: str | None = None) -> StepInstance:
    """Complete step `key` as `who`, then let the segment runner file what follows."""
    inst = step(rt, run_id, key)
    ids = photos(rt, who, n_photos)
    done = tasks.complete(rt, step_id=inst.id or 0, actor=who, note=note or f"{inst.title}：已完成",
                          outputs=outputs or {}, evidence=ids,
                          evidence_labels=before_after(ids) if key == "rectify" else {})
    drain_wakes(rt)
    return done


def check(rt: Runtime, run_id: int, key: str, who: str, *, approve: bool = True,
          note: str = "复查合格") -> StepInstance:
    inst = step(rt, run_id, key)
    done = tasks.verify(rt, step_id=inst.id or 0, actor=who, approve=approve, note=note)
    drain_wakes(rt)
    return done


def document(rt: Runtime, run_id: int, key: str) -> Document:
    inst = step(rt, run_id, key)
    with read_session(rt.db) as session:
        return session.exec(select(Document).where(Document.step_id == inst.id)).one()


def local(rt: Runtime, value: datetime | None) -> str:
    return rt.renderer.local(value)


def to_rectification(rt: Runtime, clock: ManualClock, run_id: int) -> None:
    """A listed major hazard with its controls in place and its plan filed and reviewed."""
    clock.advance(timedelta(hours=2))
    do(rt, run_id, "list", CHIEF, LISTING)
    do(rt, run_id, "interim", SAFETY, CONTROLS, n_photos=1)
    clock.advance(timedelta(days=1))
    do(rt, run_id, "plan", SAFETY, PLAN)
    check(rt, run_id, "plan", CHIEF, note="方案可行，同意备案")


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The values filled in (optional outputs left empty are stored as None)."""
    return {k: v for k, v in values.items() if v is not None}


def fired(rt: Runtime, step_id: int) -> list[tuple[str, int, int, list[str]]]:
    with read_session(rt.db) as session:
        rows = session.exec(select(Escalation).where(Escalation.step_id == step_id)
                            .order_by(Escalation.id)).all()  # type: ignore[arg-type]
    return [(e.kind, e.level, e.repeat, sorted(e.recipients)) for e in rows]


def told(rt: Runtime, step_id: int, kind: str) -> set[str]:
    with read_session(rt.db) as session:
        rows = session.exec(select(Notification).where(
            Notification.step_id == step_id, Notification.kind == kind)).all()
    return {n.recipient for n in rows}


# --- the playbook itself ---------------------------------------------------------------------

def test_playbook_loads_with_the_register_and_the_domain_timings(demo: Runtime) -> None:
    pb = demo.catalog.get(PLAYBOOK)
    assert pb.kind == "rectification" and pb.title_en
    assert pb.register_ is not None
    assert (pb.register_.closed_by, pb.register_.due_by, pb.register_.plan_by) == (
        "close", "rectify", "plan")
    assert set(pb.params["source"].values or []) == {"检查发现", "群众举报", "执法检查", "事故调查"}
    assert pb.params["grade"].values == ["一般", "重大"] and pb.params["grade"].default == "一般"
    assert pb.params["location"].required
    assert set(pb.step_ids) == set(MAJOR_ONLY + EVERY_GRADE + REBOUND)
    for key in MAJOR_ONLY:
        assert pb.step(key).when == "params.grade == '重大'", key
    rectify = pb.step("rectify")
    assert rectify.due is not None
    assert (str(rectify.due.after), rectify.due.from_) == ("30d", "run")
    assert [str(r.before) for r in rectify.remind] == ["7d", "1d"]
    assert [(str(e.after), e.title) for e in rectify.escalate] == [
        ("0m", "督办函"), ("3d", "提级督办函"), ("7d", "约谈"), ("30d", "通报批评")]
    assert rectify.evidence is not None and rectify.evidence.photos == 2 and rectify.evidence.note
    assert rectify.verify is not None and rectify.verify.role == "inspector"
    assert rectify.verify.distinct
    assert rectify.extension is not None and rectify.extension.role == "section_chief"
    assert str(pb.step("list").due.after) == "3wd"  # type: ignore[union-attr]  # Qingdao
    assert str(pb.step("plan").due.after) == "5wd"  # type: ignore[union-attr]
    assert str(pb.step("accept").due.after) == "10d"  # type: ignore[union-attr]  # Hubei
    wait = pb.step("lookback-wait")
    assert wait.action == "wait" and str(wait.due.after) == "30d"  # type: ignore[union-attr]
    five = {k for k, o in pb.step("plan").outputs.items() if o.required}
    assert five == {"measures", "funds", "deadline", "responsible", "contingency"}
    assert all(s.title_en for s in pb.steps)
    assert {s.phase for s in pb.steps if s.phase} == {
        "挂牌督办", "整改方案", "整改中", "验收销号", "回头看"}


# --- a major hazard, the whole loop ----------------------------------------------------------

def test_major_hazard_walks_the_whole_loop(demo: Runtime, clock: ManualClock) -> None:
    assert clock.now() == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # what RECTIFY_DUE counts from
    run_id = start(demo, "重大")
    keyed = steps(demo, run_id)
    # Listing and interim controls start at once; nothing else has a row yet.
    assert {k: s.status for k, s in keyed.items()} == {"list": "ready", "interim": "ready"}
    assert keyed["list"].assignees == [CHIEF]
    assert keyed["interim"].assignees == [SAFETY]
    # 3 working days from Monday 09:00: the end of Thursday.
    assert local(demo, keyed["list"].due_at) == "2026-03-06 00:00"
    assert hazard(demo, run_id).status == "挂牌督办"

    # 挂牌督办 → the notice is filed and served.
    clock.advance(timedelta(hours=2))
    do(demo, run_id, "list", CHIEF, LISTING)
    keyed = steps(demo, run_id)
    assert keyed["notice"].status == "done" and keyed["notice-send"].status == "done"
    assert keyed["plan"].status == "ready" and keyed["plan"].assignees == [SAFETY]
    assert hazard(demo, run_id).status == "整改方案"
    notice = document(demo, run_id, "notice")
    body = notice.body
    assert notice.template == "supervision-notice.md.j2"
    assert "重大事故隐患挂牌督办通知书" in body
    # The bureau's register numbers it: the first notice of 2026 in this database.
    assert notice.number == "坪应急督〔2026〕1号" and "**坪应急督〔2026〕1号**" in body
    for fact in (LOCATION, FACTS["code"], FACTS["description"], FACTS["category"], "执法检查",
                 LISTING["responsible_unit"], LISTING["responsible_person"],
                 LISTING["supervising_unit"], LISTING["contact"]):
        assert fact in body, fact
    assert "| 隐患等级 | 重大 |" in body
    # The rectification deadline printed is the one the engine enforces: 30 days from the run,
    # to the end of the last day.
    assert "2026年4月1日 24:00 前完成整改" in body
    assert "自本通知书下达之日起5个工作日内（2026年3月9日 24:00 前）" in body
    assert "签发人：赵丽娟" in body and "签发日期：2026年3月2日" in body
    assert "None" not in body and "待核实" not in body
    with read_session(demo.db) as session:
        served = session.exec(select(Notification).where(
            Notification.step_id == keyed["notice-send"].id)).all()
    assert {n.recipient for n in served} == {UNIT_HEAD, SAFETY, STREET_HEAD}
    assert all("坪应急督〔2026〕1号" in n.body for n in served)  # serving: the same number

    # 临时管控: four controls, each stated.
    with pytest.raises(InvalidInput) as missing:
        do(demo, run_id, "interim", SAFETY, {"evacuated": True, "stopped": True, "signs": True},
           n_photos=1)
    assert missing.value.field == "outputs.watch"
    do(demo, run_id, "interim", SAFETY, CONTROLS, n_photos=1)

    # 整改方案: all five elements are required, then the section chief reviews it.
    clock.advance(timedelta(days=1))
    plan = step(demo, run_id, "plan")
    assert local(demo, plan.due_at) == "2026-03-10 00:00"  # 5 working days from listing
    for element in PLAN:
        partial = {k: v for k, v in PLAN.items() if k != element}
        with pytest.raises(InvalidInput) as caught:
            do(demo, run_id, "plan", SAFETY, partial)
        assert caught.value.field == f"outputs.{element}"
    do(demo, run_id, "plan", SAFETY, PLAN)
    check(demo, run_id, "plan", CHIEF, note="方案可行，同意备案")
    rectify = step(demo, run_id, "rectify")
    assert rectify.status == "ready" and rectify.assignees == [SAFETY]
    assert rectify.due_at == RECTIFY_DUE
    entry = hazard(demo, run_id)
    assert entry.status == "整改中" and entry.due_at == rectify.due_at
    assert given(entry.plan) == PLAN

    # 整改: two photos (before, after) and a note. The scene before alone is refused by what
    # is missing.
    clock.advance(timedelta(days=10))
    with pytest.raises(InvalidInput) as few:
        do(demo, run_id, "rectify", SAFETY, {"done_measures": "已加装泄爆片"}, n_photos=1)
    assert few.value.field == "evidence_labels.整改后" and "缺少整改后照片" in str(few.value)
    do(demo, run_id, "rectify", SAFETY, {"done_measures": "已加装泄爆片"}, n_photos=2)
    assert step(demo, run_id, "rectify").status == "submitted"
    assert hazard(demo, run_id).status == "复查中"  # the register shows it awaits 复查

    # 复查: rejected with a reason, which the rectifier is told and the step keeps.
    reason = "隔爆阀未安装，除尘器仍为非防爆型"
    rejected = check(demo, run_id, "rectify", INSPECTOR_1, approve=False, note=reason)
    assert rejected.status == "rejected" and rejected.reject_reason == reason
    assert rejected.verified_by == INSPECTOR_1
    with read_session(demo.db) as session:
        notes = session.exec(select(Notification).where(
            Notification.step_id == rejected.id, Notification.kind == "rejected")).all()
    assert [n.recipient for n in notes] == [SAFETY] and reason in notes[0].body
    # The register tells work sent back from work never handed in.
    assert hazard(demo, run_id).status == "退回整改"

    # 整改 again, then re-inspected and passed.
    clock.advance(timedelta(days=5))
    done_measures = "已加装泄爆片和隔爆阀，更换防爆型除尘器"
    do(demo, run_id, "rectify", SAFETY, {"done_measures": done_measures, "cost": 11.8},
       n_photos=2)
    again = step(demo, run_id, "rectify")
    assert again.status == "submitted" and again.reject_reason is None
    passed = check(demo, run_id, "rectify", INSPECTOR_1, note="复查合格")
    assert passed.status == "done" and passed.verified_by == INSPECTOR_1
    assert passed.submitted_by == SAFETY

    # 验收: by the section chief within 10 days (Hubei), whole days: passed on Wednesday 18
    # March, the 10th day after is Saturday the 28th, so Monday 30 March 24:00.
    accept = step(demo, run_id, "accept")
    assert accept.assignees == [CHIEF]
    assert accept.due_at == datetime(2026, 3, 30, 16, 0, tzinfo=UTC)
    assert hazard(demo, run_id).status == "验收销号"
    clock.advance(timedelta(days=2))
    opinion = "经现场验收，泄爆、隔爆措施落实到位，整改合格，同意销号"
    do(demo, run_id, "accept", CHIEF, {"opinion": opinion, "team": "赵丽娟、邓思远、潘立新"})

    # The closure form is filed, and the inspector closes the hazard against it.
    form = document(demo, run_id, "closure-form")
    body = form.body
    assert form.template == "closure-form.md.j2"
    assert "重大事故隐患整改销号审批表" in body
    for fact in (FACTS["code"], LOCATION, FACTS["description"], LISTING["responsible_unit"],
                 "挂牌督办文号**：坪应急督〔2026〕1号", done_measures, "11.8 万元", opinion,
                 "复查合格。复查人：邓思远", "☑ 同意销号、摘牌", "审批人（签字）：赵丽娟"):
        assert fact in body, fact
    for element in ("措施", "资金", "时限", "责任", "预案"):
        assert f"- {element}：" in body, element
    for value in PLAN.values():
        assert str(value) in body, value
    # The photos of the hand-in that passed, each with what it shows and the hash of the file
    # kept, so the paper names the very file in the store.
    with read_session(demo.db) as session:
        kept = [session.get(Evidence, ev_id) for ev_id in again.evidence]
    for i, (file, label) in enumerate(zip(kept, ("整改前", "整改后"), strict=True)):
        assert file is not None
        assert f"  - {label}：整改照片{i + 1}.png（校验值 {file.sha256[:16]}）" in body, body
    assert "None" not in body
    close = step(demo, run_id, "close")
    assert close.status == "ready" and set(close.assignees) == {INSPECTOR_1, INSPECTOR_2}
    clock.advance(timedelta(days=1))
    closed_at = clock.now()
    do(demo, run_id, "close", INSPECTOR_2, note="整改资料齐全，办理销号、摘牌")
    entry = hazard(demo, run_id)
    assert entry.status == "已销号" and entry.closed_at == closed_at

    # 回头看: 30 days after closure (Saturday 21 March), whole days: Monday 20 April 24:00.
    wait = step(demo, run_id, "lookback-wait")
    assert local(demo, closed_at) == "2026-03-21 11:00"
    assert wait.status == "ready" and wait.due_at == datetime(2026, 4, 20, 16, 0, tzinfo=UTC)
    clock.set(wait.due_at - timedelta(minutes=1))  # type: ignore[operator]
    sweep_once(demo)
    assert "lookback" not in steps(demo, run_id)
    clock.advance(timedelta(minutes=2))
    sweep_once(demo)
    drain_wakes(demo)
    lookback = step(demo, run_id, "lookback")
    assert lookback.status == "ready" and set(lookback.assignees) == {INSPECTOR_1, INSPECTOR_2}
    assert hazard(demo, run_id).status == "回头看"
    do(demo, run_id, "lookback", INSPECTOR_1, {"result": "整改成果巩固"}, n_photos=1,
       note="泄爆、隔爆装置完好，清扫记录齐全")
    record = document(demo, run_id, "lookback-record").body
    assert "整改成果巩固" in record and FACTS["code"] in record and "邓思远" in record

    run = get_run(demo, run_id)
    assert run.status == "completed"
    entry = hazard(demo, run_id)
    assert entry.status == "已销号" and entry.closed_at == closed_at

    # Every step is in the timeline, in the order it happened; the hazard held, so nobody
    # is told it came back.
    keyed = steps(demo, run_id)
    assert {k: s.status for k, s in keyed.items()} == dict.fromkeys(
        MAJOR_ONLY + EVERY_GRADE, "done") | dict.fromkeys(REBOUND, "skipped")
    rebound = keyed.pop("lookback-rebound")
    assert told(demo, rebound.id or 0, "notify") == set()
    with read_session(demo.db) as session:
        _, _, events = run_detail(session, run_id=run_id)
    by_step: dict[int | None, list[str]] = {}
    for e in events:
        by_step.setdefault(e.step_id, []).append(e.action)
    for key, inst in keyed.items():
        assert by_step.get(inst.id, [])[:1] == ["ready"], key
        assert by_step[inst.id][-1] in ("done", "verified"), key
    assert by_step[keyed["rectify"].id] == [
        "ready", "submitted", "rejected", "submitted", "verified"]
    assert by_step[keyed["plan"].id] == ["ready", "submitted", "verified"]
    actions = [e.action for e in events]
    assert actions[0] == "run_started" and actions[-1] == "run_completed"
    assert "render_failed" not in actions and "expression_failed" not in actions


def test_register_entry_follows_the_run(demo: Runtime, clock: ManualClock) -> None:
    assert clock.now() == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # what RECTIFY_DUE counts from
    run_id = start(demo, "重大", campaign=None)
    entry = hazard(demo, run_id)
    assert (entry.code, entry.grade, entry.source, entry.category, entry.enterprise) == (
        FACTS["code"], "重大", "执法检查", "粉尘防爆", FACTS["enterprise"])
    assert entry.location == LOCATION and entry.street_id == "pingshan-street"
    assert entry.found_at == datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    assert entry.found_by == "邓思远" and entry.unit_id == UNIT
    # The rectification deadline runs from registration, so the register knows it already.
    assert entry.status == "挂牌督办" and entry.plan == {}
    assert entry.due_at == RECTIFY_DUE
    clock.advance(timedelta(hours=1))
    do(demo, run_id, "list", CHIEF, LISTING)
    assert hazard(demo, run_id).status == "整改方案"
    do(demo, run_id, "interim", SAFETY, CONTROLS, n_photos=1)
    do(demo, run_id, "plan", SAFETY, PLAN)
    # Filed, not yet reviewed: the plan is on the register already, the phase is still 整改方案.
    entry = hazard(demo, run_id)
    assert entry.status == "整改方案" and given(entry.plan) == PLAN
    check(demo, run_id, "plan", CHIEF)
    entry = hazard(demo, run_id)
    assert entry.status == "整改中" and given(entry.plan) == PLAN
    assert entry.due_at == RECTIFY_DUE == step(demo, run_id, "rectify").due_at
    assert entry.closed_at is None
    do(demo, run_id, "rectify", SAFETY, {"done_measures": "已整改"}, n_photos=2)
    assert hazard(demo, run_id).status == "复查中"  # submitted, awaiting re-inspection
    check(demo, run_id, "rectify", INSPECTOR_2)
    assert hazard(demo, run_id).status == "验收销号"
    do(demo, run_id, "accept", CHIEF, {"opinion": "验收合格"})
    assert hazard(demo, run_id).status == "验收销号"
    do(demo, run_id, "close", INSPECTOR_1)
    entry = hazard(demo, run_id)
    assert entry.status == "已销号" and entry.closed_at == clock.now()


def test_a_hazard_of_a_campaign_joins_it(demo: Runtime) -> None:
    campaign = lifecycle.start_run(demo, playbook_id="campaign-3030", unit_id="pingshan-street",
                                   params={"target": 5}, actor=COMMANDER).id
    run_id = start(demo, "重大", campaign=campaign)
    assert hazard(demo, run_id).campaign_run_id == campaign


@pytest.mark.parametrize("which", ["missing", "not-a-campaign", "other-street"])
def test_a_hazard_cannot_join_a_campaign_that_is_not_there_for_it(demo: Runtime,
                                                                  which: str) -> None:
    if which == "missing":
        campaign, expected = 4242, "does not exist"
    elif which == "not-a-campaign":
        campaign, expected = start(demo, "一般"), "is not a campaign"
    else:
        campaign = lifecycle.start_run(demo, playbook_id="campaign-3030", unit_id="maluan",
                                       params={}, actor="maluan-commander").id or 0
        expected = "does not include 'liuhe'"
    with read_session(demo.db) as session:
        before = len(session.exec(select(Run)).all())
    with pytest.raises(InvalidInput) as err:
        start(demo, "重大", campaign=campaign)
    assert err.value.field == "params.campaign" and expected in str(err.value)
    with read_session(demo.db) as session:
        assert len(session.exec(select(Run)).all()) == before  # nothing written


def test_code_defaults_to_the_register_number(demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, "重大", code=None)
    code = f"YH{run_id:08d}"
    assert hazard(demo, run_id).code == code
    do(demo, run_id, "list", CHIEF, {"responsible_person": "李富达"})
    assert f"| 隐患编号 | {code} |" in document(demo, run_id, "notice").body


# --- who may act -------------------------------------------------------------------------------

def test_inspector_cannot_verify_their_own_rectification(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo, "重大")
    to_rectification(demo, clock, run_id)
    rectify = step(demo, run_id, "rectify")
    # The street's commander hands the rectification to one of its inspectors ...
    tasks.reassign(demo, step_id=rectify.id or 0, actor=COMMANDER, person=INSPECTOR_1)
    do(demo, run_id, "rectify", INSPECTOR_1, {"done_measures": "已整改"}, n_photos=2)
    # ... who then may not re-inspect it: four eyes.
    with pytest.raises(Forbidden) as caught:
        check(demo, run_id, "rectify", INSPECTOR_1)
    assert "four-eyes" in str(caught.value) and "不能核验自己完成的任务" in str(caught.value)
    assert step(demo, run_id, "rectify").status == "submitted"
    # The other inspector can.
    assert check(demo, run_id, "rectify", INSPECTOR_2).status == "done"


def test_whoever_handed_in_the_rectification_may_not_close_it(
    demo: Runtime, clock: ManualClock
) -> None:
    # `not_by: [rectify]` on close: the rectification reassigned to an inspector, verified
    # by the other, may not then be closed (销号) by the one who did it.
    run_id = start(demo, "一般")
    rectify = step(demo, run_id, "rectify")
    tasks.reassign(demo, step_id=rectify.id or 0, actor=COMMANDER, person=INSPECTOR_1)
    do(demo, run_id, "rectify", INSPECTOR_1, {"done_measures": "已整改"}, n_photos=2)
    check(demo, run_id, "rectify", INSPECTOR_2)
    close = step(demo, run_id, "close")
    assert close.status == "ready" and INSPECTOR_1 in close.assignees
    with pytest.raises(Forbidden) as caught:
        do(demo, run_id, "close", INSPECTOR_1, note="验收销号")
    assert "“隐患整改”由您提交，不能再办理“隐患销号”（四眼原则）" in str(caught.value)
    assert step(demo, run_id, "close").status == "ready"  # nothing written
    assert do(demo, run_id, "close", INSPECTOR_2, note="验收销号").status == "done"


def test_people_of_another_street_cannot_act_on_the_hazard(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo, "重大")
    # Maluan's section chief cannot list a hazard of Pingshan street.
    with pytest.raises(Forbidden):
        do(demo, run_id, "list", "maluan-chief", LISTING)
    to_rectification(demo, clock, run_id)
    # Another community's safety officer cannot rectify it ...
    with pytest.raises(Forbidden):
        do(demo, run_id, "rectify", "maluan-community-safety", {"done_measures": "x"},
           n_photos=2)
    do(demo, run_id, "rectify", SAFETY, {"done_measures": "已整改"}, n_photos=2)
    # ... and another street's inspector cannot re-inspect it.
    with pytest.raises(Forbidden) as caught:
        check(demo, run_id, "rectify", "maluan-inspector-1")
    assert "inspector" in str(caught.value)
    # Nor can another street's commander start a hazard here.
    with pytest.raises(Forbidden):
        lifecycle.start_run(demo, playbook_id=PLAYBOOK, unit_id=UNIT, params=FACTS,
                            actor="maluan-commander")
    assert step(demo, run_id, "rectify").status == "submitted"


# --- the escalation ladder ---------------------------------------------------------------------

def test_overdue_rectification_climbs_the_ladder_in_order_once_each(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo, "重大")
    to_rectification(demo, clock, run_id)
    rectify = step(demo, run_id, "rectify")
    due = rectify.due_at
    assert due == RECTIFY_DUE  # the ladder counts elapsed time from its 24:00
    sid = rectify.id or 0
    ladder = [
        # (when, what fires then)
        (due - timedelta(days=7), ("remind", 1, 0, [SAFETY])),
        (due - timedelta(days=1), ("remind", 2, 0, [SAFETY])),
        (due, ("escalate", 1, 0, [UNIT_HEAD])),  # 督办函 to the unit head
        (due + timedelta(days=3), ("escalate", 2, 0, [STREET_HEAD])),  # 提级督办函
        # 约谈: the unit head is summoned by the bureau, weekly while still late
        (due + timedelta(days=7), ("escalate", 3, 0, sorted([UNIT_HEAD, DIRECTOR, CHIEF]))),
        (due + timedelta(days=14), ("escalate", 3, 1, sorted([UNIT_HEAD, DIRECTOR, CHIEF]))),
        (due + timedelta(days=21), ("escalate", 3, 2, sorted([UNIT_HEAD, DIRECTOR, CHIEF]))),
        (due + timedelta(days=28), ("escalate", 3, 3, sorted([UNIT_HEAD, DIRECTOR, CHIEF]))),
        (due + timedelta(days=30), ("escalate", 4, 0, sorted([DIRECTOR, MANAGER]))),  # 通报批评
    ]
    expected: list[tuple[str, int, int, list[str]]] = []
    for at, firing in ladder:
        clock.set(at - timedelta(minutes=1))
        sweep_once(demo)
        assert fired(demo, sid) == expected, f"nothing new before {at}"
        clock.set(at + timedelta(minutes=1))
        sweep_once(demo)
        sweep_once(demo)  # a second pass fires nothing twice
        expected.append(firing)
        assert fired(demo, sid) == expected
        kind, level, _, people = firing
        assert told(demo, sid, kind) >= set(people)
    # Each level reached its people and no one else.
    assert told(demo, sid, "remind") == {SAFETY}
    assert told(demo, sid, "escalate") == {UNIT_HEAD, STREET_HEAD, DIRECTOR, CHIEF, MANAGER}
    now = step(demo, run_id, "rectify")
    assert now.overdue and now.escalation_level == 4
    # Recorded in the timeline too.
    with read_session(demo.db) as session:
        _, escalations, events = run_detail(session, run_id=run_id)
    assert [e.action for e in events if e.step_id == sid].count("escalate") == 7
    assert [e.action for e in events if e.step_id == sid].count("overdue") == 1
    assert len([e for e in escalations if e.step_id == sid]) == len(ladder)
    # The unit's head is community_head|enterprise_head: a community has no enterprise head,
    # which is no 无人担任 on the notice (notice-send) nor on any letter of the ladder.
    assert "notice-send" in {s.step_key for s in steps(demo, run_id).values()}
    assert [e.action for e in events if e.action in (
        "notify_unrouted", "unrouted_partly", "unrouted")] == []


def test_rectified_in_time_nobody_is_chased(demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, "重大")
    to_rectification(demo, clock, run_id)
    do(demo, run_id, "rectify", SAFETY, {"done_measures": "已整改"}, n_photos=2)
    check(demo, run_id, "rectify", INSPECTOR_1)
    sid = step(demo, run_id, "rectify").id or 0
    clock.advance(timedelta(days=45))
    sweep_once(demo)
    assert fired(demo, sid) == []


def test_late_listing_and_plan_are_chased_too(demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, "重大")
    listing = step(demo, run_id, "list")
    interim = step(demo, run_id, "interim")
    clock.advance(timedelta(days=1, minutes=1))
    sweep_once(demo)
    # Interim controls are due within a day: the unit head gets the 督办函 first.
    assert fired(demo, interim.id or 0) == [("escalate", 1, 0, [UNIT_HEAD])]
    clock.set(listing.due_at + timedelta(minutes=1))  # type: ignore[operator]
    sweep_once(demo)
    assert ("escalate", 1, 0, [STREET_HEAD]) in fired(demo, listing.id or 0)


# --- a general hazard ----------------------------------------------------------------------------

def test_general_hazard_skips_the_major_only_steps_and_is_closed_by_an_inspector(
    demo: Runtime, clock: ManualClock
) -> None:
    assert clock.now() == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # what RECTIFY_DUE counts from
    run_id = start(demo, "一般")
    keyed = steps(demo, run_id)
    # Everything of the major branch whose needs are met is skipped at once.
    assert {k: keyed[k].status for k in MAJOR_ONLY if k in keyed} == dict.fromkeys(
        ["list", "notice", "notice-send", "interim", "plan"], "skipped")
    rectify = keyed["rectify"]
    assert rectify.status == "ready" and rectify.assignees == [SAFETY]
    assert rectify.due_at == RECTIFY_DUE
    entry = hazard(demo, run_id)
    assert entry.status == "整改中" and entry.due_at == rectify.due_at and entry.grade == "一般"
    clock.advance(timedelta(days=3))
    do(demo, run_id, "rectify", SAFETY, {"done_measures": "已清理堵塞的消防通道"}, n_photos=2)
    check(demo, run_id, "rectify", INSPECTOR_2)
    keyed = steps(demo, run_id)
    assert {k: keyed[k].status for k in MAJOR_ONLY} == dict.fromkeys(MAJOR_ONLY, "skipped")
    form = document(demo, run_id, "closure-form").body
    assert "事故隐患整改销号表" in form and "重大事故隐患" not in form
    assert "挂牌督办" not in form and "☑ 同意销号" in form and "None" not in form
    close = keyed["close"]
    assert close.status == "ready" and set(close.assignees) == {INSPECTOR_1, INSPECTOR_2}
    do(demo, run_id, "close", INSPECTOR_1, note="复查合格，验收销号")
    entry = hazard(demo, run_id)
    assert entry.status == "已销号" and entry.closed_at == clock.now()
    assert entry.plan == {}
    with read_session(demo.db) as session:
        asked = session.exec(select(Notification.step_id).where(
            Notification.run_id == run_id, Notification.kind == "assigned")).all()
        docs = session.exec(select(Document.template).where(Document.run_id == run_id)).all()
    assert not {keyed[k].id for k in MAJOR_ONLY} & set(asked)
    assert docs == ["closure-form.md.j2"]  # no supervision notice for a general hazard
    # 回头看 30 whole days after closure on Thursday 5 March: the 30th day after is Saturday 4
    # April, inside 清明 (4-6 April), so the wait ends on Tuesday 7 April at 24:00.
    wait = step(demo, run_id, "lookback-wait")
    assert wait.due_at == datetime(2026, 4, 7, 16, 0, tzinfo=UTC)
    clock.set(wait.due_at + timedelta(minutes=1))
    sweep_once(demo)
    drain_wakes(demo)
    do(demo, run_id, "lookback", INSPECTOR_2, {"result": "整改成果巩固"}, n_photos=1)
    assert get_run(demo, run_id).status == "completed"
    assert hazard(demo, run_id).status == "已销号"


# --- the documents of the ladder -------------------------------------------------------------

def test_supervision_letter_and_summons_render_for_an_overdue_hazard(
    demo: Runtime, clock: ManualClock
) -> None:
    """督办函 and 约谈通知, with a hazard run's context and with the sweeper's (run and step
    only): they name the hazard, the deadline and how late it is."""
    run_id = start(demo, "重大")
    to_rectification(demo, clock, run_id)
    clock.advance(timedelta(days=40))
    with read_session(demo.db) as session:
        run = session.get(Run, run_id)
        assert run is not None
        inst = session.exec(select(StepInstance).where(
            StepInstance.run_id == run_id, StepInstance.step_key == "rectify")).one()
        full = _template_context(session, demo, run, inst)
    late = int((clock.now() - inst.due_at).total_seconds() // 60)  # type: ignore[operator]
    full |= {"kind": "escalate", "level": 3, "repeat": 0, "minutes_late": late}
    sweeper = {  # what flows/sweeper.py gives an escalation message
        "kind": "escalate", "kind_label": "督办提醒", "level": 1, "repeat": 0,
        "step": {"id": "rectify", "title": inst.title,
                 "due_at_local": demo.renderer.deadline(inst.due_at), "assignees": ["尹秀英"]},
        "run": {"id": run_id, "title": run.title, "unit": UNIT, "unit_name": "六和社区"},
        "unit_name": "六和社区", "minutes_late": late, "now_local": full["now_local"],
    }
    for template, heading in (("supervision-letter.md.j2", "督办函"),
                              ("summons-notice.md.j2", "约谈通知")):
        text = demo.renderer.render(template, full)
        assert f"# {heading}" in text and LOCATION in text and FACTS["code"] in text
        assert LISTING["responsible_unit"] in text and "李富达" in text
        # Due 1 April 24:00 (30 whole days), read on 12 April at 11:00.
        assert "2026年4月1日 24:00" in text and "10 天 11 小时" in text
        assert "None" not in text
        # Addressed to the enterprise, delivered to the community's head: the letter says
        # through whom it reaches the enterprise.
        what = "本函" if heading == "督办函" else "本通知"
        assert (f"{what}经六和社区转送{LISTING['responsible_unit']}，请六和社区收到后及时送达"
                "并督促落实。") in text
        bare = demo.renderer.render(template, sweeper)
        assert f"# {heading}" in bare and run.title in bare and "10 天 11 小时" in bare
        assert "转送" not in bare  # addressed to the community itself
        assert "2026年4月1日 24:00" in bare and "None" not in bare
    letter = demo.renderer.render("supervision-letter.md.j2", full)
    # Rendered outside a firing it has no number of its own (a blank to fill in), and cites
    # the notice's.
    assert "**〔　　　〕　　号**" in letter and "（挂牌督办通知书 坪应急督〔2026〕1号）" in letter



def test_escalation_letters_are_the_levels_documents(demo: Runtime, clock: ManualClock) -> None:
    """The ladder's levels carry their own documents: 督办函 to the unit head and the street
    head, 约谈通知 for the bureau; the message title names the level."""
    run_id = start(demo, "重大")
    to_rectification(demo, clock, run_id)
    rectify = step(demo, run_id, "rectify")
    for days in (0, 3, 7):
        clock.set(rectify.due_at + timedelta(days=days, minutes=1))  # type: ignore[operator]
        sweep_once(demo)
    with read_session(demo.db) as session:
        rows = session.exec(select(Notification).where(
            Notification.step_id == rectify.id, Notification.kind == "escalate")).all()
    # The unit head gets the 督办函 and, later, the 约谈通知: read the letters apart.
    by = {n.recipient: n for n in rows if "约谈" not in n.title}
    summonses = {n.recipient: n for n in rows if "约谈" in n.title}
    letter = by[UNIT_HEAD]
    # Named by what it is about: 200 hazards in one inbox are told apart by their place.
    assert letter.title == f"【督办提醒·督办函】隐患整改·{LOCATION}"
    # Each letter takes the next number of its prefix: the unit head's first, the street
    # head's (3 days later) second; the summons its own prefix.
    assert "# 督办函" in letter.body and "**坪应急督函〔2026〕1号**" in letter.body
    assert "**坪应急督函〔2026〕2号**" in by[STREET_HEAD].body
    assert "李富达" in letter.body and LOCATION in letter.body
    assert by[STREET_HEAD].body.startswith("# 提级督办函") and "提级督办函" in by[STREET_HEAD].title
    summons = summonses[DIRECTOR]
    assert "# 约谈通知" in summons.body and "逾期 7 天" in summons.body
    assert "约谈" in summons.title and "**坪应急约〔2026〕1号**" in summons.body
    # Each letter's number is in the timeline too, with the level that sent it.
    with read_session(demo.db) as session:
        events = session.exec(select(AuditEvent).where(
            AuditEvent.step_id == rectify.id, AuditEvent.action == "escalate")
            .order_by(AuditEvent.id)).all()  # type: ignore[arg-type]
    assert [(e.detail["level"], e.detail.get("number")) for e in events] == [
        (1, "坪应急督函〔2026〕1号"), (2, "坪应急督函〔2026〕2号"), (3, "坪应急约〔2026〕1号")]


def test_a_major_hazard_stuck_before_rectification_is_overdue_on_the_register(
        demo: Runtime, clock: ManualClock) -> None:
    from flows.exports import is_overdue

    run_id = start(demo, "重大")
    clock.advance(timedelta(days=29))
    assert not is_overdue(hazard(demo, run_id), clock.now())
    clock.advance(timedelta(days=2))  # never listed, no plan: the 30 days ran out anyway
    entry = hazard(demo, run_id)
    assert entry.status == "挂牌督办" and is_overdue(entry, clock.now())


# --- what the register keeps -----------------------------------------------------------------

def test_calling_off_the_look_back_keeps_the_closure_and_its_month(
    demo: Runtime, clock: ManualClock
) -> None:
    from flows.ranking import monthly_ranking

    run_id = start(demo, "一般")
    clock.advance(timedelta(days=3))
    do(demo, run_id, "rectify", SAFETY, {"done_measures": "已清理"}, n_photos=2)
    check(demo, run_id, "rectify", INSPECTOR_2)
    do(demo, run_id, "close", INSPECTOR_1)
    closed_at = hazard(demo, run_id).closed_at
    clock.advance(timedelta(days=2))  # waiting for the look-back (回头看) in 30 days
    lifecycle.cancel_run(demo, run_id=run_id, actor=COMMANDER, reason="企业已关停，无需回头看")
    entry = hazard(demo, run_id)
    assert entry.status == "已销号" and entry.closed_at == closed_at
    with read_session(demo.db) as session:
        ranking = monthly_ranking(session, org=demo.org, month="2026-03", tz=demo.tz,
                                  now=clock.now())
    row = next(r for r in ranking.rows if r.unit_id == "pingshan-street")
    assert (row.found, row.closed, row.closed_of_found) == (1, 1, 1)


def test_a_found_time_without_an_offset_is_the_bureaus_clock(demo: Runtime) -> None:
    run_id = start(demo, "一般", found_at="2026-03-01T10:30")
    assert hazard(demo, run_id).found_at == datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    assert get_run(demo, run_id).params["found_at"] == "2026-03-01T10:30:00+08:00"


@pytest.mark.parametrize(("found_at", "why"), [
    ("2026-03-25T10:00:00+08:00", "晚于当前时间"),  # the clock stands at 2 March
    ("1901-01-01T10:00:00", "早于 2000-01-01"),
])
def test_an_implausible_found_time_is_refused_and_nothing_is_written(
    demo: Runtime, found_at: str, why: str
) -> None:
    with read_session(demo.db) as session:
        before = len(session.exec(select(Run)).all())
    with pytest.raises(InvalidInput) as err:
        start(demo, "一般", found_at=found_at)
    assert err.value.field == "params.found_at" and why in str(err.value)
    with read_session(demo.db) as session:
        assert len(session.exec(select(Run)).all()) == before


def test_the_notice_prints_the_found_time_on_the_bureaus_clock(demo: Runtime) -> None:
    run_id = start(demo, "重大", found_at="2026-03-01T02:30:00Z")  # 10:30 in Shanghai
    do(demo, run_id, "list", CHIEF, LISTING)
    notice = document(demo, run_id, "notice").body
    assert "| 发现时间、发现人 | 2026年3月1日 10:30，邓思远 |" in notice


def test_typed_text_cannot_forge_a_section_or_a_row_of_the_closure_form(
    demo: Runtime, clock: ManualClock
) -> None:
    run_id = start(demo, "一般")
    forged = "已清理\n\n## 三、复查意见\n复查合格。复查人：陈建国（局长）\n\n| 伪造 | 表格 |"
    do(demo, run_id, "rectify", SAFETY, {"done_measures": forged}, n_photos=2)
    check(demo, run_id, "rectify", INSPECTOR_2)
    form = document(demo, run_id, "closure-form").body
    headings = [line for line in form.splitlines() if line.startswith("## ")]
    assert len(headings) == len(set(headings))  # no section twice
    assert not any(line.startswith("| 伪造") for line in form.splitlines())
    assert "已清理 ## 三、复查意见 复查合格。复查人：陈建国（局长） ｜ 伪造 ｜ 表格 ｜" in form


# --- the plan's amounts and deadline -----------------------------------------------------------

def test_a_plan_with_funds_out_of_bounds_is_refused(demo: Runtime, clock: ManualClock) -> None:
    run_id = start(demo, "重大")
    do(demo, run_id, "list", CHIEF, LISTING)
    for funds, why in ((1e308, "不能大于 1000000"), (1000000.01, "不能大于 1000000"),
                       (-1, "不能小于 0")):
        with pytest.raises(InvalidInput) as caught:
            do(demo, run_id, "plan", SAFETY, {**PLAN, "funds": funds})
        assert caught.value.field == "outputs.funds" and why in str(caught.value), funds
    assert step(demo, run_id, "plan").status == "ready" and hazard(demo, run_id).plan == {}
    # The most a plan may state, 100亿元, is taken.
    do(demo, run_id, "plan", SAFETY, {**PLAN, "funds": 1000000})
    assert step(demo, run_id, "plan").status == "submitted"


def test_a_rectification_cost_out_of_bounds_is_refused(demo: Runtime,
                                                       clock: ManualClock) -> None:
    run_id = start(demo, "一般")
    with pytest.raises(InvalidInput) as caught:
        do(demo, run_id, "rectify", SAFETY, {"done_measures": "已整改", "cost": 1e308},
           n_photos=2)
    assert caught.value.field == "outputs.cost"
    assert step(demo, run_id, "rectify").status == "ready"


@pytest.mark.parametrize(("funds", "cost", "printed_funds", "printed_cost"), [
    (0.1 + 0.2, 0.7 + 0.1, "0.3", "0.8"),  # 0.30000000000000004, 0.7999999999999999
    (0.00001, 0.00005, "0.00001", "0.00005"),  # str() writes 1e-05, 5e-05
    (1000000.0, 250000.0, "1000000", "250000"),
])
def test_the_plan_amounts_are_printed_as_plain_decimals(
    demo: Runtime, clock: ManualClock, funds: float, cost: float, printed_funds: str,
    printed_cost: str,
) -> None:
    """资金 on the closure form, the register's plan (API, rectification export) and the cost
    on the closure form: no exponent, no float noise."""
    from flows.exports import plan_elements

    run_id = start(demo, "重大")
    clock.advance(timedelta(hours=2))
    do(demo, run_id, "list", CHIEF, LISTING)
    do(demo, run_id, "interim", SAFETY, CONTROLS, n_photos=1)
    do(demo, run_id, "plan", SAFETY, {**PLAN, "funds": funds})
    check(demo, run_id, "plan", CHIEF, note="方案可行，同意备案")
    assert plan_elements(hazard(demo, run_id).plan)["funds"] == printed_funds
    do(demo, run_id, "rectify", SAFETY, {"done_measures": "已整改", "cost": cost}, n_photos=2)
    check(demo, run_id, "rectify", INSPECTOR_1)
    do(demo, run_id, "accept", CHIEF, {"opinion": "验收合格"})
    form = document(demo, run_id, "closure-form").body
    assert f"- 资金：{printed_funds} 万元" in form
    assert f"- 实际投入资金：{printed_cost} 万元" in form
    assert "e+" not in form and "e-0" not in form


def test_plan_elements_of_an_older_entry_print_no_exponent() -> None:
    """An entry filed before the bound (1e308 万元) still exports as digits, not 1e+308."""
    from flows.exports import plan_elements

    huge = plan_elements({"funds": 1e308})["funds"]
    assert huge is not None and huge.isdigit() and len(huge) == 309
    assert plan_elements({"funds": -0.0})["funds"] == "0"
    assert plan_elements({"funds": 12})["funds"] == "12"
    assert plan_elements({"funds": "2万元"})["funds"] == "2万元"  # as typed in an import


def test_a_plan_deadline_already_past_or_beyond_the_rectification_deadline_is_refused(
    demo: Runtime, clock: ManualClock,
) -> None:
    """时限 (not_past, not_after_due: rectify): not before the day the plan is filed, and
    within the rectification deadline; a later one needs a request for more time."""
    run_id = start(demo, "重大")  # 2026-03-02 09:00 (bureau time); rectify due 04-01 24:00
    do(demo, run_id, "list", CHIEF, LISTING)
    for deadline, why in (
        ("2026-03-01", "不能早于今天（2026-03-02）"),
        # The deadline is stored as 2 April 00:00; its last day is 1 April, and it says so.
        ("2026-04-02", "不能晚于“隐患整改”的期限 2026-04-01 24:00；确需延长的，请先申请延期"),
    ):
        with pytest.raises(InvalidInput) as caught:
            do(demo, run_id, "plan", SAFETY, {**PLAN, "deadline": deadline})
        assert caught.value.field == "outputs.deadline" and why in caught.value.message
    assert step(demo, run_id, "plan").status == "ready" and hazard(demo, run_id).plan == {}

    # Before rectification is reached its deadline is already fixed (30 days from the run):
    # its last day is taken. (tests/flows/test_output_dates.py: an extended deadline.)
    do(demo, run_id, "plan", SAFETY, {**PLAN, "deadline": "2026-04-01"})
    assert step(demo, run_id, "plan").outputs["deadline"] == "2026-04-01"


# --- 回头看: the hazard came back ----------------------------------------------------------------

def to_lookback(rt: Runtime, clock: ManualClock, run_id: int) -> None:
    """A general hazard rectified, closed and 30 days on: the look-back visit is ready."""
    clock.advance(timedelta(days=3))
    do(rt, run_id, "rectify", SAFETY, {"done_measures": "已清理堵塞的消防通道"}, n_photos=2)
    check(rt, run_id, "rectify", INSPECTOR_2)
    do(rt, run_id, "close", INSPECTOR_1, note="复查合格，验收销号")
    # 30 whole days after closure, to the end of the last day (moved off a holiday).
    wait = step(rt, run_id, "lookback-wait").due_at
    assert wait is not None and wait.astimezone(rt.tz).time() == time(0)
    clock.set(wait + timedelta(minutes=1))
    sweep_once(rt)
    drain_wakes(rt)
    assert step(rt, run_id, "lookback").status == "ready"


def test_a_hazard_found_back_at_the_look_back_is_reported_to_be_registered_again(
    demo: Runtime, clock: ManualClock
) -> None:
    pb = demo.catalog.get(PLAYBOOK)
    rebound = pb.step("lookback-rebound")
    assert rebound.action == "notify" and rebound.needs == ["lookback"]
    assert rebound.when == "steps.lookback.outputs.result == '隐患反弹'"
    run_id = start(demo, "一般")
    to_lookback(demo, clock, run_id)
    findings = "消防通道再次被货物堵塞"
    do(demo, run_id, "lookback", INSPECTOR_2, {"result": "隐患反弹", "findings": findings},
       n_photos=1)
    sent = step(demo, run_id, "lookback-rebound")
    assert sent.status == "done"
    # The street's safety office and its inspectors, and the community head.
    assert told(demo, sent.id or 0, "notify") == {CHIEF, INSPECTOR_1, INSPECTOR_2, UNIT_HEAD}
    with read_session(demo.db) as session:
        notes = session.exec(select(Notification).where(
            Notification.step_id == sent.id, Notification.kind == "notify")).all()
    for note in notes:
        assert note.title.startswith("【隐患反弹通报】")
        body = note.body
        assert "# 隐患反弹通报" in body and "坪山街道安全生产办公室、六和社区：" in body
        for fact in (FACTS["code"], LOCATION, findings, "回访人：潘立新", "作为新隐患重新登记"):
            assert fact in body, fact
        assert "None" not in body
    # The run still completes; the closed entry keeps its 销号 (the new hazard is a new run).
    assert get_run(demo, run_id).status == "completed"
    assert hazard(demo, run_id).status == "已销号"
    assert "隐患反弹" in document(demo, run_id, "lookback-record").body
    with read_session(demo.db) as session:
        _, _, events = run_detail(session, run_id=run_id)
    actions = [e.action for e in events]
    assert actions[-1] == "run_completed"
    assert "render_failed" not in actions and "expression_failed" not in actions


def test_a_hazard_that_held_at_the_look_back_tells_nobody(demo: Runtime,
                                                          clock: ManualClock) -> None:
    run_id = start(demo, "一般")
    to_lookback(demo, clock, run_id)
    do(demo, run_id, "lookback", INSPECTOR_2, {"result": "整改成果巩固"}, n_photos=1)
    skipped = step(demo, run_id, "lookback-rebound")
    assert skipped.status == "skipped" and told(demo, skipped.id or 0, "notify") == set()
    assert get_run(demo, run_id).status == "completed"


# --- 督办通知书: who found it ---------------------------------------------------------------------

def test_the_notice_names_whoever_registered_the_hazard_when_no_finder_is_given(
    demo: Runtime, clock: ManualClock
) -> None:
    """A hazard registered without 发现人 (the API, a form left blank): the register records
    whoever registered it, and the notice names them."""
    run = lifecycle.start_run(demo, playbook_id=PLAYBOOK, unit_id=UNIT,
                              params={**FACTS, "grade": "重大", "found_by": None}, actor=SAFETY)
    drain_wakes(demo)
    run_id = run.id or 0
    assert hazard(demo, run_id).found_by == SAFETY
    do(demo, run_id, "list", CHIEF, LISTING)
    notice = document(demo, run_id, "notice").body
    assert "| 发现时间、发现人 | 2026年3月1日 10:30，尹秀英 |" in notice
    assert "，检查人员 |" not in notice


def test_the_notice_names_a_commander_who_registered_it_by_name_not_account(
    demo: Runtime,
) -> None:
    run_id = start(demo, "重大", found_by=None)  # registered by the street's commander
    entry = hazard(demo, run_id)
    assert entry.found_by == COMMANDER
    do(demo, run_id, "list", CHIEF, LISTING)
    notice = document(demo, run_id, "notice").body
    name = demo.org.person_name(COMMANDER)
    assert f"| 发现时间、发现人 | 2026年3月1日 10:30，{name} |" in notice
    assert COMMANDER not in notice and "，检查人员 |" not in notice


def test_a_plan_deadline_counted_into_a_year_without_its_holidays_is_marked_on_the_notice(
        demo: Runtime, clock: ManualClock) -> None:
    # Listed on 29 December of the calendar's last year (2026 today): the plan's 5 working
    # days reach into a year whose holidays are not in it, so the notice says the date is
    # counted Mon-Fri; in March it says nothing of the sort.
    year = max(demo.calendar.years)
    clock.set(datetime(year, 12, 29, 1, 0, tzinfo=UTC))
    run_id = start(demo, "重大", found_at=f"{year}-12-28T10:30:00+08:00")
    do(demo, run_id, "list", CHIEF, LISTING)
    body = document(demo, run_id, "notice").body
    note = f"{year + 1}年节假日安排未录入工作日历，此期限按周一至周五推算，以正式安排为准"
    assert f"；{note}）" in body
    clock.set(datetime(year, 3, 2, 1, 0, tzinfo=UTC))
    other = start(demo, "重大", found_at=f"{year}-03-01T10:30:00+08:00",
                  code="YH-MARCH")
    do(demo, other, "list", CHIEF, LISTING)
    assert "节假日安排未录入" not in document(demo, other, "notice").body
