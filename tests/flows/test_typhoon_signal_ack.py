"""A raised typhoon warning signal is a 叫应 (typhoon-633's `signal` with `ack: 15m`): everyone
told of the raise answers 收到, only they may, a second tap changes nothing; a newer raise
supersedes the older 叫应; and the sweeper chases an unanswered one once, at its due time, to
the first escalate level of the task the person holds (a community head's: the street head
and commander). Shipped playbook, demo district, real runtime and database, ManualClock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from factories import run_events
from sqlmodel import select
from typhoon_demo import COMMANDER, PLAYBOOK, typhoon_runtime

from flows import lifecycle
from flows.runtime import Runtime
from flows.signal_acks import MISSED_KIND, acknowledge
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.errors import Conflict, Forbidden
from models.outbox import Notification
from models.signal_ack import SignalAck

STREET_HEAD, STREET_COMMANDER = "pingshan-street-head", COMMANDER


@pytest.fixture
def typhoon(tmp_path: Path, clock: ManualClock) -> Runtime:
    return typhoon_runtime(tmp_path, clock)


def in_severe(rt: Runtime, signal: str = "橙色") -> int:
    run = lifecycle.start_run(rt, playbook_id=PLAYBOOK, unit_id="pingshan-street",
                              params={"name": "山竹", "signal": signal}, actor=COMMANDER)
    lifecycle.set_stage(rt, run_id=run.id or 0, stage="severe", actor=COMMANDER)
    return run.id or 0


def raise_to(rt: Runtime, run_id: int, signal: str) -> None:
    lifecycle.change_params(rt, run_id=run_id, params={"signal": signal}, actor=COMMANDER)


def acks(rt: Runtime, run_id: int) -> dict[tuple[str, str], SignalAck]:
    with read_session(rt.db) as session:
        rows = session.exec(select(SignalAck).where(SignalAck.run_id == run_id)).all()
    return {(r.value, r.person_id): r for r in rows}


def chases(rt: Runtime, run_id: int) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == MISSED_KIND,
            Notification.url == "inbox://").order_by(Notification.id)).all())  # type: ignore[arg-type]


def test_each_person_told_of_a_raise_owes_an_answer_and_only_they_give_it(
        typhoon: Runtime, clock: ManualClock) -> None:
    run_id = in_severe(typhoon)
    raise_to(typhoon, run_id, "红色")
    told = {n.recipient for n in _told(typhoon, run_id)}
    rows = acks(typhoon, run_id)
    assert {p for _, p in rows} == told and len(told) > 5
    liuhe = rows[("红色", "liuhe-head")]
    assert (liuhe.due_at, liuhe.acked_at) == (clock.now() + timedelta(minutes=15), None)
    [note] = [n for n in _told(typhoon, run_id) if n.recipient == "liuhe-head"
              and n.url == "inbox://"]
    due_local = typhoon.renderer.local(liuhe.due_at)
    assert f"此为叫应：请于 {due_local} 前在运行页面“台风预警信号”栏点“收到”回复" in note.body

    with pytest.raises(Forbidden):
        acknowledge(typhoon, run_id=run_id, ack_id=liuhe.id or 0, actor="heping-head")
    clock.advance(timedelta(minutes=5))
    first = acknowledge(typhoon, run_id=run_id, ack_id=liuhe.id or 0, actor="liuhe-head")
    clock.advance(timedelta(minutes=1))
    again = acknowledge(typhoon, run_id=run_id, ack_id=liuhe.id or 0, actor="liuhe-head")
    assert first.acked_at == again.acked_at == clock.now() - timedelta(minutes=1)
    [event] = run_events(typhoon, run_id, "signal_acked")  # the second tap records nothing
    assert (event.actor, event.detail["value"], event.detail["late"]) == (
        "liuhe-head", "红色", False)


def test_a_missed_answer_is_chased_once_at_its_due_time_to_the_holders_escalation(
        typhoon: Runtime, clock: ManualClock) -> None:
    run_id = in_severe(typhoon)
    raise_to(typhoon, run_id, "红色")
    rows = acks(typhoon, run_id)
    acknowledge(typhoon, run_id=run_id, ack_id=rows[("红色", "liuhe-head")].id or 0,
                actor="liuhe-head")
    clock.advance(timedelta(minutes=14, seconds=59))
    sweep_once(typhoon)
    assert chases(typhoon, run_id) == []

    clock.advance(timedelta(seconds=2))
    assert sweep_once(typhoon).signal_acks_chased == len(rows) - 1
    notes = chases(typhoon, run_id)
    head = typhoon.org.person_name("heping-head")
    heping = [n for n in notes if f"{head}未回复" in n.title]
    # A community head's miss reaches the street head and the street's commander (the first
    # level of his task's ladder), in Chinese, naming whom and what; his own grid worker's
    # miss reaches him (hers: community_head).
    assert {n.recipient for n in heping} == {STREET_HEAD, STREET_COMMANDER}
    assert heping[0].title.startswith("【叫应未回复】") and \
        f"{head}未回复台风预警信号红色" in heping[0].title
    grid = typhoon.org.person_name("heping-grid")
    assert {n.recipient for n in notes if f"{grid}未回复" in n.title} == {"heping-head"}
    assert "未回复" in heping[0].body and "和平社区" in heping[0].body
    assert not [n for n in notes if typhoon.org.person_name("liuhe-head") in n.title]
    missed = run_events(typhoon, run_id, "signal_ack_missed")
    assert len(missed) == len(rows) - 1
    # Once: later sweeps chase nothing again, and a late answer is still taken.
    clock.advance(timedelta(hours=1))
    assert sweep_once(typhoon).signal_acks_chased == 0
    assert len(chases(typhoon, run_id)) == len(notes)
    late = acknowledge(typhoon, run_id=run_id, ack_id=rows[("红色", "heping-head")].id or 0,
                       actor="heping-head")
    assert late.escalated_at is not None and late.acked_at == clock.now()


def test_a_newer_raise_supersedes_the_older_answer_owed(typhoon: Runtime,
                                                        clock: ManualClock) -> None:
    run_id = in_severe(typhoon, signal="黄色")
    raise_to(typhoon, run_id, "橙色")
    clock.advance(timedelta(minutes=10))
    raise_to(typhoon, run_id, "红色")
    rows = acks(typhoon, run_id)
    old, new = rows[("橙色", "heping-head")], rows[("红色", "heping-head")]
    assert old.superseded_at == clock.now() and new.superseded_at is None
    with pytest.raises(Conflict) as caught:
        acknowledge(typhoon, run_id=run_id, ack_id=old.id or 0, actor="heping-head")
    assert "最新" in str(caught.value)
    # Past the older one's due time only the newer is owed: nothing is chased for 橙色.
    clock.advance(timedelta(minutes=10))
    sweep_once(typhoon)
    assert chases(typhoon, run_id) == []
    clock.advance(timedelta(minutes=6))
    sweep_once(typhoon)
    assert chases(typhoon, run_id) and all("红色" in n.title for n in chases(typhoon, run_id))
    # A lowering asks for no answer.
    count = len(acks(typhoon, run_id))
    lifecycle.change_params(typhoon, run_id=run_id, params={"signal": "橙色"}, actor=COMMANDER)
    assert len(acks(typhoon, run_id)) == count


def test_an_ended_run_takes_no_answer_and_chases_nobody(typhoon: Runtime,
                                                        clock: ManualClock) -> None:
    run_id = in_severe(typhoon)
    raise_to(typhoon, run_id, "红色")
    row = acks(typhoon, run_id)[("红色", "liuhe-head")]
    lifecycle.cancel_run(typhoon, run_id=run_id, actor=COMMANDER, reason="台风转向")
    with pytest.raises(Conflict):
        acknowledge(typhoon, run_id=run_id, ack_id=row.id or 0, actor="liuhe-head")
    clock.advance(timedelta(minutes=20))
    assert sweep_once(typhoon).signal_acks_chased == 0
    assert chases(typhoon, run_id) == []
    assert all(r.settled_at is not None for r in acks(typhoon, run_id).values())


def _told(rt: Runtime, run_id: int) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "param_changed")
            .order_by(Notification.id)).all())  # type: ignore[arg-type]
