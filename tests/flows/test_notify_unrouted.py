"""A notify step whose `to:` names a role nobody holds at the step's unit or above: the message
reaches no one in that role (a street's alert `to: [community_head]` finds no community head up
the tree). The step still completes and its channels still get the message, but the run's
timeline says which roles were reached by no one, instead of reading as sent to them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from factories import ENGINE_PLAYBOOKS, refused
from sqlmodel import select

from api.event_names import event_name
from flows import lifecycle
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.audit import AuditEvent
from models.db import read_session
from models.outbox import Notification

ALERT = """\
id: street-alert
version: 1
title: 街道预警
steps:
  - id: alert
    title: 向社区发出预警
    action: notify
    template: short-report.md.j2
    to: [grid_worker, street_head, duty]
"""


def _alert_run(make_rt: Callable[..., Runtime], tmp_path: Path, unit: str, to: str | None = None
               ) -> tuple[Runtime, int]:
    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    text = ALERT if to is None else ALERT.replace("[grid_worker, street_head, duty]", to)
    (books / "street-alert.yaml").write_text(text, encoding="utf-8")
    rt = make_rt(playbooks=books)
    run = lifecycle.start_run(rt, playbook_id="street-alert", unit_id=unit, params={},
                              actor="d1-commander")
    drain_wakes(rt)
    return rt, run.id or 0


def test_a_role_nobody_holds_up_the_tree_is_named_in_the_timeline(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    # At street s1: grid workers sit only in its communities, below it.
    rt, run_id = _alert_run(make_rt, tmp_path, "s1")
    with read_session(rt.db) as session:
        [unrouted] = session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "notify_unrouted")).all()
        sent = {n.recipient for n in session.exec(
            select(Notification).where(Notification.run_id == run_id)).all()}
    assert unrouted.detail["targets"] == ["grid_worker"]
    assert unrouted.detail["target_names"] == ["网格员"]
    assert event_name("notify_unrouted") == "通知对象无人担任"
    assert sent == {"s1-head", "duty"}  # the others are still told


def test_a_message_every_role_of_which_is_held_says_nothing_more(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    rt, run_id = _alert_run(make_rt, tmp_path, "c1")  # c1 has its grid worker
    with read_session(rt.db) as session:
        actions = [e.action for e in session.exec(
            select(AuditEvent).where(AuditEvent.run_id == run_id)).all()]
    assert "notify_unrouted" not in actions and "done" in actions


def _unrouted(rt: Runtime, run_id: int) -> tuple[list[AuditEvent], set[str]]:
    with read_session(rt.db) as session:
        events = list(session.exec(select(AuditEvent).where(
            AuditEvent.run_id == run_id, AuditEvent.action == "notify_unrouted")).all())
        sent = {n.recipient for n in session.exec(
            select(Notification).where(Notification.run_id == run_id)).all()}
    return events, sent


def test_alternatives_of_which_one_is_held_are_no_warning(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    # The unit's head, whichever it has: at the street, the street head (no grid worker).
    rt, run_id = _alert_run(make_rt, tmp_path, "s1", to="[grid_worker|street_head, duty]")
    events, sent = _unrouted(rt, run_id)
    assert events == [] and sent == {"s1-head", "duty"}


def test_alternatives_none_of_which_is_held_are_named_together(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    rt, run_id = _alert_run(make_rt, tmp_path, "s1",
                            to="[grid_worker|safety_officer, street_head, inspector]")
    [unrouted], sent = _unrouted(rt, run_id)
    assert unrouted.detail["targets"] == ["grid_worker|safety_officer"]
    assert unrouted.detail["target_names"] == ["网格员或安全员"]
    assert "s1-head" in sent
    # Down in the community both are held: each is told, nothing is said.
    rt, run_id = _alert_run(make_rt, tmp_path / "c1", "c1",
                            to="[grid_worker|safety_officer, street_head]")
    events, sent = _unrouted(rt, run_id)
    assert events == [] and {"c1-grid", "s1-head"} <= sent


def test_each_alternative_must_be_a_known_role_or_channel(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    rt = make_rt()
    shown = refused(rt, ALERT.replace("[grid_worker, street_head, duty]",
                                      "[grid_worker|nobody, street_head]"))
    assert "bad.yaml:9:" in shown, shown
    assert "steps[0] (alert).to[0]: 没有角色或通道 nobody" in shown, shown
