"""The loopback receiver's rules (routes in api/routes/system.py): which channels exist, which
deliveries it takes, and who may read what arrived.

A channel exists when the org chart points a json:// (or jsons://) URL at this receiver: a
named channel (`channels:`, e.g. county_duty_office -> .../api/receiver/county-duty) or a
person's notify URL (the demo's leaders -> .../api/receiver/leaders). Any other name is 404.

Taking a delivery (POST): the body must have the shape Apprise's json:// plugin sends
(apprise/plugins/custom_json.py NotifyJSON.send: version, title, message, attachments, type;
nothing else), and it must be a notification the outbox is delivering right now: a pending
Notification to one of the channel's URLs with the same title and body (the outbox keeps a row
pending while it sends it; flows/notify.py). So no local process can post a message the
server never sent, and nothing is stored twice over by a stranger.

Reading a channel (GET): admins read everything. Otherwise a channel is read by whoever it
serves: holders of a product right (commander, manager: they direct and review runs, and a
duty-office channel shows what runs reported) and the people whose own notify URL it is. Of
its deliveries each sees only those of runs they may read (flows/access.py, the rule of
GET /api/runs/{id}) or addressed to them; a delivery matches its notification by channel URL,
title and body (identical text from several runs is shown if any of them is readable: the
reader can read that text anyway)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_
from sqlmodel import Session, col, select

from flows.access import can_read_unit, is_admin
from flows.runtime import Runtime
from models.db import read_session, session_scope
from models.documents import ReceivedMessage
from models.errors import Forbidden, NotFound
from models.org import ROLE_NAMES_ZH, OrgChart
from models.outbox import PENDING, Notification
from models.run import Run

RECEIVER_PATH = "/api/receiver/"
CHANNEL_MAX = 80  # ReceivedMessage.channel
PAGE = 200  # deliveries read per query while filtering what a reader may see
READERS = frozenset({"commander", "manager"})  # besides admins and the channel's own people


class AppriseAttachment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str
    base64: str
    mimetype: str


class AppriseJsonPayload(BaseModel):
    """The JSON body Apprise's json:// plugin posts (apprise 1.x, payload version 1.0)."""

    model_config = ConfigDict(extra="forbid")
    version: str = Field(max_length=10, description="Apprise's JSON payload version, 1.0")
    title: str
    message: str
    type: Literal["info", "success", "warning", "failure"] = Field(
        description="apprise.NotifyType")
    attachments: list[AppriseAttachment] = Field(default_factory=list)


