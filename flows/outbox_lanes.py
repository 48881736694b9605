"""Which notifications share a receiver, so the outbox can send to each receiver in its own lane.

A county duty office's webhook that hangs costs every delivery to it up to
CONNECT_TIMEOUT + READ_TIMEOUT. Sent one after another, a hundred rows queued for it held up
a gas leak's first report to everybody else for twenty-five minutes. The outbox therefore
sends to different receivers at once, one lane per receiver, and within a lane one row at a
time in the order the rows are due (a receiver is not sent two copies racing each other).

A receiver (`destination`) is the URL up to its path: scheme, credentials, host and port, as
written. Two URLs to one host under different schemes count as two receivers; that only
means they may be sent to at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, func
from sqlmodel import col

from models.outbox import Notification

_PATH_STARTS = "/?#"


def destination(url: str) -> str:
    """The receiver a notification URL delivers to: `json://host:8080/hook?x=1` gives
    `json://host:8080`. A string without `://` is its own receiver."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    ends = [i for i in (rest.find(c) for c in _PATH_STARTS) if i >= 0]
    return f"{scheme}{sep}{rest[:min(ends)] if ends else rest}"


def by_destination(rows: Iterable[tuple[int, str]]) -> dict[str, list[int]]:
    """Notification ids grouped by receiver; receivers in the order of their first row and
    each receiver's ids in the order given (the order they are due)."""
    lanes: dict[str, list[int]] = {}
    for notification_id, url in rows:
        lanes.setdefault(destination(url), []).append(notification_id)
    return lanes


def not_to(receiver: str) -> ColumnElement[bool]:
    """SQL: the notification's URL does not deliver to `receiver` (the inverse of
    `destination(url) == receiver`), so a pass can skip receivers whose lane is still busy
    without reading their backlog. substr, not LIKE: URLs carry `_` and `%`."""
    url = col(Notification.url)
    after = [receiver + c for c in _PATH_STARTS]
    return and_(url != receiver, func.substr(url, 1, len(receiver) + 1).not_in(after))
