"""Sending a given-up notification again. A delivery is given up after MAX_ATTEMPTS (about an
hour of retries) or at once for a URL Apprise cannot use; a duty office's gateway down for the
night would otherwise lose a first report for good, even once the operator has fixed it. The
run's commander (or the admin) puts it back in the outbox; the timeline says who did."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from flows.access import is_admin, require_right
from models.db import session_scope
from models.errors import Conflict, Forbidden, NotFound
from models.org import OrgChart
from models.outbox import DEAD, INBOX_URL, PENDING, Notification
from models.run import Run
from models.writes import add_event


def resend(engine: Engine, org: OrgChart, *, notification_id: int, actor: str,
           now: datetime) -> Notification:
    with session_scope(engine) as session:
        row = session.get(Notification, notification_id)
        if row is None:
            raise NotFound("notification", str(notification_id))
        run = session.get(Run, row.run_id) if row.run_id is not None else None
        if run is None:
            if not is_admin(org, actor):
                raise Forbidden("重新发送此通知需要系统管理员的权限 / resending this "
                                "notification requires the admin")
        elif run.unit_id in org.units or not is_admin(org, actor):
            require_right(org, actor, "commander", run.unit_id)
        if row.url == INBOX_URL:
            raise Conflict("站内通知无需重新发送 / an in-app notification is not sent",
                           current=row.status)
        if row.status != DEAD:
            raise Conflict("只有发送失败（已放弃）的通知可以重新发送 / only a notification given "
                           "up can be sent again", current=row.status)
        # Conditional on the status read: two people pressing at once put it back once.
        moved = session.execute(
            update(Notification).where(col(Notification.id) == notification_id,
                                       col(Notification.status) == DEAD)
            .values(status=PENDING, attempts=0, next_attempt_at=now)
        ).rowcount  # type: ignore[attr-defined]
        if moved != 1:
            raise Conflict("该通知已被他人重新发送 / someone else has just resent it",
                           current=PENDING)
        add_event(session, at=now, actor=actor, action="delivery_resent", run_id=row.run_id,
                  step_id=row.step_id, detail={"notification": notification_id,
                                               "recipient": row.recipient, "title": row.title})
        session.flush()
        session.refresh(row)
        session.expunge(row)
        return row
