"""The notification outbox: real Apprise deliveries to local endpoints (an HTTP receiver for
json://, an SMTP server for mailto://), retries with backoff, every attempt recorded, claims that
keep two workers from sending a row twice, and no database lock held while a target is slow.

Outbox tests run on SQLite and on a real PostgreSQL (tests/pg_server.py): claims rely on each
database's own locking, so both are exercised."""

from __future__ import annotations

import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import DEMO_ORG, SMALL_ORG, wait_for
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from flows import notify
from flows.notify import (
    LEASE,
    MAX_ATTEMPTS,
    DeliveryFailed,
    DeliveryReport,
    OutboxWorker,
    backoff,
    deliver_due,
    send,
)
from flows.outbox_lanes import destination, not_to
from flows.recipients import notification_rows
from models.clock import ManualClock
from models.db import create_schema, make_engine, read_session, session_scope
from models.org import load_org
from models.outbox import DEAD, DELIVERED, INBOX_URL, PENDING, DeliveryAttempt, Notification

try:
    from tests.pg_server import PostgresServer
    from tests.receivers import HttpReceiver, SmtpReceiver
except ModuleNotFoundError:  # the repository root is not on sys.path (tests/ is no package)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.pg_server import PostgresServer
    from tests.receivers import HttpReceiver, SmtpReceiver

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


# -- fixtures and helpers ------------------------------------------------------------------


