"""The letters of the hazard ladder (playbooks/hazard-3030.yaml, rectify's escalate levels: 督办函
to the unit head, 提级督办函 to the street head, 约谈通知 weekly) are documents of the hazard's
run: filed when the sweeper sends them, once per firing, and listed by GET
/api/runs/{id}/documents beside the step documents (the closure form), each with its 文号, the
people it was served on and when it was sent. The shipped playbooks on the demo district, the
clock moved instead of waited for."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import (
    DEMO_ORG,
    SHIPPED_PLAYBOOKS,
    before_after,
    make_runtime,
    png_bytes,
    run_row,
    step_row,
)
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import select

from api.auth import make_token
from api.main import create_app
from flows import tasks
from flows.context import expression_context
from flows.evidence import store_evidence
from flows.numbering import run_numbers
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session, session_scope
from models.documents import Document
from models.outbox import Notification
from models.task import StepInstance

Json = dict[str, Any]
UNIT = "liuhe"  # 六和社区, under 坪山街道
COMMANDER = "pingshan-street-commander"
MANAGER = "sun-li"  # 孙丽, the bureau's manager: reads every run of the district
UNIT_HEAD = "liuhe-head"  # 贾丽萍: the 督办函
STREET_HEAD = "pingshan-street-head"  # 王建华: the 提级督办函
SAFETY = "liuhe-safety"  # 尹秀英: rectifies
INSPECTOR = "pingshan-street-inspector-1"
LOCATION = "六和社区和平路18号富达五金厂"


@pytest.fixture
def client(demo: Runtime) -> Iterator[TestClient]:
    app = create_app(demo, background=False, prefect=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def auth(rt: Runtime, person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(person, rt.settings.signing_secret())}"}


def start_hazard(client: TestClient, rt: Runtime) -> int:
    """A general hazard (一般): its rectification is due 30 days from the start."""
    return start_hazard_at(client, rt, UNIT, code="PS-2026-0302-001")


def documents(client: TestClient, rt: Runtime, run_id: int, who: str = MANAGER) -> Json:
    r = client.get(f"/api/runs/{run_id}/documents", headers=auth(rt, who))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def letters(client: TestClient, rt: Runtime, run_id: int) -> list[Json]:
    return [d for d in documents(client, rt, run_id)["data"] if d["for"] == "escalation"]


def sweep_at(rt: Runtime, clock: ManualClock, when: datetime) -> None:
    clock.set(when)
    sweep_once(rt)


def sent(rt: Runtime, step_id: int, recipient: str) -> list[Notification]:
    """The in-app copies of the ladder's messages one person got for a step."""
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.step_id == step_id, Notification.kind == "escalate",
            Notification.recipient == recipient).order_by(Notification.id)).all())  # type: ignore[arg-type]


# --- listed and read like the other documents ------------------------------------------------

