"""The org chart (SPEC §3): units in a tree, people holding roles in a unit, named channels.

A pure in-memory model loaded once from YAML. The engine asks it "who is the duty officer
for this community?" thousands of times per second while it assigns and escalates, so
every index is built at load time and the hot questions cost O(depth of the tree), never a
scan over all units or people:

- `_ancestors[unit]`            self first, up to the root (a tuple, computed once);
- `_holders[role][unit]`        people holding `role` in exactly that unit, sorted by id;
- `_order` / `_pos` / `_size`   the units in tree (pre-)order with each subtree's span, so
                                "is A within B" is two integer comparisons and the
                                descendants of a unit are one slice.

Loading validates everything and reports every mistake with file:line:col, the same way
playbooks do, because an operator editing the org file at 3 a.m. needs all the errors at
once, each pointing at the line to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import NotFound, OrgInvalid, SourceError
from models.roster import Roster, read_rosters
from models.yamlpos import PathKey, Positions, YamlSyntaxError, format_path, load_with_positions

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# An Apprise URL always has a scheme (mailto://, json://, dingtalk://, ...); anything else
# is almost always a bare e-mail address or phone number pasted into the wrong field.
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")

# The three role names that carry rights in the product itself (SPEC §3); every other role
# name belongs to the playbooks.
RIGHTS = frozenset({"commander", "manager", "admin"})
# What the usual role names are called in a bureau, for messages that name a role (the org
# chart names people, not roles); a role not listed is shown by its id alone.
ROLE_NAMES_ZH = {
    "admin": "系统管理员", "commander": "指挥长", "community_head": "社区负责人",
    "dept_head": "部门负责人", "deputy_director": "副局长", "director": "局长",
    "duty_leader": "带班领导", "duty_officer": "值班员", "enterprise_head": "企业负责人",
    "env_monitor": "环境监测人员", "expert": "专家", "fire_rescue": "消防救援",
    "gas_company": "燃气企业", "gas_regulator": "燃气主管部门", "grid_worker": "网格员",
    "inspector": "检查员", "manager": "科室负责人", "medical": "医疗救护",
    "police": "公安", "press_officer": "新闻发言人", "rescue_team": "救援队伍",
    "safety_officer": "安全员", "section_chief": "安全生产办公室负责人",
    "street_head": "街道办主任", "unit_head": "单位负责人",
}

_ZH = {"unit": "单位", "person": "人员"}  # what a message says an entry is
_TOP_KEYS = ("units", "channels", "rosters")
_UNIT_KEYS = ("id", "name", "name_en", "type", "people", "children")
_PERSON_KEYS = ("id", "name", "name_en", "title", "roles", "notify", "phone")


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    name_en: str | None
    unit_id: str
    roles: tuple[str, ...]
    notify: tuple[str, ...]  # Apprise URLs; the in-app inbox is implicit and needs none
    phone: str | None
    title: str | None = None  # post as people say it (局长, 值班员); display only


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    name_en: str | None
    type: str  # district | street | town | community | village | department | enterprise | ...
    parent_id: str | None
    child_ids: tuple[str, ...]
    person_ids: tuple[str, ...]


class OrgChart:
    """The loaded org chart; immutable after construction. Build it with `load_org`."""

    def __init__(
        self,
        *,
        units: dict[str, Unit],
        people: dict[str, Person],
        channels: dict[str, str],
        root_id: str,
        rosters: dict[tuple[str, str], Roster] | None = None,
        roles_written_at: dict[str, SourceError] | None = None,
        types_written_at: dict[str, SourceError] | None = None,
    ) -> None:
        self.units = units
        self.people = people
        self.channels = channels
        # Duty rosters (models/roster.py) by (unit id, role): few, read per message sent.
        self.rosters: dict[tuple[str, str], Roster] = dict(rosters or {})
        self.root_id = root_id
        self.roles: frozenset[str] = frozenset(r for p in people.values() for r in p.roles)
        # Person id -> where the file gives their roles (message empty), for warnings about a
        # role found fine here but suspect beside the playbooks (flows/role_typos.py).
        self.roles_written_at: dict[str, SourceError] = dict(roles_written_at or {})
        # Unit id -> where the file gives its type, for the same warnings about a unit type.
        self.types_written_at: dict[str, SourceError] = dict(types_written_at or {})

        # Tree order (pre-order, children in file order) with subtree spans.
        order: list[str] = []
        ancestors: dict[str, tuple[str, ...]] = {}
        stack: list[tuple[str, tuple[str, ...]]] = [(root_id, ())]
        while stack:
            uid, above = stack.pop()
            chain = (uid, *above)
            ancestors[uid] = chain
            order.append(uid)
            # Reversed so the first child is popped (visited) first.
            stack.extend((c, chain) for c in reversed(units[uid].child_ids))
        pos = {uid: i for i, uid in enumerate(order)}
        size = dict.fromkeys(order, 1)
        for uid in reversed(order):
            parent = units[uid].parent_id
            if parent is not None:
                size[parent] += size[uid]
        # Iterating `units` walks the tree in order, whatever order the caller built it in.
        self.units = {uid: units[uid] for uid in order}
        self._order: tuple[str, ...] = tuple(order)
        self._pos = pos
        self._size = size
        self._ancestors = ancestors

        holders: dict[str, dict[str, list[Person]]] = {}
        for person in people.values():
            for role in person.roles:
                holders.setdefault(role, {}).setdefault(person.unit_id, []).append(person)
        self._holders: dict[str, dict[str, tuple[Person, ...]]] = {
            role: {uid: tuple(sorted(ps, key=lambda p: p.id)) for uid, ps in by_unit.items()}
            for role, by_unit in holders.items()
        }

    # -- lookups ---------------------------------------------------------------------------

    def unit(self, unit_id: str) -> Unit:
        try:
            return self.units[unit_id]
        except KeyError:
            raise NotFound("unit", unit_id) from None

    def person(self, person_id: str) -> Person:
        try:
            return self.people[person_id]
        except KeyError:
            raise NotFound("person", person_id) from None

    def person_name(self, person_id: str) -> str:
        """The person's name for a message, or the id of someone no longer in the chart."""
        person = self.people.get(person_id)
        return person.name if person else person_id

    def unit_name(self, unit_id: str) -> str:
        """The unit's name for a message, or the id of a unit no longer in the chart."""
        unit = self.units.get(unit_id)
        return unit.name if unit else unit_id

    def channel(self, name: str) -> str:
        try:
            return self.channels[name]
        except KeyError:
            raise NotFound("channel", name) from None

    def people_in(self, unit_id: str) -> list[Person]:
        """People whose unit is exactly `unit_id`, in file order."""
        return [self.people[pid] for pid in self.unit(unit_id).person_ids]

    # -- the tree --------------------------------------------------------------------------

    def ancestors(self, unit_id: str, *, include_self: bool = True) -> list[str]:
        """Unit ids from `unit_id` (first, unless include_self=False) up to the root."""
        chain = self._chain(unit_id)
        return list(chain if include_self else chain[1:])

    def is_within(self, unit_id: str, ancestor_id: str) -> bool:
        """True when `unit_id` is `ancestor_id` or anywhere below it."""
        start = self._position(ancestor_id)
        return start <= self._position(unit_id) < start + self._size[ancestor_id]

    def descendants(self, unit_id: str, *, include_self: bool = True) -> list[str]:
        """`unit_id` and every unit below it, in tree order."""
        start = self._position(unit_id)
        first = start if include_self else start + 1
        return list(self._order[first : start + self._size[unit_id]])

    def units_where(self, *, type: str | None = None, within: str | None = None) -> list[Unit]:
        """Units of `type` (any when None) at or below `within` (the root when None), in
        tree order. Backs the playbook helper `units(type=..., within=...)`."""
        ids = self._order if within is None else self.descendants(within)
        units = self.units
        if type is None:
            return [units[uid] for uid in ids]
        return [units[uid] for uid in ids if units[uid].type == type]

    # -- roles and rights ------------------------------------------------------------------

    def held_at(self, unit_id: str, unit_type: str | None) -> str:
        """Where a step of `unit_id` is held when its playbook says `at: unit_type`: the
        nearest unit of that type at or above it. A run whose chain has no such unit (a
        district run under `at: street`) keeps its own unit: the step is still somebody's."""
        if unit_type is None:
            return unit_id
        for uid in self._chain(unit_id):
            if self.units[uid].type == unit_type:
                return uid
        return unit_id

    @property
    def unit_types(self) -> frozenset[str]:
        return frozenset(u.type for u in self.units.values())

    def resolve_role(self, role: str, unit_id: str) -> tuple[str | None, list[Person]]:
        """People holding `role` in `unit_id`, or else in the nearest ancestor that has any.

        Returns (unit where they were found, people sorted by id), or (None, []) when nobody
        up to the root holds the role. Unknown units raise NotFound.
        """
        chain = self._chain(unit_id)
        by_unit = self._holders.get(role)
        if by_unit:
            for uid in chain:
                found = by_unit.get(uid)
                if found:
                    return uid, list(found)
        return None, []

    def roster(self, role: str, unit_id: str | None) -> Roster | None:
        """The duty roster of `role` in exactly `unit_id` (where the role resolved), if any."""
        if unit_id is None:
            return None
        return self.rosters.get((unit_id, role))

    def person_role_units(self, person_id: str) -> list[tuple[str, str]]:
        """(role, unit_id) pairs the person holds; a person holds all roles in one unit."""
        person = self.person(person_id)
        return [(role, person.unit_id) for role in person.roles]

    def can_act_as(self, person_id: str, role: str, unit_id: str) -> bool:
        """True when the person holds `role` in `unit_id` or in a unit above it.

        An unknown person is simply not allowed (a token may outlive an org change); an
        unknown unit is a caller bug and raises NotFound.
        """
        self._position(unit_id)
        person = self.people.get(person_id)
        if person is None or role not in person.roles:
            return False
        return self.is_within(unit_id, person.unit_id)

    def has_right(self, person_id: str, right: str, unit_id: str) -> bool:
        """Product rights (commander | manager | admin) in `unit_id`: held there or above.

        `admin` operates the whole installation, so holding it anywhere grants every right
        everywhere.
        """
        if right not in RIGHTS:
            raise ValueError(f"unknown right {right!r}; expected one of {sorted(RIGHTS)}")
        person = self.people.get(person_id)
        if person is not None and "admin" in person.roles:
            return True  # also in a unit gone from the chart: an admin closes its runs out
        self._position(unit_id)
        if person is None:
            return False
        return right in person.roles and self.is_within(unit_id, person.unit_id)

    # -- internals -------------------------------------------------------------------------

    def _chain(self, unit_id: str) -> tuple[str, ...]:
        try:
            return self._ancestors[unit_id]
        except KeyError:
            raise NotFound("unit", unit_id) from None

    def _position(self, unit_id: str) -> int:
        try:
            return self._pos[unit_id]
        except KeyError:
            raise NotFound("unit", unit_id) from None

    def __repr__(self) -> str:
        return (
            f"OrgChart(root={self.root_id!r}, units={len(self.units)}, "
            f"people={len(self.people)}, channels={len(self.channels)})"
        )


