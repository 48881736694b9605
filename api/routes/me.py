"""Who the caller is, for the web pages: name, unit, roles, the units they may pick and the
playbooks they may start, and the server's clock (pages count deadlines down from it, not from
a phone's own clock, which may be wrong and is never the tests' moved clock)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CurrentPerson, RuntimeDep
from flows.access import is_admin, may_start
from flows.duty import on_duty_now
from flows.spec import Playbook
from models.org import ROLE_NAMES_ZH

router = APIRouter(tags=["system"])


# The start page preselects the first playbook: a commander woken at 3 a.m. by a gas leak
# should find an emergency response there, not the month's hazard campaign.
_URGENT_KINDS = ("response", "typhoon")


def _urgent_first(playbook: Playbook) -> tuple[int, str]:
    kind = playbook.kind or ""
    rank = _URGENT_KINDS.index(kind) if kind in _URGENT_KINDS else len(_URGENT_KINDS)
    return rank, playbook.id


@router.get("/api/me")
def me(rt: RuntimeDep, person: CurrentPerson) -> dict[str, Any]:
    """The caller: roles, the units they work in (their own and below, the whole chart for an
    administrator), the playbooks they may start in their own unit, and the server's time."""
    org = rt.org
    who = org.person(person)
    unit = org.unit(who.unit_id)
    top = org.root_id if is_admin(org, person) else who.unit_id
    units = [org.unit(u) for u in org.descendants(top)]
    startable = [
        {"id": pb.id, "title": pb.title, "title_en": pb.title_en, "kind": pb.kind,
         # Served from its last good version: its file is broken (flows/catalog.py).
         "broken_file": rt.catalog.fallbacks.get(pb.id)}
        for pb in sorted(rt.catalog.current.values(), key=_urgent_first)
        if may_start(org, person, list(pb.started_by), who.unit_id)
    ]
    now = rt.clock.now()
    return {
        "id": who.id, "name": who.name, "name_en": who.name_en, "title": who.title,
        "unit_id": unit.id, "unit_name": unit.name, "unit_type": unit.type,
        "roles": [{"role": r, "name": ROLE_NAMES_ZH.get(r, r)} for r in who.roles],
        "commander": org.has_right(person, "commander", who.unit_id),
        "manager": org.has_right(person, "manager", who.unit_id),
        # May publish the monthly ranking (a manager of the whole district).
        "publisher": org.has_right(person, "manager", org.root_id),
        "admin": is_admin(org, person),
        "units": [{"id": u.id, "name": u.name, "type": u.type, "parent_id": u.parent_id}
                  for u in units],
        "startable": startable,
        "now": now, "now_local": rt.renderer.local(now, "%Y-%m-%d %H:%M:%S"),
        "timezone": rt.settings.timezone,
        # The largest photo the API takes: a page refuses a bigger one before sending it,
        # rather than after a minute of uploading it over a phone's network.
        "max_evidence_bytes": rt.settings.max_evidence_bytes,
        # Who is on duty now in the duty rooms that serve them (their unit and above) and
        # below them: 今日值班：黄磊（至 12-04 08:30）.
        "on_duty": on_duty_now(org, rt.tz, now, [*org.ancestors(who.unit_id),
                                                 *org.descendants(top, include_self=False)]),
    }
