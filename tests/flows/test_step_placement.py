"""Where a step is held (`at:` a unit type) and who may start a playbook (`started_by`).

The small org chart (tests/fixtures/org/small.yaml) holds a commander at the district d1 and at
the street s1, so a commander's step of a run in community c1 goes to the street's commander
(the nearest) unless the playbook holds it `at: district`; inspectors sit in the streets s1
and s2, grid workers in the communities."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from factories import ENGINE_PLAYBOOKS, refused, run_steps, start_one_and_bulk
from sqlmodel import select

from flows import lifecycle, tasks
from flows.access import nobody_for
from flows.runtime import Runtime
from models.db import read_session
from models.errors import Forbidden
from models.task import StepInstance

PLACED = """id: placed
version: 1
title: 分级接警
kind: test
params:
  location: {type: string, required: true}
modules:
  - use: paperwork
    at: district
    needs: [take]
steps:
  - id: take
    title: 区值班室接警
    role: commander
    at: district
    due: 10m
    escalate:
      - {after: 0m, notify: [commander]}
  - id: nearest
    title: 属地处置
    role: commander
  - id: rounds
    title: 街道检查
    role: inspector
    at: street
  - id: evacuate
    title: 疏散群众
    role: grid_worker
    due: 30m
    ack: 5m
    escalate:
      - {after: 0m, notify: [commander]}
      - {after: 15m, notify: [commander], at: district, repeat: 15m}
      - {after: 1h, notify: [commander], at: street}
"""

# `paperwork.sign` sets its own `at`, which wins over the `modules:` entry's.
PAPERWORK = """id: paperwork
title: 文书
steps:
  - id: write
    title: 撰写
    role: commander
  - id: sign
    title: 街道签收
    role: commander
    at: street
"""

STARTED_BY = """id: found
version: 1
title: 隐患登记
kind: test
started_by: [inspector, grid_worker]
params:
  location: {type: string, required: true}
steps:
  - id: fix
    title: 整改
    role: grid_worker
