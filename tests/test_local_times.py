"""Times are stored UTC and shown in the bureau's zone (CLOSELOOP_TIMEZONE, Asia/Shanghai by
default): every API time keeps its UTC ISO field and has a `*_local` twin beside it, and a
message prints local time. Here: the monthly ranking's month (its bounds and cut-off, and
that the month itself is the bureau's local calendar month), the loopback receiver's
listing, a run's outbox record and documents, and the in-app inbox. Real SQLite runtimes, the
injected clock, real Apprise to a closed loopback port; nothing mocked."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from factories import ENGINE_PLAYBOOKS, seed_hazards
from fastapi.testclient import TestClient
from sqlmodel import col, select

from api.auth import make_token
from api.main import create_app
from flows import lifecycle
from flows.notify import deliver_due
from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session, session_scope
from models.outbox import INBOX_URL, PENDING, Notification

Json = dict[str, Any]
SH = ZoneInfo("Asia/Shanghai")

# The duty channel at this app's own loopback receiver, on a port nothing listens on: the outbox
# keeps the alert pending (what the receiver takes), and an attempt to send it fails at once.
DUTY = "json://127.0.0.1:9/api/receiver/duty"

# A document and a notice, both automatic: the first things a run does.
NOTICE_BOOK = """
id: local-notice
version: 1
title: 本地时间演示
params:
  location: {type: string, required: true, title: 地点}
steps:
  - id: record
    title: 生成记录
    action: document
    template: local-notice.md.j2
  - id: tell
    title: 通知指挥长
    action: notify
    needs: [record]
    template: local-notice.md.j2
    to: [commander]
