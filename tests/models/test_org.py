"""The org chart: role resolution up the tree, rights, tree queries and load-time validation."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from models.errors import NotFound, OrgInvalid
from models.org import OrgChart, load_org, load_org_text

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "fixtures" / "org" / "small.yaml"
DEMO = ROOT / "playbooks" / "org" / "demo-district.yaml"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def org() -> OrgChart:
    return load_org(SMALL)


def errors_of(text: str) -> list[str]:
    """The errors as printed, each checked to be Chinese first ("file:line:col: path: 中文 /
    English"), then given with their English half for the assertions below."""
    with pytest.raises(OrgInvalid) as info:
        load_org_text(textwrap.dedent(text).lstrip("\n"), filename="org.yaml")
    out = []
    for e in info.value.errors:
        assert CJK.search(e.message.split(" / ", 1)[0]), f"not Chinese first: {e}"
        zh, en = e.message.split(" / ", 1)
        out.append(str(e).replace(e.message, en))
    return out


# -- loading -------------------------------------------------------------------------------


def test_load_small_builds_tree_people_and_channels(org: OrgChart) -> None:
    assert org.root_id == "d1"
    assert list(org.units) == ["d1", "s1", "c1", "c2", "s2"]
    assert org.unit("s1").child_ids == ("c1", "c2")
    assert org.unit("c1").parent_id == "s1"
    assert org.unit("d1").parent_id is None
    assert org.person("c1-grid").unit_id == "c1"
    assert org.unit("s1").person_ids[:2] == ("s1-head", "s1-commander")
    assert org.channels == {"duty": "json://127.0.0.1:9/duty"}
    assert org.channel("duty").startswith("json://")
    assert "grid_worker" in org.roles and "commander" in org.roles


def test_unknown_unit_person_and_channel_raise_not_found(org: OrgChart) -> None:
    with pytest.raises(NotFound) as info:
        org.unit("nowhere")
    assert (info.value.kind, info.value.ident) == ("unit", "nowhere")
    with pytest.raises(NotFound) as info:
        org.person("nobody")
    assert (info.value.kind, info.value.ident) == ("person", "nobody")
    with pytest.raises(NotFound):
        org.channel("nope")
    with pytest.raises(NotFound):
        org.resolve_role("inspector", "nowhere")
    with pytest.raises(NotFound):
        org.ancestors("nowhere")


def test_load_from_path_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OrgInvalid) as info:
        load_org(tmp_path / "missing.yaml")
    assert "cannot read org file" in str(info.value)


# -- tree queries --------------------------------------------------------------------------


def test_ancestors_self_first_up_to_root(org: OrgChart) -> None:
    assert org.ancestors("c2") == ["c2", "s1", "d1"]
    assert org.ancestors("c2", include_self=False) == ["s1", "d1"]
    assert org.ancestors("d1") == ["d1"]


def test_is_within_and_descendants(org: OrgChart) -> None:
    assert org.is_within("c1", "c1")
    assert org.is_within("c1", "s1")
    assert org.is_within("c1", "d1")
    assert not org.is_within("c1", "s2")
    assert not org.is_within("s1", "c1")
    assert org.descendants("s1") == ["s1", "c1", "c2"]
    assert org.descendants("s1", include_self=False) == ["c1", "c2"]
    assert org.descendants("c1", include_self=False) == []
    assert org.descendants("d1") == ["d1", "s1", "c1", "c2", "s2"]


def test_units_where_filters_type_and_subtree_in_tree_order(org: OrgChart) -> None:
    assert [u.id for u in org.units_where(type="community")] == ["c1", "c2"]
    assert [u.id for u in org.units_where(type="street")] == ["s1", "s2"]
    assert [u.id for u in org.units_where(type="community", within="s2")] == []
    assert [u.id for u in org.units_where(within="s1")] == ["s1", "c1", "c2"]
    assert [u.id for u in org.units_where(type="village")] == []
    with pytest.raises(NotFound):
        org.units_where(type="community", within="nowhere")


# -- role resolution -----------------------------------------------------------------------


def test_resolve_role_in_the_unit_itself(org: OrgChart) -> None:
    unit, people = org.resolve_role("grid_worker", "c1")
    assert unit == "c1"
    assert [p.id for p in people] == ["c1-grid"]


