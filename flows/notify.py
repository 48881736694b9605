"""Delivering the notification outbox through Apprise.

The engine writes `Notification` rows (status pending, next_attempt_at = now) in the same
transaction as the state change that causes them; this module sends them afterwards, so a slow
or broken notification target never blocks or fails the step that sent it.

Delivery is at-least-once. For each due row, `deliver_due`:

1. claims it with a conditional UPDATE (still pending and due -> next_attempt_at = now + LEASE)
   and commits, so no other worker thread or process can take the same row;
2. sends it through Apprise outside any transaction, so a slow endpoint holds no database lock;
3. in a new transaction records a `DeliveryAttempt` and marks the row delivered, schedules a
   retry after `backoff(attempts)`, or marks it dead after `MAX_ATTEMPTS` (at once for a URL
   Apprise cannot load: retrying would never help).

A crash between 1 and 3 leaves the row claimed until the lease runs out; it is then sent again.
Rows are claimed one at a time, just before they are sent, so the lease only has to cover one
delivery (Apprise timeouts are kept short, see CONNECT_TIMEOUT/READ_TIMEOUT) and never a whole
batch stuck behind a slow endpoint.

Different receivers are sent to at once, one lane (thread) each, up to LANES
(flows/outbox_lanes.py): a receiver that hangs holds up only the rows queued for it.

In-app inbox rows (INBOX_URL) are written as delivered by the engine and never sent.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, urlsplit

import apprise
from apprise.logger import LOGGER_NAME as APPRISE_LOGGER
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from flows.catalog import Catalog
from flows.outbox_lanes import by_destination, not_to
from flows.rehand import current
from flows.spec import Playbook, StepSpec
from models.audit import SYSTEM
from models.clock import Clock
from models.db import read_session, session_scope
from models.drill import MARK, is_drill, marked_message, marked_title
from models.errors import CloseloopError, NotFound
from models.org import OrgChart
from models.outbox import DEAD, DELIVERED, INBOX_URL, PENDING, DeliveryAttempt, Notification
from models.run import Run
from models.task import StepInstance
from models.writes import add_event

logger = logging.getLogger(__name__)

MAX_ATTEMPTS: int = 8

# Waits after the 1st, 2nd, ... failed attempt: quick at first (a target restarting), then
# spread out (a target down for the night); capped at an hour.
_BACKOFF = (
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
)

# How long a claimed row stays invisible to other workers. Must exceed the longest single
# delivery (CONNECT_TIMEOUT + READ_TIMEOUT, plus Apprise's own retries if a URL asks for them),
# or a second worker could send the same row while the first is still at it.
LEASE = timedelta(minutes=2)

# Apprise's socket timeouts (URL args `cto` and `rto`), applied when a URL does not set its own.
# Apprise defaults to 4s/4s for HTTP plugins but 15s for email; we keep every target short so
# one dead endpoint cannot stall the outbox. Note: the email plugin only uses the connect
# timeout, as smtplib's timeout for every SMTP exchange.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0

# Receivers sent to at once (threads, each doing one delivery at a time). Eight covers a
# district's duty offices and mail server with room for two or three that hang.
LANES = 8

# A failed attempt that took this long means the receiver hangs rather than refuses (a refused
# port fails in milliseconds): its lane stops, and its other rows wait for the next pass, where
# each costs one attempt at a time instead of holding the lane for all of them in a row.
SLOW_FAILURE_MS = 2000

# Playbook messages are rendered from *.md.j2 templates: Apprise turns Markdown into HTML for
# targets that want HTML (email) and passes it through as is to text targets (json://).
BODY_FORMAT = apprise.NotifyFormat.MARKDOWN

_ERROR_MAX = 1000  # characters of an error kept in the database

# Query strings in low-level errors ("Max retries exceeded with url: /robot/send?access_token=
# ...") can carry a webhook's secret; errors are shown to people, so they are cut out.
_QUERY = re.compile(r"\?[^\s'\")]+")


class DeliveryFailed(CloseloopError):
    """One delivery did not go through. Apprise reports failure only by returning False (and
    explains it in its log), so `send` raises this with the explanation instead.

    `permanent` means retrying cannot help (the URL itself is unusable)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


# --------------------------------------------------------------------------------------------
# One delivery


