"""GET /api/runs/{id}/playbook: the playbook version a run started with, which the run and task
pages draw from. A playbook edited while the run is in flight keeps showing the run its own
version's steps (the ones the API checks its answers against), and a playbook removed still
leaves its runs readable; the run's visibility rule applies."""

from __future__ import annotations

import shutil
from pathlib import Path

from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from fastapi.testclient import TestClient

from api.auth import make_token
from api.main import create_app
from models.clock import ManualClock


def test_a_run_reads_the_version_it_pinned_after_its_playbook_changes(
        tmp_path: Path, clock: ManualClock) -> None:
    books = tmp_path / "playbooks"
    shutil.copytree(SHIPPED_PLAYBOOKS, books)
    rt = make_runtime(tmp_path / "data", clock=clock, playbooks=books, org_path=DEMO_ORG)
    secret = rt.settings.signing_secret()

    def auth(person: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(person, secret)}"}

    try:
        with TestClient(create_app(rt, background=False, prefect=False)) as client:
            r = client.post("/api/runs", headers=auth("wang-qiang"), json={
                "playbook": "gas-leak", "unit": "liuhe", "params": {"location": "六和社区"}})
            assert r.status_code == 201, r.text
            run_id = r.json()["id"]
            source = books / "gas-leak.yaml"
            text = source.read_text(encoding="utf-8")
            edited = text.replace("version: 2", "version: 3", 1).replace(
                "title: 燃气泄漏模块化应急处置", "title: 燃气泄漏处置（修订）", 1)
            assert edited != text
            source.write_text(edited, encoding="utf-8")
            assert rt.catalog.reload() == []

            pinned = client.get(f"/api/runs/{run_id}/playbook", headers=auth("liuhe-grid"))
            assert pinned.status_code == 200, pinned.text
            first = pinned.json()
            assert (first["version"], first["title"]) == (2, "燃气泄漏模块化应急处置")
            assert "templates" not in pinned.json()
            current = client.get("/api/playbooks/gas-leak", headers=auth("liuhe-grid")).json()
            assert (current["version"], current["title"]) == (3, "燃气泄漏处置（修订）")

            source.unlink()
            rt.catalog.reload()
            gone = client.get(f"/api/runs/{run_id}/playbook", headers=auth("wang-qiang"))
            assert gone.status_code == 200 and gone.json()["version"] == 2

            # The run's own rule: another street's head may not read it; no such run is a 404.
            other = client.get(f"/api/runs/{run_id}/playbook", headers=auth("maluan-head"))
            assert other.status_code == 403, other.text
            missing = client.get("/api/runs/999999/playbook", headers=auth("wang-qiang"))
            assert missing.status_code == 404, missing.text
    finally:
        rt.db.dispose()
