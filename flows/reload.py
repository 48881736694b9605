"""Reading the org chart, the playbooks and the working-day calendar again while the server runs
(`POST /api/admin/reload`, or SIGHUP to `closeloop serve`).

A duty officer falls ill at 3 a.m. and the duty leader swaps the shift in the roster; the city
publishes next year's holidays; a playbook gets its next version. Before, each needed a restart
of the server: the duty room's pages gone for the while, the sweeper stopped. Now the operator
edits the files and reloads.

All or nothing: every file is read and checked first, the playbooks against the org chart as
it now is (a playbook naming a role the new chart dropped is an error; a broken chart is
reported alone, since there is no chart to check them against). One mistake anywhere and
nothing changes: the running server keeps what it had, and every mistake is reported at
file:line:col, like `closeloop validate`. That is stricter than a start, which serves a broken
playbook's last good version: at a start there is nothing else to serve, here there is.

What a reload changes is what a restart would: the runtime's org chart, catalog and calendar
are swapped, each an immutable object, so a request reads either the old one or the new one.
Runs keep the playbook version they pinned. Deadlines already counted stay as they were, but
for the working-day ones a newly listed year re-counts (flows/calendar_recount.py), as at a
start. Each process reloads its own files: with several servers on one PostgreSQL database,
reload each of them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.apprise_urls import usable_url
from flows.catalog import Catalog
from flows.role_typos import suspect_names
from flows.runtime import ReloadAttempt, Runtime
from flows.workcal import CalendarError, WorkCalendar
from models.db import session_scope
from models.errors import OrgInvalid, SourceError, SourceInvalid
from models.org import OrgChart, load_org
from models.writes import add_event

log = logging.getLogger("closeloop.reload")

# Two reloads at once (an admin's request and a SIGHUP) would each build a runtime and the
# later swap would win whatever it read: one at a time.
_lock = threading.Lock()


class SetupInvalid(SourceInvalid):
    """A reload found mistakes in the files; nothing was changed."""

    error_code = "setup_invalid"


@dataclass
class Reloaded:
    """What a reload changed, in the terms an operator checks it by."""

    org_changed: bool = False
    people_added: list[str] = field(default_factory=list)
    people_removed: list[str] = field(default_factory=list)
    people_changed: list[str] = field(default_factory=list)  # roles, notify, unit or name
    units_added: list[str] = field(default_factory=list)
    units_removed: list[str] = field(default_factory=list)
    units_changed: list[str] = field(default_factory=list)  # name, type or place in the tree
    rosters_changed: list[str] = field(default_factory=list)  # "unit/role"
    channels_changed: list[str] = field(default_factory=list)
    playbooks: dict[str, str] = field(default_factory=dict)  # id -> "v1 → v2" / "新增" / "移除"
    calendar_changed: bool = False
    calendar_years: list[int] = field(default_factory=list)
    # Roles that look misspelt (flows/role_typos.py): loaded all the same, but said.
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.org_changed or bool(self.playbooks) or self.calendar_changed

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "org": {"changed": self.org_changed, "people_added": self.people_added,
                    "people_removed": self.people_removed,
                    "people_changed": self.people_changed, "units_added": self.units_added,
                    "units_removed": self.units_removed,
                    "units_changed": self.units_changed,
                    "rosters_changed": self.rosters_changed,
                    "channels_changed": self.channels_changed},
            "playbooks": self.playbooks,
            "calendar": {"changed": self.calendar_changed, "years": self.calendar_years},
            "warnings": self.warnings,
        }

    def summary(self) -> str:
        """One line for the log and the audit trail, Chinese first."""
        if not self.changed:
            return "文件均无变化 / nothing changed"
        parts: list[str] = []
        if self.org_changed:
            bits = [f"{label} {', '.join(ids)}" for label, ids in (
                ("新增人员", self.people_added), ("移除人员", self.people_removed),
                ("人员变更", self.people_changed), ("新增单位", self.units_added),
                ("移除单位", self.units_removed),
                ("单位变更", self.units_changed), ("值班表变更", self.rosters_changed),
                ("通道变更", self.channels_changed)) if ids]
            parts.append("组织架构：" + "；".join(bits))
        if self.playbooks:
            parts.append("流程：" + "，".join(f"{pid} {what}"
                                              for pid, what in sorted(self.playbooks.items())))
        if self.calendar_changed:
            parts.append("工作日历：" + "、".join(str(y) for y in self.calendar_years))
        return "；".join(parts)


def reload_setup(rt: Runtime, *, actor: str) -> Reloaded:
    """Read the org chart, playbooks and calendar again and, if every file is right, swap them
    into `rt`; SetupInvalid (nothing changed) listing every mistake otherwise. The reload is in
    the audit trail with who asked and what changed."""
    with _lock:
        settings = rt.settings
        errors: list[SourceError] = []
        org: OrgChart | None = None
        try:
            org = load_org(settings.org_path, url_ok=usable_url)
        except OrgInvalid as exc:
            errors += exc.errors
        # As at a start (flows/runtime.py): no calendar file, Mon-Fri.
        calendar = WorkCalendar.weekends_only()
        if settings.calendar_path.exists():
            try:
                calendar = WorkCalendar.from_file(settings.calendar_path)
            except CalendarError as exc:
                errors += exc.errors
        catalog: Catalog | None = None
        if org is not None:
            catalog = Catalog(settings.playbooks, org)
            errors += catalog.errors
        if errors or org is None or catalog is None:
            rt.last_reload = ReloadAttempt(at=rt.clock.now(), actor=actor, refused=True,
                                           errors=tuple(str(e) for e in errors),
                                           files=tuple(sorted({Path(e.file).name
                                                               for e in errors})))
            log.warning("重新加载被拒绝，仍使用原有配置 / reload refused, nothing changed:\n%s",
                        "\n".join(str(e) for e in errors))
            raise SetupInvalid(errors)
        outcome = _compare(rt, org, catalog, calendar)
        outcome.warnings = [str(w) for w in suspect_names(org, catalog.current.values())]
        for warning in outcome.warnings:
            log.warning("%s", warning)
        catalog.adopt_pins(rt.catalog)
        # Catalog and calendar before the org chart: a request that meets the new org chart
        # already finds the playbooks checked against it.
        rt.catalog = catalog
        rt.calendar = calendar
        rt.org = org
        rt.last_reload = ReloadAttempt(at=rt.clock.now(), actor=actor, refused=False)
        with session_scope(rt.db) as session:
            add_event(session, at=rt.clock.now(), actor=actor, action="setup_reloaded",
                      run_id=None, detail={"summary": outcome.summary(), **outcome.as_dict()})
        log.warning("已重新加载 / reloaded: %s", outcome.summary())
        return outcome


def _compare(rt: Runtime, org: OrgChart, catalog: Catalog, calendar: WorkCalendar) -> Reloaded:
    old = rt.org
    out = Reloaded()
    out.people_added = sorted(set(org.people) - set(old.people))
    out.people_removed = sorted(set(old.people) - set(org.people))
    out.people_changed = sorted(pid for pid in set(org.people) & set(old.people)
                                if org.people[pid] != old.people[pid])
    out.units_added = sorted(set(org.units) - set(old.units))
    out.units_removed = sorted(set(old.units) - set(org.units))
    out.rosters_changed = sorted(f"{unit}/{role}" for unit, role in
                                 set(org.rosters) | set(old.rosters)
                                 if org.rosters.get((unit, role)) != old.rosters.get((unit, role)))
    out.channels_changed = sorted(name for name in set(org.channels) | set(old.channels)
                                  if org.channels.get(name) != old.channels.get(name))
    new_tree, old_tree = _tree(org), _tree(old)
    out.units_changed = sorted(uid for uid in set(new_tree) & set(old_tree)
                               if new_tree[uid] != old_tree[uid])
    out.org_changed = any((out.people_added, out.people_removed, out.people_changed,
                           out.units_added, out.units_removed, out.units_changed,
                           out.rosters_changed, out.channels_changed))
    before, after = rt.catalog.current, catalog.current
    for pid in sorted(set(before) | set(after)):
        was, now = before.get(pid), after.get(pid)
        if was is None and now is not None:
            out.playbooks[pid] = f"新增 v{now.version}"
        elif now is None and was is not None:
            out.playbooks[pid] = "移除"
        elif was is not None and now is not None and was.sha256 != now.sha256:
            out.playbooks[pid] = f"v{was.version} → v{now.version}"
    out.calendar_changed = _days(calendar) != _days(rt.calendar)
    out.calendar_years = list(calendar.years)
    return out


def _tree(org: OrgChart) -> dict[str, Any]:
    """Each unit as it matters: name, type and place in the tree (its people compared apart)."""
    return {uid: (u.name, u.name_en, u.type, u.parent_id, u.child_ids)
            for uid, u in org.units.items()}


def _days(calendar: WorkCalendar) -> tuple[Any, ...]:
    """A calendar by what it decides: the years it lists, their holidays and make-up days."""
    return (calendar.years, calendar.holidays, calendar.workdays)
