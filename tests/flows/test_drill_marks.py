"""A drill never reads as a real event, and a real event never as a drill: every message a
drill of the shipped gas-leak playbook sends (tasks handed out, reminders and escalations, the
reports to the county office, call-offs) and every document it files carries 【演练】, as
stored and as really posted through Apprise to a local json:// receiver; a real run's carry
none. The mark is put on where rows are written (models/drill.py), so what is checked here is
every row of the run, not a chosen few."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta

import gas_leak_walk
from gas_leak_walk import COMMANDER, LOCATION, walk_to_the_end
from receivers import HttpReceiver
from sqlmodel import select

from flows import lifecycle
from flows.drills import Drill
from flows.notify import deliver_due
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.documents import Document
from models.drill import DOCUMENT_LINE, MARK, MESSAGE_LINE
from models.outbox import Notification


def refused_url() -> str:
    """A json:// URL on a local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"json://127.0.0.1:{port}/duty"


def start_drill(rt: Runtime, kind: str = "实战演练", grade: str = "一般") -> int:
    run = lifecycle.start_run(rt, playbook_id="gas-leak", unit_id="liuhe",
                              params={"location": LOCATION, "grade": grade},
                              actor=COMMANDER, drill=Drill(kind=kind, title="燃气泄漏实战演练"))
    return run.id or 0


def rows(rt: Runtime, run_id: int) -> tuple[list[Notification], list[Document]]:
    with read_session(rt.db) as session:
        notes = session.exec(select(Notification).where(Notification.run_id == run_id)).all()
        docs = session.exec(select(Document).where(Document.run_id == run_id)).all()
    return list(notes), list(docs)


def test_every_message_and_document_of_a_drill_says_so_as_posted(
        wired: Runtime, clock: ManualClock, receiver: HttpReceiver) -> None:
    run_id = start_drill(wired)
    walk_to_the_end(wired, clock, run_id, "一般")
    notes, docs = rows(wired, run_id)
    kinds = {n.kind for n in notes}
    assert {"assigned", "notify"} <= kinds
    assert all(n.title.startswith(MARK) for n in notes), [n.title for n in notes
                                                          if not n.title.startswith(MARK)]
    assert all(n.body.startswith(MESSAGE_LINE + "\n") for n in notes)
    assert docs and all(d.title.startswith(MARK) for d in docs)
    assert all(d.body.startswith(DOCUMENT_LINE + "\n\n") for d in docs)
    first = next(d for d in docs if "首报" in d.body)
    assert first.body.splitlines()[2].startswith("#")  # the report itself follows the line

    delivery = deliver_due(wired.db, clock=clock, limit=1000)
    assert delivery.failed == 0 and delivery.dead == 0 and delivery.delivered > 0
    got = receiver.wait_for(delivery.delivered)
    assert any(m.path == "/api/receiver/county-duty" for m in got)
    for message in got:
        assert message.json["title"].startswith(MARK), message.json["title"]
        assert message.json["message"].startswith(MESSAGE_LINE), message.json["message"][:80]


def test_reminders_escalations_and_call_offs_of_a_drill_say_so(
        wired: Runtime, clock: ManualClock, receiver: HttpReceiver) -> None:
    run_id = start_drill(wired, "盲演")
    drain_wakes(wired)
    for _ in range(6):  # nobody answers: the ladders climb
        clock.advance(timedelta(minutes=5))
        sweep_once(wired)
        drain_wakes(wired)
    lifecycle.cancel_run(wired, run_id=run_id, actor=COMMANDER, reason="演练结束")
    notes, _ = rows(wired, run_id)
    kinds = {n.kind for n in notes}
    # Handed out, the missed sign-for chased, escalated up the ladder, told it was called off.
    assert {"assigned", "ack", "escalate", "cancelled"} <= kinds
    assert all(n.title.startswith(MARK) and n.body.startswith(MESSAGE_LINE) for n in notes)
    delivery = deliver_due(wired.db, clock=clock, limit=1000)
    for message in receiver.wait_for(delivery.delivered):
        assert message.json["title"].startswith(MARK)


def test_a_real_event_carries_no_drill_mark(
        wired: Runtime, clock: ManualClock, receiver: HttpReceiver) -> None:
    run_id = gas_leak_walk.start(wired, "一般")
    walk_to_the_end(wired, clock, run_id, "一般")
    notes, docs = rows(wired, run_id)
    assert notes and docs
    assert not any("演练" in n.title or "演练" in n.body for n in notes)
    assert not any("演练" in d.title or "演练" in d.body for d in docs)
    delivery = deliver_due(wired.db, clock=clock, limit=1000)
    for message in receiver.wait_for(delivery.delivered):
        assert "演练" not in message.json["title"] and "演练" not in message.json["message"]


def test_a_drills_undelivered_alert_is_told_as_a_drill(
        make_rt: Callable[..., Runtime], clock: ManualClock) -> None:
    """The inbox note that a message did not get through (flows/notify.py, written apart from
    the others) is a drill's too: 【演练】 first, then 【送达失败】."""
    rt = make_rt(channel_url=refused_url())  # the duty office's receiver is down
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="s1-commander",
                              drill=Drill(kind="桌面推演"))
    clock.advance(timedelta(seconds=3))  # overdue: level 1 goes to the duty channel
    sweep_once(rt)
    assert deliver_due(rt.db, clock=clock).failed == 1
    notes, _ = rows(rt, run.id or 0)
    [told] = [n for n in notes if n.kind == "undelivered"]
    assert told.title.startswith("【演练】【送达失败】【")
    assert told.body.startswith(MESSAGE_LINE) and "演练" not in told.title[4:]
