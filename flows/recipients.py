"""Turning `notify:`/`to:` entries (roles or named channels) into outbox rows.

A person gets their in-app inbox (delivered at once, needs nothing outside) plus each of their
own Apprise URLs; a channel gets its URL. Rows are plain dicts so the sweeper can insert a
thousand at once."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from models.org import OrgChart
from models.outbox import DELIVERED, INBOX_URL, PENDING

# One `to:`/`notify:` entry naming alternatives: `community_head|enterprise_head` is the unit's
# head, whichever of the two the unit has (a community never has an enterprise head).
ALTERNATIVE = "|"


def alternatives(target: str) -> list[str]:
    """The roles or channels one entry names: itself, or each of `a|b` (blanks dropped)."""
    if ALTERNATIVE not in target:
        return [target]
    return [t.strip() for t in target.split(ALTERNATIVE) if t.strip()]


def flat_targets(targets: Iterable[str]) -> list[str]:
    """Every role or channel named by `targets`, alternatives spelled out, in order."""
    return list(dict.fromkeys(t for target in targets for t in alternatives(target)))


def target_name(target: str, names: Mapping[str, str]) -> str:
    """An entry as a person reads it: `community_head|enterprise_head` is
    社区负责人或企业负责人."""
    return "或".join(names.get(t, t) for t in alternatives(target))


def resolve_targets(
    org: OrgChart, targets: Iterable[str], unit_id: str
) -> tuple[list[str], list[str]]:
    """(person ids, channel names) for roles resolved up the tree from `unit_id`, and channels;
    each of an entry's alternatives is resolved (whichever the unit has reaches someone)."""
    people: list[str] = []
    channels: list[str] = []
    for target in flat_targets(targets):
        if target in org.channels:
            channels.append(target)
            continue
        _, holders = org.resolve_role(target, unit_id)
        people.extend(p.id for p in holders)
    return list(dict.fromkeys(people)), list(dict.fromkeys(channels))


def unreached_roles(org: OrgChart, targets: Iterable[str], unit_id: str) -> list[str]:
    """The entries among `targets` that reach nobody at `unit_id` or above it: a message to
    them reaches no one (a street's alert `to: [community_head]` finds no community head up
    the tree), which the run's timeline must say rather than read as sent. Each role of a
    plain list counts alone; an entry of alternatives (`community_head|enterprise_head`) is
    unreached only when none of them reaches anyone."""

    def reached(name: str) -> bool:
        return name in org.channels or bool(org.resolve_role(name, unit_id)[1])

    return list(dict.fromkeys(
        t for t in targets if not any(reached(a) for a in alternatives(t))))


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
