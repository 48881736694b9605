"""The loopback receiver (api/receiver.py): real Apprise json:// deliveries from the outbox to
the app served by uvicorn on a loopback port, then what each person may read back. Only the
org chart's channels exist, only Apprise's payload shape is taken, only a message the outbox
is delivering is stored, and a reader sees the deliveries of runs they may read."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import uvicorn
from factories import SMALL_ORG
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import select

from api.body_guard import MAX_BODY_BYTES
from api.main import create_app
from flows.notify import deliver_due
from flows.recipients import notification_rows
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session, session_scope
from models.documents import ReceivedMessage
from models.outbox import Notification
from models.writes import insert_ignoring_duplicates

Json = dict[str, Any]
Auth = Callable[[str], dict[str, str]]


class _Server(uvicorn.Server):
    """uvicorn that says when it is listening (instead of a test polling for it)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback socket bound first, so the org chart can name its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], listener: socket.socket) -> Runtime:
    """The small org with its `duty` channel and the director's own notify URL pointing at this
    app's receiver (channels `duty` and `leaders`)."""
    base = f"json://127.0.0.1:{listener.getsockname()[1]}/api/receiver"
    org = SMALL_ORG.read_text(encoding="utf-8").replace(
        "json://127.0.0.1:9/duty", f"{base}/duty").replace(
        "{id: d1-director, name: 区局长, name_en: Director, roles: [director], notify: []}",
        f'{{id: d1-director, name: 区局长, name_en: Director, roles: [director], '
        f'notify: ["{base}/leaders"]}}')
    assert f"{base}/leaders" in org
    return make_rt(org_text=org)


@pytest.fixture
def served(rt: Runtime, listener: socket.socket) -> Iterator[None]:
    config = uvicorn.Config(create_app(rt, background=False, prefect=False),
                            log_level="warning", lifespan="off")
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    assert server.ready.wait(timeout=30), "uvicorn did not start"
    yield
    server.should_exit = True
    thread.join(timeout=30)


def start(client: TestClient, auth: Auth, unit: str, location: str, who: str) -> int:
    r = client.post("/api/runs", json={"playbook": "quick-escalation", "unit": unit,
                                       "params": {"location": location}}, headers=auth(who))
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def stored(rt: Runtime) -> int:
    with read_session(rt.db) as session:
        return len(session.exec(select(ReceivedMessage)).all())


def bodies(client: TestClient, auth: Auth, channel: str, who: str) -> list[str]:
    """The message texts `who` reads on `channel`, newest first."""
    r = client.get(f"/api/receiver/{channel}", headers=auth(who))
    assert r.status_code == 200, (who, r.text)
    return [m["body"] for m in r.json()["data"]]


@pytest.fixture
def delivered(served: None, client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock
              ) -> dict[str, str]:
    """Two late runs, one in each street, escalated to the duty channel and delivered through
    real Apprise; then, 10 s later, to the director on the leaders channel."""
    start(client, auth, "c1", "一社区仓库", "s1-commander")
    start(client, auth, "s2", "二街道码头", "s2-commander")
    clock.advance(timedelta(seconds=3))
    assert sweep_once(rt).fired == 2
    first = deliver_due(rt.db, clock=clock)
    clock.advance(timedelta(seconds=10))
    assert sweep_once(rt).fired == 2
    second = deliver_due(rt.db, clock=clock)
    assert (first.delivered, first.failed, second.delivered, second.failed) == (2, 0, 2, 0)
    got = bodies(client, auth, "duty", "d1-admin")
    assert len(got) == 2
    # Same title (the step's), the body names the run.
    return {"c1": next(b for b in got if "一社区仓库" in b),
            "s2": next(b for b in got if "二街道码头" in b)}


# --- reading -------------------------------------------------------------------------------

def test_a_commander_reads_only_the_deliveries_of_runs_they_may_read(
    delivered: dict[str, str], client: TestClient, auth: Auth
) -> None:
    assert bodies(client, auth, "duty", "s1-commander") == [delivered["c1"]]
    assert bodies(client, auth, "duty", "s2-commander") == [delivered["s2"]]
    assert sorted(bodies(client, auth, "duty", "d1-manager")) == sorted(delivered.values())


def test_a_grid_worker_may_not_read_a_duty_channel(delivered: dict[str, str],
                                                    client: TestClient, auth: Auth) -> None:
    for who in ("c1-grid", "c2-grid", "s2-insp"):
        r = client.get("/api/receiver/duty", headers=auth(who))
        assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
        assert delivered["c1"] not in r.text
    assert client.get("/api/receiver/duty").status_code == 401


def test_a_channel_of_ones_own_is_readable_and_no_other(
    delivered: dict[str, str], client: TestClient, auth: Auth
) -> None:
    assert len(bodies(client, auth, "leaders", "d1-director")) == 2
    r = client.get("/api/receiver/duty", headers=auth("d1-director"))
    assert r.status_code == 403 and "可由指挥长、科室负责人" in r.json()["detail"], r.text
    # A commander reads the leaders channel too, only for runs of their street.
    [seen] = bodies(client, auth, "leaders", "s1-commander")
    assert "一社区仓库" in seen


def test_an_unknown_channel_is_404(served: None, client: TestClient, auth: Auth) -> None:
    for channel in ("county-duty", "x", "a" * 300):
        r = client.get(f"/api/receiver/{channel}", headers=auth("d1-admin"))
        assert r.status_code == 404 and r.json()["error"] == "not_found", r.text


# --- taking deliveries ---------------------------------------------------------------------

def apprise_body(title: str, message: str) -> Json:
    """What apprise/plugins/custom_json.py posts."""
    return {"version": "1.0", "title": title, "message": message, "attachments": [],
            "type": "info"}