def test_resolve_role_walks_to_nearest_ancestor(org: OrgChart) -> None:
    # c1 has no duty officer: s1 (its parent) has one; d1's commander is not reached.
    assert org.resolve_role("duty_officer", "c1")[0] == "s1"
    unit, people = org.resolve_role("commander", "c2")
    assert unit == "s1"
    assert [p.id for p in people] == ["s1-commander"]
    # s2 has its own commander, so d1's is not used there.
    assert org.resolve_role("commander", "s2")[0] == "s2"
    assert org.resolve_role("director", "c2")[0] == "d1"


def test_resolve_role_returns_all_holders_sorted_by_id(org: OrgChart) -> None:
    unit, people = org.resolve_role("inspector", "c2")
    assert unit == "s1"
    assert [p.id for p in people] == ["s1-insp1", "s1-insp2"]


def test_resolve_role_nobody_up_to_root(org: OrgChart) -> None:
    assert org.resolve_role("grid_worker", "s2") == (None, [])
    assert org.resolve_role("no_such_role", "c1") == (None, [])


def test_person_role_units(org: OrgChart) -> None:
    assert org.person_role_units("s1-insp1") == [("inspector", "s1")]
    with pytest.raises(NotFound):
        org.person_role_units("nobody")


def test_can_act_as_own_unit_and_below_only(org: OrgChart) -> None:
    assert org.can_act_as("s1-insp1", "inspector", "s1")
    assert org.can_act_as("s1-insp1", "inspector", "c2")  # below the person's unit
    assert not org.can_act_as("s1-insp1", "inspector", "s2")  # a sibling street
    assert not org.can_act_as("s1-insp1", "inspector", "d1")  # above the person's unit
    assert not org.can_act_as("s1-insp1", "grid_worker", "c1")  # a role not held
    assert not org.can_act_as("nobody", "inspector", "s1")
    with pytest.raises(NotFound):
        org.can_act_as("s1-insp1", "inspector", "nowhere")


def test_has_right_commander_and_manager_in_unit_and_below(org: OrgChart) -> None:
    assert org.has_right("d1-commander", "commander", "c1")
    assert org.has_right("s1-commander", "commander", "c2")
    assert not org.has_right("s1-commander", "commander", "s2")
    assert not org.has_right("s1-commander", "commander", "d1")
    assert not org.has_right("s1-commander", "manager", "s1")
    assert org.has_right("d1-manager", "manager", "c2")
    assert not org.has_right("d1-manager", "commander", "c2")
    assert not org.has_right("c1-grid", "commander", "c1")
    assert not org.has_right("nobody", "manager", "d1")


def test_has_right_admin_implies_every_right(org: OrgChart) -> None:
    for right in ("commander", "manager", "admin"):
        assert org.has_right("d1-admin", right, "c2")
    assert not org.has_right("d1-director", "admin", "d1")


def test_has_right_rejects_unknown_right(org: OrgChart) -> None:
    with pytest.raises(ValueError):
        org.has_right("d1-admin", "inspector", "d1")


# -- validation: every mistake, with file:line:col -----------------------------------------


def test_duplicate_unit_and_person_ids() -> None:
    errors = errors_of(
        """
        units:
          - id: d
            name: 区
            type: district
            people:
              - {id: p, name: 甲, roles: [director]}
            children:
              - id: d
                name: 重复
                type: street
                people:
                  - {id: p, name: 乙, roles: [inspector]}
        """
    )
    assert errors == [
        "org.yaml:8:13: units[0].children[0].id: duplicate unit id 'd' (first at line 2)",
        "org.yaml:12:18: units[0].children[0].people[0].id: duplicate person id 'p' "
        "(first at line 6)",
    ]


def test_unknown_keys_at_every_level() -> None:
    errors = errors_of(
        """
        unitz: []
        units:
          - id: d
            name: 区
            type: district
            colour: red
            people:
              - {id: p, name: 甲, roles: [director], email: a@b}
        """
    )
    assert errors[0].startswith("org.yaml:1:1: unitz: unknown key 'unitz' (allowed: units, ")
    assert errors[1].startswith("org.yaml:6:5: units[0].colour: unknown key 'colour'")
    assert errors[2].startswith("org.yaml:8:45: units[0].people[0].email: unknown key 'email'")
    assert len(errors) == 3