"""


def books(tmp_path: Path) -> Path:
    folder = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, folder)
    (folder / "modules").mkdir(exist_ok=True)
    (folder / "modules" / "paperwork.yaml").write_text(PAPERWORK, encoding="utf-8")
    (folder / "placed.yaml").write_text(PLACED, encoding="utf-8")
    (folder / "found.yaml").write_text(STARTED_BY, encoding="utf-8")
    return folder


@pytest.fixture
def prt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    rt = make_rt(playbooks=books(tmp_path))
    assert rt.catalog.errors == []
    return rt


def placed(rt: Runtime, unit: str = "c1") -> dict[str, StepInstance]:
    run = lifecycle.start_run(rt, playbook_id="placed", unit_id=unit,
                              params={"location": "某地"}, actor="d1-commander")
    return {s.step_key: s for s in run_steps(rt, run.id or 0)}


# --- at: ----------------------------------------------------------------------------------

def test_a_step_held_at_the_district_goes_to_the_district_not_the_nearest(prt: Runtime) -> None:
    steps = placed(prt)
    assert (steps["take"].unit_id, steps["take"].assignees) == ("d1", ["d1-commander"])
    # Without `at`, the nearest holder above the community: the street's commander.
    assert (steps["nearest"].unit_id, steps["nearest"].assignees) == ("c1", ["s1-commander"])
    assert (steps["rounds"].unit_id, steps["rounds"].assignees) == \
        ("s1", ["s1-insp1", "s1-insp2"])


def test_a_modules_entry_holds_its_steps_and_a_steps_own_at_wins(prt: Runtime) -> None:
    run = lifecycle.start_run(prt, playbook_id="placed", unit_id="c1",
                              params={"location": "某地"}, actor="d1-commander")
    take = next(s for s in run_steps(prt, run.id or 0) if s.step_key == "take")
    tasks.complete(prt, step_id=take.id or 0, actor="d1-commander")
    steps = {s.step_key: s for s in run_steps(prt, run.id or 0)}
    assert (steps["paperwork.write"].unit_id, steps["paperwork.write"].assignees) == \
        ("d1", ["d1-commander"])
    assert (steps["paperwork.sign"].unit_id, steps["paperwork.sign"].assignees) == \
        ("s1", ["s1-commander"])


def test_a_run_with_no_unit_of_that_type_above_keeps_its_own_unit(prt: Runtime) -> None:
    steps = placed(prt, unit="d1")  # a district run: no street at or above it
    assert steps["rounds"].unit_id == "d1"
    assert steps["take"].unit_id == "d1"


def test_escalations_of_a_held_step_go_up_from_where_it_is_held(
        prt: Runtime, clock: Any) -> None:
    from datetime import timedelta

    from flows.sweeper import sweep_once
    from models.outbox import Notification
    take = placed(prt)["take"]
    clock.advance(timedelta(minutes=11))
    sweep_once(prt)
    with read_session(prt.db) as session:
        told = session.exec(select(Notification.recipient).where(
            Notification.kind == "escalate", Notification.step_id == take.id)).all()
    # `notify: [commander]` resolves at d1, where the step is held: not the street's.
    assert sorted(set(told)) == ["d1-commander"]


def test_bulk_start_holds_steps_where_start_run_does(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    one, bulk = make_rt(playbooks=books(tmp_path)), make_rt(playbooks=books(tmp_path / "b"))
    inputs = [("c1", {"location": "甲"}), ("c2", {"location": "乙"}), ("s2", {"location": "丙"})]
    result = start_one_and_bulk(one, bulk, "placed", inputs)
    assert result.fast == len(inputs)

    def where(rt: Runtime) -> list[tuple[int, str, str, str | None, list[str]]]:
        with read_session(rt.db) as session:
            rows = session.exec(select(StepInstance).order_by(
                StepInstance.run_id, StepInstance.step_key)).all()
            return [(s.run_id, s.step_key, s.unit_id, s.assignee_unit_id, list(s.assignees))
                    for s in rows]

    assert where(bulk) == where(one)
    assert (3, "rounds", "s2", "s2", ["s2-insp"]) in where(bulk)


def test_the_run_view_shows_a_pending_held_step_at_its_unit(prt: Runtime) -> None:
    from api.schemas import not_reached_view
    run = lifecycle.start_run(prt, playbook_id="placed", unit_id="c1",
                              params={"location": "某地"}, actor="d1-commander")
    spec = prt.catalog.get("placed").step("paperwork.write")
    view = not_reached_view(prt, run, spec)
    assert view.unit_id == "d1" and [p.id for p in view.assignees] == ["d1-commander"]


def test_an_unknown_unit_type_is_refused_at_its_line(prt: Runtime) -> None:
    text = PLACED.replace("    at: district\n    due", "    at: distrct\n    due")
    errors = refused(prt, text, "placed.yaml")
    assert errors == ("placed.yaml:15:9: steps[0] (take).at: 组织架构中没有单位类型 distrct（现有："
                      "community、district、street） / unknown unit type 'distrct' (the org "
                      "chart has: community, district, street)")
    module = refused(prt, PLACED.replace("    at: district\n    needs", "    at: town\n    needs"),
                     "placed.yaml")
    assert module == ("placed.yaml:9:9: modules[0] (paperwork).at: 组织架构中没有单位类型 town（现"
                      "有："
                      "community、district、street） / unknown unit type 'town' (the org chart "
                      "has: community, district, street)")


# --- an escalation level's at: ----------------------------------------------------------

def fired(rt: Runtime, step: StepInstance) -> list[tuple[str, int, int, list[str]]]:
    from models.escalation import Escalation
    with read_session(rt.db) as session:
        rows = session.exec(select(Escalation).where(Escalation.step_id == step.id)
                            .order_by(Escalation.scheduled_at, Escalation.id)).all()
        return [(e.kind, e.level, e.repeat, list(e.recipients)) for e in rows]


def test_a_level_at_the_district_reaches_past_the_streets_own_commander(
        prt: Runtime, clock: Any) -> None:
    """A community's late evacuation: the street's commander first (the nearest holder), then
    the district's, whom a plain `commander` could never reach past the street's."""
    from datetime import timedelta

    from flows.sweeper import sweep_once
    evacuate = placed(prt)["evacuate"]
    # Due at 30 minutes; sweeps at 6, 31, 46, 61 and 91 minutes (levels at 30, 45 and 90).
    for minutes in (6, 25, 15, 15, 30):
        clock.advance(timedelta(minutes=minutes))
        sweep_once(prt)
    assert fired(prt, evacuate) == [
        ("ack", 0, 0, ["c1-grid", "s1-commander"]),  # the first level's people, its own unit
        ("escalate", 1, 0, ["s1-commander"]),
        ("escalate", 2, 0, ["d1-commander"]),
        ("escalate", 2, 1, ["d1-commander"]),
        ("escalate", 3, 0, ["s1-commander"]),  # at: street, from a community: its street
        ("escalate", 2, 3, ["d1-commander"]),  # the repeats at 75 and 90, collapsed
    ]


def test_a_level_at_a_type_the_chain_lacks_resolves_where_the_step_is(
        prt: Runtime, clock: Any) -> None:
    from datetime import timedelta

    from flows.sweeper import sweep_once
    evacuate = placed(prt, unit="s2")["evacuate"]  # a street's own run: at: street is s2
    clock.advance(timedelta(minutes=91))
    sweep_once(prt)
    assert [(k, lv, who) for k, lv, _, who in fired(prt, evacuate) if k == "escalate"] == [
        ("escalate", 1, ["s2-commander"]), ("escalate", 2, ["d1-commander"]),
        ("escalate", 3, ["s2-commander"])]
    district = placed(prt, unit="d1")["evacuate"]  # no street above a district run
    clock.advance(timedelta(minutes=91))
    sweep_once(prt)
    assert {tuple(who) for k, lv, _, who in fired(prt, district) if lv == 3} == \
        {("d1-commander",)}


def test_an_unknown_unit_type_on_a_level_is_refused_at_its_line(prt: Runtime) -> None:
    text = PLACED.replace("notify: [commander], at: district,", "notify: [commander], at: distrct,")
    assert refused(prt, text, "placed.yaml") == (
        "placed.yaml:33:47: steps[3] (evacuate).escalate[1].at: 组织架构中没有单位类型 distrct（现"
        "有："
        "community、district、street） / unknown unit type 'distrct' (the org chart has: "
        "community, district, street)")
    verify = PLACED.replace("    ack: 5m\n", "    ack: 5m\n    verify:\n      role: inspector\n"
                            "      due: 10m\n      escalate:\n"
                            "        - {after: 0m, notify: [commander], at: town}\n")
    assert refused(prt, verify, "placed.yaml").startswith(
        "placed.yaml:35:48: steps[3] (evacuate).verify.escalate[0].at: 组织架构中没有单位类型 town")


# --- started_by ---------------------------------------------------------------------------

def found(rt: Runtime, who: str, unit: str) -> Any:
    return lifecycle.start_run(rt, playbook_id="found", unit_id=unit,
                               params={"location": "某处"}, actor=who)


def test_a_started_by_role_starts_the_playbook_in_its_unit_and_below(prt: Runtime) -> None:
    assert found(prt, "s1-insp1", "c1").started_by == "s1-insp1"  # a street's inspector
    assert found(prt, "s1-insp1", "s1").unit_id == "s1"
    assert found(prt, "c1-grid", "c1").status == "running"  # a community's grid worker


@pytest.mark.parametrize(("who", "unit"), [
    ("s2-insp", "c1"),  # another street
    ("c1-grid", "c2"),  # a neighbouring community
    ("c1-grid", "s1"),  # above one's own unit
    ("c1-safety", "c1"),  # a role the playbook does not name
])
def test_started_by_stops_at_its_own_units(prt: Runtime, who: str, unit: str) -> None:
    with pytest.raises(Forbidden) as caught:
        found(prt, who, unit)
    message = str(caught.value)
    assert "指挥长（commander）" in message and "检查员（inspector）" in message, message
    # Whom to call: the commanders, and who holds each of the roles that may start it there.
    assert "；或检查员（inspector）（" in message
    assert "或上级单位；现任：检查员甲、检查员乙）" in message  # holders inside the brackets
    assert "or role 'grid_worker' in unit" in message


def test_a_playbook_without_started_by_is_for_commanders(prt: Runtime) -> None:
    with pytest.raises(Forbidden):
        placed_by(prt, "s1-insp1")
    assert placed_by(prt, "s1-commander").unit_id == "c1"


def placed_by(rt: Runtime, who: str) -> Any:
    return lifecycle.start_run(rt, playbook_id="placed", unit_id="c1",
                               params={"location": "某地"}, actor=who)


def test_an_unknown_started_by_role_is_refused_at_its_line(prt: Runtime) -> None:
    errors = refused(prt, STARTED_BY.replace("[inspector, grid_worker]", "[inspector, grid]"),
                     "found.yaml")
    assert "found.yaml:5:" in errors and "started_by[1]: 没有角色 grid（可选：" in errors, errors
    assert " / unknown role 'grid' (known: " in errors, errors


def test_nobody_where_a_step_is_held_names_that_unit_and_the_org_chart(prt: Runtime) -> None:
    # A run at c1 whose step is held at d1, where no grid worker is: another unit for the run
    # would not help, the org chart lacks one (the import and a registration say so).
    zh, en = nobody_for(prt.org, "grid_worker", "整改", "fix", "c1", "d1")
    assert zh.startswith("测试区（d1）及其上级均无网格员（grid_worker），“整改”在该单位办理")
    assert "组织架构" in zh and "held" in en and "'d1'" in en
    zh, _ = nobody_for(prt.org, "grid_worker", "整改", "fix", "s1", "s1")
    assert zh.startswith("单位 s1（一街道）及其上级均无网格员（grid_worker）") and "请改填" in zh


def test_an_escalation_of_a_held_step_names_where_the_event_is(
        prt: Runtime, clock: Any) -> None:
    from datetime import timedelta

    from flows.sweeper import sweep_once
    from models.outbox import Notification
    take = placed(prt)["take"]  # held at d1, the event is in c1 (一社区)
    clock.advance(timedelta(minutes=11))
    sweep_once(prt)
    with read_session(prt.db) as session:
        bodies = session.exec(select(Notification.body).where(
            Notification.kind == "escalate", Notification.step_id == take.id)).all()
    assert bodies and all("一社区" in b and "测试区）" not in b for b in bodies), bodies