_serial = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.db'}"
        return
    pg: PostgresServer = request.getfixturevalue("pg")
    name = f"t_outbox_{next(_serial)}"
    yield pg.create_database(name)
    pg.drop_database(name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def rx() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


def add_notification(
    engine: Engine,
    url: str,
    *,
    at: datetime = T0,
    title: str = "森林火险预警",
    body: str = "请于 **30 分钟内** 到岗。",
    status: str = PENDING,
    kind: str = "notify",
) -> int:
    """Write one outbox row as the engine would (pending, due at `at`)."""
    n = next(_serial)
    with session_scope(engine) as session:
        row = Notification(
            dedupe_key=f"test|{n}",
            message_id=f"closeloop-test-{uuid.uuid4().hex}",
            kind=kind,
            recipient_kind="channel",
            recipient="duty",
            url=url,
            title=title,
            body=body,
            status=status,
            created_at=at,
            next_attempt_at=at if status == PENDING else None,
            delivered_at=at if status == DELIVERED else None,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


# read_session ends by rolling back, which expires what it loaded: detach rows first so their
# attributes stay readable after the block.


def notification(engine: Engine, notification_id: int) -> Notification:
    with read_session(engine) as session:
        row = session.get(Notification, notification_id)
        assert row is not None
        session.expunge(row)
        return row


def attempts_of(engine: Engine, notification_id: int) -> list[DeliveryAttempt]:
    with read_session(engine) as session:
        rows = list(
            session.exec(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.notification_id == notification_id)
                .order_by(col(DeliveryAttempt.id))
            ).all()
        )
        session.expunge_all()
        return rows


def all_attempts(engine: Engine) -> list[DeliveryAttempt]:
    with read_session(engine) as session:
        rows = list(session.exec(select(DeliveryAttempt)).all())
        session.expunge_all()
        return rows


def refused_url() -> str:
    """A json:// URL on a local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"json://127.0.0.1:{port}/hook"


# -- backoff -------------------------------------------------------------------------------


def test_backoff_grows_then_caps_at_an_hour() -> None:
    waits = [backoff(n) for n in range(1, MAX_ATTEMPTS + 3)]
    assert waits[:3] == [timedelta(seconds=10), timedelta(seconds=30), timedelta(minutes=1)]
    assert waits == sorted(waits)
    assert waits[-1] == waits[-3] == timedelta(hours=1)
    with pytest.raises(ValueError):
        backoff(0)


# -- send: one Apprise delivery ------------------------------------------------------------


def test_send_json_posts_title_and_message(rx: HttpReceiver) -> None:
    send(rx.url("/hook"), "防汛四级应急响应", "请各单位 **立即** 上报。\n第二行")

    [message] = rx.wait_for(1)
    assert message.method == "POST"
    assert message.path == "/hook"
    assert message.headers["content-type"] == "application/json"
    # Apprise's JSON payload; Markdown goes through as is to a text target.
    assert message.json["title"] == "防汛四级应急响应"
    assert message.json["message"] == "请各单位 **立即** 上报。\n第二行"
    assert message.json["type"] == "info"


def test_send_mailto_delivers_through_plain_smtp(smtp: SmtpReceiver) -> None:
    send(smtp.url(to="duty@example.org"), "森林火险预警", "请于 **30 分钟内** 到岗。",
         "closeloop-notification-7")

    [mail] = smtp.wait_for(1)
    assert mail.sender == "closeloop@example.org"
    assert mail.recipients == ["duty@example.org"]
    assert mail.subject == "森林火险预警"
    assert "30 分钟内" in mail.text
    # Markdown became HTML for the mail's HTML part.
    assert mail.html is not None and "<strong>30 分钟内</strong>" in mail.html
    assert b"X-Closeloop-Message-Id: closeloop-notification-7" in mail.data  # drop a repeat by it


def test_send_raises_with_the_http_status(rx: HttpReceiver) -> None:
    rx.fail_next(1, status=503)

    with pytest.raises(DeliveryFailed) as info:
        send(rx.url(), "t", "b")

    assert "503" in info.value.reason
    assert not info.value.permanent


def test_send_raises_with_the_cause_on_a_refused_port() -> None:
    with pytest.raises(DeliveryFailed) as info:
        send(refused_url(), "t", "b")

    assert "refused" in info.value.reason.lower()
    assert not info.value.permanent


def test_send_keeps_url_secrets_out_of_the_reason() -> None:
    # json:// passes `-name=value` URL args on as query parameters, as webhook tokens often are.
    with pytest.raises(DeliveryFailed) as info:
        send(refused_url() + "?-access_token=SECRET123", "t", "b")

    assert "SECRET123" not in info.value.reason


def test_send_raises_when_the_smtp_server_refuses(smtp: SmtpReceiver) -> None:
    smtp.fail_next(1, status=451)

    with pytest.raises(DeliveryFailed) as info:
        send(smtp.url(), "t", "b")

    assert "451" in info.value.reason
    assert smtp.messages == []


@pytest.mark.parametrize("url", ["nope://somewhere", "json://", "mailto://", INBOX_URL])
def test_send_refuses_an_unusable_url_for_good(url: str) -> None:
    with pytest.raises(DeliveryFailed) as info:
        send(url, "t", "b")

    assert info.value.permanent
    assert info.value.reason


def test_send_honours_a_short_read_timeout_from_the_url(rx: HttpReceiver) -> None:
    rx.hold()  # the endpoint accepts the request and never answers in time
    started = time.monotonic()

    with pytest.raises(DeliveryFailed) as info:
        send(rx.url() + "?rto=0.3", "t", "b")

    assert time.monotonic() - started < 5  # not the default read timeout
    assert "timed out" in info.value.reason.lower()
    rx.release()


# -- deliver_due: the outbox ---------------------------------------------------------------


def test_deliver_due_sends_and_records_a_json_notification(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    nid = add_notification(engine, rx.url("/duty"), title="到岗通知", body="请到岗")

    report = deliver_due(engine, clock=clock)

    assert report == DeliveryReport(delivered=1, failed=0, dead=0)
    [message] = rx.wait_for(1)
    assert (message.path, message.json["title"], message.json["message"]) == (
        "/duty",
        "到岗通知",
        "请到岗",
    )
    row = notification(engine, nid)
    assert (row.status, row.attempts, row.delivered_at, row.last_error) == (
        DELIVERED,
        1,
        T0,
        None,
    )
    [attempt] = attempts_of(engine, nid)
    assert attempt.ok and attempt.error is None and attempt.at == T0
    assert attempt.duration_ms >= 0


def test_deliver_due_stops_claiming_once_asked_to_stop(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    """A server shutting down waits for the delivery in hand, not for the rest of the pass."""
    first = add_notification(engine, rx.url("/duty"), title="第一条")
    second = add_notification(engine, rx.url("/duty"), title="第二条")
    stop = threading.Event()

    def send_then_stop(url: str, title: str, body: str, message_id: str | None) -> None:
        send(url, title, body, message_id)
        stop.set()  # shutdown begins while this delivery is in flight

    report = deliver_due(engine, clock=clock, sender=send_then_stop, stop=stop)

    assert report == DeliveryReport(delivered=1, failed=0, dead=0)
    assert [m.json["title"] for m in rx.wait_for(1)] == ["第一条"]
    assert notification(engine, first).status == DELIVERED
    untouched = notification(engine, second)
    assert (untouched.status, untouched.attempts, untouched.next_attempt_at) == (PENDING, 0, T0)
    # The next pass (after a restart) delivers it.
    assert deliver_due(engine, clock=clock).delivered == 1


def test_deliver_due_sends_a_mailto_notification(
    engine: Engine, clock: ManualClock, smtp: SmtpReceiver
) -> None:
    nid = add_notification(engine, smtp.url(to="zhang.wei@example.org"), title="督办通知")

    assert deliver_due(engine, clock=clock).delivered == 1

    [mail] = smtp.wait_for(1)
    assert mail.recipients == ["zhang.wei@example.org"]
    assert mail.subject == "督办通知"
    assert notification(engine, nid).status == DELIVERED


def test_deliver_due_retries_with_backoff_until_delivered(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    rx.fail_next(2, status=500)
    nid = add_notification(engine, rx.url())

    # First attempt fails: recorded, retry scheduled after backoff(1).
    assert deliver_due(engine, clock=clock) == DeliveryReport(delivered=0, failed=1, dead=0)
    row = notification(engine, nid)
    assert (row.status, row.attempts) == (PENDING, 1)
    assert row.next_attempt_at == T0 + backoff(1)
    assert row.last_error is not None and "500" in row.last_error

    # Not due yet: nothing is sent.
    clock.advance(backoff(1) - timedelta(seconds=1))
    assert deliver_due(engine, clock=clock).attempted == 0
    assert len(rx.requests) == 1

    # Past the backoff: second attempt, fails again, next wait is backoff(2).
    clock.advance(timedelta(seconds=1))
    assert deliver_due(engine, clock=clock).failed == 1
    row = notification(engine, nid)
    assert row.attempts == 2
    assert row.next_attempt_at == clock.now() + backoff(2)

    # Third attempt goes through.
    clock.advance(backoff(2))
    assert deliver_due(engine, clock=clock).delivered == 1

    row = notification(engine, nid)
    assert (row.status, row.attempts, row.delivered_at, row.last_error) == (
        DELIVERED,
        3,
        clock.now(),
        None,
    )
    attempts = attempts_of(engine, nid)
    assert [a.ok for a in attempts] == [False, False, True]
    assert [a.at for a in attempts] == [
        T0,
        T0 + backoff(1),
        T0 + backoff(1) + backoff(2),
    ]
    assert all("500" in (a.error or "") for a in attempts[:2])
    rx.wait_for(1)  # recorded just after the reply the sender saw
    assert [r.status for r in rx.requests] == [500, 500, 200]
    assert len(rx.messages) == 1


def test_deliver_due_gives_up_after_max_attempts_on_a_refused_port(
    engine: Engine, clock: ManualClock
) -> None:
    nid = add_notification(engine, refused_url())

    for n in range(1, MAX_ATTEMPTS + 1):
        report = deliver_due(engine, clock=clock)
        row = notification(engine, nid)
        assert row.attempts == n
        if n < MAX_ATTEMPTS:
            assert report == DeliveryReport(delivered=0, failed=1, dead=0)
            assert row.status == PENDING
            assert row.next_attempt_at == clock.now() + backoff(n)
            clock.advance(backoff(n))
        else:
            assert report == DeliveryReport(delivered=0, failed=0, dead=1)

    row = notification(engine, nid)
    assert (row.status, row.next_attempt_at, row.delivered_at) == (DEAD, None, None)
    assert row.last_error is not None and "refused" in row.last_error.lower()
    attempts = attempts_of(engine, nid)
    assert len(attempts) == MAX_ATTEMPTS
    assert not any(a.ok for a in attempts)
    assert all("refused" in (a.error or "").lower() for a in attempts)

    # Dead is final.
    clock.advance(timedelta(days=1))
    assert deliver_due(engine, clock=clock).attempted == 0
    assert len(attempts_of(engine, nid)) == MAX_ATTEMPTS


def test_deliver_due_marks_an_unusable_url_dead_at_once_and_carries_on(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    bad = add_notification(engine, "nope://somewhere")
    good = add_notification(engine, rx.url())

    report = deliver_due(engine, clock=clock)

    assert report == DeliveryReport(delivered=1, failed=0, dead=1)
    row = notification(engine, bad)
    assert (row.status, row.attempts) == (DEAD, 1)
    assert row.last_error is not None and "nope://" in row.last_error
    [attempt] = attempts_of(engine, bad)
    assert not attempt.ok
    assert notification(engine, good).status == DELIVERED


def test_deliver_due_records_an_unexpected_sender_error_instead_of_raising(
    engine: Engine, clock: ManualClock
) -> None:
    def broken_sender(url: str, title: str, body: str, msg_id: str | None) -> None:
        raise RuntimeError("plugin bug")

    nid = add_notification(engine, "json://127.0.0.1:9/hook")

    report = deliver_due(engine, clock=clock, sender=broken_sender)

    assert report == DeliveryReport(delivered=0, failed=1, dead=0)
    row = notification(engine, nid)
    assert row.last_error == "RuntimeError: plugin bug"
    assert row.next_attempt_at == T0 + backoff(1)


def test_deliver_due_never_touches_inbox_rows(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    delivered = add_notification(engine, INBOX_URL, status=DELIVERED)
    # Even an inbox row left pending (the engine never writes one) is not Apprise's to send.
    pending = add_notification(engine, INBOX_URL)
    before = {nid: notification(engine, nid).model_dump() for nid in (delivered, pending)}

    clock.advance(timedelta(hours=1))
    report = deliver_due(engine, clock=clock)

    assert report.attempted == 0
    assert all_attempts(engine) == []
    for nid, row in before.items():
        assert notification(engine, nid).model_dump() == row
    assert rx.requests == []


def test_deliver_due_sends_oldest_due_first_up_to_the_limit(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    later = add_notification(engine, rx.url(), title="later", at=T0 - timedelta(minutes=1))
    oldest = add_notification(engine, rx.url(), title="oldest", at=T0 - timedelta(minutes=5))
    future = add_notification(engine, rx.url(), title="future", at=T0 + timedelta(minutes=5))
    middle = add_notification(engine, rx.url(), title="middle", at=T0 - timedelta(minutes=3))

    assert deliver_due(engine, clock=clock, limit=2).delivered == 2
    assert [m.json["title"] for m in rx.wait_for(2)] == ["oldest", "middle"]

    assert deliver_due(engine, clock=clock).delivered == 1
    assert [m.json["title"] for m in rx.wait_for(3)] == ["oldest", "middle", "later"]
    assert notification(engine, future).status == PENDING
    assert {notification(engine, n).status for n in (later, oldest, middle)} == {DELIVERED}


def test_a_report_goes_ahead_of_a_backlog_of_escalations(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    # Hazards falling due together queue thousands of ladder notices; a gas leak's first
    # report, due after them, is sent before them.
    for i in range(3):
        add_notification(engine, rx.url(), title=f"督办{i}", kind="escalate",
                         at=T0 - timedelta(minutes=10 - i))
    add_notification(engine, rx.url(), title="首报", at=T0 - timedelta(seconds=1))
    assert deliver_due(engine, clock=clock, limit=2).delivered == 2
    assert [m.json["title"] for m in rx.wait_for(2)] == ["首报", "督办0"]
    assert deliver_due(engine, clock=clock).delivered == 2
    assert [m.json["title"] for m in rx.wait_for(4)][2:] == ["督办1", "督办2"]


def test_concurrent_deliver_due_sends_each_row_once(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    ids = [add_notification(engine, rx.url(), title=f"n{i}") for i in range(30)]
    start = threading.Barrier(3)
    reports: list[DeliveryReport] = []
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            reports.append(deliver_due(engine, clock=clock))
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert sum(r.delivered for r in reports) == len(ids)
    titles = [m.json["title"] for m in rx.wait_for(len(ids))]
    assert sorted(titles) == sorted(f"n{i}" for i in range(30))  # each once, none twice
    assert len(all_attempts(engine)) == len(ids)
    assert {notification(engine, n).status for n in ids} == {DELIVERED}


def test_a_slow_receiver_holds_no_database_transaction(
    engine: Engine, clock: ManualClock, rx: HttpReceiver, db_url: str
) -> None:
    nid = add_notification(engine, rx.url())
    rx.hold()
    reports: list[DeliveryReport] = []
    sending = threading.Thread(target=lambda: reports.append(deliver_due(engine, clock=clock)))
    sending.start()
    try:
        rx.wait_held(1)  # the delivery is now in flight, blocked on the endpoint

        # Another connection writes the very row being delivered, failing at once if any
        # transaction still holds a lock on it (SQLite: the database write lock; PostgreSQL: the
        # row lock) instead of waiting.
        probe = create_engine(db_url, connect_args=_no_lock_waiting(db_url))
        try:
            with probe.begin() as conn:
                conn.execute(
                    text("UPDATE notification SET title = title WHERE id = :id"), {"id": nid}
                )
        finally:
            probe.dispose()
        # The row is claimed (leased), not locked.
        claimed = notification(engine, nid)
        assert (claimed.status, claimed.next_attempt_at) == (PENDING, T0 + LEASE)
    finally:
        rx.release()
        sending.join(timeout=30)

    assert reports == [DeliveryReport(delivered=1, failed=0, dead=0)]
    assert notification(engine, nid).status == DELIVERED


def _no_lock_waiting(db_url: str) -> dict[str, Any]:
    if db_url.startswith("sqlite"):
        return {"timeout": 0}
    return {"options": "-c lock_timeout=200"}


class _Crash(BaseException):
    """Stands for the process dying mid-delivery (not an Exception: nothing catches it)."""


def test_a_crash_between_claim_and_record_is_retried_after_the_lease(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    nid = add_notification(engine, rx.url())

    def crashing_sender(url: str, title: str, body: str, msg_id: str | None) -> None:
        send(url, title, body, msg_id)  # delivered ...
        raise _Crash  # ... but the process dies before recording it

    with pytest.raises(_Crash):
        deliver_due(engine, clock=clock, sender=crashing_sender)
    assert attempts_of(engine, nid) == []

    # Within the lease, nobody takes the row again.
    clock.advance(LEASE - timedelta(seconds=1))
    assert deliver_due(engine, clock=clock).attempted == 0

    # After it, the row is sent again: at-least-once delivery.
    clock.advance(timedelta(seconds=1))
    assert deliver_due(engine, clock=clock).delivered == 1
    twice = rx.wait_for(2)
    assert len(twice) == 2
    assert notification(engine, nid).status == DELIVERED
    # The two copies carry the same id: the receiving office can drop the second.
    assert {m.headers["x-closeloop-message-id"] for m in twice} == {
        notification(engine, nid).message_id}


# -- the worker ----------------------------------------------------------------------------


def test_outbox_worker_delivers_when_woken(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    # A long interval: only wake() can make this delivery happen within the test's timeout.
    worker = OutboxWorker(engine, clock=clock, interval=600)
    worker.start()
    try:
        nid = add_notification(engine, rx.url(), title="woken")
        worker.wake()
        [message] = rx.wait_for(1)
        assert message.json["title"] == "woken"
    finally:
        worker.stop()  # returns once the pass in progress has recorded its attempt

    assert notification(engine, nid).status == DELIVERED
    assert len(attempts_of(engine, nid)) == 1


def test_outbox_worker_run_once_is_one_pass(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    add_notification(engine, rx.url())
    worker = OutboxWorker(engine, clock=clock)

    assert worker.run_once() == DeliveryReport(delivered=1, failed=0, dead=0)
    assert worker.run_once() == DeliveryReport()


def test_every_outbox_row_gets_its_own_random_message_id() -> None:
    """Ids are random, not row numbers: two installations (or a database started afresh)
    sending to one duty office never reuse one, so dropping repeats by it drops only repeats."""
    org = load_org(SMALL_ORG)
    rows = notification_rows(org, people=["c1-grid", "c2-grid"], channels=["duty"], kind="notify",
                             title="t", body="b", dedupe="x", now=T0, run_id=1, step_id=1)
    ids = [r["message_id"] for r in rows if r["url"] != INBOX_URL]
    assert len(ids) == 1 and len(set(ids)) == len(ids)
    again = notification_rows(org, people=[], channels=["duty"], kind="notify", title="t",
                              body="b", dedupe="x", now=T0, run_id=1, step_id=1)
    assert again[0]["message_id"] not in ids
    assert all(i.startswith("closeloop-") and len(i) == 42 for i in ids)


def test_people_sharing_one_url_get_one_message_there_and_each_an_inbox_copy() -> None:
    """The demo's director and duty leader share the leaders' screen: one post per alert."""
    org = load_org(DEMO_ORG)
    shared = org.people["chen-jianguo"].notify
    assert shared and shared == org.people["liu-yang"].notify
    rows = notification_rows(org, people=["chen-jianguo", "liu-yang"], kind="escalate",
                             title="t", body="b", dedupe="x", now=T0, run_id=1, step_id=1)
    assert [(r["recipient"], r["url"]) for r in rows] == [
        ("chen-jianguo", INBOX_URL), ("chen-jianguo", shared[0]), ("liu-yang", INBOX_URL)]


# -- lanes: receivers are sent to at once --------------------------------------------------


@pytest.mark.parametrize(("url", "receiver"), [
    ("json://127.0.0.1:8080/hook?x=1", "json://127.0.0.1:8080"),
    ("json://127.0.0.1:8080?x=1", "json://127.0.0.1:8080"),
    ("mailto://duty:secret@10.0.0.2:25?to=a@b.cn", "mailto://duty:secret@10.0.0.2:25"),
    ("dingtalk://tok_en", "dingtalk://tok_en"),
    ("not a url", "not a url"),
])
def test_a_receiver_is_the_url_up_to_its_path(url: str, receiver: str) -> None:
    assert destination(url) == receiver


def test_the_busy_receiver_filter_in_sql_agrees_with_destination(engine: Engine) -> None:
    # Ports that share a prefix, and `_`/`%`, which LIKE would have taken as wildcards.
    urls = ["json://127.0.0.1:80/a", "json://127.0.0.1:8080/a", "json://127.0.0.1:80?x=1",
            "json://127.0.0.1:80", "json://h_st:1/a", "json://host:1/a", "json://h%st:1/a",
            "jsons://127.0.0.1:80/a"]
    ids = {add_notification(engine, url): url for url in urls}
    for busy in ("json://127.0.0.1:80", "json://h_st:1", "json://h%st:1"):
        with read_session(engine) as session:
            kept = set(session.exec(select(Notification.id).where(not_to(busy))).all())
        assert kept == {nid for nid, url in ids.items() if destination(url) != busy}, busy


def test_a_hanging_receiver_holds_up_only_its_own_rows(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    # The county duty office's webhook hangs with three reports queued; the street's report,
    # due after them, goes out meanwhile. Before lanes it waited behind all three.
    with HttpReceiver() as street:
        hung = [add_notification(engine, rx.url(), title=f"县{i}",
                                 at=T0 - timedelta(minutes=5 - i)) for i in range(3)]
        add_notification(engine, street.url(), title="街道")
        rx.hold()
        reports: list[DeliveryReport] = []
        sending = threading.Thread(target=lambda: reports.append(deliver_due(engine, clock=clock)))
        sending.start()
        try:
            rx.wait_held(1)
            assert [m.json["title"] for m in street.wait_for(1)] == ["街道"]
        finally:
            rx.release()
            sending.join(timeout=60)
    assert reports == [DeliveryReport(delivered=4)]
    # The hung receiver's own rows still went in the order they were due.
    assert [m.json["title"] for m in rx.wait_for(3)] == ["县0", "县1", "县2"]
    assert {notification(engine, n).status for n in hung} == {DELIVERED}


def test_a_slow_failure_ends_its_lane_for_the_pass(
    engine: Engine, clock: ManualClock, rx: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A receiver that times out would cost every row queued for it the same wait, one after
    # another; after one slow failure the rest wait for the next pass.
    monkeypatch.setattr(notify, "SLOW_FAILURE_MS", 500)
    first, *rest = [add_notification(engine, rx.url() + "?rto=1", title=f"县{i}",
                                     at=T0 - timedelta(minutes=5 - i)) for i in range(3)]
    rx.hold()
    try:
        report = deliver_due(engine, clock=clock)
    finally:
        rx.release()
    assert report == DeliveryReport(failed=1)
    assert notification(engine, first).attempts == 1
    assert [notification(engine, n).attempts for n in rest] == [0, 0]
    # The next pass carries on with them (the failed one waits for its backoff).
    assert deliver_due(engine, clock=clock) == DeliveryReport(delivered=2)


def test_the_worker_starts_other_receivers_while_one_hangs_with_a_backlog(
    engine: Engine, clock: ManualClock, rx: HttpReceiver
) -> None:
    # More rows queued for the hung receiver than a pass reads: the next pass leaves out the
    # receiver whose lane is busy, so a later row for someone else is still seen and sent.
    backlog = [add_notification(engine, rx.url(), title=f"县{i}", kind="escalate",
                                at=T0 - timedelta(minutes=30 - i)) for i in range(8)]
    rx.hold()
    with HttpReceiver() as street:
        worker = OutboxWorker(engine, clock=clock, interval=0.05, limit=3)
        worker.start()
        try:
            rx.wait_held(1)
            add_notification(engine, street.url(), title="街道", kind="escalate")
            worker.wake()
            assert [m.json["title"] for m in street.wait_for(1)] == ["街道"]
        finally:
            rx.release()
            wait_for(lambda: worker.delivered.delivered == len(backlog) + 1)
            worker.stop()
    assert [m.json["title"] for m in rx.wait_for(8)] == [f"县{i}" for i in range(8)]
    assert {notification(engine, n).status for n in backlog} == {DELIVERED}