def test_missing_id_name_type() -> None:
    errors = errors_of(
        """
        units:
          - name: 区
            type: district
            children:
              - id: s
                type: street
              - id: t
                name: 街道
            people:
              - {id: p, roles: [director]}
              - {name: 乙, roles: [inspector]}
        """
    )
    assert errors == [
        "org.yaml:2:5: units[0]: unit is missing 'id'",
        "org.yaml:5:9: units[0].children[0]: unit is missing 'name'",
        "org.yaml:7:9: units[0].children[1]: unit is missing 'type' (district, street, town, "
        "community, village, department, enterprise, grid, ...)",
        "org.yaml:10:9: units[0].people[0]: person is missing 'name'",
        "org.yaml:11:9: units[0].people[1]: person is missing 'id'",
    ]


def test_ids_must_be_slugs() -> None:
    errors = errors_of(
        """
        units:
          - id: Pingshan
            name: 坪山区
            type: District
            people:
              - {id: zhang wei, name: 张伟, roles: [director]}
        """
    )
    assert [e.split(": ", 2)[:2] for e in errors] == [
        ["org.yaml:2:9", "units[0].id"],
        ["org.yaml:4:11", "units[0].type"],
        ["org.yaml:6:14", "units[0].people[0].id"],
    ]
    assert "must be a slug" in errors[0]


def test_roles_must_be_a_non_empty_list_of_slugs() -> None:
    errors = errors_of(
        """
        units:
          - id: d
            name: 区
            type: district
            people:
              - {id: a, name: 甲}
              - {id: b, name: 乙, roles: []}
              - {id: c, name: 丙, roles: director}
              - {id: e, name: 丁, roles: [director, 值班员]}
              - {id: f, name: 戊, roles: [director, director]}
        """
    )
    assert errors == [
        "org.yaml:6:9: units[0].people[0]: person is missing 'roles' (a non-empty list of role "
        "names)",
        "org.yaml:7:33: units[0].people[1].roles: 'roles' must be a non-empty list of role names",
        "org.yaml:8:33: units[0].people[2].roles: 'roles' must be a non-empty list of role names",
        "org.yaml:9:44: units[0].people[3].roles[1]: role '值班员' must be a slug (lowercase "
        "letters, digits, '-' or '_')",
        "org.yaml:10:44: units[0].people[4].roles[1]: role 'director' is listed twice",
    ]


def test_notify_entries_must_be_urls_with_a_scheme() -> None:
    errors = errors_of(
        """
        units:
          - id: d
            name: 区
            type: district
            people:
              - id: a
                name: 甲
                roles: [director]
                notify:
                  - "mailto://duty@example.org"
                  - "duty@example.org"
                  - 13800138000
              - {id: b, name: 乙, roles: [inspector], notify: "json://127.0.0.1/x"}
        """
    )
    assert [e.split(": ", 2)[:2] for e in errors] == [
        ["org.yaml:11:13", "units[0].people[0].notify[1]"],
        ["org.yaml:12:13", "units[0].people[0].notify[2]"],
        ["org.yaml:13:54", "units[0].people[1].notify"],
    ]
    assert "is not an Apprise URL" in errors[0]


def test_channels_map_names_to_urls() -> None:
    errors = errors_of(
        """
        units:
          - id: d
            name: 区
            type: district
            people:
              - {id: a, name: 甲, roles: [director]}
        channels:
          ok: "json://127.0.0.1:9/duty"
          bad-url: "127.0.0.1:9/duty"
          Bad Name: "json://127.0.0.1:9/x"
          director: "json://127.0.0.1:9/y"
        """
    )
    assert [e.split(": ", 2)[:2] for e in errors] == [
        ["org.yaml:9:12", "channels.bad-url"],
        ["org.yaml:10:3", "channels.Bad Name"],
        ["org.yaml:11:3", "channels.director"],
    ]
    assert "same name as a role" in errors[2]
    assert errors_of("units: []\nchannels: [a]\n")[1] == (
        "org.yaml:2:11: channels: must be a mapping of channel name to Apprise URL"
    )