def test_an_overdue_hazards_letters_are_listed_with_number_recipients_and_time(
    client: TestClient, demo: Runtime, clock: ManualClock
) -> None:
    run_id = start_hazard(client, demo)
    rectify = step_row(demo, run_id, "rectify")
    due = rectify.due_at
    assert due is not None
    assert letters(client, demo, run_id) == []  # nothing is late yet

    sweep_at(demo, clock, due + timedelta(minutes=1))
    [letter] = letters(client, demo, run_id)
    assert (letter["step"], letter["step_id"], letter["level"], letter["repeat"]) == (
        "rectify", rectify.id, 1, 0)
    assert letter["title"] == "督办函：隐患整改"
    assert letter["template"] == "supervision-letter.md.j2"
    assert letter["number"] == "坪应急督函〔2026〕1号"
    assert letter["recipients"] == [{"id": UNIT_HEAD, "kind": "person", "name": "贾丽萍"}]
    assert datetime.fromisoformat(letter["sent_at"]) == clock.now()
    # Due 1 April 24:00 (30 whole days from registration): sent a minute into the 2nd.
    assert letter["sent_at_local"] == demo.renderer.local(clock.now()) == "2026-04-02 00:01"
    # Read as it was sent: the filed body is the message the unit head got.
    assert letter["body"].startswith("# 督办函")
    assert "**坪应急督函〔2026〕1号**" in letter["body"] and LOCATION in letter["body"]
    [message] = sent(demo, rectify.id or 0, UNIT_HEAD)
    assert message.body == letter["body"]
    # The number in the register of numbers is the letter's.
    issued = documents(client, demo, run_id)["numbers"]
    assert [(n["number"], n["step"], n["for"]) for n in issued] == [
        ("坪应急督函〔2026〕1号", "rectify", "escalation")]

    sweep_at(demo, clock, due + timedelta(days=3, minutes=1))
    sweep_at(demo, clock, due + timedelta(days=7, minutes=1))
    got = letters(client, demo, run_id)
    assert [(d["level"], d["title"], d["number"]) for d in got] == [
        (1, "督办函：隐患整改", "坪应急督函〔2026〕1号"),
        (2, "提级督办函：隐患整改", "坪应急督函〔2026〕2号"),
        (3, "约谈：隐患整改", "坪应急约〔2026〕1号"),
    ]
    escalated, summons = got[1], got[2]
    assert escalated["recipients"] == [{"id": STREET_HEAD, "kind": "person", "name": "王建华"}]
    assert escalated["template"] == "escalated-letter.md.j2"
    assert escalated["body"].startswith("# 提级督办函")
    assert "**坪应急督函〔2026〕2号**" in escalated["body"]
    assert summons["template"] == "summons-notice.md.j2"
    assert summons["body"].startswith("# 约谈通知") and "逾期 7 天" in summons["body"]
    assert UNIT_HEAD in [p["id"] for p in summons["recipients"]]
    assert summons["sent_at_local"] == "2026-04-09 00:01"


def test_the_letters_stand_beside_the_runs_other_documents_in_order(
    client: TestClient, demo: Runtime, clock: ManualClock
) -> None:
    run_id = start_hazard(client, demo)
    rectify = step_row(demo, run_id, "rectify")
    sweep_at(demo, clock, rectify.due_at + timedelta(minutes=1))  # type: ignore[operator]
    clock.advance(timedelta(hours=2))
    photos = [store_evidence(demo, data=png_bytes(2 + i, 2), filename=f"整改{i}.png",
                             uploaded_by=SAFETY).id for i in range(2)]
    tasks.complete(demo, step_id=rectify.id or 0, actor=SAFETY, note="已加装泄爆片",
                   outputs={"done_measures": "已加装泄爆片"}, evidence=photos,
                   evidence_labels=before_after(photos))
    tasks.verify(demo, step_id=rectify.id or 0, actor=INSPECTOR, approve=True, note="复查合格")
    drain_wakes(demo)  # files the closure form
    got = documents(client, demo, run_id)["data"]
    assert [(d["for"], d["template"], d["step"]) for d in got] == [
        ("escalation", "supervision-letter.md.j2", "rectify"),
        ("document", "closure-form.md.j2", "closure-form"),
    ]
    form = got[1]
    assert (form["recipients"], form["sent_at"], form["level"], form["repeat"]) == (
        [], None, None, None)
    assert form["created_at_local"] == demo.renderer.local(clock.now())


# --- once per firing -------------------------------------------------------------------------