# -- loading ---------------------------------------------------------------------------------


def load_org(path: Path, *, url_ok: Callable[[str], bool] | None = None) -> OrgChart:
    """Load and validate an org file; raises OrgInvalid listing every mistake. `url_ok`, given
    (flows.apprise_urls.usable_url), also refuses Apprise URLs Apprise cannot use."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError as exc:
        raise OrgInvalid([SourceError(str(path), 1, 1, "", "是目录，不是组织架构文件 / is a "
                                      "directory, not an org chart file")]) from exc
    except OSError as exc:
        raise OrgInvalid([SourceError(str(path), 1, 1, "", f"无法读取组织架构文件：{exc} / "
                                      f"cannot read org file: {exc}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A chart saved by a Chinese Windows editor is GBK: say so, at the line it breaks on.
        line = data[:exc.start].count(b"\n") + 1
        raise OrgInvalid([SourceError(
            str(path), line, 1, "", "文件不是 UTF-8 编码（可能是 GBK），请另存为 UTF-8 / the file "
            "is not UTF-8 (GBK?); save it as UTF-8")]) from exc
    return load_org_text(text, filename=str(path), url_ok=url_ok)


def load_org_text(text: str, *, filename: str,
                  url_ok: Callable[[str], bool] | None = None) -> OrgChart:
    try:
        data, positions = load_with_positions(text, filename)
    except YamlSyntaxError as exc:
        raise OrgInvalid([SourceError(filename, exc.line, exc.col, exc.path, exc.message)]) from exc
    return _Builder(filename, positions, url_ok=url_ok).build(data)


class _Builder:
    """Walks the parsed YAML once, collecting every error instead of stopping at the first."""

    def __init__(self, filename: str, positions: Positions,
                 url_ok: Callable[[str], bool] | None = None) -> None:
        self.filename = filename
        self.positions = positions
        self.url_ok = url_ok
        self.errors: list[SourceError] = []
        self.units: dict[str, Unit] = {}
        self.people: dict[str, Person] = {}
        self.unit_seen: dict[str, PathKey] = {}
        self.person_seen: dict[str, PathKey] = {}

    # error helpers: point at the value, or at the key when the key itself is the problem
    def error(self, path: PathKey, message: str, *, at_key: bool = False) -> None:
        mark = self.positions.of_key(path) if at_key else self.positions.of(path)
        self.errors.append(
            SourceError(self.filename, mark.line, mark.col, format_path(path), message)
        )

    def build(self, data: Any) -> OrgChart:
        if not isinstance(data, dict):
            self.error((), "组织架构文件应为包含 units（及可选 channels）的映射 / "
                           "an org file is a mapping with 'units' "
                           "(and optionally 'channels')")
            raise OrgInvalid(self.errors)
        self.unknown_keys(data, (), _TOP_KEYS)

        root_id: str | None = None
        units = data.get("units")
        if "units" not in data:
            self.error((), "缺少 units：须有一个根单位（区/县） / "
                           "missing 'units': the org needs one root unit "
                           "(the district/county)")
        elif not isinstance(units, list) or not units:
            self.error(("units",), "应为只含一个根单位的列表 / "
                                   "must be a list holding one root unit")
        else:
            if len(units) > 1:
                self.error(
                    ("units", 1),
                    f"只能有一个根单位，现有 {len(units)} 个顶层单位"
                    "（其余请放在根单位的 children 下） / "
                    f"the org has one root unit; found {len(units)} top-level units "
                    "(put the others under 'children' of the root)",
                )
            for i, raw in enumerate(units):
                uid = self.unit_entry(raw, ("units", i), parent_id=None)
                if i == 0:
                    root_id = uid

        channels = self.channels(data.get("channels"), "channels" in data)
        rosters = read_rosters(data.get("rosters"), units=self.units, people=self.people,
                               error=self.error,
                               declared_units=self.unit_seen,
                               declared_people=self.person_seen)

        if self.errors or root_id is None:
            if not self.errors:  # pragma: no cover - a missing root always records an error
                self.error(("units",), "没有有效的根单位 / no valid root unit")
            raise OrgInvalid(self.errors)
        return OrgChart(units=self.units, people=self.people, channels=channels, root_id=root_id,
                        rosters=rosters,
                        roles_written_at=self.written_at(self.person_seen, "roles"),
                        types_written_at=self.written_at(self.unit_seen, "type"))

    def written_at(self, seen: dict[str, PathKey], key: str) -> dict[str, SourceError]:
        """Where each unit's or person's `key` is written (message empty), by id."""
        out = {}
        for item_id, path in seen.items():
            where = (*path, key)
            mark = self.positions.of(where)
            out[item_id] = SourceError(self.filename, mark.line, mark.col, format_path(where), "")
        return out

    def unknown_keys(self, raw: dict[Any, Any], path: PathKey, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in raw:
            if key not in allowed:
                self.error(
                    (*path, key),
                    f"没有字段 {key}（可选：{'、'.join(allowed)}） / unknown key '{key}' "
                    f"(allowed: {', '.join(allowed)})",
                    at_key=True,
                )

    def slug(self, raw: dict[Any, Any], path: PathKey, what: str) -> str | None:
        """The `id` of a unit or person: required, a slug."""
        if "id" not in raw:
            self.error(path, f"{_ZH[what]}缺少 id / {what} is missing 'id'")
            return None
        value = raw["id"]
        if not isinstance(value, str) or not SLUG.match(value):
            self.error(
                (*path, "id"),
                f"{_ZH[what]} id {value!r} 只能由小写字母、数字、- 或 _ 组成，以字母或数字开头 / "
                f"{what} id {value!r} must be a slug: lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit",
            )
            return None
        return value

    def text(
        self, raw: dict[Any, Any], path: PathKey, key: str, what: str, *, required: bool
    ) -> str | None:
        if key not in raw or raw[key] is None:
            if required:
                self.error(path, f"{_ZH[what]}缺少 {key} / {what} is missing '{key}'")
            return None
        value = raw[key]
        if not isinstance(value, str) or not value.strip():
            self.error((*path, key), f"{key} 应为非空文本；收到 {value!r} / "
                                     f"'{key}' must be non-empty text; "
                                     f"got {value!r}")
            return None
        return value

    def unit_entry(self, raw: Any, path: PathKey, *, parent_id: str | None) -> str | None:
        if not isinstance(raw, dict):
            self.error(path, f"单位应为含 id、name、type 的映射；收到 {raw!r} / "
                             f"a unit is a mapping with id, "
                             f"name and type; got {raw!r}")
            return None
        self.unknown_keys(raw, path, _UNIT_KEYS)
        uid = self.slug(raw, path, "unit")
        name = self.text(raw, path, "name", "unit", required=True)
        name_en = self.text(raw, path, "name_en", "unit", required=False)
        utype = None
        if "type" not in raw:
            self.error(
                path,
                "单位缺少 type（district、street、town、community、village、department、"
                "enterprise、grid …） / unit is missing 'type' (district, street, town, "
                "community, village, department, enterprise, grid, ...)",
            )
        elif not isinstance(raw["type"], str) or not SLUG.match(raw["type"]):
            self.error((*path, "type"), f"单位类型 {raw['type']!r} 只能由小写字母、数字、- 或 _ "
                                        f"组成 / unit type {raw['type']!r} must be a slug")
        else:
            utype = raw["type"]

        if uid is not None:
            if uid in self.unit_seen:
                first = self.positions.of((*self.unit_seen[uid], "id"))
                self.error((*path, "id"), f"单位 id {uid} 重复（首次在第 {first.line} 行） / "
                                          f"duplicate unit id '{uid}' "
                                          f"(first at line {first.line})")
                uid = None  # keep the first one; still check what is below this entry
            else:
                self.unit_seen[uid] = path

        person_ids = self.people_list(raw, path, uid)
        child_ids: list[str] = []
        if "children" in raw and raw["children"] is not None:
            children = raw["children"]
            if not isinstance(children, list):
                self.error((*path, "children"), "应为单位列表 / must be a list of units")
            else:
                for i, child in enumerate(children):
                    cid = self.unit_entry(child, (*path, "children", i), parent_id=uid)
                    if cid is not None:
                        child_ids.append(cid)

        if uid is not None and name is not None and utype is not None:
            self.units[uid] = Unit(
                id=uid,
                name=name,
                name_en=name_en,
                type=utype,
                parent_id=parent_id,
                child_ids=tuple(child_ids),
                person_ids=tuple(person_ids),
            )
            return uid
        return None

    def people_list(self, raw: dict[Any, Any], path: PathKey, unit_id: str | None) -> list[str]:
        if "people" not in raw or raw["people"] is None:
            return []
        people = raw["people"]
        if not isinstance(people, list):
            self.error((*path, "people"), "应为人员列表 / must be a list of people")
            return []
        ids: list[str] = []
        for i, entry in enumerate(people):
            pid = self.person_entry(entry, (*path, "people", i), unit_id)
            if pid is not None:
                ids.append(pid)
        return ids

    def person_entry(self, raw: Any, path: PathKey, unit_id: str | None) -> str | None:
        if not isinstance(raw, dict):
            self.error(path, f"人员应为含 id、name、roles 的映射；收到 {raw!r} / "
                             f"a person is a mapping "
                             f"with id, name and roles; got {raw!r}")
            return None
        self.unknown_keys(raw, path, _PERSON_KEYS)
        pid = self.slug(raw, path, "person")
        name = self.text(raw, path, "name", "person", required=True)
        name_en = self.text(raw, path, "name_en", "person", required=False)
        title = self.text(raw, path, "title", "person", required=False)
        roles = self.roles(raw, path)
        notify = self.notify(raw, path)
        phone: str | None = None
        if raw.get("phone") is not None:
            value = raw["phone"]
            # YAML reads an unquoted 13800138000 as an int; that is still a phone number.
            if isinstance(value, int) and not isinstance(value, bool):
                phone = str(value)
            elif isinstance(value, str) and value.strip():
                phone = value
            else:
                self.error((*path, "phone"), f"phone 应为文本；收到 {value!r} / "
                                             f"'phone' must be text; got {value!r}")

        if pid is not None:
            if pid in self.person_seen:
                first = self.positions.of((*self.person_seen[pid], "id"))
                self.error(
                    (*path, "id"), f"人员 id {pid} 重复（首次在第 {first.line} 行） / "
                                   f"duplicate person id '{pid}' "
                                   f"(first at line {first.line})"
                )
                return None
            self.person_seen[pid] = path
        if pid is None or name is None or roles is None or notify is None or unit_id is None:
            return None
        self.people[pid] = Person(
            id=pid,
            name=name,
            name_en=name_en,
            unit_id=unit_id,
            roles=roles,
            notify=notify,
            phone=phone,
            title=title,
        )
        return pid

    def roles(self, raw: dict[Any, Any], path: PathKey) -> tuple[str, ...] | None:
        if "roles" not in raw:
            self.error(path, "人员缺少 roles（非空的角色列表） / "
                             "person is missing 'roles' (a non-empty list of "
                             "role names)")
            return None
        roles = raw["roles"]
        if not isinstance(roles, list) or not roles:
            self.error((*path, "roles"), "roles 应为非空的角色列表 / "
                                         "'roles' must be a non-empty list of role names")
            return None
        ok = True
        out: list[str] = []
        for i, role in enumerate(roles):
            if not isinstance(role, str) or not SLUG.match(role):
                self.error(
                    (*path, "roles", i),
                    f"角色 {role!r} 只能由小写字母、数字、- 或 _ 组成 / "
                    f"role {role!r} must be a slug "
                    "(lowercase letters, digits, '-' or '_')",
                )
                ok = False
            elif role in out:
                self.error((*path, "roles", i), f"角色 {role} 重复 / role '{role}' is listed twice")
                ok = False
            else:
                out.append(role)
        return tuple(out) if ok else None

    def notify(self, raw: dict[Any, Any], path: PathKey) -> tuple[str, ...] | None:
        if raw.get("notify") is None:
            return ()
        urls = raw["notify"]
        if not isinstance(urls, list):
            self.error((*path, "notify"), "notify 应为 Apprise 地址列表 / "
                                          "'notify' must be a list of Apprise URLs")
            return None
        ok = True
        for i, url in enumerate(urls):
            if not isinstance(url, str) or not URL.match(url):
                self.error(
                    (*path, "notify", i),
                    f"{url!r} 不是 Apprise 地址（应为 scheme://…，如 mailto://user@host 或 "
                    "json://127.0.0.1:8000/hook） / "
                    f"{url!r} is not an Apprise URL (expected scheme://..., "
                    "e.g. mailto://user@host or json://127.0.0.1:8000/hook)",
                )
                ok = False
            elif not self._usable(url, (*path, "notify", i)):
                ok = False
        return tuple(urls) if ok else None

    def _usable(self, url: str, path: PathKey) -> bool:
        if self.url_ok is None or self.url_ok(url):
            return True
        scheme = url.split("://", 1)[0]
        self.error(path, f"Apprise 不支持此地址（{scheme}:// 不是已知的通知服务，或地址格式不对）"
                         f" / Apprise cannot use this URL ({scheme}:// is no service it knows, "
                         "or the URL is malformed)")
        return False

    def channels(self, raw: Any, present: bool) -> dict[str, str]:
        if not present or raw is None:
            return {}
        if not isinstance(raw, dict):
            self.error(("channels",), "应为“通道名: Apprise 地址”的映射 / "
                                      "must be a mapping of channel name to "
                                      "Apprise URL")
            return {}
        roles = {r for p in self.people.values() for r in p.roles}
        out: dict[str, str] = {}
        for name, url in raw.items():
            path: PathKey = ("channels", name)
            if not isinstance(name, str) or not SLUG.match(name):
                self.error(path, f"通道名 {name!r} 只能由小写字母、数字、- 或 _ 组成 / "
                                 f"channel name {name!r} must "
                                 "be a slug", at_key=True)
                continue
            if name in roles:
                # `to:` and `notify:` accept roles and channels alike; one name must mean one thing.
                self.error(path, f"通道 {name} 与角色同名 / "
                                 f"channel '{name}' has the same name as a role", at_key=True)
                continue
            if not isinstance(url, str) or not URL.match(url):
                self.error(
                    path,
                    f"{url!r} 不是 Apprise 地址（应为 scheme://…，如 mailto://user@host 或 "
                    "json://127.0.0.1:8000/hook） / "
                    f"{url!r} is not an Apprise URL (expected scheme://..., "
                    "e.g. json://127.0.0.1:8000/hook)",
                )
                continue
            if not self._usable(url, path):
                continue
            out[name] = url
        return out
