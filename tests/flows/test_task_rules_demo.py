"""The tester's reports, replayed on the shipped demo district and hazard playbook: a general
hazard (一般) of 六和社区 whose rectification (two photos and a note) is the community safety
officer's. Someone else's photo, one photo listed twice, handing the task to the district's
commander or to the next community's safety officer, and three-million-character text are
all refused; what the task is for (a colleague, or the street's commander handing it to an
inspector) still works. Real SQLite, the real org chart, a ManualClock."""

from __future__ import annotations

import pytest
from factories import before_after, png_bytes, run_steps

from flows import lifecycle, tasks
from flows.evidence import store_evidence
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.errors import Forbidden, InvalidInput
from models.task import StepInstance

SAFETY = "liuhe-safety"  # 尹秀英, 六和社区's safety officer: the rectification is hers
NEIGHBOUR = "heping-safety"  # 刘玉兰, 和平社区's safety officer (the next community)
STREET_COMMANDER = "pingshan-street-commander"
DISTRICT_COMMANDER = "wang-qiang"  # 王强, the district's commander
INSPECTOR = "pingshan-street-inspector-1"


def rectify(rt: Runtime) -> StepInstance:
    run = lifecycle.start_run(rt, playbook_id="hazard-3030", unit_id="liuhe", params={
        "location": "六和社区和平路18号", "grade": "一般", "source": "执法检查",
        "category": "消防安全", "description": "消防通道堵塞"}, actor=STREET_COMMANDER)
    drain_wakes(rt)
    step = next(s for s in run_steps(rt, run.id or 0) if s.step_key == "rectify")
    assert step.status == "ready" and step.assignees == [SAFETY]
    return step


def photo(rt: Runtime, who: str, n: int = 2) -> str:
    return store_evidence(rt, data=png_bytes(n, 2), filename="整改照片.png", uploaded_by=who).id


def complete(rt: Runtime, step: StepInstance, evidence: list[str], *, who: str = SAFETY,
             note: str = "已清理", done: str = "已清理堵塞的消防通道") -> StepInstance:
    return tasks.complete(rt, step_id=step.id or 0, actor=who, note=note,
                          outputs={"done_measures": done}, evidence=evidence,
                          evidence_labels=before_after(evidence))


def test_a_neighbours_photo_cannot_prove_this_rectification(demo: Runtime) -> None:
    step = rectify(demo)
    theirs = photo(demo, NEIGHBOUR)
    mine = photo(demo, SAFETY, 3)
    with pytest.raises(InvalidInput) as caught:
        complete(demo, step, [mine, theirs])
    assert caught.value.field == "evidence[1]" and theirs in caught.value.message
    assert complete(demo, step, [mine, photo(demo, SAFETY, 4)]).status == "submitted"


def test_one_photo_listed_twice_does_not_meet_a_two_photo_minimum(demo: Runtime) -> None:
    step = rectify(demo)
    mine = photo(demo, SAFETY)
    with pytest.raises(InvalidInput) as caught:
        complete(demo, step, [mine, mine])
    assert caught.value.field == "evidence" and mine in caught.value.message


def test_the_safety_officer_cannot_hand_her_task_to_the_district_or_the_next_community(
    demo: Runtime,
) -> None:
    step = rectify(demo)
    for person, says in [(DISTRICT_COMMANDER, "只能转派给六和社区或持有 safety_officer 角色的人员"),
                         (NEIGHBOUR, "无权查看该事件")]:
        with pytest.raises(InvalidInput) as caught:
            tasks.reassign(demo, step_id=step.id or 0, actor=SAFETY, person=person)
        assert caught.value.field == "person" and says in caught.value.message
    # Still hers; a colleague of her community may take it over.
    assert rectify_row(demo, step).assignees == [SAFETY]
    moved = tasks.reassign(demo, step_id=step.id or 0, actor=SAFETY, person="liuhe-head")
    assert moved.assignees == ["liuhe-head"]
    with pytest.raises(Forbidden):
        tasks.ack(demo, step_id=step.id or 0, actor=SAFETY)


def test_commanders_hand_it_within_their_command_but_never_outside_the_run(
    demo: Runtime,
) -> None:
    step = rectify(demo)
    # The district's commander may give it to any of the district who can see the run ...
    with pytest.raises(InvalidInput) as caught:
        tasks.reassign(demo, step_id=step.id or 0, actor=DISTRICT_COMMANDER, person=NEIGHBOUR)
    assert "cannot see this run" in caught.value.message
    # ... and the street's commander to the street's inspector (what reassigning is for).
    moved = tasks.reassign(demo, step_id=step.id or 0, actor=STREET_COMMANDER, person=INSPECTOR)
    assert moved.assignees == [INSPECTOR]


def test_three_million_characters_of_note_or_done_measures_are_refused(demo: Runtime) -> None:
    step = rectify(demo)
    evidence = [photo(demo, SAFETY), photo(demo, SAFETY, 3)]
    huge = "改" * 3_000_000
    with pytest.raises(InvalidInput) as caught:
        complete(demo, step, evidence, note=huge)
    assert caught.value.field == "note"
    with pytest.raises(InvalidInput) as caught:
        complete(demo, step, evidence, done=huge)
    assert caught.value.field == "outputs.done_measures"
    assert "最多 4000 个字符" in caught.value.message
    row = rectify_row(demo, step)
    assert row.status == "ready" and row.note is None and row.outputs == {}


def rectify_row(rt: Runtime, step: StepInstance) -> StepInstance:
    return next(s for s in run_steps(rt, step.run_id) if s.id == step.id)
