"""A playbook file that fails to load (a typo, an org edit that took a role's last holder):
/healthz is degraded and names the file, and a start of it says it is broken, not unknown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from factories import books_with
from fastapi.testclient import TestClient

from api.auth import make_token
from api.main import create_app
from flows.runtime import Runtime

GOOD = """\
id: drill
version: 1
title: 演练
steps:
  - {id: receive, title: 接警, role: duty_officer}
"""
BROKEN = """\
id: gas-leak
version: 1
title: 燃气泄漏
steps:
  - {id: receive, title: 接警, role: duty_officer}
  - {id: verify, title: 核实, role: duty_officer, needs: [recieve]}
"""


def test_a_broken_playbook_degrades_health_and_a_start_names_it(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    rt = make_rt(playbooks=books_with(tmp_path, {"drill.yaml": GOOD, "gas-leak.yaml": BROKEN}))
    assert list(rt.catalog.current) == ["drill"]
    token = make_token("s1-commander", rt.settings.signing_secret())
    with TestClient(create_app(rt, background=False, prefect=False)) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "degraded"
        assert health["playbook_files_failed"] == ["gas-leak.yaml"]
        r = client.post("/api/runs", headers={"Authorization": f"Bearer {token}"},
                        json={"playbook": "gas-leak", "unit": "c1", "params": {}})
        assert r.status_code == 422 and r.json()["field"] == "playbook", r.text
        assert r.json()["detail"].startswith("playbook: 流程 gas-leak 的文件有错误，未能加载")
        assert "recieve" in r.json()["detail"]
        r = client.post("/api/runs", headers={"Authorization": f"Bearer {token}"},
                        json={"playbook": "typhoon", "unit": "c1", "params": {}})
        assert "没有流程 typhoon，可选：drill；另有 1 个文件未能加载" in r.json()["detail"]


def test_a_broken_playbook_in_a_file_not_named_after_it_is_still_named_broken(
        make_rt: Callable[..., Runtime], tmp_path: Path) -> None:
    """`gas-leak-2026.yaml` declaring `id: gas-leak` (a bureau's dated copy, the old one moved
    away): a start of gas-leak says that file is broken and why, not that there is no such
    playbook, which would send a commander at 3 a.m. looking for the wrong thing."""
    rt = make_rt(playbooks=books_with(tmp_path, {"drill.yaml": GOOD,
                                                 "gas-leak-2026.yaml": BROKEN}))
    assert list(rt.catalog.current) == ["drill"]
    token = make_token("s1-commander", rt.settings.signing_secret())
    with TestClient(create_app(rt, background=False, prefect=False)) as client:
        r = client.post("/api/runs", headers={"Authorization": f"Bearer {token}"},
                        json={"playbook": "gas-leak", "unit": "c1", "params": {}})
    assert r.status_code == 422 and r.json()["field"] == "playbook", r.text
    assert r.json()["detail"].startswith("playbook: 流程 gas-leak 的文件有错误，未能加载")
    assert "gas-leak-2026.yaml" in r.json()["detail"] and "recieve" in r.json()["detail"]
