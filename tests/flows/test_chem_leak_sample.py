"""The sample 危险化学品泄漏 playbook (playbooks/samples/chem-leak.yaml) installed as its header
says (copied into playbooks/, its templates already in templates/) on the demo district: it
loads, and a toxic leak at an enterprise of 坪山街道 warns each of the street's communities
with the cordon the duty leader set, gives each its sensitive-site check, has the plugging
verified by an inspector who did not do it, files the record, and in 善后 registers the
enterprise's 重大 hazard."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime, png_bytes, run_steps
from sqlmodel import select

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.outbox import Notification
from models.run import Run

STREET_COMMUNITIES = {"liuhe", "heping", "pingshan-community", "dongmen", "xinhe"}


@pytest.fixture
def installed(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    books = tmp_path / "playbooks"
    shutil.copytree(SHIPPED_PLAYBOOKS, books)
    shutil.copy(SHIPPED_PLAYBOOKS / "samples" / "chem-leak.yaml", books / "chem-leak.yaml")
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    yield rt
    rt.db.dispose()


def _open(rt: Runtime, run_id: int, key: str) -> list[int]:
    return [s.id or 0 for s in run_steps(rt, run_id)
            if s.step_key == key and s.status in ("ready", "acked")]


def test_the_sample_loads_and_a_toxic_leak_is_worked_through_its_stages(
        installed: Runtime) -> None:
    rt = installed
    assert rt.catalog.errors == [] and "chem-leak" in rt.catalog.current
    run = lifecycle.start_run(rt, playbook_id="chem-leak", unit_id="shenzhen-gas-pingshan", params={
        "location": "坪山街道化工园区3号", "enterprise": "某化工有限公司", "chemical": "液氨",
        "toxic": "是"}, actor="wang-qiang")
    run_id = run.id or 0
    assert run.title == "危险化学品泄漏应急处置·液氨·坪山街道化工园区3号"
    [receive] = _open(rt, run_id, "receive")
    tasks.complete(rt, step_id=receive, actor="pingshan-duty-1")
    [assess] = _open(rt, run_id, "assess")
    tasks.complete(rt, step_id=assess, actor="liu-yang", outputs={"radius": 500})
    drain_wakes(rt)

    steps = run_steps(rt, run_id)
    alerts = [s for s in steps if s.step_key == "alert"]
    assert {s.unit_id for s in alerts} == STREET_COMMUNITIES
    assert {s.status for s in alerts} == {"done"}
    with read_session(rt.db) as session:
        told = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.recipient == "liuhe-head")).all()
    assert any("警戒半径**：500 米" in n.body and "六和社区" in n.body for n in told)
    sweeps = {s.unit_id: s for s in steps if s.step_key == "sweep"}
    assert set(sweeps) == STREET_COMMUNITIES and sweeps["liuhe"].assignees == ["liuhe-head"]

    for community, s in sweeps.items():
        tasks.complete(rt, step_id=s.id or 0, actor=f"{community}-head", note="已排查",
                       outputs={"evacuated": 12})
    [dispatch] = _open(rt, run_id, "rescue.dispatch")
    tasks.complete(rt, step_id=dispatch, actor="pingshan-street-duty",
                   outputs={"teams": "街道专职救援队"})
    rescue = "pingshan-street-rescue"
    photos = [store_evidence(rt, data=png_bytes(rgb=(i * 60, 90, 30)), filename=f"{i}.png",
                             uploaded_by=rescue).id for i in range(2)]
    [arrive] = _open(rt, run_id, "rescue.arrive")
    tasks.complete(rt, step_id=arrive, actor=rescue, evidence=[photos[0]])
    [plug] = _open(rt, run_id, "plug")
    tasks.complete(rt, step_id=plug, actor=rescue, note="关闭阀门", evidence=[photos[1]],
                   outputs={"result": "泄漏阀门已关闭"})
    tasks.verify(rt, step_id=plug, actor="pingshan-street-inspector-1", approve=True)
    [monitor] = _open(rt, run_id, "monitor")
    tasks.complete(rt, step_id=monitor, actor="cao-ying", outputs={"conclusion": "氨浓度正常"})
    drain_wakes(rt)
    with read_session(rt.db) as session:
        [record] = session.exec(select(Document).where(
            Document.run_id == run_id, Document.template == "chem-disposal-record.md.j2")).all()
    assert "堵漏结果：泄漏阀门已关闭" in record.body and "环境监测结论：氨浓度正常" in record.body

    lifecycle.set_stage(rt, run_id=run_id, stage="善后处置", actor="wang-qiang")
    drain_wakes(rt)
    with read_session(rt.db) as session:
        [child] = session.exec(select(Run).where(Run.playbook_id == "hazard-3030")).all()
    assert child.params["grade"] == "重大"
    assert child.params["location"] == "坪山街道化工园区3号（某化工有限公司）"
    # The enterprise's own safety officer takes the interim controls of its 重大 hazard.
    [interim] = [s for s in run_steps(rt, child.id or 0) if s.step_key == "interim"]
    assert child.unit_id == "shenzhen-gas-pingshan" and interim.assignees == ["gas-station-safety"]
    assert _open(rt, run_id, "investigate") and _open(rt, run_id, "lookback")
