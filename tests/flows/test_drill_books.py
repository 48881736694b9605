"""Drills stay out of the real books. The registers (三个清单) and the monthly ranking count the
hazard register, and no drill writes to it: a drill of a register playbook or a campaign is
refused (flows/drills.py), and a drill whose playbook registers a hazard in its 善后 (the
sample chem-leak's `hazard` step starts hazard-3030) finishes that step without starting one,
while the same step of a real event registers it. Child runs of a drill are the same drill."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime, run_steps
from sqlmodel import select

from flows import lifecycle, tasks
from flows.drills import Drill
from flows.ranking import monthly_ranking
from flows.reporting import monthly_reporting
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.errors import InvalidInput
from models.hazard import Hazard
from models.run import Run

LEAK = {"location": "坪山街道化工园区3号", "enterprise": "某化工有限公司", "chemical": "液氨",
        "toxic": "否"}


@pytest.fixture
def installed(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    books = tmp_path / "playbooks"
    shutil.copytree(SHIPPED_PLAYBOOKS, books)
    shutil.copy(SHIPPED_PLAYBOOKS / "samples" / "chem-leak.yaml", books / "chem-leak.yaml")
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    yield rt
    rt.db.dispose()


def to_aftermath(rt: Runtime, drill: Drill | None) -> int:
    """A leak started and moved to 善后处置 at once, where the hazard step is handed out."""
    run = lifecycle.start_run(rt, playbook_id="chem-leak", unit_id="shenzhen-gas-pingshan",
                              params=LEAK, actor="wang-qiang", drill=drill)
    lifecycle.set_stage(rt, run_id=run.id or 0, stage="善后处置", actor="wang-qiang")
    drain_wakes(rt)
    return run.id or 0


def registered(rt: Runtime) -> tuple[list[Run], list[Hazard], int]:
    with read_session(rt.db) as session:
        children = list(session.exec(select(Run).where(Run.playbook_id == "hazard-3030")).all())
        hazards = list(session.exec(select(Hazard)).all())
        now = rt.clock.now() + timedelta(minutes=1)  # the month counted to after the finding
        ranking = monthly_ranking(session, org=rt.org, month=now.astimezone(rt.tz)
                                  .strftime("%Y-%m"), tz=rt.tz, now=now)
    return children, hazards, sum(row.found for row in ranking.rows)


def test_a_drill_registers_no_hazard_where_the_real_event_does(installed: Runtime) -> None:
    rt = installed
    drill_id = to_aftermath(rt, Drill(kind="实战演练"))
    [step] = [s for s in run_steps(rt, drill_id) if s.step_key == "hazard"]
    assert step.status == "done" and step.outputs == {"drill_not_started": "hazard-3030"}
    assert registered(rt) == ([], [], 0)

    real_id = to_aftermath(rt, None)
    children, hazards, found = registered(rt)
    assert [c.parent_step_id for c in children] == [
        s.id for s in run_steps(rt, real_id) if s.step_key == "hazard"]
    assert children[0].drill_kind is None and len(hazards) == 1 and found == 1


def test_child_runs_of_a_drill_are_the_same_drill(rt: Runtime, clock: ManualClock) -> None:
    """The engine fixture `branching` starts quick-escalation as a child: a drill's child is
    the same drill, marked like it, and a real run's child is real."""
    def child_of(drill: Drill | None) -> Run:
        run = lifecycle.start_run(rt, playbook_id="branching", unit_id="c1", params={},
                                  actor="s1-commander", drill=drill)
        rid = run.id or 0
        for key in ("start", "after-major"):
            [step] = [s for s in run_steps(rt, rid) if s.step_key == key]
            tasks.complete(rt, step_id=step.id or 0, actor="s1-duty")
        clock.advance(timedelta(minutes=61))
        sweep_once(rt)
        drain_wakes(rt)
        [step] = [s for s in run_steps(rt, rid) if s.step_key == "child"]
        with read_session(rt.db) as session:
            child = session.get(Run, step.outputs["child_run"])
        assert child is not None
        return child

    drilled = child_of(Drill(kind="盲演", title="夜间盲演"))
    assert (drilled.drill_kind, drilled.drill_title) == ("盲演", "夜间盲演")
    assert child_of(None).drill_kind is None


@pytest.mark.parametrize("playbook", ["hazard-3030", "campaign-3030"])
def test_register_playbooks_and_campaigns_are_refused_as_drills(
        demo: Runtime, playbook: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        lifecycle.start_run(demo, playbook_id=playbook, unit_id="liuhe", params={},
                            actor="pingshan-admin", drill=Drill(kind="桌面推演"))
    assert refused.value.field == "drill" and "不能演练" in str(refused.value)
    with read_session(demo.db) as session:
        assert session.exec(select(Run)).all() == []


def test_a_drills_reports_are_not_counted_in_the_reporting_assessment(
        demo: Runtime, clock: ManualClock) -> None:
    """信息报送考核 (flows/reporting.py) counts real runs' reports: a drill's first report
    missed beside a real one's counts once, the real one's."""
    from gas_leak_walk import COMMANDER, LOCATION

    def count() -> tuple[int, int]:
        with read_session(demo.db) as session:
            got = monthly_reporting(session, org=demo.org, month="2026-03", tz=demo.tz,
                                    now=demo.clock.now()).total.all
        return got.due, got.missed

    for drill in (Drill(kind="实战演练"), None):
        run = lifecycle.start_run(demo, playbook_id="gas-leak", unit_id="liuhe",
                                  params={"location": LOCATION, "grade": "一般"},
                                  actor=COMMANDER, drill=drill)
        [receive] = [s for s in run_steps(demo, run.id or 0) if s.step_key == "receive"]
        tasks.complete(demo, step_id=receive.id or 0, actor="pingshan-duty-1")
    drain_wakes(demo)
    clock.advance(timedelta(minutes=10))  # both first reports (5 minutes) missed
    assert count() == (1, 1)
