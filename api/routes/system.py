"""Health, the caller's in-app inbox of notifications, and the loopback receiver that lets the
demo show Apprise deliveries without any outside service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, text
from sqlmodel import select

from api import receiver as loopback
from api.deps import CurrentPerson, Offset, RowId, RuntimeDep
from api.redact import mask_error, mask_url
from flows.notify import undelivered
from flows.numbering import RUN_SUBJECT, issued_for_run
from models.db import read_session
from models.documents import Document
from models.errors import Forbidden
from models.outbox import INBOX_URL, DeliveryAttempt, Notification

router = APIRouter(tags=["system"])


@router.get("/healthz")
def health(request: Request, rt: RuntimeDep) -> dict[str, Any]:
    """Database reachable, and the state of the background workers."""
    with read_session(rt.db) as session:
        session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    workers = getattr(request.app.state, "workers", None)
    state = workers.health() if workers else {}
    outbox = undelivered(rt.db, rt.clock.now())
    # Deadlines not being kept, or reports not reaching the offices they are due to, is not
    # "ok", even though the server answers.
    failing = bool(state.get("sweeper", {}).get("failing")) or any(outbox.values())
    return {"status": "degraded" if failing else "ok", "database": rt.db.dialect.name,
            "playbooks": len(rt.catalog.current), "playbook_errors": len(rt.catalog.errors),
            "outbox": outbox, **state}


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
    """Every notification of a run with its delivery attempts (the outbox record). URLs show
    scheme and host only (api/redact.py): the rest of an Apprise URL is its credentials."""
    from api.routes.runs import read as read_run  # same visibility rule as the run itself

    read_run(run_id, rt, person)
    with read_session(rt.db) as session:
        notes = session.exec(select(Notification).where(Notification.run_id == run_id)
                             .order_by(Notification.id)).all()
        ids = [n.id for n in notes]
        attempts = session.exec(select(DeliveryAttempt).where(
            DeliveryAttempt.notification_id.in_(ids))).all() if ids else []  # type: ignore[attr-defined]
    url_of = {n.id: n.url for n in notes}
    by_note: dict[int, list[dict[str, Any]]] = {}
    for a in attempts:
        by_note.setdefault(a.notification_id, []).append(
            {"at": a.at, "ok": a.ok, "error": mask_error(a.error, url_of[a.notification_id]),
             "duration_ms": a.duration_ms})
    return {"data": [{"id": n.id, "kind": n.kind, "recipient": n.recipient,
                      "recipient_kind": n.recipient_kind, "url": mask_url(n.url),
                      "title": n.title, "status": n.status, "attempts": by_note.get(n.id or 0, []),
                      "created_at": n.created_at, "delivered_at": n.delivered_at}
                     for n in notes]}


@router.get("/api/runs/{run_id}/documents")
def run_documents(run_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> dict[str, Any]:
    """Documents the run rendered (first report, notices, forms)."""
    from api.routes.runs import read as read_run

    read_run(run_id, rt, person)
    with read_session(rt.db) as session:
        docs = session.exec(select(Document).where(Document.run_id == run_id)).all()
        issued = issued_for_run(session, run_id)
    # `numbers`: every 文号 the run was issued, the ladder's letters (sent as messages, not
    # filed as documents) included, so a manager can say which number went where and when.
    return {"data": [{"id": d.id, "step_id": d.step_id, "title": d.title, "number": d.number,
                      "template": d.template, "body": d.body, "created_at": d.created_at}
                     for d in docs],
            "numbers": [{"number": n.text, "step": n.step_key,
                         "for": "document" if n.subject == RUN_SUBJECT else "escalation",
                         "issued_at": n.issued_at,
                         "issued_at_local": rt.renderer.local(n.issued_at)} for n in issued]}


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
                      "received_at": r.received_at} for r in rows]}
