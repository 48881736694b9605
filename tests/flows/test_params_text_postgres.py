"""On a real PostgreSQL 15 server, which (unlike SQLite) enforces VARCHAR widths: a run whose
location is as long as a text param may be still gets a title that fits Run.title, and a
register playbook's params too wide for the register are a 422 naming the param, never a
database error. Fails (not skips) when the server binaries are missing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime
from pg_server import PostgresServer

from flows import lifecycle
from flows.params import MAX_TEXT
from flows.runtime import Runtime
from models.clock import ManualClock
from models.db import read_session
from models.errors import InvalidInput
from models.hazard import Hazard
from models.run import Run


@pytest.fixture
def pg_demo(pg: PostgresServer, tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = pg.create_database(name)
    rt = make_runtime(tmp_path / "pg", clock=clock, db_url=url, playbooks=SHIPPED_PLAYBOOKS,
                      org_path=DEMO_ORG)
    yield rt
    rt.db.dispose()
    pg.drop_database(name)


def test_the_longest_location_starts_a_run_whose_title_fits(pg_demo: Runtime) -> None:
    location = ("坪山区六和社区幸福里" * 300)[:MAX_TEXT]
    run = lifecycle.start_run(pg_demo, playbook_id="gas-leak", unit_id="liuhe",
                              params={"location": location}, actor="wang-qiang")
    with read_session(pg_demo.db) as session:
        stored = session.get(Run, run.id)
        assert stored is not None
        assert stored.params["location"] == location
        assert len(stored.title) == 300 and stored.title.endswith("…")


def test_a_hazard_location_wider_than_the_register_is_refused_not_a_database_error(
    pg_demo: Runtime
) -> None:
    with pytest.raises(InvalidInput) as caught:
        lifecycle.start_run(pg_demo, playbook_id="hazard-3030", unit_id="liuhe",
                            params={"location": "隐" * 301}, actor="wang-qiang")
    assert caught.value.field == "params.location"
    run = lifecycle.start_run(pg_demo, playbook_id="hazard-3030", unit_id="liuhe",
                              params={"location": "隐" * 300, "code": "C" * 60},
                              actor="wang-qiang")
    with read_session(pg_demo.db) as session:
        entry = session.get(Hazard, run.id)
        assert entry is not None and len(entry.location) == 300
        stored = session.get(Run, run.id)
        assert stored is not None and len(stored.title) == 300
