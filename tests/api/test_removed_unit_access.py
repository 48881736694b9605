"""A unit dropped from the org chart while its runs are open: the admin still opens their
tasks (to close them out), and everyone else is refused with a 403, not a 404 about a unit."""

from __future__ import annotations

from collections.abc import Callable

from factories import small_org_without_c2
from fastapi.testclient import TestClient
from sqlmodel import select

from api.auth import make_token
from api.main import create_app
from flows import lifecycle
from flows.runtime import Runtime
from models.db import read_session
from models.task import StepInstance


def test_the_admin_opens_a_removed_units_task_and_others_get_403(
        make_rt: Callable[..., Runtime]) -> None:
    before = make_rt()
    run_id = lifecycle.start_run(before, playbook_id="quick-escalation", unit_id="c2",
                                 params={"location": "二社区"}, actor="s1-commander").id
    with read_session(before.db) as session:
        step_id = session.exec(select(StepInstance.id).where(
            StepInstance.run_id == run_id)).first()
    url = str(before.db.url)
    before.db.dispose()
    after = make_rt(org_text=small_org_without_c2(), db_url=url)
    assert "c2" not in after.org.units
    secret = after.settings.signing_secret()
    with TestClient(create_app(after, background=False, prefect=False),
                    raise_server_exceptions=False) as client:
        def get(person: str, path: str) -> int:
            token = make_token(person, secret)
            return client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code

        assert get("d1-admin", f"/api/runs/{run_id}") == 200
        assert get("d1-admin", f"/api/tasks/{step_id}") == 200
        for person in ("c1-grid", "s1-insp1"):
            assert get(person, f"/api/tasks/{step_id}") == 403, person
            assert get(person, f"/api/runs/{run_id}") == 403, person
