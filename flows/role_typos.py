"""Roles of the org chart that look like a misspelling of a role the playbooks use.

A person given `inspecter` instead of `inspector` loads fine: the chart has no list of roles
to hold them to, and the playbooks load as long as someone else holds `inspector`. That
inspector then never receives a task, and nobody is told. A role no playbook, roster or
built-in right uses, and close in spelling to one that is used, is almost surely such a typo:
said as a warning (at the person's roles line) at start, by `closeloop validate` on the org
chart, and in a reload's answer. Not an error: a bureau may give roles no playbook uses yet.

Unit types the same way: a street written `type: stret` loads, and then `units(type='street')`
passes it over (no typhoon measures for it) and `at: street` never stops there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from difflib import get_close_matches
from typing import Any

from flows.locate import zh_en
from flows.recipients import flat_targets
from flows.spec import Playbook
from models.errors import SourceError
from models.org import OrgChart

# Rights the product gives by role name, whether or not a playbook names them (flows/access.py).
BUILT_IN_ROLES = frozenset({"commander", "manager", "admin"})
# Where a playbook names roles: a step's and a verifier's `role`, a notice's or a ladder
# level's recipients, who may start it.
_ROLE_KEYS = frozenset({"role", "to", "notify", "started_by"})
# `units(type='street', ...)` in an expression (for_each above all).
_UNITS_TYPE = re.compile(r"""units\([^)]*\btype\s*=\s*['"]([A-Za-z0-9_-]+)['"]""")


def roles_named(playbooks: Iterable[Playbook]) -> set[str]:
    """Every name a playbook gives where a role goes (channel names among them, harmlessly)."""
    def roles(key: str, item: Any) -> Iterable[str] | None:
        if key not in _ROLE_KEYS:
            return None
        return flat_targets([item] if isinstance(item, str) else
                            [x for x in item or () if isinstance(x, str)])

    named: set[str] = set()
    for playbook in playbooks:
        _collect(playbook.model_dump(), named, roles)
    return named


def _collect(value: Any, into: set[str], keyed: Callable[[str, Any], Iterable[str] | None],
             text: Callable[[str], Iterable[str]] = lambda _: ()) -> None:
    """The names `keyed` finds under a key (None: look further in) and `text` in a string."""
    if isinstance(value, dict):
        for key, item in value.items():
            found = keyed(key, item)
            if found is None:
                _collect(item, into, keyed, text)
            else:
                into.update(found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, into, keyed, text)
    elif isinstance(value, str):
        into.update(text(value))


def suspect_roles(org: OrgChart, playbooks: Iterable[Playbook]) -> list[SourceError]:
    """A warning per person holding a role nobody uses that is spelt like one that is used."""
    used = roles_named(playbooks) | BUILT_IN_ROLES | {role for _, role in org.rosters}
    warnings: list[SourceError] = []
    for role in sorted(org.roles - used):
        close = get_close_matches(role, sorted(used), n=1, cutoff=0.8)
        if not close:
            continue
        for person in sorted((p for p in org.people.values() if role in p.roles),
                             key=lambda p: p.id):
            where = org.roles_written_at.get(person.id)
            if where is None:
                continue
            warnings.append(_at(where, zh_en(
                f"警告：角色 {role} 没有流程使用，疑为 {close[0]} 之误，"
                f"{person.name}（{person.id}）收不到 {close[0]} 的任务",
                f"warning: no playbook uses role '{role}'; meant '{close[0]}'? "
                f"'{person.id}' receives no '{close[0]}' task")))
    return warnings


def unit_types_named(playbooks: Iterable[Playbook]) -> set[str]:
    """Every unit type a playbook holds a step or a ladder level at, or fans out over."""
    named: set[str] = set()
    for playbook in playbooks:
        _collect(playbook.model_dump(), named,
                 lambda key, item: [item] if key == "at" and isinstance(item, str) else None,
                 _UNITS_TYPE.findall)
    return named


def suspect_unit_types(org: OrgChart, playbooks: Iterable[Playbook]) -> list[SourceError]:
    """A warning per unit of a type nobody uses that is spelt like one that is used."""
    used = unit_types_named(playbooks)
    warnings: list[SourceError] = []
    for unit in sorted(org.units.values(), key=lambda u: u.id):
        if unit.type in used:
            continue
        close = get_close_matches(unit.type, sorted(used), n=1, cutoff=0.8)
        where = org.types_written_at.get(unit.id)
        if not close or where is None:
            continue
        warnings.append(_at(where, zh_en(
            f"警告：单位类型 {unit.type} 没有流程使用，疑为 {close[0]} 之误，"
            f"{unit.name}（{unit.id}）不会按 {close[0]} 收到任务",
            f"warning: no playbook uses unit type '{unit.type}'; meant '{close[0]}'? "
            f"'{unit.id}' gets no task meant for a '{close[0]}'")))
    return warnings


def _at(where: SourceError, message: str) -> SourceError:
    return SourceError(where.file, where.line, where.col, where.path, message)


def suspect_names(org: OrgChart, playbooks: Iterable[Playbook]) -> list[SourceError]:
    """Roles, then unit types, of the org chart that look misspelt beside the playbooks."""
    books = list(playbooks)
    return suspect_roles(org, books) + suspect_unit_types(org, books)
