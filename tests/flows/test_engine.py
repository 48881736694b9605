"""The engine on a real SQLite database with a movable clock: starting runs, people finishing
steps, verification, races, skipping, fan-out, stages, waits and child runs. Segments are run
bare (segment_body); tests/e2e runs the same through Prefect."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from factories import png_bytes, run_steps
from factories import run_row as get_run
from sqlmodel import select

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.audit import AuditEvent
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.errors import Conflict, Forbidden, InvalidInput
from models.escalation import Escalation
from models.outbox import Notification
from models.task import StepInstance


def steps_by_key(rt: Runtime, run_id: int) -> dict[str, list[StepInstance]]:
    out: dict[str, list[StepInstance]] = {}
    for s in run_steps(rt, run_id):
        out.setdefault(s.step_key, []).append(s)
    return out


def one(rt: Runtime, run_id: int, key: str) -> StepInstance:
    found = steps_by_key(rt, run_id)[key]
    assert len(found) == 1
    return found[0]


def start_quick(rt: Runtime) -> int:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="s1-commander")
    return run.id or 0


def photo(rt: Runtime, who: str) -> str:
    return store_evidence(rt, data=png_bytes(), filename="site.png", uploaded_by=who).id


def test_start_run_assigns_first_step_with_due_time(rt: Runtime, clock: ManualClock) -> None:
    run_id = start_quick(rt)
    receive = one(rt, run_id, "receive")
    assert receive.status == "ready"
    assert receive.assignees == ["s1-duty"]  # duty_officer resolved up from c1 to s1
    assert receive.due_at == clock.now() + timedelta(seconds=2)
    # A step still waiting on its needs has no row yet: it costs nothing until it is ready.
    assert set(steps_by_key(rt, run_id)) == {"receive"}


def test_start_run_rejects_bad_params_and_unknown_unit(rt: Runtime) -> None:
    with pytest.raises(InvalidInput) as exc:
        lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1", params={},
                            actor="s1-commander")
    assert exc.value.field == "params.location"
    with pytest.raises(InvalidInput) as exc:
        lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="nowhere",
                            params={"location": "x"}, actor="s1-commander")
    assert exc.value.field == "unit"


def test_start_run_requires_commander_over_the_unit(rt: Runtime) -> None:
    with pytest.raises(Forbidden):
        lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                            params={"location": "x"}, actor="s2-commander")
    with pytest.raises(Forbidden):
        lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                            params={"location": "x"}, actor="c1-grid")


def test_completing_steps_with_evidence_and_verification_completes_run(rt: Runtime) -> None:
    run_id = start_quick(rt)
    tasks.complete(rt, step_id=one(rt, run_id, "receive").id or 0, actor="s1-duty", note="ok")
    inspect = one(rt, run_id, "inspect")
    assert inspect.status == "ready" and inspect.assignees == ["c1-grid"]
    with pytest.raises(InvalidInput) as exc:
        tasks.complete(rt, step_id=inspect.id or 0, actor="c1-grid", note="已核查")
    assert exc.value.field == "evidence"
    done = tasks.complete(rt, step_id=inspect.id or 0, actor="c1-grid", note="燃气阀门已关闭",
                          evidence=[photo(rt, "c1-grid")])
    assert done.status == "submitted"
    verified = tasks.verify(rt, step_id=inspect.id or 0, actor="s1-insp1", approve=True)
    assert verified.status == "done"
    drain_wakes(rt)  # the segment: executes notify and document steps
    keyed = steps_by_key(rt, run_id)
    assert keyed["report"][0].status == "done"
    assert keyed["record"][0].status == "done"
    assert get_run(rt, run_id).status == "completed"
    with read_session(rt.db) as session:
        doc = session.exec(select(Document).where(Document.run_id == run_id)).one()
        assert "燃气阀门已关闭" in doc.body and "一社区3号楼" in doc.body
        sent = session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "notify")).all()
        assert [n.recipient for n in sent] == ["duty"]


def test_verifier_cannot_verify_own_work_and_rejection_sends_it_back(rt: Runtime) -> None:
    run_id = start_quick(rt)
    tasks.complete(rt, step_id=one(rt, run_id, "receive").id or 0, actor="s1-duty")
    inspect = one(rt, run_id, "inspect")
    tasks.reassign(rt, step_id=inspect.id or 0, actor="s1-commander", person="s1-insp1")
    tasks.complete(rt, step_id=inspect.id or 0, actor="s1-insp1", note="自查",
                   evidence=[photo(rt, "s1-insp1")])
    with pytest.raises(Forbidden) as exc:
        tasks.verify(rt, step_id=inspect.id or 0, actor="s1-insp1", approve=True)
    assert "four-eyes" in exc.value.reason
    with pytest.raises(InvalidInput):
        tasks.verify(rt, step_id=inspect.id or 0, actor="s1-insp2", approve=False)
    rejected = tasks.verify(rt, step_id=inspect.id or 0, actor="s1-insp2", approve=False,
                            note="照片不清晰")
    assert rejected.status == "rejected" and rejected.reject_reason == "照片不清晰"
    again = tasks.complete(rt, step_id=inspect.id or 0, actor="s1-insp1", note="重拍",
                           evidence=[photo(rt, "s1-insp1")])
    assert again.status == "submitted"


@pytest.mark.parametrize(("notes", "expected"), [
    # Two different hand-ins at once: one wins, the other is told the task moved on.
    (("done", "已登记"), ["conflict", "ok"]),
    # The same hand-in twice (a retry, a second tap): the one success, answered twice (SPEC §4).
    (("done", "done"), ["ok", "ok"]),
])
def test_two_completions_at_once_complete_the_task_once(
        rt: Runtime, notes: tuple[str, str], expected: list[str]) -> None:
    run_id = start_quick(rt)
    step_id = one(rt, run_id, "receive").id or 0
    barrier = threading.Barrier(2)
    results: list[str] = []

    def worker(note: str) -> None:
        barrier.wait()
        try:
            tasks.complete(rt, step_id=step_id, actor="s1-duty", note=note)
            results.append("ok")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=worker, args=(note,)) for note in notes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == expected
    assert len(steps_by_key(rt, run_id)["inspect"]) == 1
    with read_session(rt.db) as session:
        done = session.exec(select(AuditEvent).where(
            AuditEvent.step_id == step_id, AuditEvent.action == "done")).all()
    assert len(done) == 1


def test_person_of_another_unit_cannot_act(rt: Runtime) -> None:
    run_id = start_quick(rt)
    tasks.complete(rt, step_id=one(rt, run_id, "receive").id or 0, actor="s1-duty")
    with pytest.raises(Forbidden):
        tasks.complete(rt, step_id=one(rt, run_id, "inspect").id or 0, actor="c2-grid")
    with pytest.raises(Forbidden):
        tasks.ack(rt, step_id=one(rt, run_id, "inspect").id or 0, actor="s2-insp")


def test_when_false_skips_and_downstream_proceeds(rt: Runtime) -> None:
    run = lifecycle.start_run(rt, playbook_id="branching", unit_id="s1", params={},
                              actor="s1-commander")
    tasks.complete(rt, step_id=one(rt, run.id or 0, "start").id or 0, actor="s1-duty")
    keyed = steps_by_key(rt, run.id or 0)
    assert keyed["major-only"][0].status == "skipped"
    assert keyed["after-major"][0].status == "ready"


def test_when_true_runs_the_major_branch(rt: Runtime) -> None:
    run = lifecycle.start_run(rt, playbook_id="branching", unit_id="s1",
                              params={"grade": "重大"}, actor="s1-commander")
    tasks.complete(rt, step_id=one(rt, run.id or 0, "start").id or 0, actor="s1-duty")
    assert one(rt, run.id or 0, "major-only").status == "ready"


def test_stage_fans_out_one_task_per_community(rt: Runtime, clock: ManualClock) -> None:
    run = lifecycle.start_run(rt, playbook_id="branching", unit_id="s1", params={},
                              actor="s1-commander")
    assert "villages" not in steps_by_key(rt, run.id or 0)  # waits for stage `warning`
    with pytest.raises(InvalidInput):
        lifecycle.set_stage(rt, run_id=run.id or 0, stage="typhoon", actor="s1-commander")
    with pytest.raises(Forbidden):
        lifecycle.set_stage(rt, run_id=run.id or 0, stage="warning", actor="c1-grid")
    lifecycle.set_stage(rt, run_id=run.id or 0, stage="warning", actor="s1-commander")
    villages = steps_by_key(rt, run.id or 0)["villages"]
    assert sorted(v.unit_id for v in villages) == ["c1", "c2"]
    assert {tuple(v.assignees) for v in villages} == {("c1-grid",), ("c2-grid",)}
    # ack within 10 minutes, else the first escalation level hears of it
    tasks.ack(rt, step_id=villages[0].id or 0, actor=villages[0].assignees[0])
    clock.advance(timedelta(minutes=11))
    report = sweep_once(rt)
    assert report.fired == 1
    late = [v for v in steps_by_key(rt, run.id or 0)["villages"] if v.ack_missed]
    assert len(late) == 1 and late[0].id == villages[1].id
    # "Sign for it now" goes first to the one who has not signed, and to the first level.
    with read_session(rt.db) as session:
        told = session.exec(select(Escalation).where(Escalation.kind == "ack")).one()
    assert told.recipients == ["c2-grid", "s1-head"]


def test_wait_step_finishes_when_time_passes_and_child_run_starts(
    rt: Runtime, clock: ManualClock
) -> None:
    run = lifecycle.start_run(rt, playbook_id="branching", unit_id="c1", params={},
                              actor="s1-commander")
    rid = run.id or 0
    tasks.complete(rt, step_id=one(rt, rid, "start").id or 0, actor="s1-duty")
    tasks.complete(rt, step_id=one(rt, rid, "after-major").id or 0, actor="s1-duty")
    assert one(rt, rid, "wait-a-bit").status == "ready"
    clock.advance(timedelta(minutes=61))
    assert sweep_once(rt).waits_finished == 1
    drain_wakes(rt)
    child_step = one(rt, rid, "child")
    assert child_step.status == "ready" and child_step.outputs["child_run"]
    child_id = child_step.outputs["child_run"]
    child = get_run(rt, child_id)
    assert child.parent_step_id == child_step.id and child.params["location"] == "子事件"
    lifecycle.cancel_run(rt, run_id=rid, actor="s1-commander", reason="演练结束")
    assert get_run(rt, child_id).status == "cancelled"
    with pytest.raises(Conflict):
        lifecycle.cancel_run(rt, run_id=rid, actor="s1-commander")


def test_running_run_keeps_its_playbook_version(make_rt, tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from factories import ENGINE_PLAYBOOKS

    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    rt = make_rt(playbooks=books)
    run_id = start_quick(rt)
    text = (books / "quick-escalation.yaml").read_text(encoding="utf-8")
    (books / "quick-escalation.yaml").write_text(
        text.replace("version: 1", "version: 2").replace("title: 现场核查", "title: 现场复核"),
        encoding="utf-8")
    rt.catalog.reload()
    assert rt.catalog.get("quick-escalation").version == 2
    tasks.complete(rt, step_id=one(rt, run_id, "receive").id or 0, actor="s1-duty")
    assert one(rt, run_id, "inspect").title == "现场核查"
    assert get_run(rt, run_id).playbook_version == 1


def test_cancelling_a_run_tells_whoever_holds_a_task_of_it(rt: Runtime) -> None:
    from models.outbox import Notification

    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="s1-commander")
    lifecycle.cancel_run(rt, run_id=run.id or 0, actor="s1-commander", reason="误报，已核实无泄漏")
    with read_session(rt.db) as session:
        told = session.exec(select(Notification).where(
            Notification.run_id == run.id, Notification.kind == "cancelled")).all()
    assert [n.recipient for n in told] == ["s1-duty"]  # the open receive step's duty officer
    assert "已由一街道指挥长撤销，原因：误报，已核实无泄漏" in told[0].body


def test_a_playbook_changed_without_a_new_version_is_named(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    """Runs keep what they started with; but two contents both called "version 1" leave a
    manager unable to say which steps a run had: the server names such a file at start."""
    import shutil

    from factories import ENGINE_PLAYBOOKS

    from flows.catalog import reused_versions

    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    rt = make_rt(playbooks=books)
    lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                        params={"location": "x"}, actor="s1-commander")
    with read_session(rt.db) as session:
        assert reused_versions(session, rt.catalog) == []
    path = books / "quick-escalation.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("title: 接警登记",
                                                             "title: 接警登记（修订）"),
                    encoding="utf-8")
    rt.catalog.reload()
    with read_session(rt.db) as session:
        assert reused_versions(session, rt.catalog) == ["quick-escalation v1"]