def test_only_the_outbox_delivering_a_message_gets_it_stored(
    delivered: dict[str, str], client: TestClient, rt: Runtime
) -> None:
    before = stored(rt)
    forged = client.post("/api/receiver/duty", json=apprise_body("fake", "伪造的首报"))
    assert forged.status_code == 403 and forged.json()["error"] == "forbidden", forged.text
    # Replaying a real delivery once it is delivered is no delivery either.
    with read_session(rt.db) as session:
        real = session.exec(select(ReceivedMessage)).first()
    assert real is not None
    replay = client.post("/api/receiver/duty", json=apprise_body(real.title, real.body))
    assert replay.status_code == 403
    assert stored(rt) == before


def test_a_channel_the_org_chart_has_not_is_404(served: None, client: TestClient,
                                                rt: Runtime) -> None:
    for channel in ("anything", "county-duty", "duty-2"):
        r = client.post(f"/api/receiver/{channel}", json=apprise_body("t", "m"))
        assert r.status_code == 404, r.text
    assert stored(rt) == 0


@pytest.mark.parametrize(("body", "field"), [
    ({"title": "fake", "message": "伪造的首报"}, "version"),
    (apprise_body("t", "m") | {"title": {"a": 1}}, "title"),
    (apprise_body("t", "m") | {"message": ["x"]}, "message"),
    (apprise_body("t", "m") | {"type": "urgent"}, "type"),
    (apprise_body("t", "m") | {"extra": 1}, "extra"),
    (apprise_body("t", "m") | {"attachments": [{"filename": 1}]}, "attachments[0].filename"),
])
def test_a_body_not_shaped_like_apprise_json_is_422_naming_the_field(
    served: None, client: TestClient, rt: Runtime, body: Json, field: str
) -> None:
    r = client.post("/api/receiver/duty", json=body)
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert stored(rt) == 0


def test_a_60_mb_delivery_is_refused_unread(served: None, client: TestClient,
                                            rt: Runtime) -> None:
    huge = apprise_body("t", "x" * (60 * 2**20))
    r = client.post("/api/receiver/duty", json=huge)
    assert r.status_code == 422 and r.json()["field"] == "body", r.text[:300]
    assert MAX_BODY_BYTES < 60 * 2**20
    r = client.post("/api/receiver/duty", content=b"x" * (60 * 2**20),
                    headers={"content-type": "text/plain"})
    assert r.status_code == 422 and r.json()["field"] == "body", r.text[:300]
    assert stored(rt) == 0


def test_a_message_apprise_trims_is_still_taken_and_read_by_its_person(
        served: None, client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock) -> None:
    """Every shipped template ends with a newline, which Apprise drops on the way: the match
    with the notification being sent ignores whitespace (before, every real delivery was a
    403 and retried until given up)."""
    body = "【首报】一社区仓库燃气泄漏\n  已疏散 20 人。\n"
    with session_scope(rt.db) as session:
        insert_ignoring_duplicates(session, Notification, notification_rows(
            rt.org, people=["d1-director"], kind="report", title="首报 ", body=body,
            dedupe="trimmed", now=clock.now(), run_id=None, step_id=None))
    sent = deliver_due(rt.db, clock=clock)
    assert (sent.delivered, sent.failed) == (1, 0)
    with read_session(rt.db) as session:
        [got] = session.exec(select(ReceivedMessage)).all()
    assert got.body.strip() == body.strip()
    assert [" ".join(b.split()) for b in bodies(client, auth, "leaders", "d1-director")] == [
        " ".join(body.split())]


def test_a_delivery_is_taken_however_many_others_are_pending_on_the_channel(
        served: None, client: TestClient, rt: Runtime, clock: ManualClock) -> None:
    """A sweep that escalates a district's overdue hazards leaves thousands pending on one
    channel; the one being sent is taken wherever it stands among them (the receiver once
    compared only an arbitrary first 200, and refused the rest until they were given up).
    Part of a pending message, or another's text, is still no delivery; nor is a pending
    message the outbox is not sending now (it claims a row by moving its next attempt past
    now, flows/notify._claim)."""
    with session_scope(rt.db) as session:
        for i in range(450):
            insert_ignoring_duplicates(session, Notification, notification_rows(
                rt.org, people=["d1-director"], kind="escalate", title="【约谈】隐患逾期",
                body=f"隐患 YH{i:06d} 逾期未整改，列入约谈名单。\n", dedupe=f"many|{i}",
                now=clock.now(), run_id=None, step_id=None))
    full = ("【约谈】隐患逾期", "隐患 YH000447 逾期未整改，列入约谈名单。")
    assert client.post("/api/receiver/leaders", json=apprise_body(*full)).status_code == 403
    with session_scope(rt.db) as session:  # the outbox claims all of them, as it sends
        session.execute(update(Notification).values(
            next_attempt_at=clock.now() + timedelta(minutes=1)))
    last = apprise_body("【约谈】隐患逾期", "隐患 YH000449 逾期未整改，列入约谈名单。")
    r = client.post("/api/receiver/leaders", json=last)
    assert r.status_code == 201, r.text
    for title, message in (("【约谈】隐患逾期", "隐患 YH000449 逾期未整改"),
                           ("【约谈】", "隐患 YH000448 逾期未整改，列入约谈名单。"),
                           ("【约谈】隐患逾期", "隐患 YH000450 逾期未整改，列入约谈名单。")):
        r = client.post("/api/receiver/leaders", json=apprise_body(title, message))
        assert r.status_code == 403, (title, message, r.text)
    assert stored(rt) == 1