"""
NOTICE_TEMPLATE = "{{ run.title }}（{{ params.location }}）通知时间：{{ now_local }}\n"


@contextmanager
def api(rt: Runtime) -> Iterator[TestClient]:
    """The app on `rt`, failing on any 5xx (as tests/api/conftest.py's `client`)."""
    with TestClient(create_app(rt, background=False, prefect=False),
                    raise_server_exceptions=False) as client:
        yield client


def get(client: TestClient, rt: Runtime, path: str, who: str, **params: Any) -> Json:
    token = make_token(who, rt.settings.signing_secret())
    r = client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def utc(text: str) -> datetime:
    """An API time (ISO, with its zone) as an aware datetime in UTC."""
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(0), f"not UTC: {text}"
    return when


# --- the monthly ranking -----------------------------------------------------------------------

def test_ranking_shows_its_month_bounds_and_cutoff_in_local_time(
    rt: Runtime, clock: ManualClock
) -> None:
    # 02-28 16:30 UTC is 03-01 00:30 in Shanghai: March is the current month, February the last.
    clock.set(datetime(2026, 2, 28, 16, 30, tzinfo=UTC))
    seed_hazards(rt, [
        {"unit": "c1", "found_at": datetime(2026, 2, 28, 23, 30, tzinfo=SH)},  # February's
        {"unit": "c1", "found_at": datetime(2026, 3, 1, 0, 10, tzinfo=SH)},  # March's
    ], playbook_id="register-demo")
    with api(rt) as client:
        feb = get(client, rt, "/api/ranking", "d1-manager")  # default: the last local month
        mar = get(client, rt, "/api/ranking", "d1-manager", month="2026-03")
    assert feb["month"] == "2026-02" and feb["timezone"] == "Asia/Shanghai"
    # The UTC fields stay as they were; the local ones are the bureau's calendar.
    assert utc(feb["start"]) == datetime(2026, 1, 31, 16, tzinfo=UTC)
    assert utc(feb["end"]) == utc(feb["as_of"]) == datetime(2026, 2, 28, 16, tzinfo=UTC)
    assert (feb["start_local"], feb["end_local"], feb["as_of_local"]) == (
        "2026-02-01 00:00", "2026-02-28 24:00", "2026-02-28 24:00")  # the month's end, as printed
    # The current month is counted to now, which is shown as the bureau's clock reads it.
    assert utc(mar["as_of"]) == datetime(2026, 2, 28, 16, 30, tzinfo=UTC)
    assert (mar["start_local"], mar["end_local"], mar["as_of_local"]) == (
        "2026-03-01 00:00", "2026-03-31 24:00", "2026-03-01 00:30")
    # Each hazard is on its own side of local midnight, not of UTC midnight.
    found = {m["month"]: {r["unit_id"]: r["found"] for r in m["data"]} for m in (feb, mar)}
    assert found == {"2026-02": {"s1": 1, "s2": 0}, "2026-03": {"s1": 1, "s2": 0}}


def test_ranking_month_follows_the_configured_time_zone(
    make_rt: Callable[..., Runtime], clock: ManualClock
) -> None:
    tokyo = make_rt(settings={"timezone": "Asia/Tokyo"})  # UTC+9
    clock.set(datetime(2026, 2, 28, 15, 30, tzinfo=UTC))  # 03-01 00:30 in Tokyo
    seed_hazards(tokyo, [{"unit": "c1", "found_at": datetime(2026, 2, 28, 15, 10, tzinfo=UTC)}],
                 playbook_id="register-demo")
    with api(tokyo) as client:
        mar = get(client, tokyo, "/api/ranking", "d1-manager", month="2026-03")
    assert mar["timezone"] == "Asia/Tokyo"
    assert utc(mar["start"]) == datetime(2026, 2, 28, 15, tzinfo=UTC)
    assert (mar["start_local"], mar["as_of_local"]) == ("2026-03-01 00:00", "2026-03-01 00:30")
    assert {r["unit_id"]: r["found"] for r in mar["data"]} == {"s1": 1, "s2": 0}


# --- the loopback receiver and a run's outbox record --------------------------------------------

def test_receiver_listing_and_a_runs_deliveries_show_local_times(
    make_rt: Callable[..., Runtime], clock: ManualClock
) -> None:
    rt = make_rt(channel_url=DUTY)
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区仓库"}, actor="s1-commander")
    clock.advance(timedelta(seconds=3))  # 01:00:03 UTC, 09:00:03 in Shanghai: overdue
    assert sweep_once(rt).fired == 1  # level 1: the section chief and the duty channel
    with session_scope(rt.db) as session:
        alert = session.exec(select(Notification).where(
            Notification.url == DUTY, Notification.status == PENDING)).one()
        # Being sent: the outbox claims the row by moving its next attempt past now (here
        # by a second, so that the retry below is due at 09:00:05).
        alert.next_attempt_at = clock.now() + timedelta(seconds=1)
        session.add(alert)
        session.flush()
        session.expunge(alert)
    with api(rt) as client:
        # What Apprise's json:// plugin posts for the alert the outbox is sending.
        posted = client.post("/api/receiver/duty", json={
            "version": "1.0", "title": alert.title, "message": alert.body,
            "attachments": [], "type": "warning"})
        assert posted.status_code == 201, posted.text
        [got] = get(client, rt, "/api/receiver/duty", "d1-admin")["data"]
        assert utc(got["received_at"]) == datetime(2026, 3, 2, 1, 0, 3, tzinfo=UTC)
        assert got["received_at_local"] == "2026-03-02 09:00:03"

        clock.advance(timedelta(seconds=2))  # the outbox tries it at 09:00:05, and fails
        assert deliver_due(rt.db, clock=clock).failed == 1
        notes = get(client, rt, f"/api/runs/{run.id}/notifications", "s1-commander")["data"]
    duty = next(n for n in notes if n["recipient"] == "duty")
    assert utc(duty["created_at"]) == datetime(2026, 3, 2, 1, 0, 3, tzinfo=UTC)
    assert duty["created_at_local"] == "2026-03-02 09:00:03"
    assert duty["delivered_at"] is None and duty["delivered_at_local"] is None
    [attempt] = duty["attempts"]
    assert utc(attempt["at"]) == datetime(2026, 3, 2, 1, 0, 5, tzinfo=UTC)
    assert attempt["at_local"] == "2026-03-02 09:00:05"
    inbox_copy = next(n for n in notes if n["recipient"] == "d1-chief")  # delivered at once
    assert utc(inbox_copy["delivered_at"]) == datetime(2026, 3, 2, 1, 0, 3, tzinfo=UTC)
    assert inbox_copy["delivered_at_local"] == "2026-03-02 09:00:03"


# --- a run's documents and messages, and the in-app inbox ----------------------------------------

def test_documents_messages_and_inbox_show_local_times(
    make_rt: Callable[..., Runtime], clock: ManualClock, tmp_path: Path
) -> None:
    books = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, books)
    (books / "local-notice.yaml").write_text(NOTICE_BOOK, encoding="utf-8")
    (books / "templates" / "local-notice.md.j2").write_text(NOTICE_TEMPLATE, encoding="utf-8")
    rt = make_rt(playbooks=books)
    assert "local-notice" in rt.catalog.current, rt.catalog.errors
    # 17:30 UTC on 03-02 is already 01:30 on 03-03 in Shanghai: another date, not just hours.
    clock.set(datetime(2026, 3, 2, 17, 30, tzinfo=UTC))
    run = lifecycle.start_run(rt, playbook_id="local-notice", unit_id="c1",
                              params={"location": "一社区"}, actor="s1-commander")
    drain_wakes(rt)  # the record, then the notice
    drain_wakes(rt)
    with read_session(rt.db) as session:
        sent = session.exec(select(Notification).where(
            Notification.run_id == run.id, Notification.url == INBOX_URL)
            .order_by(col(Notification.id))).all()
    assert sent and all("通知时间：2026-03-03 01:30" in n.body for n in sent)
    with api(rt) as client:
        docs = get(client, rt, f"/api/runs/{run.id}/documents", "s1-commander")["data"]
        inbox = get(client, rt, "/api/inbox", "s1-commander")["data"]
    [doc] = docs
    assert "通知时间：2026-03-03 01:30" in doc["body"]
    assert utc(doc["created_at"]) == datetime(2026, 3, 2, 17, 30, tzinfo=UTC)
    assert doc["created_at_local"] == "2026-03-03 01:30"
    [note] = [n for n in inbox if n["run_id"] == run.id]
    assert utc(note["at"]) == datetime(2026, 3, 2, 17, 30, tzinfo=UTC)
    assert note["at_local"] == "2026-03-03 01:30"
    assert "通知时间：2026-03-03 01:30" in note["body"]


