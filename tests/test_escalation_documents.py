"""The letters of the hazard ladder (playbooks/hazard-3030.yaml, rectify's escalate levels: 督办函
to the unit head, 提级督办函 to the street head, 约谈通知 weekly) are documents of the hazard's
run: filed when the sweeper sends them, once per firing, and listed by GET
/api/runs/{id}/documents beside the step documents (the closure form), each with its 文号, the
people it was served on and when it was sent. The shipped playbooks on the demo district, the
clock moved instead of waited for."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from factories import png_bytes, step_row
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import select

from api.auth import make_token
from api.main import create_app
from flows import tasks
from flows.evidence import store_evidence
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
    r = client.post("/api/runs", headers=auth(rt, COMMANDER), json={
        "playbook": "hazard-3030", "unit": UNIT,
        "params": {"location": LOCATION, "grade": "一般", "code": "PS-2026-0302-001"}})
    assert r.status_code == 201, r.text
    drain_wakes(rt)
    return r.json()["id"]  # type: ignore[no-any-return]


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
    assert letter["sent_at_local"] == demo.renderer.local(clock.now()) == "2026-04-01 09:01"
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
    assert "# 督办函" in escalated["body"] and "**坪应急督函〔2026〕2号**" in escalated["body"]
    assert summons["template"] == "summons-notice.md.j2"
    assert summons["body"].startswith("# 约谈通知") and "逾期 7 天" in summons["body"]
    assert UNIT_HEAD in [p["id"] for p in summons["recipients"]]
    assert summons["sent_at_local"] == "2026-04-08 09:01"


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
                   outputs={"done_measures": "已加装泄爆片"}, evidence=photos)
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
    assert {d["sent_at_local"] for d in got} == {"2026-04-09 09:00"}
    sweep_at(demo, clock, due + timedelta(days=14, minutes=1))
    again = letters(client, demo, run_id)[3:]
    assert [(d["level"], d["repeat"], d["title"], d["number"]) for d in again] == [
        (3, 1, "约谈（第2次）：隐患整改", "坪应急约〔2026〕2号")]
    assert "**坪应急约〔2026〕2号**" in again[0]["body"]


def test_only_those_who_may_read_the_run_read_its_letters(
    client: TestClient, demo: Runtime, clock: ManualClock
) -> None:
    run_id = start_hazard(client, demo)
    sweep_at(demo, clock, step_row(demo, run_id, "rectify").due_at  # type: ignore[operator]
             + timedelta(minutes=1))
    r = client.get(f"/api/runs/{run_id}/documents", headers=auth(demo, "heping-head"))
    assert r.status_code == 403, r.text
    assert len(letters(client, demo, run_id)) == 1