class _ApprisePassLog(logging.Filter):
    """Collects the apprise log records of the thread that is sending, to explain a failure.

    Apprise says why a delivery failed only in its log: the warning ("A Connection error
    occurred ...") at WARNING, the cause ("Socket Exception: ... Connection refused") at DEBUG.
    To see the DEBUG line the apprise logger must let DEBUG through; this filter then drops
    whatever the logger would not have emitted before, so nobody's log gets noisier."""

    def __init__(self, apprise_logger: logging.Logger) -> None:
        super().__init__()
        self._logger = apprise_logger
        self._original_level = apprise_logger.level  # NOTSET: follow the parent, as before
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        sink: list[logging.LogRecord] | None = getattr(self._local, "sink", None)
        if sink is not None:
            sink.append(record)
        if self._original_level:
            return record.levelno >= self._original_level
        parent = self._logger.parent
        return parent is None or record.levelno >= parent.getEffectiveLevel()

    def start(self) -> list[logging.LogRecord]:
        sink: list[logging.LogRecord] = []
        self._local.sink = sink
        return sink

    def stop(self) -> None:
        self._local.sink = None


_pass_log: _ApprisePassLog | None = None
_pass_log_lock = threading.Lock()


def _apprise_log() -> _ApprisePassLog:
    # Installed on first use, not at import: importing this module changes nothing global.
    global _pass_log
    with _pass_log_lock:
        if _pass_log is None:
            apprise_logger = logging.getLogger(APPRISE_LOGGER)
            _pass_log = _ApprisePassLog(apprise_logger)
            apprise_logger.addFilter(_pass_log)
            if not apprise_logger.level or apprise_logger.level > logging.DEBUG:
                apprise_logger.setLevel(logging.DEBUG)
        return _pass_log


def _explain(records: list[logging.LogRecord], fallback: str) -> str:
    """Apprise's warnings about this delivery, with the low-level cause when it logged one."""
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    causes = [
        r.getMessage()
        for r in records
        if r.levelno < logging.WARNING and r.getMessage().startswith("Socket Exception")
    ]
    text = " ".join(dict.fromkeys(warnings)) or fallback
    if causes:
        text += f" ({causes[-1]})"
    return _QUERY.sub("?...", text)[:_ERROR_MAX]


def _asset() -> apprise.AppriseAsset:
    return apprise.AppriseAsset(
        # Send in the calling thread: the log capture above is per thread, and the outbox
        # already has its own worker; Apprise's thread pool would only add threads.
        async_mode=False,
        # Nothing written to disk on behalf of a plugin (some cache tokens when allowed to).
        storage_mode="memory",
    )


# Delivery is at least once (a crash between sending and recording sends again), so every
# message carries its notification's id where the target can take a header (json://, xml://,
# form://, mailto://): the receiving office drops a second copy by it.
MESSAGE_ID_HEADER = "X-Closeloop-Message-Id"


def send(url: str, title: str, body: str, msg_id: str | None = None) -> None:
    """Deliver one message to one Apprise URL; raise DeliveryFailed saying why it failed.

    Only the URL's own target is contacted, with short timeouts unless the URL sets `cto`/`rto`.
    `msg_id` goes out as the MESSAGE_ID_HEADER header where the plugin sends headers.
    """
    if url == INBOX_URL:
        raise DeliveryFailed("the in-app inbox is not sent through Apprise", permanent=True)
    capture = _apprise_log()
    records = capture.start()
    try:
        plugin = apprise.Apprise.instantiate(url, asset=_asset())
        if plugin is None:
            # The URL's scheme is unknown or its arguments are invalid; the text says which.
            raise DeliveryFailed(_explain(records, "not a usable Apprise URL"), permanent=True)
        args = {key.lower() for key, _ in parse_qsl(urlsplit(url).query)}
        if "cto" not in args:
            plugin.socket_connect_timeout = CONNECT_TIMEOUT
        if "rto" not in args:
            plugin.socket_read_timeout = READ_TIMEOUT
        headers = getattr(plugin, "headers", None)
        if msg_id and isinstance(headers, dict):
            headers[MESSAGE_ID_HEADER] = msg_id
        sender = apprise.Apprise(asset=plugin.asset)
        sender.add(plugin)
        ok = sender.notify(body=body, title=title, body_format=BODY_FORMAT)
    finally:
        capture.stop()
    # Apprise returns None when nothing was notified and False when anything failed.
    if not ok:
        raise DeliveryFailed(_explain(records, "Apprise reported failure without a reason"))