def test_a_letter_is_filed_once_however_often_its_firing_is_swept(
    client: TestClient, demo: Runtime, clock: ManualClock
) -> None:
    run_id = start_hazard(client, demo)
    rectify = step_row(demo, run_id, "rectify")
    fire_at = rectify.due_at + timedelta(minutes=1)  # type: ignore[operator]
    sweep_at(demo, clock, fire_at)
    sweep_at(demo, clock, fire_at + timedelta(minutes=5))  # nothing more is due
    # A second sweeper that saw the step before the first one's commit fires the same level
    # again (its timers as they were): the escalation, the messages, the 文号 and the letter
    # are each there once.
    with session_scope(demo.db) as session:
        session.execute(update(StepInstance).where(StepInstance.id == rectify.id).values(
            escalation_level=0, overdue=False, last_escalated_at=None,
            next_check_at=rectify.due_at))
    sweep_at(demo, clock, fire_at + timedelta(minutes=10))
    [letter] = letters(client, demo, run_id)
    assert letter["number"] == "坪应急督函〔2026〕1号"
    assert datetime.fromisoformat(letter["sent_at"]) == fire_at
    assert len(sent(demo, rectify.id or 0, UNIT_HEAD)) == 1
    with read_session(demo.db) as session:
        rows = session.exec(select(Document).where(Document.run_id == run_id)).all()
    assert len(rows) == 1


def test_a_late_sweep_files_each_level_and_each_repeat_its_own_letter(
    client: TestClient, demo: Runtime, clock: ManualClock
) -> None:
    """The server was down for the first two weeks past the deadline: one pass fires each
    level once, late (SPEC §4), and each letter is filed with its own number; the weekly
    约谈 then files a second summons."""
    run_id = start_hazard(client, demo)
    due = step_row(demo, run_id, "rectify").due_at
    assert due is not None
    sweep_at(demo, clock, due + timedelta(days=8))
    got = letters(client, demo, run_id)
    assert [(d["level"], d["repeat"], d["number"]) for d in got] == [
        (1, 0, "坪应急督函〔2026〕1号"), (2, 0, "坪应急督函〔2026〕2号"),
        (3, 0, "坪应急约〔2026〕1号")]
    assert {d["sent_at_local"] for d in got} == {"2026-04-10 00:00"}
    sweep_at(demo, clock, due + timedelta(days=14, minutes=1))
    again = letters(client, demo, run_id)[3:]
    assert [(d["level"], d["repeat"], d["title"], d["number"]) for d in again] == [
        (3, 1, "约谈（第2次）：隐患整改", "坪应急约〔2026〕2号")]
    assert "**坪应急约〔2026〕2号**" in again[0]["body"]
    # Down again for three weeks: the missed repeats collapse into one letter, the third
    # summons, not one titled by the weeks that passed (第5次).
    sweep_at(demo, clock, due + timedelta(days=35, minutes=1))
    later = [d for d in letters(client, demo, run_id)[4:] if d["level"] == 3]
    assert [(d["repeat"], d["title"]) for d in later] == [(4, "约谈（第3次）：隐患整改")]


def test_only_those_who_may_read_the_run_read_its_letters(
    client: TestClient, demo: Runtime, clock: ManualClock
) -> None:
    run_id = start_hazard(client, demo)
    sweep_at(demo, clock, step_row(demo, run_id, "rectify").due_at  # type: ignore[operator]
             + timedelta(minutes=1))
    r = client.get(f"/api/runs/{run_id}/documents", headers=auth(demo, "heping-head"))
    assert r.status_code == 403, r.text
    assert len(letters(client, demo, run_id)) == 1


# --- the 提级督办函: to the street, after the 督办函 ------------------------------------------

def start_hazard_at(client: TestClient, rt: Runtime, unit: str, *, by: str = COMMANDER,
                    location: str = LOCATION, code: str = "PS-2026-0302-002") -> int:
    r = client.post("/api/runs", headers=auth(rt, by), json={
        "playbook": "hazard-3030", "unit": unit,
        "params": {"location": location, "grade": "一般", "code": code}})
    assert r.status_code == 201, r.text
    drain_wakes(rt)
    return r.json()["id"]  # type: ignore[no-any-return]


def two_letters(client: TestClient, rt: Runtime, clock: ManualClock, run_id: int
                ) -> tuple[Json, Json]:
    """The 督办函 and the 提级督办函 of a run swept at its deadline and 3 days after."""
    due = step_row(rt, run_id, "rectify").due_at
    assert due is not None
    sweep_at(rt, clock, due + timedelta(minutes=1))
    sweep_at(rt, clock, due + timedelta(days=3, minutes=1))
    first, second = letters(client, rt, run_id)
    assert (first["level"], second["level"]) == (1, 2)
    return first, second


