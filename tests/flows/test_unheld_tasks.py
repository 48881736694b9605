"""Open tasks whose holder left the org chart: the street's duty officer removed while the
alert he holds is open, or the person a task was reassigned to. Their inbox key (role at the
unit it resolved to, or the named person) matches nobody, so the task is in no one's 我的待办;
the server names them at start (healthz `sweeper.tasks_without_holder` and its log)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from factories import SMALL_ORG, run_steps

from api.workers import Workers
from flows import lifecycle, tasks
from flows.runtime import Runtime
from flows.unheld_tasks import unheld_tasks
from models.db import read_session


def _without(*people: str) -> str:
    lines = SMALL_ORG.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(line for line in lines if not any(f"{{id: {p}," in line for p in people))


def _restarted(make_rt: Callable[..., Runtime], before: Runtime, org_text: str) -> Runtime:
    url = str(before.db.url)
    before.db.dispose()
    return make_rt(org_text=org_text, db_url=url)


def test_a_removed_holder_of_an_open_task_is_named_with_its_role_and_unit(
        make_rt: Callable[..., Runtime], caplog: pytest.LogCaptureFixture) -> None:
    before = make_rt()
    for place in ("一社区", "二社区"):  # two alerts with s1's duty officer
        lifecycle.start_run(before, playbook_id="quick-escalation", unit_id="c1",
                            params={"location": place}, actor="s1-commander")
    after = _restarted(make_rt, before, _without("s1-duty"))
    with read_session(after.db) as session:
        [group] = unheld_tasks(session, after.org)
    assert group.as_dict() == {"unit": "s1", "role": "duty_officer", "person": None,
                               "open_tasks": 2}
    workers = Workers(after, prefect=False, sweep=False)
    with caplog.at_level(logging.WARNING, logger="closeloop.org"):
        workers._find_unheld_tasks()
    assert workers.health()["sweeper"]["tasks_without_holder"] == [group.as_dict()]
    assert "组织架构中已无人承办的待办任务" in caplog.text and "duty_officer@s1: 2" in caplog.text


def test_a_task_reassigned_to_someone_who_left_is_named_by_that_person(
        make_rt: Callable[..., Runtime]) -> None:
    before = make_rt()
    run = lifecycle.start_run(before, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区"}, actor="s1-commander")
    [step] = [s for s in run_steps(before, run.id or 0) if s.status == "ready"]
    tasks.reassign(before, step_id=step.id or 0, actor="s1-commander", person="s1-insp1")
    after = _restarted(make_rt, before, _without("s1-insp1"))
    with read_session(after.db) as session:
        assert [u.as_dict() for u in unheld_tasks(session, after.org)] == [
            {"unit": "s1", "role": "duty_officer", "person": "s1-insp1", "open_tasks": 1}]


def test_nothing_is_named_while_every_open_task_has_its_holder(
        make_rt: Callable[..., Runtime]) -> None:
    before = make_rt()
    lifecycle.start_run(before, playbook_id="quick-escalation", unit_id="c1",
                        params={"location": "一社区"}, actor="s1-commander")
    # Someone else left: the alert's holder is still there.
    after = _restarted(make_rt, before, _without("s2-insp"))
    with read_session(after.db) as session:
        assert unheld_tasks(session, after.org) == []
