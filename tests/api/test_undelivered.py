"""A report or alert that does not reach an office is not left to a log line: the run's timeline
says `delivery_failed`, the commander who started the run is told in the in-app inbox (at the
first failure and when it is given up), and /healthz says `degraded` with the count."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flows import lifecycle
from flows.notify import MAX_ATTEMPTS, backoff, deliver_due
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]


def refused_url() -> str:
    """A json:// URL on a local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"json://127.0.0.1:{port}/duty"


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    return make_rt(channel_url=refused_url())  # the duty office's receiver is down


def test_an_alert_that_reaches_no_office_is_told_and_shown(
    client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock
) -> None:
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="s1-commander")
    assert client.get("/healthz").json()["status"] == "ok"
    clock.advance(timedelta(seconds=3))  # overdue: level 1 goes to the duty channel
    sweep_once(rt)
    assert deliver_due(rt.db, clock=clock).failed == 1
    health = client.get("/healthz").json()
    assert health["status"] == "degraded" and health["outbox"] == {"failing": 1,
                                                                   "given_up_24h": 0}
    inbox = client.get("/api/inbox", headers=auth("s1-commander")).json()["data"]
    told = [n for n in inbox if n["title"].startswith("【送达失败】")]
    assert len(told) == 1 and "发往 duty" in told[0]["body"] and "电话" in told[0]["body"]
    timeline = client.get(f"/api/runs/{run.id}", headers=auth("s1-commander")).json()
    failed = [e for e in timeline["timeline"] if e["action"] == "delivery_failed"]
    assert len(failed) == 1 and failed[0]["detail"]["given_up"] is False
    for n in range(1, MAX_ATTEMPTS):  # retried until given up: told once more, then
        clock.advance(backoff(n))
        deliver_due(rt.db, clock=clock)
    inbox = client.get("/api/inbox", headers=auth("s1-commander")).json()["data"]
    assert sum(n["title"].startswith("【送达失败】") for n in inbox) == 2
    assert client.get("/healthz").json()["outbox"] == {"failing": 0, "given_up_24h": 1}


def test_a_run_no_person_started_tells_the_commanders_over_its_unit(
    client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock
) -> None:
    # `closeloop start` without --as records the operator console (`cli`), nobody's inbox.
    run = lifecycle.start_run(rt, playbook_id="quick-escalation", unit_id="c1",
                              params={"location": "一社区3号楼"}, actor="cli",
                              check_rights=False)
    clock.advance(timedelta(seconds=3))
    sweep_once(rt)
    assert deliver_due(rt.db, clock=clock, org=rt.org).failed == 1
    # The commander role resolved at the run's unit: the street's, the nearest one.
    inbox = client.get("/api/inbox", headers=auth("s1-commander")).json()["data"]
    told = [n for n in inbox if n["title"].startswith("【送达失败】")]
    assert len(told) == 1 and told[0]["run_id"] == run.id
    assert client.get("/api/inbox", headers=auth("s2-commander")).json()["count"] == 0