def lines(body: str) -> list[str]:
    return [line for line in body.splitlines() if line]


def escalated_context(rt: Runtime, run_id: int, *, minutes_late: int) -> Json:
    """What the 提级督办函 sees with the run's view of flows/context.py (run.street_name) and
    the sweeper's escalation keys: the template rendered for real, on a real run."""
    with read_session(rt.db) as session:
        run = run_row(rt, run_id)
        ctx = expression_context(session, rt, run)
        ctx["numbers"] = run_numbers(session, run_id)
    row = step_row(rt, run_id, "rectify")
    return ctx | {
        "step": {"id": "rectify", "title": row.title,
                 "due_at_local": rt.renderer.deadline(row.due_at), "assignees": []},
        "level": 2, "repeat": 0, "minutes_late": minutes_late,
        "now_local": rt.renderer.local(rt.clock.now()), "doc_no": "坪应急督函〔2026〕2号",
        "unit_name": ctx["run"]["unit_name"],
    }


def test_the_second_rung_is_a_提级督办函_to_the_street_after_the_督办函(
    client: TestClient, demo: Runtime, clock: ManualClock
) -> None:
    run_id = start_hazard(client, demo)
    _, letter = two_letters(client, demo, clock, run_id)
    assert letter["template"] == "escalated-letter.md.j2"
    assert letter["recipients"] == [{"id": STREET_HEAD, "kind": "person", "name": "王建华"}]
    body = letter["body"]
    text = lines(body)
    assert text[:2] == ["# 提级督办函", "**坪应急督函〔2026〕2号**"]
    # Addressed to the street office's head, not to the unit ("你单位") the 督办函 went to.
    assert text[2] == "坪山街道办事处主要负责人："
    assert "你单位" not in body and "六和社区主要负责人：" not in body
    assert text[3].startswith(f"你街道辖区内{LOCATION}存在的一般事故隐患（编号 PS-2026-0302-001）")
    assert "责任单位为六和社区" in text[3]
    assert "应于 2026年4月1日 24:00 前完成" in text[3]
    # The 督办函 it follows, and how late.
    assert "期限届满后已向六和社区主要负责人发出督办函" in text[3]
    assert text[3].endswith("该单位至今仍未整改销号，已逾期 3 天。")
    assert "现对该隐患提级督办，请你街道：" in body
    assert "1. 主要负责人亲自督促六和社区立即组织整改，整改完成前落实临时管控措施" in body
    assert "2. 于3个工作日内将逾期原因、整改进展、确保完成的时限和责任人书面报告督办单位" in body
    # What comes next is the rest of the ladder, not the rung it is.
    assert "将提级督办" not in body
    assert ("逾期仍未完成的，将约谈六和社区主要负责人，并予以通报批评、纳入安全生产目标考核。"
            in body)
    assert text[-2:] == ["督办单位：坪山区应急管理局", "2026年4月5日"]


def test_the_first_letter_keeps_its_wording(
    client: TestClient, demo: Runtime, clock: ManualClock
) -> None:
    run_id = start_hazard(client, demo)
    first, _ = two_letters(client, demo, clock, run_id)
    assert first["template"] == "supervision-letter.md.j2"
    assert first["recipients"] == [{"id": UNIT_HEAD, "kind": "person", "name": "贾丽萍"}]
    assert lines(first["body"]) == [
        "# 督办函",
        "**坪应急督函〔2026〕1号**",
        "六和社区主要负责人：",
        f"你单位{LOCATION}存在的一般事故隐患（编号 PS-2026-0302-001），“隐患整改”应于 "
        "2026年4月1日 24:00 前完成，至今已逾期 1 分钟，仍未办结（承办人：尹秀英）。",
        "根据《安全生产事故隐患排查治理暂行规定》和隐患挂牌督办有关规定，现予督办，请你单位：",
        "1. 接函后立即组织整改，整改完成前落实临时管控措施，确保安全；",
        "2. 于3个工作日内书面报告逾期原因、整改进展、确保完成的时限和责任人；",
        "3. 整改完成后及时上传整改前后照片，申请复查、验收销号。",
        "逾期仍未完成的，将提级督办，约谈单位主要负责人，并予以通报批评、纳入安全生产目标考核。",
        "---",
        "督办单位：坪山区应急管理局",
        "2026年4月2日",
    ]


