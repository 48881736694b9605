"""A role spelt like one the playbooks use, but used by none (flows/role_typos.py): the
person holding it would never receive a task, so it is said at their roles line, as a
warning (the chart loads), at start, by `closeloop validate` and in a reload's answer."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime

from flows.catalog import Catalog
from flows.role_typos import roles_named, suspect_roles
from models.clock import ManualClock
from models.org import load_org_text

INSPECTOR = ("{id: pingshan-street-inspector-1, name: 邓思远, title: 安全生产监督检查员, "
             'phone: "13800138103", roles: [inspector]')


def misspelt_org() -> str:
    text = DEMO_ORG.read_text(encoding="utf-8")
    assert text.count(INSPECTOR) == 1
    return text.replace(INSPECTOR, INSPECTOR.replace("[inspector]", "[inspecter]"))


def test_the_demo_district_has_no_suspect_role() -> None:
    org = load_org_text(DEMO_ORG.read_text(encoding="utf-8"), filename="org.yaml")
    catalog = Catalog(SHIPPED_PLAYBOOKS, org)
    assert suspect_roles(org, catalog.current.values()) == []
    # What the playbooks name as roles: their steps', verifiers', recipients' and starters'.
    assert {"inspector", "duty_officer", "street_head", "commander"} <= roles_named(
        catalog.current.values())


def test_a_misspelt_role_is_said_at_the_persons_roles_line() -> None:
    text = misspelt_org()
    org = load_org_text(text, filename="org.yaml")  # loads: a warning, not an error
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "[inspecter]" in row)
    [warning] = suspect_roles(org, Catalog(SHIPPED_PLAYBOOKS, org).current.values())
    assert (warning.file, warning.line) == ("org.yaml", line)
    assert warning.path.endswith(".roles")
    assert warning.message == (
        "警告：角色 inspecter 没有流程使用，疑为 inspector 之误，"
        "邓思远（pingshan-street-inspector-1）收不到 inspector 的任务 / "
        "warning: no playbook uses role 'inspecter'; meant 'inspector'? "
        "'pingshan-street-inspector-1' receives no 'inspector' task")


def test_a_role_no_playbook_uses_and_unlike_any_is_not_suspect() -> None:
    # The demo gives deputy_director and dept_head, which no playbook names: a bureau may.
    org = load_org_text(DEMO_ORG.read_text(encoding="utf-8"), filename="org.yaml")
    assert {"deputy_director", "dept_head"} <= set(org.roles) - roles_named(
        Catalog(SHIPPED_PLAYBOOKS, org).current.values())


def test_the_start_logs_it(tmp_path: Path, clock: ManualClock,
                           caplog: pytest.LogCaptureFixture) -> None:
    org = tmp_path / "org.yaml"
    org.write_text(misspelt_org(), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="flows.runtime"):
        runtime = make_runtime(tmp_path / "data", clock=clock, org_path=org,
                               playbooks=SHIPPED_PLAYBOOKS)
    runtime.db.dispose()
    assert any("疑为 inspector 之误" in r.getMessage() and f"{org}:" in r.getMessage()
               for r in caplog.records)
