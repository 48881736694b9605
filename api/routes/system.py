"""Health, the caller's in-app inbox of notifications, and the loopback receiver that lets the
demo show Apprise deliveries without any outside service."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from api import receiver as loopback
from api.deps import CurrentPerson, Offset, RowId, RuntimeDep
from api.document_html import document_heading, document_html
from api.errors import DATABASE_DOWN
from api.playbook_view import playbook_json
from api.redact import mask_error, mask_url
from flows.access import require_read_run
from flows.calendar_gaps import LOOKAHEAD, years_to_add
from flows.lifecycle import load_run
from flows.notify import undelivered
from flows.numbering import RUN_SUBJECT, issued_for_run
from flows.resend import resend
from flows.runtime import Runtime
from models.db import read_session
from models.documents import Document
from models.drill import is_drill_document, marked_title
from models.errors import Forbidden, NotFound
from models.outbox import INBOX_URL, DeliveryAttempt, Notification
from models.task import StepInstance

router = APIRouter(tags=["system"])
log = logging.getLogger("closeloop.api")

# Every time below is UTC (ISO) with its `*_local` twin in the bureau's zone (CLOSELOOP_TIMEZONE).
# Deliveries are retried seconds apart (flows/notify.backoff), so the outbox record and the
# receiver show seconds, as a run's timeline does.
SECONDS = "%Y-%m-%d %H:%M:%S"


@router.get("/healthz", response_model=None)
def health(request: Request, rt: RuntimeDep) -> dict[str, Any] | JSONResponse:
    """Database reachable, and the state of the background workers. A database that cannot be
    reached is a 503 saying so (a load balancer or an operator's probe reads the status)."""
    workers = getattr(request.app.state, "workers", None)
    try:
        with read_session(rt.db) as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        outbox = undelivered(rt.db, rt.clock.now())
    except SQLAlchemyError as exc:
        # The reason (host, port) goes to the log, not to an unauthenticated probe.
        log.warning("health: database unavailable: %s",
                    str(getattr(exc, "orig", None) or exc).splitlines()[0][:300])
        return JSONResponse(status_code=503, content={
            "status": "down", "database": rt.db.dialect.name, "error": DATABASE_DOWN["detail"]})
    state = workers.health() if workers else {}
    # Deadlines not being kept, reports not reaching the offices they are due to, or automatic
    # steps that keep failing, is not "ok", even though the server answers.
    # A playbook file that fails to load cannot be started (a typo in gas-leak.yaml, an org
    # edit that took a role's last holder): the commander would find it gone at 3 a.m.
    disk = _disk(rt)
    failing = (bool(state.get("sweeper", {}).get("failing")) or any(outbox.values())
               or bool(state.get("prefect", {}).get("failing_runs"))
               or bool(state.get("prefect", {}).get("error"))
               or bool(rt.catalog.errors) or disk["low"]
               or bool(rt.last_reload and rt.last_reload.refused))
    return {"status": "degraded" if failing else "ok", "database": rt.db.dialect.name,
            "playbooks": len(rt.catalog.current), "playbook_errors": len(rt.catalog.errors),
            "playbook_files_failed": sorted({Path(e.file).name for e in rt.catalog.errors}),
            "outbox": outbox, "calendar": _calendar(rt), "disk": disk,
            "reload": _reload(rt), **state}


def _disk(rt: Runtime) -> dict[str, Any]:
    """Free space where the data dir is (SQLite's file, evidence, kept imports): low below
    CLOSELOOP_MIN_FREE_DISK_MB, so the operator hears before a full disk refuses a commander's
    start (503 database_disk_full), not after. No path: a probe is unauthenticated."""
    try:
        free = shutil.disk_usage(rt.settings.data_dir).free
    except OSError:  # the data dir gone or unreadable: that is not "enough room"
        return {"free_mib": None, "min_free_mib": rt.settings.min_free_disk_mb, "low": True}
    mib = free // 2**20
    return {"free_mib": mib, "min_free_mib": rt.settings.min_free_disk_mb,
            "low": mib < rt.settings.min_free_disk_mb}


def _reload(rt: Runtime) -> dict[str, Any] | None:
    """The latest reload of this process, None before the first. A refused one (a SIGHUP says
    so only in the log) keeps the server on what it had, but the files as they are would not
    load at a restart: `degraded` until a reload takes. The mistakes themselves (people's ids
    and names among them) go to the log and the admin's answer, not to this open probe: here
    only how many, and in which files."""
    last = rt.last_reload
    if last is None:
        return None
    return {"at": last.at, "at_local": rt.renderer.local(last.at), "actor": last.actor,
            "refused": last.refused, "error_count": len(last.errors),
            "files_failed": list(last.files)}


def _calendar(rt: Runtime) -> dict[str, Any]:
    """The working-day calendar's years, and those within LOOKAHEAD it lacks: deadlines in
    working days that reach them are counted Mon-Fri, and say so (`due_estimated`)."""
    return {"source": rt.calendar.source, "years": list(rt.calendar.years),
            "missing_soon": years_to_add(rt, rt.clock.now()), "lookahead_days": LOOKAHEAD.days}


@router.get("/api/inbox")
def inbox(rt: RuntimeDep, person: CurrentPerson,
          limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Offset = 0) -> dict[str, Any]:
    """Notifications sent to the caller (in-app), newest first; `count` is all of them."""
    mine = (Notification.recipient == person, Notification.url == INBOX_URL)
    with read_session(rt.db) as session:
        rows = session.exec(
            select(Notification).where(*mine)
            .order_by(Notification.id.desc()).offset(offset).limit(limit)  # type: ignore[union-attr]
        ).all()
        total = session.exec(select(func.count()).select_from(Notification).where(*mine)).one()
    return {"data": [{"id": n.id, "kind": n.kind, "title": n.title, "body": n.body,
                      "run_id": n.run_id, "step_id": n.step_id, "at": n.created_at,
                      "at_local": rt.renderer.local(n.created_at)} for n in rows],
            "count": total, "limit": limit, "offset": offset}


@router.get("/api/runs/{run_id}/notifications")
def run_notifications(run_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> dict[str, Any]:
    """Every notification of a run with its text and its delivery attempts (the outbox record):
    what a 续报 or 终报 said, to whom and when, is part of the run's history (迟报、瞒报 are
    asked about). URLs show scheme and host only (api/redact.py): the rest of an Apprise URL
    is its credentials."""
    _require_readable(rt, person, run_id)
    with read_session(rt.db) as session:
        notes = session.exec(select(Notification).where(Notification.run_id == run_id)
                             .order_by(Notification.id)).all()
        ids = [n.id for n in notes]
        attempts = session.exec(select(DeliveryAttempt).where(
            DeliveryAttempt.notification_id.in_(ids))).all() if ids else []  # type: ignore[attr-defined]
    url_of = {n.id: n.url for n in notes}
    # One rendering per distinct text: a 续报 to thirty offices is thirty rows of one body.
    html_of = {body: document_html(body) for body in {n.body for n in notes}}
    by_note: dict[int, list[dict[str, Any]]] = {}
    for a in attempts:
        by_note.setdefault(a.notification_id, []).append(
            {"at": a.at, "at_local": rt.renderer.local(a.at, SECONDS), "ok": a.ok,
             "error": mask_error(a.error, url_of[a.notification_id]),
             "duration_ms": a.duration_ms})
    return {"data": [{"id": n.id, "kind": n.kind, "recipient": n.recipient,
                      "recipient_name": _served_on(rt, n.recipient)["name"],
                      "recipient_kind": n.recipient_kind, "url": mask_url(n.url),
                      "title": n.title, "body": n.body, "html": html_of[n.body],
                      "step_id": n.step_id,
                      "status": n.status, "attempts": by_note.get(n.id or 0, []),
                      "created_at": n.created_at,
                      "created_at_local": rt.renderer.local(n.created_at, SECONDS),
                      "delivered_at": n.delivered_at,
                      "delivered_at_local": rt.renderer.local(n.delivered_at, SECONDS) or None}
                     for n in notes]}


@router.post("/api/notifications/{notification_id}/resend")
def resend_notification(notification_id: RowId, rt: RuntimeDep,
                        person: CurrentPerson) -> dict[str, Any]:
    """Put a given-up (dead) delivery back in the outbox, its attempts counted afresh: for the
    run's commander or the admin, once the target is fixed. 409 for one not given up."""
    row = resend(rt.db, rt.org, notification_id=notification_id, actor=person,
                 now=rt.clock.now())
    return {"id": row.id, "status": row.status, "recipient": row.recipient,
            "url": mask_url(row.url), "title": row.title}


@router.get("/api/runs/{run_id}/documents")
def run_documents(run_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> dict[str, Any]:
    """Documents of the run in the order they were made: those its steps filed (first report,
    notices, forms) and the letters its escalation ladders sent (督办函, 约谈通知)."""
    _require_readable(rt, person, run_id)
    with read_session(rt.db) as session:
        docs = session.exec(select(Document).where(Document.run_id == run_id)
                            .order_by(Document.created_at, Document.id)).all()  # type: ignore[arg-type]
        issued = issued_for_run(session, run_id)
        keys = dict(session.exec(select(StepInstance.id, StepInstance.step_key).where(
            StepInstance.run_id == run_id)).all())
    # `for`: "document" when a step filed it, "escalation" for a letter of a ladder, which
    # also says whom it was served on and when (`sent_at`). `numbers`: every 文号 the run
    # was issued, in the order issued, so a manager can say which number went where and when.
    return {"data": [_document(rt, d, keys.get(d.step_id)) for d in docs],
            "numbers": [{"number": n.text, "step": n.step_key,
                         "for": "document" if n.subject == RUN_SUBJECT else "escalation",
                         "issued_at": n.issued_at,
                         "issued_at_local": rt.renderer.local(n.issued_at)} for n in issued]}


@router.get("/api/runs/{run_id}/documents/{document_id}")
def run_document(run_id: RowId, document_id: RowId, rt: RuntimeDep,
                 person: CurrentPerson) -> dict[str, Any]:
    """One document of the run, as the list gives it: what its printable page
    (/runs/{run_id}/documents/{document_id}) shows. 404 for a document of another run."""
    _require_readable(rt, person, run_id)
    with read_session(rt.db) as session:
        d = session.get(Document, document_id)
        if d is None or d.run_id != run_id:
            raise NotFound("document", document_id)
        key = session.get(StepInstance, d.step_id)
    return _document(rt, d, key.step_key if key else None)


@router.get("/api/runs/{run_id}/playbook")
def run_playbook(run_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> dict[str, Any]:
    """The compiled playbook version the run started with, as GET /api/playbooks/{id} gives
    the current one (without template texts). The run and task pages draw a step's form and
    stage names from it: a playbook edited while runs are in flight must not show them the
    new version's fields while the API checks their answers against the one they pinned."""
    with read_session(rt.db) as session:
        run = load_run(session, run_id)
        require_read_run(rt.org, person, run)
        playbook = rt.catalog.pinned(session, run.playbook_sha)
    return playbook_json(playbook)


def _require_readable(rt: Runtime, person: str, run_id: int) -> None:
    """The run's own visibility rule (404 for no such run, 403 outside the person's units), as
    GET /api/runs/{id} applies it, without building that whole view: the run page reads the
    notifications and documents beside the run on every refresh."""
    with read_session(rt.db) as session:
        require_read_run(rt.org, person, load_run(session, run_id))


def _document(rt: Runtime, d: Document, step_key: str | None) -> dict[str, Any]:
    """`body` is the Markdown as filed (to copy or download); `html` the same rendered for the
    page, with nothing typed into a value taken as markup (api/document_html.py); `heading`
    the document's own title (its first heading), `title` the record's (the step that filed
    it, or the ladder rung and step of a letter)."""
    letter = bool(d.subject)
    return {"id": d.id, "step_id": d.step_id, "step": step_key, "title": d.title,
            "heading": _heading(d.body), "html": document_html(d.body),
            "number": d.number, "template": d.template, "body": d.body,
            "created_at": d.created_at, "created_at_local": rt.renderer.local(d.created_at),
            "for": "escalation" if letter else "document", "level": d.level,
            "repeat": d.repeat if letter else None,
            "recipients": [_served_on(rt, r) for r in d.recipients],
            "sent_at": d.created_at if letter else None,
            "sent_at_local": rt.renderer.local(d.created_at) if letter else None}


def _heading(body: str) -> str | None:
    """The document's own title; a drill's says 【演练】, as its record's title does: the
    document page shows it as its heading and tab title, the run page lists it by it."""
    heading = document_heading(body)
    return marked_title(heading) if heading and is_drill_document(body) else heading


def _served_on(rt: Runtime, recipient: str) -> dict[str, str]:
    """A letter's recipient by name: a named channel of the org chart, else a person (by id,
    when they have left the chart since)."""
    if recipient in rt.org.channels and recipient not in rt.org.people:
        return {"id": recipient, "kind": "channel", "name": recipient}
    return {"id": recipient, "kind": "person", "name": rt.org.person_name(recipient)}


@router.post("/api/receiver/{channel}", status_code=201)
def receive(channel: str, payload: loopback.AppriseJsonPayload, request: Request,
            rt: RuntimeDep) -> dict[str, Any]:
    """Loopback receiver for this server's own Apprise json:// deliveries to a channel of the
    org chart (rules in api/receiver.py). Accepts only connections from this machine."""
    client = request.client.host if request.client else ""
    if client not in ("127.0.0.1", "::1", "testclient"):
        raise Forbidden("接收端只接受本机投递 / the receiver only accepts loopback deliveries")
    row = loopback.accept(rt, channel, payload)
    return {"ok": True, "id": row.id}


@router.get("/api/receiver/{channel}")
def received(channel: str, rt: RuntimeDep, person: CurrentPerson,
             limit: Annotated[int, Query(ge=1, le=200)] = 200) -> dict[str, Any]:
    """What the loopback receiver got on a channel, newest first: for admins, commanders,
    managers and the channel's own people, and only deliveries of runs the caller may read."""
    rows = loopback.readable(rt, person, channel, limit)
    return {"data": [{"id": r.id, "title": r.title, "body": r.body,
                      "received_at": r.received_at,
                      "received_at_local": rt.renderer.local(r.received_at, SECONDS)}
                     for r in rows]}