def test_the_run_view_names_the_street_above_the_unit_and_the_letter_is_addressed_to_it(
    client: TestClient, demo: Runtime, clock: ManualClock
) -> None:
    run_id = start_hazard(client, demo)
    with read_session(demo.db) as session:
        view = expression_context(session, demo, run_row(demo, run_id))["run"]
    assert (view["unit"], view["street"], view["street_name"]) == (
        UNIT, "pingshan-street", "坪山街道")
    clock.advance(timedelta(days=33))
    body = demo.renderer.render("escalated-letter.md.j2",
                                escalated_context(demo, run_id, minutes_late=3 * 1440 + 1))
    text = lines(body)
    assert text[:3] == ["# 提级督办函", "**坪应急督函〔2026〕2号**", "坪山街道办事处主要负责人："]
    assert text[3].startswith(f"你街道辖区内{LOCATION}存在的一般事故隐患")
    assert "期限届满后已向六和社区主要负责人发出督办函" in text[3]
    assert "已逾期 3 天" in text[3] and "将提级督办" not in body


def test_a_hazard_at_an_enterprise_goes_up_to_the_street_it_is_under(
    client: TestClient, demo: Runtime, clock: ManualClock
) -> None:
    run_id = start_hazard_at(client, demo, "shenzhen-gas-pingshan", location="坪山分公司调压站")
    with read_session(demo.db) as session:
        view = expression_context(session, demo, run_row(demo, run_id))["run"]
    assert (view["street"], view["street_name"]) == ("pingshan-street", "坪山街道")
    first, second = two_letters(client, demo, clock, run_id)
    assert first["recipients"] == [
        {"id": "gas-station-head", "kind": "person", "name": "沈德福"}]
    assert lines(first["body"])[2] == "深圳燃气坪山分公司主要负责人："
    assert second["recipients"] == [{"id": STREET_HEAD, "kind": "person", "name": "王建华"}]
    body = second["body"]
    assert body.startswith("# 提级督办函")
    assert lines(body)[2] == "坪山街道办事处主要负责人："
    assert "责任单位为深圳燃气坪山分公司" in body
    assert "已向深圳燃气坪山分公司主要负责人发出督办函" in body
    assert "督促深圳燃气坪山分公司立即组织整改" in body
    assert "将约谈深圳燃气坪山分公司主要负责人" in body and "将提级督办" not in body
    rendered = demo.renderer.render("escalated-letter.md.j2",
                                    escalated_context(demo, run_id, minutes_late=3 * 1440))
    assert lines(rendered)[2] == "坪山街道办事处主要负责人："


# An enterprise the district itself oversees, under no street: the demo chart plus one unit.
UNDER_NO_STREET = """\
      - id: district-works
        name: 区属国资物业中心
        type: enterprise
        people:
          - {id: works-head, name: 钱立新, title: 主任, roles: [enterprise_head], notify: []}
          - {id: works-safety, name: 孙小梅, title: 企业安全员, roles: [safety_officer], notify: []}
"""


def demo_with(tmp_path: Path, clock: ManualClock, units: str) -> Runtime:
    """The shipped playbooks on the demo district with `units` added under its root."""
    text = DEMO_ORG.read_text(encoding="utf-8")
    anchor = "      # The six streets"
    assert anchor in text
    return make_runtime(tmp_path / "org-plus", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                        org_text=text.replace(anchor, units + anchor, 1))