# --- a run's steps, escalations and extension requests -------------------------------------

def test_a_runs_steps_escalations_and_extension_requests_show_local_times(
        rt: Runtime, clock: ManualClock) -> None:
    # 23:59:58 UTC on 1 March is 07:59:58 on 2 March in Shanghai: every `*_local` must say 2 March.
    clock.set(datetime(2026, 3, 1, 23, 59, 58, tzinfo=UTC))
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区"}, actor="d1-commander")
    clock.advance(timedelta(seconds=5))
    sweep_once(rt)  # the receive step is 3 s overdue: its first escalation fires
    with api(rt) as client:
        shown = get(client, rt, f"/api/runs/{run.id}", "d1-commander")
        receive = next(s for s in shown["steps"] if s["step"] == "receive")
        assert receive["ready_at_local"] == "2026-03-02 07:59:58"
        assert receive["acked_at"] is None and receive["acked_at_local"] is None
        fired = shown["escalations"][0]
        assert fired["scheduled_at_local"] == "2026-03-02 08:00:00"
        assert fired["fired_at_local"] == "2026-03-02 08:00:03"
        token = make_token("s1-duty", rt.settings.signing_secret())
        done = client.post(f"/api/tasks/{receive['id']}/complete", json={},
                           headers={"Authorization": f"Bearer {token}"})
        assert done.status_code == 200, done.text
        assert done.json()["done_at_local"] == "2026-03-02 08:00:03"
        cancelled = client.post(f"/api/runs/{run.id}/cancel", json={"reason": "误报"},
                                headers={"Authorization": "Bearer " + make_token(
                                    "d1-commander", rt.settings.signing_secret())})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["finished_at_local"] == "2026-03-02 08:00:03"
        assert utc(cancelled.json()["finished_at"]) == clock.now()
