"""The run's drill columns (drill_kind, drill_title) on SQLite and PostgreSQL: written and read
back in Chinese at their full widths, filtered by the runs list, and added to a database an
older closeloop made, its runs reading as real events (NULL)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlmodel import select

from flows import lifecycle
from flows.drills import MAX_DRILL_TITLE, Drill
from flows.runtime import Runtime
from models.db import create_schema, read_session
from models.drill import real_runs
from models.queries import list_runs
from models.run import Run


@pytest.fixture(params=["rt", "pg_rt"])
def any_rt(request: pytest.FixtureRequest) -> Runtime:
    return request.getfixturevalue(request.param)


def started(rt: Runtime, drill: Drill | None = None) -> int:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "六和社区"}, actor="s1-commander",
                              drill=drill)
    return run.id or 0


def test_drill_columns_hold_their_widths_and_filter(any_rt: Runtime) -> None:
    title = "演" * MAX_DRILL_TITLE
    drill_id = started(any_rt, Drill(kind="桌面推演", title=title))
    real_id = started(any_rt)
    with read_session(any_rt.db) as session:
        run = session.get(Run, drill_id)
        assert run is not None and (run.drill_kind, run.drill_title) == ("桌面推演", title)
        assert [r.id for r in session.exec(select(Run).where(real_runs())).all()] == [real_id]
        drills, count = list_runs(session, units=None, drill=True)
        assert [r.id for r in drills] == [drill_id] and count == 1
        reals, count = list_runs(session, units=None, drill=False)
        assert [r.id for r in reals] == [real_id] and count == 1
        both, count = list_runs(session, units=None)
        assert count == 2 and {r.id for r in both} == {drill_id, real_id}


def test_an_older_database_gains_the_drill_columns_and_its_runs_are_real(
        any_rt: Runtime) -> None:
    engine = any_rt.db
    old = started(any_rt)
    with engine.begin() as conn:
        for column in ("drill_kind", "drill_title"):
            conn.execute(text(f'ALTER TABLE run DROP COLUMN "{column}"'))
    engine.dispose()

    create_schema(engine)

    assert {"drill_kind", "drill_title"} <= {c["name"] for c in inspect(engine).get_columns("run")}
    with read_session(engine) as session:
        run = session.get(Run, old)
        assert run is not None and (run.drill_kind, run.drill_title) == (None, None)
    new = started(any_rt, Drill(kind="盲演"))
    with read_session(engine) as session:
        run = session.get(Run, new)
        assert run is not None and run.drill_kind == "盲演"
