"""Turning `notify:`/`to:` entries (roles or named channels) into outbox rows.

A person gets their in-app inbox (delivered at once, needs nothing outside) plus each of their
own Apprise URLs; a channel gets its URL. Rows are plain dicts so the sweeper can insert a
thousand at once."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from models.org import OrgChart
from models.outbox import DELIVERED, INBOX_URL, PENDING


def resolve_targets(
    org: OrgChart, targets: Iterable[str], unit_id: str
) -> tuple[list[str], list[str]]:
    """(person ids, channel names) for roles resolved up the tree from `unit_id`, and channels."""
    people: list[str] = []
    channels: list[str] = []
    for target in targets:
        if target in org.channels:
            channels.append(target)
            continue
        _, holders = org.resolve_role(target, unit_id)
        people.extend(p.id for p in holders)
    return list(dict.fromkeys(people)), list(dict.fromkeys(channels))


def unreached_roles(org: OrgChart, targets: Iterable[str], unit_id: str) -> list[str]:
    """The roles among `targets` that nobody holds at `unit_id` or above it: a message to
    them reaches no one (a street's alert `to: [community_head]` finds no community head up
    the tree), which the run's timeline must say rather than read as sent."""
    return list(dict.fromkeys(
        t for t in targets if t not in org.channels and not org.resolve_role(t, unit_id)[1]))


def notification_rows(
    org: OrgChart,
    *,
    people: Iterable[str],
    channels: Iterable[str] = (),
    kind: str,
    title: str,
    body: str,
    dedupe: str,
    now: datetime,
    run_id: int | None,
    step_id: int | None,
    escalation_id: int | None = None,
    inbox_only: bool = False,
    quiet: Collection[str] = (),
) -> list[dict[str, Any]]:
    """`quiet`: people told in the inbox only, off duty by a roster (flows/duty.py)."""
    rows: list[dict[str, Any]] = []

    def row(recipient_kind: str, recipient: str, url: str, n: int) -> dict[str, Any]:
        inbox = url == INBOX_URL
        return {
            "dedupe_key": f"{dedupe}|{recipient_kind}:{recipient}|{n}",
            "message_id": None if inbox else f"closeloop-{uuid.uuid4().hex}",
            "run_id": run_id,
            "step_id": step_id,
            "escalation_id": escalation_id,
            "kind": kind,
            "recipient_kind": recipient_kind,
            "recipient": recipient,
            "url": url,
            "title": title,
            "body": body,
            "status": DELIVERED if inbox else PENDING,
            "attempts": 0,
            "next_attempt_at": None if inbox else now,
            "created_at": now,
            "delivered_at": now if inbox else None,
            "last_error": None,
        }

    # One message per target URL: leaders who share a screen (one json:// URL for all of
    # them) see each alert once, not once per person; everyone keeps their own inbox copy.
    sent_to: set[str] = set()
    for person_id in people:
        rows.append(row("person", person_id, INBOX_URL, 0))
        if inbox_only or person_id in quiet:
            continue
        person = org.people.get(person_id)
        for n, url in enumerate(person.notify if person else (), start=1):
            if url not in sent_to:
                sent_to.add(url)
                rows.append(row("person", person_id, url, n))
    for channel in channels:
        url = org.channels[channel]
        if url not in sent_to:
            sent_to.add(url)
            rows.append(row("channel", channel, url, 0))
    return rows
