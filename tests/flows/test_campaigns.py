"""3030 campaigns on a real SQLite runtime with a movable clock: the shipped campaign playbook
(playbooks/campaign-3030.yaml) next to the engine's test playbooks, hazards joining it through
register-demo runs started with `campaign=<id>`. Progress is counted live as hazards are
registered, closed, cancelled and become overdue; at the end of the window the review is
always due, and the shortfall explanation only when the target was missed, escalating to
the district when it is late."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import campaign_books, run_steps
from sqlmodel import select

from flows import lifecycle, tasks
from flows.campaigns import campaign_progress
from flows.context import expression_context
from flows.expressions import compile_expression
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.errors import InvalidInput
from models.escalation import Escalation
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance

DAY = timedelta(days=1)


@pytest.fixture
def crt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    rt = make_rt(playbooks=campaign_books(tmp_path))
    assert rt.catalog.errors == []
    return rt


def start_campaign(rt: Runtime, **params: Any) -> int:
    run = lifecycle.start_run(rt, playbook_id="campaign-3030", unit_id="s1", params=params,
                              actor="s1-commander")
    return run.id or 0


def start_hazard(rt: Runtime, campaign: int | None, **params: Any) -> int:
    run = lifecycle.start_run(rt, playbook_id="register-demo", unit_id="c1",
                              params={"location": "一社区化工仓库", "campaign": campaign,
                                      **params}, actor="s1-commander")
    return run.id or 0


def count_runs(rt: Runtime) -> int:
    with read_session(rt.db) as session:
        return len(session.exec(select(Run.id)).all())


def steps(rt: Runtime, run_id: int) -> dict[str, StepInstance]:
    return {r.step_key: r for r in run_steps(rt, run_id)}


def progress(rt: Runtime, campaign: int) -> dict[str, Any]:
    with read_session(rt.db) as session:
        p = campaign_progress(session, campaign, rt.clock.now())
    return {k: p[k] for k in ("found", "rectifying", "overdue", "closed", "target")}


def close_hazard(rt: Runtime, run_id: int) -> None:
    tasks.complete(rt, step_id=steps(rt, run_id)["rectify"].id or 0, actor="c1-grid",
                   note="已整改")
    tasks.complete(rt, step_id=steps(rt, run_id)["close"].id or 0, actor="s1-insp1",
                   note="验收合格，销号")


def test_campaign_starts_with_deployment_and_its_window(crt: Runtime,
                                                        clock: ManualClock) -> None:
    cid = start_campaign(crt)
    keyed = steps(crt, cid)
    assert set(keyed) == {"deploy", "window"}
    assert keyed["deploy"].assignees == ["s1-commander"]
    assert keyed["window"].due_at == clock.now() + 30 * DAY
    with read_session(crt.db) as session:
        p = campaign_progress(session, cid, clock.now())
    assert p == {"found": 0, "rectifying": 0, "overdue": 0, "closed": 0,
                 "closed_after_window": 0, "target": 30, "met": False, "grade": "重大",
                 "window_end": clock.now() + 30 * DAY}


def test_progress_counts_live(crt: Runtime, clock: ManualClock) -> None:
    cid = start_campaign(crt, target=2)
    other = start_campaign(crt)
    assert progress(crt, cid)["found"] == 0
    a, b, c = (start_hazard(crt, cid) for _ in range(3))
    # The campaign counts 重大 hazards only: a 一般 one is refused at its door, naming why,
    # rather than joining and counting nowhere.
    runs_before = count_runs(crt)
    with pytest.raises(InvalidInput) as refused:
        start_hazard(crt, cid, grade="一般")
    assert refused.value.field == "params.campaign"
    assert f"专项行动 #{cid} 只计入重大隐患，本隐患为一般隐患" in refused.value.message
    assert count_runs(crt) == runs_before
    start_hazard(crt, other)  # another campaign's
    start_hazard(crt, None)  # no campaign
    assert progress(crt, cid) == {"found": 3, "rectifying": 3, "overdue": 0, "closed": 0,
                                  "target": 2}
    close_hazard(crt, a)
    assert progress(crt, cid) == {"found": 3, "rectifying": 2, "overdue": 0, "closed": 1,
                                  "target": 2}
    # Rectification is due 10 days after registration: the open ones turn overdue.
    clock.advance(10 * DAY + timedelta(minutes=1))
    assert progress(crt, cid)["overdue"] == 2
    tasks.complete(crt, step_id=steps(crt, b)["rectify"].id or 0, actor="c1-grid")
    assert progress(crt, cid)["overdue"] == 2  # rectified is not closed (销号) yet
    tasks.complete(crt, step_id=steps(crt, b)["close"].id or 0, actor="s1-insp2")
    assert progress(crt, cid) == {"found": 3, "rectifying": 1, "overdue": 1, "closed": 2,
                                  "target": 2}
    lifecycle.cancel_run(crt, run_id=c, actor="s1-commander", reason="重复登记")
    assert progress(crt, cid) == {"found": 2, "rectifying": 0, "overdue": 0, "closed": 2,
                                  "target": 2}
    assert progress(crt, other)["found"] == 1


def test_a_closure_after_the_window_does_not_meet_the_target(
        crt: Runtime, clock: ManualClock) -> None:
    cid = start_campaign(crt, target=1)
    hid = start_hazard(crt, cid)
    clock.advance(30 * DAY + timedelta(minutes=1))  # the window has ended, target missed
    close_hazard(crt, hid)
    with read_session(crt.db) as session:
        p = campaign_progress(session, cid, clock.now())
    assert (p["closed"], p["closed_after_window"], p["rectifying"], p["met"]) == (0, 1, 0, False)


def test_all_grades_campaign_counts_every_hazard(crt: Runtime) -> None:
    cid = start_campaign(crt, grade="全部", target=5)
    start_hazard(crt, cid, grade="一般")
    start_hazard(crt, cid, grade="重大")
    assert progress(crt, cid)["found"] == 2


def test_expression_helper_reads_the_current_run_and_others(crt: Runtime) -> None:
    cid = start_campaign(crt, target=1)
    hid = start_hazard(crt, cid)
    close_hazard(crt, hid)
    with read_session(crt.db) as session:
        run = session.get(Run, cid)
        hazard_run = session.get(Run, hid)
        assert run is not None and hazard_run is not None
        ctx = expression_context(session, crt, run)
        assert compile_expression("campaign().closed").evaluate(ctx) == 1
        assert compile_expression("campaign().closed >= params.target").evaluate(ctx) is True
        # A hazard's playbook may read the campaign it belongs to.
        hctx = expression_context(session, crt, hazard_run)
        assert compile_expression("campaign(params.campaign).found").evaluate(hctx) == 1


@pytest.mark.parametrize(("target", "message"), [
    (-5, "不能小于 1；收到 -5 / must be at least 1; got -5"),
    (0, "不能小于 1；收到 0 / must be at least 1; got 0"),
    (10001, "不能大于 10000；收到 10001 / must be at most 10000; got 10001"),
    (99999999999999999999999, "整数超出范围"),
    ("-5", "不能小于 1"),
])
def test_campaign_target_outside_1_to_10000_is_refused(crt: Runtime, target: Any,
                                                        message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        start_campaign(crt, target=target)
    assert caught.value.field == "params.target"
    assert caught.value.message.startswith(message)
    with read_session(crt.db) as session:
        assert session.exec(select(Run)).all() == []


def test_campaign_target_at_its_bounds_starts(crt: Runtime) -> None:
    for target in (1, 10000):
        assert progress(crt, start_campaign(crt, target=target))["target"] == target


def test_deployment_people_must_be_a_sane_count(crt: Runtime) -> None:
    cid = start_campaign(crt)
    deploy = steps(crt, cid)["deploy"].id or 0
    for people in (-1, 10**12):
        with pytest.raises(InvalidInput) as caught:
            tasks.complete(crt, step_id=deploy, actor="s1-commander",
                           outputs={"plan": "分网格排查", "people": people})
        assert caught.value.field == "outputs.people"
    with pytest.raises(InvalidInput) as caught:
        tasks.complete(crt, step_id=deploy, actor="s1-commander",
                       outputs={"plan": "排" * 4001, "people": 12})
    assert caught.value.field == "outputs.plan"
    assert tasks.complete(crt, step_id=deploy, actor="s1-commander",
                          outputs={"plan": "分网格排查", "people": 0}).status == "done"


def finish_window(rt: Runtime, clock: ManualClock, cid: int) -> None:
    tasks.complete(rt, step_id=steps(rt, cid)["deploy"].id or 0, actor="s1-commander",
                   outputs={"plan": "分网格排查", "people": 12})
    clock.advance(30 * DAY + timedelta(minutes=1))
    assert sweep_once(rt).waits_finished == 1


def test_target_met_gives_the_review_only(crt: Runtime, clock: ManualClock) -> None:
    cid = start_campaign(crt, target=2)
    for _ in range(2):
        close_hazard(crt, start_hazard(crt, cid))
    start_hazard(crt, cid)  # a third, still open, does not matter: the target is met
    finish_window(crt, clock, cid)
    keyed = steps(crt, cid)
    assert keyed["review"].status == "ready" and keyed["review"].assignees == ["s1-head"]
    assert keyed["shortfall"].status == "skipped"
    assert keyed["shortfall-notice"].status == "skipped"  # nothing to tell the district
    tasks.complete(crt, step_id=keyed["review"].id or 0, actor="s1-head",
                   note="完成目标，经验：网格化排查")
    with read_session(crt.db) as session:
        assert session.get(Run, cid).status == "completed"  # type: ignore[union-attr]


def test_target_missed_gives_a_shortfall_that_escalates(crt: Runtime,
                                                        clock: ManualClock) -> None:
    cid = start_campaign(crt, target=3)
    close_hazard(crt, start_hazard(crt, cid))
    start_hazard(crt, cid)
    finish_window(crt, clock, cid)
    keyed = steps(crt, cid)
    assert keyed["review"].status == "ready"
    shortfall = keyed["shortfall"]
    assert shortfall.status == "ready" and shortfall.assignees == ["s1-head"]
    assert shortfall.due_at is not None
    # Missing the target escalates at once: the district is told, with the counts.
    drain_wakes(crt)
    notice = steps(crt, cid)["shortfall-notice"]
    assert notice.status == "done"
    with read_session(crt.db) as session:
        told = session.exec(select(Notification).where(
            Notification.step_id == notice.id)).all()
    assert {n.recipient for n in told} == {"d1-manager", "d1-director"}
    body = told[0].body
    assert "3030专项行动未达标通报" in body and "| 目标（销号重大隐患） | 3 |" in body
    assert "| 窗口内销号 | 1 |" in body and "| 尚差 | 2 |" in body and "None" not in body
    # Closing more after the window does not undo the shortfall: it was measured at the end.
    assert progress(crt, cid)["closed"] == 1
    clock.advance(shortfall.due_at - clock.now() + timedelta(minutes=1))
    sweep_once(crt)
    with read_session(crt.db) as session:
        fired = session.exec(select(Escalation).where(Escalation.step_id == shortfall.id)
                             .order_by(Escalation.id)).all()
    assert [(e.level, sorted(e.recipients)) for e in fired] == [
        (1, ["d1-chief", "d1-manager"])]
    late = steps(crt, cid)["shortfall"]
    assert late.overdue and late.escalation_level == 1
    clock.advance(7 * DAY)  # three working days on (a weekend between): 约谈, by the director
    sweep_once(crt)
    with read_session(crt.db) as session:
        levels = session.exec(select(Escalation.level, Escalation.recipients)
                              .where(Escalation.step_id == shortfall.id)
                              .order_by(Escalation.id)).all()
    assert [tuple(r) for r in levels][1] == (2, ["d1-director"])
    tasks.complete(crt, step_id=shortfall.id or 0, actor="s1-head", note="人员不足",
                   outputs={"causes": "排查力量不足", "measures": "4月底前全部销号"})
    assert steps(crt, cid)["shortfall"].status == "done"


def test_a_streets_missed_target_reaches_the_district_not_the_streets_own_office(
    demo: Runtime, clock: ManualClock
) -> None:
    """In the demo district every street has its own section chief; the shortfall notice must
    still reach the district (孙丽, 综合科, and the director 陈建国)."""
    run = lifecycle.start_run(demo, playbook_id="campaign-3030", unit_id="pingshan-street",
                              params={"target": 2, "name": "坪山街道3030"},
                              actor="pingshan-street-commander")
    clock.advance(30 * DAY + timedelta(minutes=1))
    sweep_once(demo)
    drain_wakes(demo)
    notice = steps(demo, run.id or 0)["shortfall-notice"]
    with read_session(demo.db) as session:
        told = session.exec(select(Notification.recipient).where(
            Notification.step_id == notice.id)).all()
    assert set(told) == {"sun-li", "chen-jianguo"}
