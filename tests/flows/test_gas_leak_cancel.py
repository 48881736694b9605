"""A gas-leak response cancelled as a false alarm (误报) after its 首报 went up: everyone the run
told of the incident hears that it is called off. The duty offices that took the first report,
on their channels (delivered through real Apprise to a local HTTP receiver); the inspector
asked to confirm the valve is shut; the holders of open tasks in their inbox, and on their own
channels where the run paged them there (gas-leak announces its tasks on channels).
Segments run bare (drain_wakes); the clock is a ManualClock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from gas_leak_walk import start, steps, work_round
from receivers import HttpReceiver
from sqlmodel import select

from flows import lifecycle
from flows.notify import deliver_due
from flows.runtime import Runtime
from flows.segments import drain_wakes
from models.clock import ManualClock
from models.db import read_session
from models.outbox import Notification

REASON = "误报，现场为下水道沼气味，无燃气泄漏"


def _cancel_after_the_first_report(rt: Runtime, clock: ManualClock) -> tuple[int, str]:
    """Two rounds of work (the 首报 sent, the valve shut and waiting for the inspector), then
    the commander cancels; the run's title."""
    run_id = start(rt, "一般")
    for _ in range(2):
        drain_wakes(rt)
        work_round(rt, run_id, "一般")
        clock.advance(timedelta(minutes=1))
    drain_wakes(rt)
    keyed = steps(rt, run_id)
    assert keyed["report.send"].status == "done"
    assert keyed["cut-gas"].status == "submitted"  # the street inspector is to confirm it
    run = lifecycle.cancel_run(rt, run_id=run_id, actor="wang-qiang", reason=REASON)
    return run_id, run.title


def _cancel_notices(rt: Runtime, run_id: int) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.run_id == run_id, Notification.kind == "cancelled")).all())


def test_the_offices_that_took_the_first_report_are_told_it_was_a_false_alarm(
    wired: Runtime, clock: ManualClock, receiver: HttpReceiver
) -> None:
    run_id, title = _cancel_after_the_first_report(wired, clock)
    notices = _cancel_notices(wired, run_id)
    offices = {n.recipient for n in notices if n.recipient_kind == "channel"}
    assert offices == {"county_duty_office", "district_duty_room"}

    delivery = deliver_due(wired.db, clock=clock, limit=1000)
    assert delivery.failed == 0 and delivery.dead == 0
    got = {m.path: m.json for m in receiver.wait_for(delivery.delivered)
           if m.json["title"] == f"【已撤销】{title}"}
    assert set(got) >= {"/api/receiver/county-duty", "/api/receiver/district-duty"}
    body = got["/api/receiver/county-duty"]["message"]
    assert "王强撤销" in body and REASON in body
    assert "此前就此发出的报告、通知所涉处置已停止" in body


def test_the_verifier_waiting_on_a_handed_in_task_is_told_with_the_holders(
    wired: Runtime, clock: ManualClock
) -> None:
    run_id, _ = _cancel_after_the_first_report(wired, clock)
    told = {n.recipient for n in _cancel_notices(wired, run_id) if n.recipient_kind == "person"}
    # The street's two inspectors had the 【待核验】 of 关阀断气; the holders of open tasks
    # (the community head evacuating, the team on its way) keep being told, once each.
    assert {"pingshan-street-inspector-1", "pingshan-street-inspector-2"} <= told
    assert {"liuhe-head", "pingshan-street-rescue"} <= told
    inbox = [n for n in _cancel_notices(wired, run_id) if n.url == "inbox://"]
    assert len(inbox) == len({n.recipient for n in inbox})
    # A replayed cancellation (the same transaction's rows again) adds nothing.
    with read_session(wired.db) as session:
        before = len(session.exec(select(Notification)).all())
    with pytest.raises(Exception, match="已撤销"):
        lifecycle.cancel_run(wired, run_id=run_id, actor="wang-qiang", reason=REASON)
    with read_session(wired.db) as session:
        assert len(session.exec(select(Notification)).all()) == before


@pytest.fixture
def head_paged(tmp_path: Path, clock: ManualClock, receiver: HttpReceiver) -> Iterator[Runtime]:
    """As `wired`, with 六和's community head (who evacuates) on a channel of her own."""
    line = ("{id: liuhe-head, name: 贾丽萍, title: 社区党委书记、居委会主任, "
            "roles: [community_head], ")
    org = DEMO_ORG.read_text(encoding="utf-8").replace(
        "json://127.0.0.1:8000/api/receiver", receiver.url("/api/receiver")).replace(
        line + "notify: []}", line + f'notify: ["{receiver.url("/liuhe-head")}"]}}')
    assert receiver.url("/liuhe-head") in org
    rt = make_runtime(tmp_path / "paged", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_text=org)
    yield rt
    rt.db.dispose()


def test_a_holder_paged_on_their_channels_hears_of_the_cancellation_there(
    head_paged: Runtime, clock: ManualClock, receiver: HttpReceiver
) -> None:
    # gas-leak announces its tasks on people's own channels (3 a.m.: nobody opens the inbox).
    # The cancellation once went to those holders' inbox only, so whoever was paged kept
    # working a false alarm.
    run_id, title = _cancel_after_the_first_report(head_paged, clock)
    with read_session(head_paged.db) as session:
        rows = session.exec(select(Notification).where(Notification.run_id == run_id)).all()
    paged = {(n.recipient, n.url) for n in rows if n.kind == "assigned"
             and n.recipient == "liuhe-head" and n.url != "inbox://"}
    assert paged  # told of the evacuation on her channel
    told = {(n.recipient, n.url) for n in rows if n.kind == "cancelled"}
    assert ("liuhe-head", "inbox://") in told  # she held it open when it was cancelled
    assert paged <= told
    delivery = deliver_due(head_paged.db, clock=clock, limit=1000)
    assert delivery.failed == 0 and delivery.dead == 0
    heard = [m for m in receiver.wait_for(delivery.delivered)
             if m.json["title"] == f"【已撤销】{title}"
             and "你在此流程中的未完成任务已停止" in m.json["message"]]
    assert {m.path for m in heard} == {"/liuhe-head"}
