"""Two transactions on PostgreSQL that each wait for the other (a deadlock: the engine orders
its own locks run-first, but a maintenance script or a future code path may not): PostgreSQL
aborts one. The person whose request was aborted did nothing wrong and the database is up, so
the answer is a 409 saying someone acted at the same moment (Chinese first), never the 503
"database cannot be reached" that sends an operator looking for an outage; nothing is written.

The cycle is made, not hoped for: a second connection holds the task's row, the request locks
the run and waits for the task, then the second connection asks for the run. The second
connection waits longer before checking for deadlocks, so the request is the one aborted."""

from __future__ import annotations

import threading
import time
from typing import Any

from factories import run_steps
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.auth import make_token
from api.main import create_app
from flows import lifecycle
from flows.runtime import Runtime


def lock_waiters(rt: Runtime) -> int:
    with rt.db.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")).scalar_one())


def test_a_request_aborted_by_a_deadlock_is_a_409_in_chinese(pg_rt: Runtime) -> None:
    rt = pg_rt
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="s1-commander")
    receive = next(s for s in run_steps(rt, run.id or 0) if s.step_key == "receive")
    token = make_token("s1-duty", rt.settings.signing_secret())
    answer: dict[str, Any] = {}
    with TestClient(create_app(rt, background=False, prefect=False),
                    raise_server_exceptions=False) as client:
        def complete() -> None:
            r = client.post(f"/api/tasks/{receive.id}/complete", json={"note": "已登记"},
                            headers={"Authorization": f"Bearer {token}"})
            answer["status"], answer["body"] = r.status_code, r.json()

        holder = rt.db.connect()
        holder.begin()
        holder.execute(text("SET LOCAL deadlock_timeout = '20s'"))
        holder.execute(text("SELECT id FROM step_instance WHERE id = :id FOR UPDATE"),
                       {"id": receive.id})
        request = threading.Thread(target=complete)
        request.start()
        deadline = time.monotonic() + 30
        while lock_waiters(rt) < 1:  # the request holds the run and waits for the task
            assert time.monotonic() < deadline, "the request never waited for the task"
            time.sleep(0.01)
        holder.execute(text("SELECT id FROM run WHERE id = :id FOR UPDATE"), {"id": run.id})
        holder.rollback()
        holder.close()
        request.join(timeout=60)

    assert answer["status"] == 409, answer
    assert answer["body"]["error"] == "conflict"
    assert answer["body"]["detail"].startswith("他人正同时办理"), answer
    after = next(s for s in run_steps(rt, run.id or 0) if s.step_key == "receive")
    assert after.status == "ready"  # the aborted completion wrote nothing
