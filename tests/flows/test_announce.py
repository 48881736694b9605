"""How the holders of a task handed out are told (`announce`): a gas leak's tasks, due in
minutes, reach their holders on their own channels through real Apprise deliveries to a local
receiver; a hazard's tasks (400,000 a year) go to the in-app inbox only, chased by reminders
and escalations. A step's `announce` wins over its playbook's; a wrong value never loads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import SHIPPED_PLAYBOOKS
from gas_leak_walk import finish, start, steps
from receivers import HttpReceiver
from sqlmodel import select

from flows import lifecycle
from flows.loader import LoadContext, PlaybookInvalid, load_playbook_text
from flows.notify import deliver_due
from flows.runtime import Runtime
from models.clock import ManualClock
from models.db import read_session
from models.outbox import Notification

INBOX = "inbox://"


def assigned(rt: Runtime, run_id: int, step_id: int | None) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.step_id == step_id,
            Notification.kind == "assigned").order_by(Notification.id)).all())  # type: ignore[arg-type]


def test_a_gas_leak_task_reaches_its_holder_on_their_own_channel(
        wired: Runtime, receiver: HttpReceiver, clock: ManualClock) -> None:
    """判 (assess) goes to 刘洋, the duty leader, whose phone is a json:// URL: the 【新任务】
    is posted there at once, as well as put in the inbox."""
    run_id = start(wired)
    finish(wired, run_id, "receive")
    assess = steps(wired, run_id)["assess"]
    assert assess.assignees == ["liu-yang"]
    told = assigned(wired, run_id, assess.id)
    assert [(n.recipient, n.url == INBOX) for n in told] == [("liu-yang", True),
                                                              ("liu-yang", False)]
    assert told[1].url == receiver.url("/api/receiver/leaders")
    assert told[1].status == "pending"
    deliver_due(wired.db, clock=clock, limit=100)
    posted = [r for r in receiver.requests if r.path == "/api/receiver/leaders"]
    assert any(r.json["title"].startswith(f"【新任务】{assess.title}·") for r in posted)


def test_a_hazard_task_is_told_in_the_inbox_only(wired: Runtime, clock: ManualClock) -> None:
    """The same leader handed a hazard's task hears of it in the inbox; a district's 400,000
    hazards a year are not 400,000 phone calls. The reminders and the ladder chase them."""
    pb = wired.catalog.get("hazard-3030")
    assert {s.announce for s in pb.steps} == {"inbox"}
    assert {s.announce for s in wired.catalog.get("gas-leak").steps} == {"channels"}
    assert {s.announce for s in wired.catalog.get("typhoon-633").steps} == {"channels"}
    run = lifecycle.start_run(wired, playbook_id="hazard-3030", unit_id="liuhe",
                              actor="wang-qiang", params={"location": "六和社区某厂房"})
    clock.advance(timedelta(minutes=1))
    with read_session(wired.db) as session:
        urls = set(session.exec(select(Notification.url).where(
            Notification.run_id == run.id, Notification.kind == "assigned")).all())
    assert urls == {INBOX}


STEP = """id: drill
version: 1
title: 演练
announce: {top}
steps:
  - id: first
    title: 第一步
    role: duty_officer
  - id: second
    title: 第二步
    role: duty_officer
    needs: [first]
    announce: {own}
"""


def context() -> LoadContext:
    return LoadContext(SHIPPED_PLAYBOOKS, known_roles={"duty_officer"})


@pytest.mark.parametrize(("top", "own", "first", "second"), [
    ("inbox", "channels", "inbox", "channels"),
    ("channels", "inbox", "channels", "inbox"),
    ("channels", "null", "channels", "channels"),
])
def test_a_steps_announce_wins_over_its_playbooks(
        top: str, own: str, first: str, second: str) -> None:
    pb = load_playbook_text(STEP.format(top=top, own=own), filename="drill.yaml",
                            context=context())
    assert [s.announce for s in pb.steps] == [first, second]


def test_a_wrong_announce_names_its_line_and_the_values_it_may_take() -> None:
    with pytest.raises(PlaybookInvalid) as bad:
        load_playbook_text(STEP.format(top="inbox", own="sms"), filename="drill.yaml",
                           context=context())
    said = str(bad.value)
    assert "drill.yaml:13:" in said and "steps[1] (second).announce" in said
    assert "inbox" in said and "channels" in said
