"""Requests for more time (延期申请) on a real SQLite runtime with a movable clock: who may ask
and who may decide, the checks on the new deadline, approval moving the deadline (the first one
kept, the ladder restarted, the register entry following), refusal keeping it, the audit trail,
the inbox notes, the lists, and races giving one success and one conflict."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from factories import run_events as events
from factories import step_row as step_of
from sqlmodel import select

from flows import extensions, lifecycle, tasks
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.errors import Conflict, ExtensionPastDeadline, Forbidden, InvalidInput, NotFound
from models.escalation import Escalation
from models.hazard import ExtensionRequest, Hazard
from models.outbox import Notification
from models.task import StepInstance

DAY = timedelta(days=1)


def start_hazard(rt: Runtime, **params: Any) -> int:
    run = lifecycle.start_run(rt, playbook_id="register-demo", unit_id="c1",
                              params={"location": "一社区加油站", **params},
                              actor="s1-commander")
    return run.id or 0


def hazard(rt: Runtime, run_id: int) -> Hazard:
    with read_session(rt.db) as session:
        found = session.get(Hazard, run_id)
        assert found is not None
        return found


def inbox(rt: Runtime, person: str, kind: str) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.recipient == person, Notification.kind == kind)).all())


def ask(rt: Runtime, step: StepInstance, *, days: int = 5, who: str = "c1-grid",
        reason: str = "设备到货延迟") -> ExtensionRequest:
    assert step.due_at is not None
    return extensions.request_extension(rt, step_id=step.id or 0, actor=who,
                                        due_at=step.due_at + days * DAY, reason=reason)


def test_approval_moves_the_deadline_and_keeps_the_first(rt: Runtime,
                                                          clock: ManualClock) -> None:
    run_id = start_hazard(rt)
    rectify = step_of(rt, run_id, "rectify")
    first_due = rectify.due_at
    assert first_due == clock.now() + 10 * DAY and hazard(rt, run_id).due_at == first_due
    req = ask(rt, rectify)
    assert req.status == "pending" and req.old_due_at == first_due
    assert req.new_due_at == first_due + 5 * DAY
    # The street head (the step's extension role, found above the community) hears of it.
    note = inbox(rt, "s1-head", "extension_requested")
    assert len(note) == 1 and "设备到货延迟" in note[0].body and note[0].url == "inbox://"
    assert step_of(rt, run_id, "rectify").due_at == first_due  # nothing moves until decided

    clock.advance(DAY)
    done = extensions.decide_extension(rt, request_id=req.id or 0, actor="s1-head",
                                       approve=True, note="同意，务必按期完成")
    assert done.status == "approved" and done.decided_by == "s1-head"
    assert done.old_due_at == first_due and done.new_due_at == first_due + 5 * DAY
    moved = step_of(rt, run_id, "rectify")
    assert moved.due_at == first_due + 5 * DAY and moved.original_due_at == first_due
    entry = hazard(rt, run_id)
    assert entry.due_at == moved.due_at and entry.original_due_at == first_due
    [approved] = events(rt, run_id, "extension_approved")
    assert approved.actor == "s1-head" and approved.step_id == moved.id
    assert approved.detail["from"] == first_due.isoformat()  # type: ignore[union-attr]
    assert len(events(rt, run_id, "extension_requested")) == 1
    told = inbox(rt, "c1-grid", "extension_approved")
    assert len(told) == 1 and "同意" in told[0].title

    # A second request, later, keeps the very first deadline as the original.
    again = ask(rt, moved, days=2)
    extensions.decide_extension(rt, request_id=again.id or 0, actor="s1-head", approve=True)
    twice = step_of(rt, run_id, "rectify")
    assert twice.due_at == first_due + 7 * DAY and twice.original_due_at == first_due
    assert hazard(rt, run_id).original_due_at == first_due


def test_refusal_keeps_the_deadline_and_needs_a_note(rt: Runtime) -> None:
    run_id = start_hazard(rt)
    rectify = step_of(rt, run_id, "rectify")
    req = ask(rt, rectify)
    with pytest.raises(InvalidInput) as exc:
        extensions.decide_extension(rt, request_id=req.id or 0, actor="s1-head",
                                    approve=False, note="  ")
    assert exc.value.field == "note"
    refused = extensions.decide_extension(rt, request_id=req.id or 0, actor="s1-head",
                                          approve=False, note="理由不充分")
    assert refused.status == "refused" and refused.note == "理由不充分"
    kept = step_of(rt, run_id, "rectify")
    assert kept.due_at == rectify.due_at and kept.original_due_at is None
    assert hazard(rt, run_id).due_at == rectify.due_at
    assert len(events(rt, run_id, "extension_refused")) == 1
    [told] = inbox(rt, "c1-grid", "extension_refused")
    # One word for a refusal, as the timeline (api/event_names.py) and the task page say it.
    assert told.title == "【不同意延期】整改·一社区加油站" and "，不同意延期，" in told.body
    assert "理由不充分" in told.body
    # Deciding twice is a conflict; once refused, a new request may be made.
    with pytest.raises(Conflict):
        extensions.decide_extension(rt, request_id=req.id or 0, actor="s1-head", approve=True)
    assert ask(rt, kept).status == "pending"


def test_approval_restarts_the_escalation_ladder(rt: Runtime, clock: ManualClock) -> None:
    """Asked in time, decided after the deadline (the supervising unit has its own days to
    decide): the approval clears the overdue mark and the ladder starts again."""
    run_id = start_hazard(rt)
    rectify = step_of(rt, run_id, "rectify")
    assert rectify.due_at is not None
    clock.advance(9 * DAY)
    req = extensions.request_extension(rt, step_id=rectify.id or 0, actor="c1-grid",
                                       due_at=rectify.due_at + 3 * DAY + timedelta(minutes=1),
                                       reason="雨天无法施工")
    clock.advance(DAY + timedelta(minutes=1))
    assert sweep_once(rt).fired == 1  # 督办函 to the section chief
    late = step_of(rt, run_id, "rectify")
    assert late.overdue and late.escalation_level == 1
    extensions.decide_extension(rt, request_id=req.id or 0, actor="s1-head", approve=True)
    fresh = step_of(rt, run_id, "rectify")
    assert not fresh.overdue and fresh.escalation_level == 0
    assert fresh.next_check_at == fresh.due_at and fresh.original_due_at == rectify.due_at
    clock.advance(2 * DAY)
    assert sweep_once(rt).fired == 0
    clock.advance(DAY + timedelta(minutes=1))
    assert sweep_once(rt).fired == 1  # the ladder again, from the new deadline
    with read_session(rt.db) as session:
        fired = session.exec(select(Escalation).where(Escalation.run_id == run_id)
                             .order_by(Escalation.id)).all()
    assert [e.scheduled_at for e in fired] == [rectify.due_at, fresh.due_at]


def test_a_request_after_the_deadline_is_refused_and_the_overdue_record_stays(
        rt: Runtime, clock: ManualClock) -> None:
    run_id = start_hazard(rt)
    rectify = step_of(rt, run_id, "rectify")
    assert rectify.due_at is not None
    clock.advance(10 * DAY)  # the very moment of the deadline is already too late
    with pytest.raises(ExtensionPastDeadline) as exc:
        ask(rt, rectify)
    assert exc.value.due_local == "2026-03-12 09:00" and "2026-03-12 09:00" in str(exc.value)
    assert "不能再申请延期" in str(exc.value) and "督办" in str(exc.value)
    clock.advance(12 * DAY)
    assert sweep_once(rt).fired >= 1  # 督办函, 12 days late
    late = step_of(rt, run_id, "rectify")
    with pytest.raises(ExtensionPastDeadline):
        extensions.request_extension(rt, step_id=late.id or 0, actor="c1-grid",
                                     due_at=clock.now() + 30 * DAY, reason="资金未到位")
    # Nothing changed: no request, no event, no note, the task as the sweep left it.
    kept = step_of(rt, run_id, "rectify")
    assert (kept.version, kept.due_at, kept.overdue, kept.escalation_level) == (
        late.version, late.due_at, True, late.escalation_level)
    with read_session(rt.db) as session:
        assert session.exec(select(ExtensionRequest)).all() == []
    assert events(rt, run_id, "extension_requested") == []
    assert inbox(rt, "s1-head", "extension_requested") == []
    assert hazard(rt, run_id).due_at == rectify.due_at


def test_who_may_ask(rt: Runtime) -> None:
    run_id = start_hazard(rt)
    rectify = step_of(rt, run_id, "rectify")
    with pytest.raises(Forbidden):
        ask(rt, rectify, who="c2-grid")  # not the assignee
    with pytest.raises(Forbidden):
        ask(rt, rectify, who="s1-head")  # the decider is not the assignee either
    with pytest.raises(NotFound):
        extensions.request_extension(rt, step_id=999_999, actor="c1-grid",
                                     due_at=datetime.now().astimezone(), reason="x")
    tasks.complete(rt, step_id=rectify.id or 0, actor="c1-grid", note="已整改")
    close = step_of(rt, run_id, "close")  # a step without `extension:`
    with pytest.raises(Conflict) as exc:
        ask(rt, close, who="s1-insp1")
    assert "no requests for more time" in str(exc.value)
    with pytest.raises(Conflict):  # the rectification is done: nothing left to extend
        ask(rt, rectify)


def test_the_new_deadline_and_reason_are_checked(rt: Runtime, clock: ManualClock) -> None:
    run_id = start_hazard(rt)
    rectify = step_of(rt, run_id, "rectify")
    due = rectify.due_at
    assert due is not None

    def field(due_at: datetime, reason: str = "原因") -> str:
        with pytest.raises(InvalidInput) as exc:
            extensions.request_extension(rt, step_id=rectify.id or 0, actor="c1-grid",
                                         due_at=due_at, reason=reason)
        return exc.value.field

    assert field(due + DAY, reason="   ") == "reason"
    assert field(due + DAY, reason="很长" * 2000) == "reason"
    assert field(due) == "due_at"  # not later than the current deadline
    assert field(due - DAY) == "due_at"
    assert field(clock.now() - DAY) == "due_at"
    assert field(clock.now() + timedelta(days=3661)) == "due_at"  # beyond 10 years
    assert ask(rt, rectify).status == "pending"


def test_one_pending_request_per_task(rt: Runtime) -> None:
    run_id = start_hazard(rt)
    rectify = step_of(rt, run_id, "rectify")
    first = ask(rt, rectify)
    with pytest.raises(Conflict) as exc:
        ask(rt, rectify, days=9)
    assert exc.value.current == "pending"
    extensions.decide_extension(rt, request_id=first.id or 0, actor="s1-head", approve=True)
    assert ask(rt, step_of(rt, run_id, "rectify")).status == "pending"


def test_who_may_decide(rt: Runtime) -> None:
    run_id = start_hazard(rt)
    rectify = step_of(rt, run_id, "rectify")
    req = ask(rt, rectify)
    for who in ("c2-grid", "d1-director", "s1-commander", "s2-insp"):
        with pytest.raises(Forbidden) as exc:
            extensions.decide_extension(rt, request_id=req.id or 0, actor=who, approve=True)
        assert "street_head" in exc.value.reason
    with pytest.raises(Forbidden) as exc:
        extensions.decide_extension(rt, request_id=req.id or 0, actor="c1-grid", approve=True)
    assert "your own request" in exc.value.reason
    with pytest.raises(NotFound):
        extensions.decide_extension(rt, request_id=999, actor="s1-head", approve=True)
    # The requester may not decide their own request, even holding the decider role.
    other = start_hazard(rt)
    own_step = step_of(rt, other, "rectify")
    tasks.reassign(rt, step_id=own_step.id or 0, actor="s1-commander", person="s1-head")
    own = ask(rt, own_step, who="s1-head")
    with pytest.raises(Forbidden) as exc:
        extensions.decide_extension(rt, request_id=own.id or 0, actor="s1-head", approve=True)
    assert "your own request" in exc.value.reason
    assert inbox(rt, "s1-head", "extension_requested")[-1].step_id != own_step.id


def test_approval_conflicts_when_the_task_moved_on(rt: Runtime, clock: ManualClock) -> None:
    run_id = start_hazard(rt)
    rectify = step_of(rt, run_id, "rectify")
    req = ask(rt, rectify, days=1)
    tasks.complete(rt, step_id=rectify.id or 0, actor="c1-grid", note="已整改")
    # The work is done: the request lapses with it (nothing to decide, nobody chased).
    with pytest.raises(Conflict) as exc:
        extensions.decide_extension(rt, request_id=req.id or 0, actor="s1-head", approve=True)
    assert exc.value.current == "lapsed" and "已失效" in str(exc.value)
    assert [e.detail["request"] for e in events(rt, run_id, "extension_lapsed")] == [req.id]
    # A requested deadline that has already passed cannot be approved.
    other = start_hazard(rt)
    late = ask(rt, step_of(rt, other, "rectify"), days=1)
    clock.advance(12 * DAY)
    with pytest.raises(Conflict):
        extensions.decide_extension(rt, request_id=late.id or 0, actor="s1-head",
                                    approve=True)
    assert step_of(rt, other, "rectify").original_due_at is None


def test_lists_show_what_a_person_may_see_and_decide(rt: Runtime) -> None:
    a = ask(rt, step_of(rt, start_hazard(rt), "rectify"))
    b = ask(rt, step_of(rt, start_hazard(rt), "rectify"))
    extensions.decide_extension(rt, request_id=b.id or 0, actor="s1-head", approve=True)

    def ids(person: str, **kw: Any) -> list[int]:
        rows, total = extensions.list_requests(rt, person=person, **kw)
        assert total == len(rows)
        return [v.request.id or 0 for v in rows]

    assert ids("s1-head", mine=True) == [b.id, a.id]
    assert ids("s1-head", mine=True, status="pending") == [a.id]
    rows, _ = extensions.list_requests(rt, person="s1-head", mine=True, status="pending")
    assert rows[0].can_decide and rows[0].decider_role == "street_head"
    assert ids("c1-grid", mine=True) == []  # the requester decides nothing
    assert ids("c1-grid") == [b.id, a.id]  # but sees their own
    assert ids("d1-director", mine=True) == []  # no street_head role
    assert ids("d1-manager", status="approved") == [b.id]  # the district reads its units'
    assert ids("s2-insp") == []  # another street sees nothing
    assert ids("d1-admin", status="pending") == [a.id]
    with pytest.raises(InvalidInput) as exc:
        extensions.list_requests(rt, person="s1-head", status="maybe")
    assert exc.value.field == "status"
    rows, total = extensions.list_requests(rt, person="s1-head", mine=True, limit=1, offset=1)
    assert total == 2 and [v.request.id for v in rows] == [a.id]


def race(*calls: Any) -> list[str]:
    barrier = threading.Barrier(len(calls))
    results: list[str] = []

    def worker(call: Any) -> None:
        barrier.wait()
        try:
            call()
            results.append("ok")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=worker, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results)


def test_two_requests_at_once_give_one_pending(rt: Runtime) -> None:
    run_id = start_hazard(rt)
    rectify = step_of(rt, run_id, "rectify")
    assert race(lambda: ask(rt, rectify), lambda: ask(rt, rectify, days=7)) == [
        "conflict", "ok"]
    with read_session(rt.db) as session:
        assert len(session.exec(select(ExtensionRequest)).all()) == 1


def test_two_decisions_at_once_give_one_success(rt: Runtime) -> None:
    run_id = start_hazard(rt)
    req = ask(rt, step_of(rt, run_id, "rectify"))

    def decide(approve: bool) -> Any:
        return lambda: extensions.decide_extension(rt, request_id=req.id or 0,
                                                   actor="s1-head", approve=approve,
                                                   note="意见")

    assert race(decide(True), decide(False)) == ["conflict", "ok"]
    with read_session(rt.db) as session:
        row = session.get(ExtensionRequest, req.id)
        assert row is not None and row.status in ("approved", "refused")
    decided = events(rt, run_id, "extension_approved") + events(rt, run_id, "extension_refused")
    assert len(decided) == 1


# --- timing rules (Qingdao: asked ≥ 20 working days ahead, decided within 10) ---------------

@pytest.fixture
def timed(make_rt: Any, tmp_path: Any) -> Runtime:
    """register-demo whose extensions must be asked 3 days ahead and decided in 2 working
    days (the shipped hazard playbook uses the same keys)."""
    import shutil

    from factories import ENGINE_PLAYBOOKS

    books = tmp_path / "timed-books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    path = books / "register-demo.yaml"
    text = path.read_text(encoding="utf-8")
    assert "extension: {role: street_head}" in text
    path.write_text(text.replace(
        "extension: {role: street_head}",
        "extension: {role: street_head, ask_before: 3d, decide_within: 2wd}"), encoding="utf-8")
    made: Runtime = make_rt(playbooks=books)
    assert made.catalog.errors == []
    return made


def test_a_request_too_close_to_the_deadline_is_refused_and_changes_nothing(
        timed: Runtime, clock: ManualClock) -> None:
    step = step_of(timed, start_hazard(timed), "rectify")  # due in 10 days
    clock.advance(8 * DAY)  # 2 days left: inside the 3 days before the deadline
    with pytest.raises(Forbidden) as late:
        ask(timed, step)
    assert "3d" in str(late.value) and "before the deadline" in str(late.value)
    with read_session(timed.db) as session:
        assert session.exec(select(ExtensionRequest)).all() == []
        assert session.get(StepInstance, step.id).version == step.version  # type: ignore[union-attr]


def test_an_undecided_request_is_chased_once_when_its_decision_is_due(
        timed: Runtime, clock: ManualClock) -> None:
    clock.set(datetime.fromisoformat("2026-03-02T09:00:00+08:00"))  # a Monday
    run_id = start_hazard(timed)
    req = ask(timed, step_of(timed, run_id, "rectify"))  # 7 days ahead: allowed
    # 2 working days from Monday 09:00: the end of Wednesday.
    assert req.decide_by == datetime.fromisoformat("2026-03-05T00:00:00+08:00")
    [note] = inbox(timed, "s1-head", "extension_requested")
    assert "2026-03-04 24:00 前审批" in note.body
    clock.set(datetime.fromisoformat("2026-03-04T23:59:00+08:00"))
    assert sweep_once(timed).extensions_chased == 0
    clock.set(datetime.fromisoformat("2026-03-05T00:01:00+08:00"))
    assert sweep_once(timed).extensions_chased == 1
    assert sweep_once(timed).extensions_chased == 0  # once
    [chase] = inbox(timed, "s1-head", "extension_overdue")
    assert "延期审批超时" in chase.title and "设备到货延迟" in chase.body
    assert "（一社区网格员，理由" in chase.body  # the asker by name, not by id
    assert [e.detail["request"] for e in events(timed, run_id, "extension_decision_overdue")] \
        == [req.id]
    # Deciding late is still deciding: the chase does not close the request.
    extensions.decide_extension(timed, request_id=req.id or 0, actor="s1-head", approve=True)
    with read_session(timed.db) as session:
        assert session.get(ExtensionRequest, req.id).status == "approved"  # type: ignore[union-attr]


def test_a_pending_request_lapses_when_its_run_is_cancelled_and_is_not_chased(
        timed: Runtime, clock: ManualClock) -> None:
    clock.set(datetime.fromisoformat("2026-03-02T09:00:00+08:00"))  # a Monday
    run_id = start_hazard(timed)
    req = ask(timed, step_of(timed, run_id, "rectify"))
    lifecycle.cancel_run(timed, run_id=run_id, actor="s1-commander", reason="重复登记")
    with read_session(timed.db) as session:
        assert session.get(ExtensionRequest, req.id).status == "lapsed"  # type: ignore[union-attr]
    clock.advance(5 * DAY)  # past decide_by
    assert sweep_once(timed).extensions_chased == 0
    assert inbox(timed, "s1-head", "extension_overdue") == []
    listed, _ = extensions.list_requests(timed, person="s1-head", status="pending")
    assert listed == []


def test_a_request_whose_unit_left_the_org_chart_does_not_stop_the_other_chases(
        make_rt: Any, tmp_path: Any, clock: ManualClock) -> None:
    """Community c2 leaves the org file while a request on its hazard is pending: the chase
    of that one is said to have failed, once, and c1's overdue request is still chased."""
    import shutil

    from factories import ENGINE_PLAYBOOKS, small_org_without_c2

    books = tmp_path / "chase-books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    path = books / "register-demo.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "extension: {role: street_head}", "extension: {role: street_head, decide_within: 2wd}"),
        encoding="utf-8")
    clock.set(datetime.fromisoformat("2026-03-02T09:00:00+08:00"))  # a Monday
    before = make_rt(playbooks=books)
    kept = start_hazard(before)
    gone = lifecycle.start_run(before, playbook_id="register-demo", unit_id="c2",
                               params={"location": "二社区仓库"}, actor="s1-commander").id or 0
    ask(before, step_of(before, kept, "rectify"))
    ask(before, step_of(before, gone, "rectify"), who="c2-grid")
    url = str(before.db.url)
    before.db.dispose()
    after = make_rt(playbooks=books, org_text=small_org_without_c2(), db_url=url)
    clock.advance(5 * DAY)  # both decisions are overdue
    sweep_once(after)  # used to raise here, on every pass
    clock.advance(timedelta(seconds=1))
    assert sweep_once(after).swept  # and the failed one is not tried again
    assert [e.detail["to"] for e in events(after, kept, "extension_decision_overdue")] == [
        ["s1-head"]]
    failed = events(after, gone, "extension_chase_failed")
    assert len(failed) == 1 and "c2" in failed[0].detail["error"]