def backoff(attempts: int) -> timedelta:
    """The wait before the next try after `attempts` failed attempts (1 = the first failure)."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    return _BACKOFF[min(attempts, len(_BACKOFF)) - 1]


# --------------------------------------------------------------------------------------------
# The outbox


@dataclass
class DeliveryReport:
    """What one `deliver_due` pass did: rows delivered, failed attempts that will be retried,
    and failed attempts after which the row was given up (dead)."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed + self.dead


@dataclass(frozen=True)
class _Claimed:
    id: int
    url: str
    title: str
    body: str
    message_id: str | None


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    error: str | None
    permanent: bool
    duration_ms: int


Sender = Callable[[str, str, str, str | None], None]  # url, title, body, message id


def deliver_due(
    engine: Engine, *, clock: Clock, limit: int = 100, sender: Sender = send,
    org: OrgChart | None = None, catalog: Catalog | None = None,
    stop: threading.Event | None = None, lanes: int = LANES,
) -> DeliveryReport:
    """Send up to `limit` due notifications, oldest due first (bulk reminders and escalations
    after everything else, BULK_KINDS), recording every attempt, and return when all are done.
    Up to `lanes` receivers are sent to at once; each receiver's rows go in due order, and
    stop for this pass after a slow failure (SLOW_FAILURE_MS).
    `stop`, once set, ends the pass before the next row is claimed: a server shutting down
    waits for one delivery per lane at most, not for a pass of a hundred to a receiver that is
    gone.

    Safe to run in several threads or processes at once (each row is claimed before it is
    sent). One bad notification never makes this raise: its failure is recorded on the row.
    Database errors do raise; the rows concerned are retried once their lease runs out."""
    tally = _Tally()
    groups = list(by_destination(_due_rows(engine, clock, limit)).values())

    def lane(ids: list[int]) -> None:
        _deliver_lane(engine, ids, clock=clock, sender=sender, org=org, catalog=catalog,
                      stop=stop, tally=tally)

    if len(groups) <= 1 or lanes <= 1:
        for ids in groups:  # one receiver (the common case): no thread needed
            lane(ids)
    else:
        _in_lanes(groups, lane, lanes)
    return tally.report


class _Tally:
    """A pass's report, added to by its lanes."""

    def __init__(self) -> None:
        self.report = DeliveryReport()
        self._lock = threading.Lock()

    def add(self, status: str) -> None:
        with self._lock:
            if status == DELIVERED:
                self.report.delivered += 1
            elif status == DEAD:
                self.report.dead += 1
            else:
                self.report.failed += 1