def registered_by_the_commander(client: TestClient, rt: Runtime, unit: str, location: str
                                ) -> tuple[int, Json]:
    """A hazard registered in `unit` by the district's commander, and its run view."""
    run_id = start_hazard_at(client, rt, unit, by="wang-qiang", location=location)
    with read_session(rt.db) as session:
        return run_id, expression_context(session, rt, run_row(rt, run_id))["run"]


@pytest.fixture
def no_street(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    rt = demo_with(tmp_path, clock, UNDER_NO_STREET)
    yield rt
    rt.db.dispose()


def test_a_unit_with_no_street_above_it_renders_the_letter_to_its_superior(
    no_street: Runtime, clock: ManualClock
) -> None:
    """The view says there is no street with ''; the letter still renders, to the unit's
    superior, naming no street; swept, the rung reaches no street head and files nothing."""
    rt = no_street
    app = create_app(rt, background=False, prefect=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        run_id, view = registered_by_the_commander(client, rt, "district-works",
                                                   "区属国资物业中心配电房")
        assert (view["street"], view["street_name"]) == ("", "")
        body = rt.renderer.render("escalated-letter.md.j2",
                                  escalated_context(rt, run_id, minutes_late=4 * 1440))
        text = lines(body)
        assert text[:3] == ["# 提级督办函", "**坪应急督函〔2026〕2号**",
                            "区属国资物业中心上级主管单位主要负责人："]
        assert "街道" not in body
        assert text[3].startswith("你单位辖区内区属国资物业中心配电房存在的一般事故隐患")
        assert "责任单位为区属国资物业中心" in text[3] and "已逾期 4 天" in text[3]
        due = step_row(rt, run_id, "rectify").due_at
        assert due is not None
        sweep_at(rt, clock, due + timedelta(days=3, minutes=1))
        got = letters(client, rt, run_id)
        assert [(d["level"], d["template"]) for d in got] == [(1, "supervision-letter.md.j2")]
        assert got[0]["recipients"] == [{"id": "works-head", "kind": "person", "name": "钱立新"}]



# A county's town (镇) with a village under it, beside the demo district's streets.
A_TOWN = """\
      - id: jinlong-town
        name: 金龙镇
        type: town
        people:
          - {id: jinlong-head, name: 陆建国, title: 镇长, roles: [street_head], notify: []}
        children:
          - id: xintian-village
            name: 新田村
            type: village
            people:
              - {id: xintian-head, name: 邱桂兰, title: 村主任, roles: [community_head]}
              - {id: xintian-grid, name: 严小东, title: 网格员, roles: [grid_worker], notify: []}
              - {id: xintian-safety, name: 甘小芳, title: 安全员, roles: [safety_officer]}
"""


@pytest.fixture
def with_town(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    rt = demo_with(tmp_path, clock, A_TOWN)
    yield rt
    rt.db.dispose()


def test_a_village_hazard_goes_up_to_its_towns_government(
    with_town: Runtime, clock: ManualClock
) -> None:
    """A village's hazard unrectified: the 督办函 to the village head, then the 提级督办函 to
    the town's 人民政府 (a town has no 办事处), its head served, the town spoken to as 你镇."""
    rt = with_town
    with TestClient(create_app(rt, background=False, prefect=False),
                    raise_server_exceptions=False) as client:
        run_id, view = registered_by_the_commander(client, rt, "xintian-village", "新田村祠堂电线")
        assert (view["street"], view["street_name"], view["street_type"]) == (
            "jinlong-town", "金龙镇", "town")
        first, second = two_letters(client, rt, clock, run_id)
    assert first["recipients"] == [{"id": "xintian-head", "kind": "person", "name": "邱桂兰"}]
    assert second["recipients"] == [{"id": "jinlong-head", "kind": "person", "name": "陆建国"}]
    text_lines = lines(second["body"])
    assert text_lines[2] == "金龙镇人民政府主要负责人："
    assert text_lines[3].startswith("你镇辖区内新田村祠堂电线存在的一般事故隐患")
    assert "街道" not in second["body"]
