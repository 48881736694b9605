"""`sample(items, count)` (flows/sampling.py): the random draw of a spot check
(一键通抽查、随机签到, playbooks/roll-call.yaml). The same run always draws the same items,
however often the engine evaluates its fan-out (a segment replayed after a crash, a restart
between the draw and its commit), because the draw is seeded from the run id (keyed with the
installation's secret, so nobody works it out from the run's number); another run draws afresh.
What can only fail at run time is refused when the playbook loads, at the expression's
file:line:col: a call without its two arguments, a constant count below 1 or not whole, a count
read from a parameter that is not an `int` with `min` of at least 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime, run_events, run_steps

from flows import lifecycle
from flows.context import expression_context
from flows.loader import LoadContext, load_playbook_text
from flows.progress import _items
from flows.runtime import Runtime
from flows.sampling import SampleError, draw, seed_for_run
from models.clock import ManualClock
from models.db import read_session
from models.errors import PlaybookInvalid
from models.run import Run

FOR_EACH = "sample(units(type='community', within=run.unit), params.count)"
LETTERS = list("abcdefghijklmnopqrstuvwxyz")


# --- the draw ---------------------------------------------------------------------------------

def test_the_same_seed_draws_the_same_items_in_their_own_order() -> None:
    first = draw(LETTERS, 5, seed="s")
    assert len(first) == 5 and len(set(first)) == 5
    assert first == sorted(first)  # in the order the items came, not the order drawn
    assert all(draw(list(LETTERS), 5, seed="s") == first for _ in range(3))
    # A unit is drawn by its id: a renamed unit is drawn as before.
    units = [{"id": c, "name": c.upper()} for c in LETTERS]
    renamed = [{"id": c, "name": f"新{c}"} for c in LETTERS]
    assert [u["id"] for u in draw(units, 5, seed="s")] == \
        [u["id"] for u in draw(renamed, 5, seed="s")]


def test_other_seeds_draw_other_samples_and_every_item_can_be_drawn() -> None:
    draws = {tuple(draw(LETTERS, 5, seed=seed_for_run(run_id, "s")))
             for run_id in range(1, 41)}
    assert len(draws) > 30  # 40 runs, 65,780 possible samples
    assert {x for sample in draws for x in sample} == set(LETTERS)


def test_the_draw_is_keyed_with_the_installation_secret(tmp_path: Path,
                                                       clock: ManualClock) -> None:
    """A spot check is random to the people it checks: run #1 of one bureau does not draw
    what run #1 of another draws, nor what anyone works out from the run's number alone."""
    def first_run(name: str, secret: str) -> tuple[list[str], list[str]]:
        rt = make_runtime(tmp_path / name, clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                          org_path=DEMO_ORG, settings={"secret": secret})
        run = lifecycle.start_run(rt, playbook_id="roll-call", unit_id="pingshan",
                                  params={"count": 5}, actor="pingshan-duty-1")
        assert run.id == 1
        pool = [u.id for u in rt.org.units_where(type="community", within="pingshan")]
        got = drawn(rt, 1)
        rt.db.dispose()
        return got, pool

    (here, pool), (there, _) = first_run("a", "secret-of-bureau-a"), \
        first_run("b", "secret-of-bureau-b")
    assert len(here) == len(there) == 5 and here != there
    public = draw([{"id": c} for c in pool], 5, seed="closeloop:sample:run:1")
    assert [u["id"] for u in public] != here


def test_asking_for_more_than_there_are_draws_them_all() -> None:
    assert draw(LETTERS[:3], 10, seed="s") == LETTERS[:3]
    assert draw([], 3, seed="s") == []


@pytest.mark.parametrize("items, count", [
    ("abc", 1), ({"a": 1}, 1), (5, 1), (LETTERS, 0), (LETTERS, -2), (LETTERS, 1.5),
    (LETTERS, True), (LETTERS, "3"), (LETTERS, None)])
def test_what_cannot_be_drawn_is_refused(items: object, count: object) -> None:
    with pytest.raises(SampleError):
        draw(items, count, seed="s")


# --- in a run -----------------------------------------------------------------------------------

def drawn(rt: Runtime, run_id: int) -> list[str]:
    return [r.unit_id for r in run_steps(rt, run_id) if r.step_key == "call"]


