"""整改前 and 整改后: a rectification is handed in with photos marked for what they show
(playbooks/hazard-3030.yaml, rectify: `evidence.labels`), so the inspector compares the scene
before with the scene after. Two photos of the finished work are refused, by what is missing,
and a refusal changes nothing. Real SQLite, the shipped demo district and playbook."""

from __future__ import annotations

import pytest
from factories import before_after, pdf_bytes, png_bytes, refused, run_steps
from sqlmodel import select

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.audit import AuditEvent
from models.db import read_session
from models.documents import Evidence
from models.errors import Conflict, InvalidInput
from models.task import StepInstance

SAFETY = "liuhe-safety"
INSPECTOR = "pingshan-street-inspector-1"
COMMANDER = "pingshan-street-commander"
PDF = pdf_bytes()


def ready_step(rt: Runtime, key: str = "rectify", grade: str = "一般") -> StepInstance:
    """Step `key` of a new hazard of `grade` at 六和社区, once handed out."""
    run = lifecycle.start_run(rt, playbook_id="hazard-3030", unit_id="liuhe", params={
        "location": "六和社区和平路18号", "grade": grade, "source": "执法检查",
        "category": "消防安全", "description": "消防通道堵塞"}, actor=COMMANDER)
    drain_wakes(rt)
    return next(s for s in run_steps(rt, run.id or 0) if s.step_key == key)


def shots(rt: Runtime, n: int, who: str = SAFETY, first: int = 2) -> list[str]:
    return [store_evidence(rt, data=png_bytes(first + i, 2), filename=f"现场{i + 1}.jpg",
                           uploaded_by=who).id for i in range(n)]


def hand_in(rt: Runtime, step: StepInstance, evidence: list[str],
            labels: dict[str, str]) -> StepInstance:
    return tasks.complete(rt, step_id=step.id or 0, actor=SAFETY, note="已清理",
                          outputs={"done_measures": "已清理堵塞的消防通道"}, evidence=evidence,
                          evidence_labels=labels)


def refusal(rt: Runtime, step: StepInstance, evidence: list[str],
            labels: dict[str, str]) -> InvalidInput:
    """The refusal of this hand-in, after checking that it changed nothing."""
    with pytest.raises(InvalidInput) as caught:
        hand_in(rt, step, evidence, labels)
    with read_session(rt.db) as session:
        row = session.get(StepInstance, step.id)
        assert row is not None and row.status == "ready" and row.evidence == []
        assert row.evidence_labels == {}
        for ev_id in evidence:
            assert session.get(Evidence, ev_id).step_id is None  # type: ignore[union-attr]
    return caught.value


def test_photos_marked_before_and_after_are_kept_with_the_hand_in_and_its_history(
        demo: Runtime) -> None:
    step = ready_step(demo)
    before, after, extra = shots(demo, 3)
    labels = {before: "整改前", after: "整改后", extra: "整改后"}
    done = hand_in(demo, step, [before, after, extra], labels)
    assert done.status == "submitted"
    assert done.evidence_labels == labels
    with read_session(demo.db) as session:
        event = session.exec(select(AuditEvent).where(
            AuditEvent.step_id == step.id, AuditEvent.action == "submitted")).one()
    assert event.detail["evidence_labels"] == labels


def test_two_photos_of_the_finished_work_are_refused_for_the_missing_before(
        demo: Runtime) -> None:
    step = ready_step(demo)
    ids = shots(demo, 2)
    err = refusal(demo, step, ids, dict.fromkeys(ids, "整改后"))
    assert err.field == "evidence_labels.整改前"
    assert "缺少整改前照片" in str(err)


def test_everything_missing_is_said_in_one_refusal(demo: Runtime) -> None:
    """Nothing marked 整改前 nor 整改后, and a photo not marked at all: one answer names all
    three, so the rectifier fixes them in one go instead of one refusal per try."""
    step = ready_step(demo)
    ids = shots(demo, 2)
    err = refusal(demo, step, ids, {})
    assert [err.field, *(f for f, _ in err.others)] == [
        "evidence[0]", "evidence[1]", "evidence_labels.整改前", "evidence_labels.整改后"]
    assert "缺少整改后照片" in dict(err.others)["evidence_labels.整改后"]


