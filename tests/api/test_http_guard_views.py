"""What the API shows and how far its numbers go: ids and offsets within what both databases
hold (2^31 - 1: PostgreSQL's INTEGER), notification URLs without their credentials, and the
in-app inbox paged with a total. TestClient on a real SQLite runtime; deliveries through real
Apprise to a closed loopback port."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from factories import SMALL_ORG
from fastapi.testclient import TestClient

from api.deps import MAX_ROW
from flows.notify import deliver_due
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock

Json = dict[str, Any]
Auth = Callable[[str], dict[str, str]]
IdRoutes = list[tuple[str, str, str, dict[str, object] | None]]

# A section chief (notified when quick-escalation's first step is late) whose notify URL
# carries a password, as json:// and mailto:// URLs do.
SECRET_URL = "json://duty:S3cretPass@127.0.0.1:9/hook"


@pytest.fixture
def rt(make_rt: Callable[..., Runtime]) -> Runtime:
    org = SMALL_ORG.read_text(encoding="utf-8").replace(
        "{id: d1-chief, name: 安全科科长, name_en: Section chief, roles: [section_chief], "
        "notify: []}",
        "{id: d1-chief, name: 安全科科长, name_en: Section chief, roles: [section_chief], "
        f'notify: ["{SECRET_URL}"]}}')
    assert SECRET_URL in org
    return make_rt(org_text=org)


def start(client: TestClient, auth: Auth, location: str = "一社区") -> Json:
    r = client.post("/api/runs", json={"playbook": "quick-escalation", "unit": "c1",
                                       "params": {"location": location}},
                    headers=auth("s1-commander"))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# --- ids -----------------------------------------------------------------------------------

def test_ids_and_offsets_beyond_32_bits_are_422_naming_the_field(
    client: TestClient, auth: Auth, id_routes: IdRoutes
) -> None:
    assert MAX_ROW == 2**31 - 1
    for method, url, field, body in id_routes:
        r = client.request(method, url.format(id=MAX_ROW + 1), json=body,
                           headers=auth("d1-admin"))
        assert r.status_code == 422, (method, url, r.text)
        assert r.json()["field"] == field, (url, r.json())
        assert r.json()["errors"][0]["message"].startswith(f"应不大于 {MAX_ROW} /"), r.json()
        r = client.request(method, url.format(id=MAX_ROW), json=body, headers=auth("d1-admin"))
        assert r.status_code == (200 if "?" in url else 404), (method, url, r.text)


# --- notification URLs ---------------------------------------------------------------------

def test_notification_urls_show_scheme_and_host_only_to_everyone(
    client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock
) -> None:
    run = start(client, auth)
    clock.advance(timedelta(seconds=3))  # the first step is late: the chief is notified
    assert sweep_once(rt).fired == 1
    report = deliver_due(rt.db, clock=clock)  # real Apprise to port 9: refused, recorded
    assert report.attempted >= 1 and report.delivered == 0
    for who in ("c1-grid", "s1-commander", "d1-admin"):
        r = client.get(f"/api/runs/{run['id']}/notifications", headers=auth(who))
        assert r.status_code == 200, r.text
        assert "S3cretPass" not in r.text and "duty:" not in r.text, (who, r.text)
        [sent] = [n for n in r.json()["data"] if n["recipient"] == "d1-chief"
                  and n["url"] != "inbox://"]
        assert sent["url"] == "json://127.0.0.1:9/…"
        assert sent["status"] == "pending" and sent["attempts"][0]["ok"] is False
        assert sent["attempts"][0]["error"]  # why it failed is still there
        inbox = [n for n in r.json()["data"] if n["url"] == "inbox://"]
        assert inbox, "the in-app inbox is shown as it is"


# --- the inbox -----------------------------------------------------------------------------

def test_inbox_pages_with_offset_and_a_total_count(client: TestClient, auth: Auth) -> None:
    runs = [start(client, auth, f"{i}号楼")["id"] for i in range(3)]
    me = auth("s1-duty")
    first = client.get("/api/inbox", params={"limit": 2}, headers=me).json()
    assert (first["count"], first["limit"], first["offset"]) == (3, 2, 0)
    assert [n["run_id"] for n in first["data"]] == [runs[2], runs[1]]  # newest first
    rest = client.get("/api/inbox", params={"limit": 2, "offset": 2}, headers=me).json()
    assert [n["run_id"] for n in rest["data"]] == [runs[0]] and rest["count"] == 3
    past = client.get("/api/inbox", params={"offset": 3}, headers=me).json()
    assert past["data"] == [] and past["count"] == 3
    assert client.get("/api/inbox", headers=auth("c1-grid")).json()["count"] == 0
    r = client.get("/api/inbox", params={"offset": -1}, headers=me)
    assert r.status_code == 422 and r.json()["field"] == "offset"