def channel_of(url: str) -> str | None:
    """The receiver channel a json:// URL delivers to, or None for any other URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("json", "jsons"):
        return None
    path = parts.path.rstrip("/")
    if not path.startswith(RECEIVER_PATH):
        return None
    name = path[len(RECEIVER_PATH):]
    return name if name and "/" not in name else None


def channel_urls(org: OrgChart) -> dict[str, frozenset[str]]:
    """Every receiver channel the org chart points at, with the URLs that deliver to it."""
    urls = [*org.channels.values(), *(u for p in org.people.values() for u in p.notify)]
    found: dict[str, set[str]] = {}
    for url in urls:
        name = channel_of(url)
        if name is not None:
            found.setdefault(name, set()).add(url)
    return {name: frozenset(us) for name, us in found.items()}


def _urls(org: OrgChart, channel: str) -> frozenset[str]:
    urls = channel_urls(org).get(channel)
    if urls is None:
        raise NotFound("channel", channel[:CHANNEL_MAX])
    return urls


def accept(rt: Runtime, channel: str, payload: AppriseJsonPayload) -> ReceivedMessage:
    """Store a delivery to `channel`; NotFound for a channel the org chart has not,
    Forbidden for a message the outbox is not delivering there."""
    urls = _urls(rt.org, channel)
    # Read apart from the write: the match once ran inside the write transaction, holding
    # SQLite's lock while it scanned, and the segment runner waited behind it.
    with read_session(rt.db) as session:
        # Apprise trims the text it sends (every template's closing newline is gone by the
        # time it arrives), so the match ignores whitespace. A channel may have thousands
        # pending (a sweep that escalates a district's overdue hazards, a typhoon's fan-out):
        # only the rows being sent now are read (the outbox claims a row by moving its
        # next attempt past now, flows/notify._claim: a short range of the due index), then
        # narrowed to those containing the trimmed text, and only those are compared.
        title, message = payload.title.strip(), payload.message.strip()
        candidates = session.exec(
            select(Notification.title, Notification.body).where(
                col(Notification.next_attempt_at) > rt.clock.now(),
                col(Notification.url).in_(list(urls)), Notification.status == PENDING,
                col(Notification.title).contains(title, autoescape=True),
                col(Notification.body).contains(message, autoescape=True),
            ).limit(PAGE)
        ).all()
    wanted = (_words(title), _words(message))
    if not any((_words(t), _words(b)) == wanted for t, b in candidates):
        raise Forbidden("接收端只接受本服务器正在投递到该通道的通知 / the receiver only "
                        "accepts notifications this server is delivering to this channel")
    with session_scope(rt.db) as session:
        row = ReceivedMessage(channel=channel[:CHANNEL_MAX], received_at=rt.clock.now(),
                              title=payload.title, body=payload.message,
                              payload=payload.model_dump())
        session.add(row)
        session.flush()
        session.expunge(row)
    return row


def _words(text: str | None) -> str:
    return " ".join((text or "").split())


def may_read_channel(org: OrgChart, person_id: str, channel: str) -> bool:
    person = org.person(person_id)
    if is_admin(org, person_id) or READERS & set(person.roles):
        return True
    return any(channel_of(url) == channel for url in person.notify)


def readable(rt: Runtime, person_id: str, channel: str, limit: int) -> list[ReceivedMessage]:
    """The newest `limit` deliveries on `channel` the person may read (see the module)."""
    urls = _urls(rt.org, channel)
    if not may_read_channel(rt.org, person_id, channel):
        zh = "、".join(ROLE_NAMES_ZH.get(r, r) for r in sorted(READERS))
        raise Forbidden(f"无权查看该接收通道：可由{zh}、系统管理员或该通道的接收人查看；本流程的"
                        "送达情况见 GET /api/runs/{id}/notifications / you may not read this "
                        f"channel's deliveries: roles {', '.join(sorted(READERS))}, admin or the "
                        "channel's own people may; a run's deliveries are at "
                        "GET /api/runs/{id}/notifications")
    everything = is_admin(rt.org, person_id)
    shown: list[ReceivedMessage] = []
    before: int | None = None
    with read_session(rt.db) as session:
        # Newest first, a page at a time, until `limit` readable ones are found.
        while len(shown) < limit:
            query = select(ReceivedMessage).where(
                ReceivedMessage.channel == channel[:CHANNEL_MAX])
            if before is not None:
                query = query.where(col(ReceivedMessage.id) < before)
            rows = session.exec(query.order_by(col(ReceivedMessage.id).desc()).limit(PAGE)).all()
            if not rows:
                break
            before = rows[-1].id
            visible = list(rows)
            if not everything:
                keys = _readable_keys(session, rt.org, person_id, urls, rows)
                visible = [r for r in rows if (_words(r.title), _words(r.body)) in keys]
            shown += visible[: limit - len(shown)]
    return shown


def _readable_keys(session: Session, org: OrgChart, person_id: str, urls: Iterable[str],
                   rows: Iterable[ReceivedMessage]) -> set[tuple[str, str]]:
    """(title, body), whitespace folded as Apprise delivers them, of the notifications to the
    channel's URLs among those of `rows` that were addressed to the person or belong to a run
    they may read."""
    titles = {t for r in rows if r.title is not None for t in (r.title, r.title.strip())}
    if not titles:
        return set()
    notes = session.exec(
        select(Notification.title, Notification.body, Notification.run_id,
               Notification.recipient_kind, Notification.recipient)
        .where(col(Notification.url).in_(list(urls)),
               # A sent title may have had whitespace that Apprise dropped at its end.
               or_(col(Notification.title).in_(titles),
                   *(col(Notification.title).startswith(t, autoescape=True) for t in titles)))
    ).all()
    run_ids = {n[2] for n in notes if n[2] is not None}
    units = dict(session.exec(select(Run.id, Run.unit_id).where(
        col(Run.id).in_(run_ids))).all()) if run_ids else {}
    readable_runs = {rid for rid, unit in units.items()
                     if unit in org.units and can_read_unit(org, person_id, unit)}
    return {(_words(title), _words(body)) for title, body, run_id, kind, recipient in notes
            if (kind == "person" and recipient == person_id) or run_id in readable_runs}
