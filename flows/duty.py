"""Who is woken on their own channels when a message goes to a rostered role: the person on
duty (models/roster.py), not every holder.

Off-duty holders still get the in-app inbox copy and may act (the inbox and the rights are
keyed by role and unit): only the phone/DingTalk/e-mail messages follow the roster, so the
duty room's three officers do not all learn to ignore alerts. When the roster names someone
who cannot take this message (gone from the chart, no longer holding the role there, or not
among the people this message is for, e.g. a task handed out before the roster changed) every
holder is messaged as before and the fallback is said: nobody is ever left un-alerted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from flows.recipients import flat_targets
from models.audit import SYSTEM
from models.org import ROLE_NAMES_ZH, OrgChart
from models.roster import Roster, Shift
from models.task import StepInstance

log = logging.getLogger(__name__)

# A message's people reached through one role: (role, unit where it resolved, person ids).
Group = tuple[str, str | None, Sequence[str]]

_REASONS_ZH = {
    "missing": "已不在组织架构中",
    "not_holder": "已不担任该角色",
    "not_addressed": "不在本条消息的接收人之中",
}


@dataclass(frozen=True)
class Fallback:
    """A roster that could not pick the person on duty for one message."""

    role: str
    unit_id: str
    person_id: str  # whom the roster names for this shift
    reason: str  # missing | not_holder | not_addressed

    def detail(self, org: OrgChart) -> dict[str, Any]:
        """The timeline event's detail: what happened, in Chinese (`cause` is the code; not
        `reason`, which the run page shows as a person's 原因)."""
        role_name = ROLE_NAMES_ZH.get(self.role, self.role)
        name = org.person_name(self.person_id)
        return {
            "role": self.role, "role_name": role_name, "unit": self.unit_id,
            "unit_name": org.unit_name(self.unit_id), "on_duty": self.person_id,
            "on_duty_name": name, "cause": self.reason,
            "message": f"值班表排定的{role_name}{name}{_REASONS_ZH[self.reason]}，"
                       f"已通知全部{role_name}",
        }


@dataclass(frozen=True)
class DutyCut:
    """Of a message's people, those who get only the inbox copy (off duty), and fallbacks."""

    quiet: frozenset[str] = frozenset()
    fallbacks: list[Fallback] = field(default_factory=list)


def role_groups(org: OrgChart, targets: Iterable[str], unit_id: str) -> list[Group]:
    """The roles among `targets` (`to:`/`notify:` entries) resolved up from `unit_id`, each
    with where it resolved and its holders (as flows/recipients.resolve_targets finds them)."""
    groups: list[Group] = []
    for target in flat_targets(targets):
        if target in org.channels:
            continue
        found_at, holders = org.resolve_role(target, unit_id)
        if holders:
            groups.append((target, found_at, [p.id for p in holders]))
    return groups


def task_group(role: str | None, assignee_unit_id: str | None, assignee_person_id: str | None,
               assignees: Sequence[str]) -> list[Group]:
    """A task's holders as a role group; none for a task handed to a named person (改派),
    who is told whatever the roster says: it is theirs alone."""
    if role is None or assignee_person_id is not None:
        return []
    return [(role, assignee_unit_id, list(assignees))]


def holders_cut(org: OrgChart, tz: tzinfo, now: datetime, inst: StepInstance) -> DutyCut:
    """Telling a task's holders what became of it (called off, a round withdrawn): on their
    channels as they heard of it, the one on duty of a rostered role and whoever signed for
    it (an officer whose shift has ended is still on it); the others in the inbox."""
    return duty_cut(org, tz, now, task_group(inst.role, inst.assignee_unit_id,
                                             inst.assignee_person_id, inst.assignees),
                    others=[inst.acked_by] if inst.acked_by else [])


def fallback_events(org: OrgChart, cut: DutyCut, *, run_id: int | None, step_id: int | None,
                    now: datetime) -> list[dict[str, Any]]:
    """The `duty_fallback` timeline rows of a cut (a roster that could not pick the one on
    duty, so every holder was messaged), for models.writes.insert_rows."""
    return [{"run_id": run_id, "step_id": step_id, "at": now, "actor": SYSTEM,
             "action": "duty_fallback", "from_state": None, "to_state": None,
             "detail": fallback.detail(org)} for fallback in cut.fallbacks]


def duty_cut(org: OrgChart, tz: tzinfo, now: datetime, groups: Iterable[Group], *,
             others: Iterable[str] = ()) -> DutyCut:
    """Who of `groups` is off duty at `now`: in a group with a roster in force, everyone but
    the person on duty, unless they are also reached another way (an unrostered role, a
    named person: `others`)."""
    loud = set(others)
    off: set[str] = set()
    fallbacks: list[Fallback] = []
    # One role in one unit reached twice (a task's holders chased, and a level naming their
    # role) is one group: whoever of it is on duty is woken once, and is among them.
    merged: dict[tuple[str, str | None], list[str]] = {}
    for role, unit_id, people in groups:
        merged.setdefault((role, unit_id), []).extend(people)
    for (role, unit_id), people in merged.items():
        if not people:
            continue
        roster = org.roster(role, unit_id)
        shift = roster.shift(now, tz) if roster is not None else None
        if roster is None or shift is None:  # no roster, or not in force yet
            loud.update(people)
            continue
        reason = _unusable(org, roster, shift, people)
        if reason is not None:
            fallbacks.append(Fallback(role, roster.unit_id, shift.person_id, reason))
            log.warning("值班表 %s/%s 排定的 %s %s，已通知全部 %d 名持有人 / roster %s/%s names "
                        "%s (%s): every holder is messaged", roster.unit_id, role,
                        shift.person_id, _REASONS_ZH[reason], len(people), roster.unit_id, role,
                        shift.person_id, reason)
            loud.update(people)
            continue
        loud.add(shift.person_id)
        off.update(p for p in people if p != shift.person_id)
    return DutyCut(quiet=frozenset(off - loud), fallbacks=fallbacks)


def _unusable(org: OrgChart, roster: Roster, shift: Shift, people: Sequence[str]) -> str | None:
    person = org.people.get(shift.person_id)
    if person is None:
        return "missing"
    if person.unit_id != roster.unit_id or roster.role not in person.roles:
        return "not_holder"
    if shift.person_id not in people:
        return "not_addressed"
    return None


def on_duty_now(org: OrgChart, tz: tzinfo, now: datetime,
                unit_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Who is on duty now in each roster in force (of `unit_ids`, or all), for the pages:
    今日值班：黄磊（至 12-04 08:30）."""
    wanted = None if unit_ids is None else set(unit_ids)
    out: list[dict[str, Any]] = []
    for (unit_id, role), roster in org.rosters.items():
        if wanted is not None and unit_id not in wanted:
            continue
        shift = roster.shift(now, tz)
        if shift is None:
            continue
        out.append({
            "unit_id": unit_id, "unit_name": org.unit_name(unit_id), "role": role,
            "role_name": ROLE_NAMES_ZH.get(role, role), "person": shift.person_id,
            "person_name": org.person_name(shift.person_id), "swapped": shift.swapped,
            "until": shift.ends_at,
            "until_local": shift.ends_at.astimezone(tz).strftime("%m-%d %H:%M"),
        })
    return out