def test_one_root_unit_and_well_formed_top_level() -> None:
    assert errors_of("- a\n") == [
        "org.yaml:1:1: an org file is a mapping with 'units' (and optionally 'channels')"
    ]
    assert errors_of("channels: {}\n") == [
        "org.yaml:1:1: missing 'units': the org needs one root unit (the district/county)"
    ]
    errors = errors_of(
        """
        units:
          - {id: a, name: 甲区, type: district}
          - {id: b, name: 乙区, type: district}
        """
    )
    assert errors[0].startswith("org.yaml:3:5: units[1]: the org has one root unit")


def test_yaml_syntax_and_duplicate_keys_become_org_invalid() -> None:
    errors = errors_of(
        """
        units:
          - id: d
            id: e
            name: 区
            type: district
        """
    )
    assert errors == ["org.yaml:3:5: units[0]: duplicate key 'id'"]  # its English half
    assert errors_of("units: [\n")[0].startswith("org.yaml:2:1: invalid YAML")


def test_errors_in_several_places_are_all_reported_in_file_order() -> None:
    errors = errors_of(
        """
        units:
          - id: d
            name: 区
            type: district
            people:
              - {id: a, name: 甲, roles: [Director]}
            children:
              - id: s
                name: 街道
                type: street
                people:
                  - {id: b, name: 乙, roles: [inspector], notify: [nope]}
        """
    )
    assert [int(e.split(":")[1]) for e in errors] == [6, 12]


# -- the shipped demo district ------------------------------------------------------------


def test_demo_district_loads_with_expected_shape() -> None:
    org = load_org(DEMO)
    assert org.root_id == "pingshan"
    streets = org.units_where(type="street")
    assert len(streets) == 6
    assert len(org.units_where(type="community")) == 23
    for street in streets:
        for role in ("street_head", "section_chief", "commander", "duty_officer", "inspector"):
            assert org.resolve_role(role, street.id)[0] == street.id, (street.id, role)
    for community in org.units_where(type="community"):
        for role in ("community_head", "grid_worker", "safety_officer"):
            assert org.resolve_role(role, community.id)[0] == community.id, (community.id, role)
    for role in ("director", "duty_leader", "commander", "manager", "admin"):
        assert org.resolve_role(role, "pingshan")[0] == "pingshan"
    assert len(org.resolve_role("duty_officer", "pingshan")[1]) == 3
    # Notifications stay on this machine: every URL points at loopback.
    urls = list(org.channels.values()) + [u for p in org.people.values() for u in p.notify]
    assert urls and all("://127.0.0.1" in u for u in urls)
    assert {"county_duty_office", "district_duty_room"} <= set(org.channels)


def test_optional_person_fields_load() -> None:
    org = load_org_text(
        textwrap.dedent(
            """
            units:
              - id: d
                name: 区
                name_en: District
                type: district
                people:
                  - id: a
                    name: 甲
                    name_en: Jia
                    title: 值班员
                    phone: 13800000000
                    roles: [duty_officer]
                    notify: ["json://127.0.0.1:9/a"]
            """
        ),
        filename="org.yaml",
    )
    person = org.person("a")
    assert (person.name_en, person.title, person.phone) == ("Jia", "值班员", "13800000000")
    assert person.notify == ("json://127.0.0.1:9/a",)
    assert org.unit("d").name_en == "District"
    assert org.people_in("d") == [person]
    assert org.channels == {}


def test_a_gbk_file_or_a_directory_is_named_for_what_it_is(tmp_path: Path) -> None:
    gbk = tmp_path / "org.yaml"
    gbk.write_bytes("units:\n  - id: d\n    name: 坪山区\n".encode("gbk"))
    with pytest.raises(OrgInvalid) as info:
        load_org(gbk)
    [error] = info.value.errors
    assert (error.line, error.message.split(" / ")[0]) == (
        3, "文件不是 UTF-8 编码（可能是 GBK），请另存为 UTF-8")
    with pytest.raises(OrgInvalid) as info:
        load_org(tmp_path)
    assert info.value.errors[0].message.startswith("是目录，不是组织架构文件")