def test_a_run_draws_once_and_evaluating_its_fan_out_again_draws_the_same(demo: Runtime) -> None:
    run = lifecycle.start_run(demo, playbook_id="roll-call", unit_id="pingshan",
                              params={"count": 5}, actor="pingshan-duty-1")
    first = drawn(demo, run.id or 0)
    communities = [u.id for u in demo.org.units_where(type="community", within="pingshan")]
    assert len(first) == 5 and set(first) <= set(communities)
    assert first == [c for c in communities if c in first]  # in the org chart's order
    # Who was drawn is the run's record: one task per community, each to its head.
    assert [r.assignees for r in run_steps(demo, run.id or 0) if r.step_key == "call"] == \
        [[f"{c}-head"] for c in first]
    # ... and its timeline, which nobody can edit: each call handed out, to whom.
    called = [e.detail["assignees"] for e in run_events(demo, run.id or 0, "ready")
              if e.detail["step"] == "call"]
    assert called == [[f"{c}-head"] for c in first]
    # The engine evaluating the fan-out again (a replayed segment, a restart) draws the same.
    spec = demo.catalog.get("roll-call").step("call")
    with read_session(demo.db) as session:
        row = session.get(Run, run.id)
        assert row is not None
        for _ in range(3):
            again = _items(spec, expression_context(session, demo, row))
            assert [u["id"] for u in again] == first
    # Other runs draw afresh (seeded from their own ids).
    others = {tuple(drawn(demo, lifecycle.start_run(
        demo, playbook_id="roll-call", unit_id="pingshan", params={"count": 5},
        actor="pingshan-duty-1").id or 0)) for _ in range(4)}
    assert len(others | {tuple(first)}) >= 4


def test_a_count_below_one_is_refused_at_the_start(demo: Runtime) -> None:
    from models.errors import InvalidInput
    with pytest.raises(InvalidInput) as caught:
        lifecycle.start_run(demo, playbook_id="roll-call", unit_id="pingshan",
                            params={"count": 0}, actor="pingshan-duty-1")
    assert caught.value.field == "params.count"


# --- at load --------------------------------------------------------------------------------------

BOOK = """\
id: probe
version: 1
title: 抽查
params:
  count: {{type: int, default: 3, min: 1, title: 抽查人数}}
  label: {{type: string, default: 三, title: 文字}}
  loose: {{type: int, default: 3, title: 未设下限}}
  zero: {{type: int, default: 3, min: 0, title: 下限为零}}
steps:
  - id: call
    title: 签到
    role: community_head
    for_each: "{expr}"
"""
AT = "probe.yaml:13:15"  # the for_each value


def load(expr: str) -> None:
    load_playbook_text(BOOK.format(expr=expr), filename="probe.yaml",
                       context=LoadContext(Path("."), known_roles=None))


def test_a_count_from_an_int_param_with_min_one_loads() -> None:
    load(FOR_EACH)
    load("sample(units(type='community'), params['count'])")
    load("sample(units(type='community'), 3)")
    load("sample(units(type='community'), params.count * 2)")  # judged when it runs


@pytest.mark.parametrize("expr, message", [
    ("sample(units(type='community'))", "sample() 需要两个参数"),
    ("sample(units(type='community'), 3, 4)", "sample() 需要两个参数"),
    ("sample(units(type='community'), count=3)", "sample() 需要两个参数"),
    ("sample(units(type='community'), 0)", "抽取数量应为不小于 1 的整数，实为 0"),
    ("sample(units(type='community'), -1)", "抽取数量应为不小于 1 的整数，实为 -1"),
    ("sample(units(type='community'), 2.5)", "抽取数量应为不小于 1 的整数，实为 2.5"),
    ("sample(units(type='community'), '3')", "抽取数量应为不小于 1 的整数，实为 '3'"),
    ("sample(units(type='community'), params.label)",
     "抽取数量取自参数 label，该参数应为 int（整数），实为 string"),
    ("sample(units(type='community'), params.loose)",
     "抽取数量取自参数 loose，该参数应写明 min: 1 或更大"),
    ("sample(units(type='community'), params.zero)",
     "抽取数量取自参数 zero，该参数应写明 min: 1 或更大"),
    ("sample(units(type='community'), params.nope)", "没有参数 nope"),
])
def test_a_misused_sample_is_refused_at_its_line_and_column(expr: str, message: str) -> None:
    with pytest.raises(PlaybookInvalid) as caught:
        load(expr)
    errors = [str(e) for e in caught.value.errors]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{AT}: steps[0] (call).for_each: "), errors
    assert message in errors[0], errors


def test_a_misused_sample_handed_to_a_child_playbook_is_refused_too() -> None:
    text = BOOK.format(expr=FOR_EACH) + """\
  - id: child
    title: 抽查子流程
    action: playbook
    playbook: probe
    with: {who: "{{ sample(units(type='community'), params.loose) }}"}
"""
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook_text(text, filename="probe.yaml",
                           context=LoadContext(Path("."), known_roles=None))
    errors = [str(e) for e in caught.value.errors]
    assert len(errors) == 1
    assert errors[0].startswith("probe.yaml:18:17: steps[1] (child).with.who: ")
    assert "抽取数量取自参数 loose，该参数应写明 min: 1 或更大" in errors[0]