def _in_lanes(groups: list[list[int]], lane: Callable[[list[int]], None], lanes: int) -> None:
    """Run `lane` on every group, `lanes` threads at a time; re-raise the first error a lane
    raised (a database error, or a crash standing in for the process dying) once all end."""
    pending = list(reversed(groups))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                ids = pending.pop()
            try:
                lane(ids)
            except BaseException as exc:  # handed to the caller below
                errors.append(exc)

    threads = [threading.Thread(target=work, name="closeloop-outbox-lane", daemon=True)
               for _ in range(min(lanes, len(groups)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _deliver_lane(
    engine: Engine, ids: list[int], *, clock: Clock, sender: Sender, org: OrgChart | None,
    catalog: Catalog | None, stop: threading.Event | None, tally: _Tally,
) -> None:
    """Deliver one receiver's rows one at a time, in the order given."""
    for notification_id in ids:
        if stop is not None and stop.is_set():
            return
        claimed = _claim(engine, notification_id, clock)
        if claimed is None:
            continue  # another worker got there first, or it is no longer due
        started_at = clock.now()
        outcome = _attempt(claimed, sender)
        tally.add(_record(engine, claimed.id, outcome, started_at=started_at, clock=clock,
                          org=org, catalog=catalog))
        if not outcome.ok and outcome.duration_ms >= SLOW_FAILURE_MS:
            return  # the receiver hangs: its next row waits for the next pass


# What the sweeper sends in bulk: reminders and the rungs of escalation ladders. A district's
# imported hazards falling due together queued ~48,000 of them, and a gas leak's first report,
# strictly behind them, would have reached the county duty office some 80 minutes late. Every
# other kind (a report a playbook sends, an assignment, an undelivered-report notice) goes
# first; within each, oldest due first.
BULK_KINDS = ("remind", "escalate", "ack", "verify")


def _due_rows(engine: Engine, clock: Clock, limit: int,
              busy: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """(id, url) of up to `limit` due rows in the order they go out, leaving out the rows for
    the `busy` receivers (whose lanes are still sending)."""
    now = clock.now()
    due = (Notification.status == PENDING, col(Notification.next_attempt_at) <= now,
           Notification.url != INBOX_URL, *(not_to(receiver) for receiver in busy))
    order = (col(Notification.next_attempt_at), col(Notification.id))
    wanted = (Notification.id, Notification.url)
    with read_session(engine) as session:
        first = session.exec(
            select(*wanted).where(*due, col(Notification.kind).not_in(BULK_KINDS))
            .order_by(*order).limit(limit)
        ).all()
        rest = session.exec(
            select(*wanted).where(*due, col(Notification.kind).in_(BULK_KINDS))
            .order_by(*order).limit(limit - len(first))
        ).all() if len(first) < limit else []
    return [(row[0], row[1]) for row in (*first, *rest) if row[0] is not None]


def _claim(engine: Engine, notification_id: int, clock: Clock) -> _Claimed | None:
    """Take the row for one delivery, or None if someone else has it. The conditional UPDATE is
    the lock: on SQLite writers are serialised (BEGIN IMMEDIATE), on PostgreSQL the second
    UPDATE waits for the first and then re-checks the WHERE against the new next_attempt_at."""
    now = clock.now()
    with session_scope(engine) as session:
        result = session.exec(
            update(Notification)
            .where(
                col(Notification.id) == notification_id,
                col(Notification.status) == PENDING,
                col(Notification.next_attempt_at) <= now,
                col(Notification.url) != INBOX_URL,
            )
            .values(next_attempt_at=now + LEASE)
        )
        if result.rowcount != 1:
            return None
        row = session.exec(
            select(Notification.url, Notification.title, Notification.body,
                   Notification.message_id).where(Notification.id == notification_id)
        ).one()
    return _Claimed(id=notification_id, url=row[0], title=row[1], body=row[2],
                    message_id=row[3])


def _attempt(claimed: _Claimed, sender: Sender) -> _Outcome:
    """Run the sender outside any transaction, turning every failure into an outcome."""
    start = time.monotonic()
    try:
        sender(claimed.url, claimed.title, claimed.body, claimed.message_id)
    except DeliveryFailed as exc:
        ok, error, permanent = False, exc.reason, exc.permanent
    except Exception as exc:  # a bug in a plugin or sender must not stop the outbox
        logger.exception("notification %s: unexpected error while sending", claimed.id)
        ok, error, permanent = False, f"{type(exc).__name__}: {exc}", False
    else:
        ok, error, permanent = True, None, False
    duration_ms = round((time.monotonic() - start) * 1000)
    if error is not None:
        error = error[:_ERROR_MAX]
        logger.warning("notification %s not delivered: %s", claimed.id, error)
    return _Outcome(ok=ok, error=error, permanent=permanent, duration_ms=duration_ms)


def _record(
    engine: Engine,
    notification_id: int,
    outcome: _Outcome,
    *,
    started_at: datetime,
    clock: Clock,
    org: OrgChart | None = None,
    catalog: Catalog | None = None,
) -> str:
    """Record the attempt and move the row on; returns the row's new status (pending for a
    failure that will be retried)."""
    with session_scope(engine) as session:
        session.add(
            DeliveryAttempt(
                notification_id=notification_id,
                at=started_at,
                ok=outcome.ok,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
        )
        row = session.get(Notification, notification_id, with_for_update=True)
        if row is None or row.status != PENDING:
            # Deleted meanwhile, or our lease ran out and another worker finished the row:
            # keep its result, report ours.
            return DELIVERED if outcome.ok else PENDING
        now = clock.now()
        row.attempts += 1
        if outcome.ok:
            row.status = DELIVERED
            row.delivered_at = now
            row.next_attempt_at = None
            row.last_error = None  # set only while the latest attempt failed
        else:
            row.last_error = outcome.error
            if outcome.permanent or row.attempts >= MAX_ATTEMPTS:
                row.status = DEAD
                row.next_attempt_at = None
            else:
                row.next_attempt_at = now + backoff(row.attempts)
            if row.url != INBOX_URL and (row.attempts == 1 or row.status == DEAD):
                _tell_undelivered(session, row, now, org, catalog)
        session.add(row)
        return row.status


def _tell_undelivered(session: Session, row: Notification, now: datetime,
                      org: OrgChart | None, catalog: Catalog | None) -> None:
    """A report or alert that did not reach its target is not left to a log line: the run's
    timeline says so (`delivery_failed`), and the people who answer for getting it through
    (`_answerable`) are told in the in-app inbox, at its first failure and when it is given up,
    so it goes by telephone while the channel is mended. Retries go on meanwhile."""
    if row.run_id is None:
        return
    given_up = row.status == DEAD
    error = (row.last_error or "")[:300]
    add_event(session, at=now, actor=SYSTEM, action="delivery_failed", run_id=row.run_id,
              step_id=row.step_id, detail={
                  "notification": row.id, "to": row.recipient, "kind": row.kind,
                  "attempts": row.attempts, "given_up": given_up, "error": error})
    run = session.get(Run, row.run_id)
    if run is None:
        return
    step = session.get(StepInstance, row.step_id) if row.step_id is not None else None
    body = _undelivered_body(row, run, step, org, given_up=given_up)
    if is_drill(run):
        body = marked_message(body)
    # A delivery sent again after it was given up (flows/resend.py) counts its attempts
    # afresh: its notices are of a new round, told again, keyed by all attempts so far.
    made = session.exec(select(func.count()).select_from(DeliveryAttempt).where(
        DeliveryAttempt.notification_id == row.id)).one()
    round_ = "" if made <= row.attempts else f"|{made}"
    for person in _answerable(session, row, run, step, org, catalog):
        session.add(Notification(
            dedupe_key=f"undelivered|{row.id}|{'dead' if given_up else 'first'}{round_}"
                       f"{'' if person == run.started_by else '|' + person}"[:300],
            run_id=row.run_id, step_id=row.step_id, kind="undelivered",
            recipient_kind="person", recipient=person, url=INBOX_URL,
            title=_undelivered_title(row.title, run), body=body,
            status=DELIVERED, created_at=now, delivered_at=now))


def _undelivered_title(title: str, run: Run) -> str:
    """【送达失败】 before the message's own title; a drill's 【演练】 stays in front of both."""
    if not is_drill(run):
        return f"【送达失败】{title}"[:300]
    return marked_title(f"【送达失败】{title.removeprefix(MARK)}")


# The technical error closes the inbox note, cut to its start (what failed, Apprise's words)
# and its end (the low-level cause, "Connection refused"): the middle is URLs and plumbing.
_TOLD_ERROR_HEAD = 70
_TOLD_ERROR_TAIL = 50


def _undelivered_body(row: Notification, run: Run, step: StepInstance | None,
                      org: OrgChart | None, *, given_up: bool) -> str:
    """What the inbox note says, in the bureau's words first: the run, the step, the target (a
    person by name; a channel by its name in the org chart, which has no other), what happens
    next, and only then the technical error, in brackets and cut short."""
    if row.recipient_kind == "channel":
        target = f"通道 {row.recipient} "
        todo = "请立即改用电话等方式报送，并请管理员检查该通道。"
    else:
        target = org.person_name(row.recipient) if org is not None else row.recipient
        todo = f"请立即改用电话等方式通知{target}，并请管理员检查其接收地址。"
    what = f"「{step.title}」" if step is not None else f"「{row.title}」"
    state = (f"仍未送达，已停止重试（共 {row.attempts} 次）" if given_up
             else "发送失败，系统正在重试")
    error = " ".join((row.last_error or "").split())
    if len(error) > _TOLD_ERROR_HEAD + _TOLD_ERROR_TAIL + 1:
        error = f"{error[:_TOLD_ERROR_HEAD]}…{error[-_TOLD_ERROR_TAIL:]}"
    return (f"{run.title}：{what}发往{target}的消息{state}。{todo}"
            + (f"（技术信息：{error}）" if error else ""))


def _answerable(session: Session, row: Notification, run: Run, step: StepInstance | None,
                org: OrgChart | None, catalog: Catalog | None) -> list[str]:
    """Who is told that `row` did not get through: the people who answer for getting it there.

    - A message of an automatic step (a notify step's report, the serving of a document)
      carries the work of the steps it `needs`: whoever completed them is told, e.g. the duty
      officer who wrote the first report the duty room signs, or the section chief who listed
      the hazard whose 督办通知书 it is (automatic or skipped steps in between are looked
      through to the work behind them; a step done by nobody yet counts its assignees).
    - A message of a person's task (its assignment, a reminder, the ladder's 督办函 and 约谈通知)
      is the supervising office's to serve: the holders, resolved at the step's unit, of the
      role that decides the step's requests for more time (`extension.role`, which the playbook
      spec calls the supervising role), or, for a step without one, of the roles the playbook
      names so on its other steps. In hazard-3030 that is the street's 安全生产办公室
      (section_chief): it lists the hazard, reviews the plan, decides extensions and accepts the
      work, and the 督办函 of every step go out in its name (督办单位), not in the name of
      the grid worker who found the hazard. A playbook naming no such role (gas-leak) adds
      nobody here.
    - The run's starter, when a person (they answer for the run); for a register entry (a
      hazard, whose starter is who found it) only when nobody above answers for it.
    - When that is nobody, as for a console-started run (`cli`) whose message no one's work
      is behind, the commanders over the unit its step is held at (else the run's).

    The failed message's own recipient is not told of it (their in-app copy arrived, and they
    cannot phone themselves). Without an org chart (library callers) only the starter is told.
    """
    if org is None:
        return [run.started_by]
    people: list[str] = []
    playbook = _pinned(catalog, session, run.playbook_sha) if step is not None else None
    if step is not None and playbook is not None and step.step_key in playbook.step_ids:
        spec = playbook.step(step.step_key)
        if spec.action == "task":
            people += _supervisors(org, playbook, spec, step.unit_id)
        else:
            people += _who_did(session, playbook, run.id or 0, spec.needs)
    # The starter answers for a response (the commander); a register entry's starter is who
    # found the hazard (a grid worker), who is told only when nobody else answers for it.
    answered = [p for p in people if p in org.people and p != row.recipient]
    if not (answered and playbook is not None and playbook.register_ is not None):
        people.append(run.started_by)
    told = [p for p in dict.fromkeys(people) if p in org.people and p != row.recipient]
    # The commanders over the unit the message's step is held at (a duty-room step `at:` the
    # district: the district's commander, not the street's, who can do nothing there).
    where = step.unit_id if step is not None and step.unit_id in org.units else run.unit_id
    if told or where not in org.units:
        return told
    return [p.id for p in org.resolve_role("commander", where)[1] if p.id != row.recipient]


def _supervisors(org: OrgChart, playbook: Playbook, spec: StepSpec, unit_id: str) -> list[str]:
    """Holders of the step's supervising role(s) at its unit (see `_answerable`)."""
    if spec.extension is not None:
        roles = [spec.extension.role]
    else:
        roles = list(dict.fromkeys(s.extension.role for s in playbook.steps if s.extension))
    if unit_id not in org.units:
        return []
    return [p.id for role in roles for p in org.resolve_role(role, unit_id)[1]]


def _who_did(session: Session, playbook: Playbook, run_id: int, needs: list[str]) -> list[str]:
    """Who completed the task steps behind `needs`, looking through automatic steps, waits and
    skipped steps (no row) to the needs behind them."""
    people: list[str] = []
    seen: set[str] = set()
    keys = list(needs)
    while keys := [k for k in dict.fromkeys(keys) if k not in seen]:
        seen.update(keys)
        # A called-off instance handed out again is not who did it (flows/rehand.py).
        rows = current(session.exec(select(StepInstance).where(
            StepInstance.run_id == run_id, col(StepInstance.step_key).in_(keys),
        ).order_by(col(StepInstance.item_index))).all())
        behind: list[str] = []
        for key in keys:
            spec = playbook.step(key)
            did = [p for r in rows if r.step_key == key
                   for p in ([r.submitted_by] if r.submitted_by else r.assignees)]
            if spec.action == "task" and did:
                people += did
            else:
                behind += spec.needs
        keys = behind
    return people


# The compiled playbooks runs pinned, by sha256: immutable, and a handful per installation.
def _pinned(catalog: Catalog | None, session: Session, sha256: str) -> Playbook | None:
    """The playbook a run pinned (the catalog's, cached there), None without a catalog."""
    if catalog is None:
        return None
    try:
        return catalog.pinned(session, sha256)
    except NotFound:
        return None


def undelivered(engine: Engine, now: datetime) -> dict[str, int]:
    """For /healthz: deliveries whose last attempt failed and that are still being retried,
    and those given up in the last 24 hours (both from partial indexes: normally empty)."""
    with read_session(engine) as session:
        failing = session.exec(select(func.count()).select_from(Notification).where(
            Notification.status == PENDING, Notification.attempts > 0)).one()
        dead = session.exec(select(func.count()).select_from(Notification).where(
            Notification.status == DEAD,
            Notification.created_at >= now - timedelta(hours=24))).one()  # type: ignore[operator]
    return {"failing": int(failing), "given_up_24h": int(dead)}


# --------------------------------------------------------------------------------------------
# The worker


class OutboxWorker:
    """Delivers the outbox from a daemon thread: a pass every `interval` seconds, at once after
    `wake()` (call it after committing notifications), and again whenever a lane ends.

    A pass does not wait for its deliveries: it starts a lane (thread) for each receiver with
    rows due whose lane is not already running, up to `lanes`, and each lane sends that
    receiver's rows one at a time. A receiver that hangs keeps its own lane busy, while the
    next pass, a second later, starts lanes for everybody else's new rows.

    Several workers (threads or processes) may run against one database: rows are claimed."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock,
        interval: float = 1.0,
        limit: int = 100,
        sender: Sender = send,
        org: OrgChart | None = None,
        catalog: Catalog | None = None,
        lanes: int = LANES,
    ) -> None:
        self.engine = engine
        self.org = org
        self.catalog = catalog
        self.clock = clock
        self.interval = interval
        self.limit = limit
        self.sender = sender
        self.lanes = lanes
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: dict[str, threading.Thread] = {}  # receiver -> its lane
        self._running_lock = threading.Lock()
        self._tally = _Tally()  # everything the lanes did since start, for `delivered`

    @property
    def delivered(self) -> DeliveryReport:
        """What the worker's lanes have done since it was made (run_once not included)."""
        return self._tally.report

    def run_once(self) -> DeliveryReport:
        """One pass, waiting for its deliveries (tests and tools; the worker's own loop does
        not wait)."""
        return deliver_due(self.engine, clock=self.clock, limit=self.limit, sender=self.sender,
                           org=self.org, catalog=self.catalog, stop=self._stop,
                           lanes=self.lanes)

    def wake(self) -> None:
        """Ask for a pass soon (without waiting for the interval)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="closeloop-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after each lane's current delivery (bounded by the Apprise timeouts)."""
        self._stop.set()
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._running_lock:
            lanes = list(self._running.values())
        for lane in lanes:
            lane.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            # Cleared before the pass: a wake() (or a lane ending) during it triggers another.
            self._wake.clear()
            try:
                self._start_lanes()
            except Exception:  # e.g. the database is briefly unavailable: try again later
                logger.exception("outbox delivery pass failed")
            self._wake.wait(self.interval)

    def _start_lanes(self) -> None:
        with self._running_lock:
            self._running = {r: t for r, t in self._running.items() if t.is_alive()}
            busy = tuple(self._running)
        free = self.lanes - len(busy)
        if free <= 0:
            return
        due = by_destination(_due_rows(self.engine, self.clock, self.limit, busy))
        for receiver, ids in list(due.items())[:free]:
            lane = threading.Thread(target=self._lane, args=(ids,), daemon=True,
                                    name="closeloop-outbox-lane")
            with self._running_lock:
                self._running[receiver] = lane
            lane.start()

    def _lane(self, ids: list[int]) -> None:
        try:
            _deliver_lane(self.engine, ids, clock=self.clock, sender=self.sender,
                          org=self.org, catalog=self.catalog, stop=self._stop,
                          tally=self._tally)
        except Exception:  # the rows stay claimed until their lease runs out, then go again
            logger.exception("outbox lane failed")
        finally:
            self._wake.set()  # its receiver is free again, and more may be due