def test_a_photo_not_marked_is_named_by_its_file(demo: Runtime) -> None:
    step = ready_step(demo)
    ids = shots(demo, 2)
    err = refusal(demo, step, ids, {ids[0]: "整改前"})
    assert err.field == "evidence[1]"
    assert "「现场2.jpg」" in str(err) and "未标明" in str(err)


def test_a_label_the_step_does_not_have_is_refused_naming_those_it_has(demo: Runtime) -> None:
    step = ready_step(demo)
    ids = shots(demo, 2)
    err = refusal(demo, step, ids, {ids[0]: "整改前", ids[1]: "整改中"})
    assert err.field == f"evidence_labels.{ids[1]}"
    assert "'整改中' 不是 整改前、整改后 之一" in str(err)


def test_a_label_for_a_file_not_handed_in_is_refused(demo: Runtime) -> None:
    step = ready_step(demo)
    ids = shots(demo, 2)
    err = refusal(demo, step, ids, before_after(ids) | {"no-such-file": "整改后"})
    assert err.field == "evidence_labels.no-such-file"
    assert "不在本次提交的文件中" in str(err)


def test_a_document_beside_the_photos_needs_no_mark(demo: Runtime) -> None:
    step = ready_step(demo)
    ids = shots(demo, 2)
    report = store_evidence(demo, data=PDF, filename="检测报告.pdf", uploaded_by=SAFETY).id
    done = hand_in(demo, step, [*ids, report], before_after(ids))
    assert done.status == "submitted" and done.evidence_labels == before_after(ids)


def test_a_step_whose_photos_are_not_marked_takes_no_marks(demo: Runtime) -> None:
    interim = ready_step(demo, "interim", grade="重大")
    [photo] = shots(demo, 1)
    with pytest.raises(InvalidInput) as caught:
        tasks.complete(demo, step_id=interim.id or 0, actor=SAFETY, note="已设置警示标志",
                       outputs={"evacuated": True, "stopped": True, "signs": True,
                                "watch": True},
                       evidence=[photo], evidence_labels={photo: "整改前"})
    assert caught.value.field == "evidence_labels"


def test_sent_back_the_same_photos_may_be_marked_anew(demo: Runtime) -> None:
    """The inspector saw the two marked the wrong way round: handed in again, swapped."""
    step = ready_step(demo)
    first, second = shots(demo, 2)
    hand_in(demo, step, [first, second], {first: "整改后", second: "整改前"})
    tasks.verify(demo, step_id=step.id or 0, actor=INSPECTOR, approve=False,
                 note="整改前后照片标反了")
    again = hand_in(demo, step, [first, second], {first: "整改前", second: "整改后"})
    assert again.status == "submitted"
    assert again.evidence_labels == {first: "整改前", second: "整改后"}


def test_a_hand_in_sent_again_with_other_marks_is_not_taken_for_the_same(
        demo: Runtime) -> None:
    step = ready_step(demo)
    ids = shots(demo, 2)
    hand_in(demo, step, ids, before_after(ids))
    assert hand_in(demo, step, ids, before_after(ids)).status == "submitted"  # the same: fine
    with pytest.raises(Conflict):
        hand_in(demo, step, ids, {ids[0]: "整改后", ids[1]: "整改前"})


@pytest.mark.parametrize(("labels", "message"), [
    ("[整改前, 整改前]", "照片类别不能重复"),
    ("[整改前, '']", "不能为空"),
])
def test_the_playbook_marks_are_checked_where_they_are_written(
        demo: Runtime, labels: str, message: str) -> None:
    text = f"""
id: labelled
version: 1
title: 照片分类
steps:
  - id: fix
    title: 整改
    role: safety_officer
    evidence: {{photos: 2, labels: {labels}}}
"""
    errors = refused(demo, text, "labelled.yaml")
    assert "labelled.yaml:9:" in errors and "steps[0] (fix).evidence.labels" in errors
    assert message in errors
