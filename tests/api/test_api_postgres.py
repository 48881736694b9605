"""The HTTP API on a real PostgreSQL 15 server on loopback, for what only PostgreSQL refuses:
ids past its 32-bit INTEGER columns, NUL in text and JSON, a campaign id in run params beyond
what any run can have. Each was a 500 (NumericValueOutOfRange, "invalid byte sequence",
"unsupported Unicode escape sequence"); each must be a 422 naming the field, or a 404 for the
largest id there can be. One server per module, a fresh database per test. These fail (not
skip) when the server binaries are missing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime, png_bytes
from fastapi.testclient import TestClient

from api.deps import MAX_ROW
from flows.runtime import Runtime
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]
IdRoutes = list[tuple[str, str, str, dict[str, object] | None]]
Json = dict[str, Any]


@pytest.fixture
def rt(pg_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    """The shipped playbooks (hazard-3030, campaign-3030, ...) and the demo district on
    PostgreSQL; the conftest client and auth use it."""
    rt = make_runtime(tmp_path / "pg", clock=clock, db_url=pg_url,
                      playbooks=SHIPPED_PLAYBOOKS, org_path=DEMO_ORG)
    assert rt.db.dialect.name == "postgresql" and rt.catalog.errors == []
    yield rt
    rt.db.dispose()


ADMIN = "pingshan-admin"
COMMANDER = "wang-qiang"  # district commander: starts runs anywhere


def hazard(client: TestClient, auth: Auth, params: Json) -> Any:
    return client.post("/api/runs", json={"playbook": "hazard-3030", "unit": "liuhe",
                                          "params": {"location": "六和社区仓库"} | params},
                       headers=auth(COMMANDER))


def test_ids_past_32_bits_are_422_and_the_largest_is_404_on_postgres(
    client: TestClient, auth: Auth, id_routes: IdRoutes
) -> None:
    assert hazard(client, auth, {}).status_code == 201  # rows exist: the queries really run
    for method, url, field, body in id_routes:
        for beyond in (MAX_ROW + 1, 2**63 - 1):
            r = client.request(method, url.format(id=beyond), json=body, headers=auth(ADMIN))
            assert r.status_code == 422, (method, url, beyond, r.text)
            assert r.json()["field"] == field, (url, r.json())
        r = client.request(method, url.format(id=MAX_ROW), json=body, headers=auth(ADMIN))
        assert r.status_code == (200 if "?" in url else 404), (method, url, r.text)


@pytest.mark.parametrize("campaign", [MAX_ROW + 1, 9007199254740991])
def test_a_campaign_id_past_any_run_is_422_on_postgres(client: TestClient, auth: Auth,
                                                        campaign: int) -> None:
    r = hazard(client, auth, {"campaign": campaign})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == "params.campaign"
    assert body["errors"][0]["message"] == (f"专项行动 #{campaign} 不存在 / campaign run "
                                            f"{campaign} does not exist")


def test_nul_and_lone_surrogates_in_params_are_422_on_postgres(client: TestClient,
                                                                auth: Auth) -> None:
    for raw, field in [(b'"a\\u0000b"', "params.location"), (b'"\\ud800"', "params.location"),
                       (b'"x", "description": "\\u0000"', "params.description")]:
        body = (b'{"playbook": "hazard-3030", "unit": "liuhe", "params": {"location": '
                + raw + b"}}")
        r = client.post("/api/runs", content=body,
                        headers=auth(COMMANDER) | {"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["field"] == field, (raw, r.text)
    assert client.get("/api/runs", headers=auth(ADMIN)).json()["count"] == 0
    # And the same characters without the escapes, as a client library would send them.
    r = client.post("/api/runs", json={"playbook": "hazard-3030", "unit": "liuhe",
                                       "params": {"location": "a\x00b"}},
                    headers=auth(COMMANDER))
    assert r.status_code == 422 and r.json()["field"] == "params.location", r.text


def test_nul_in_query_and_path_is_422_on_postgres(client: TestClient, auth: Auth) -> None:
    run = hazard(client, auth, {}).json()
    me = auth(ADMIN)
    for url, field in [("/api/runs?playbook=a%00b", "playbook"),
                       ("/api/runs?status=running%00", "status"),
                       ("/api/hazards?code=x%00", "code"), ("/api/hazards?q=%00", "q"),
                       ("/api/evidence/abc%00", "path"), ("/api/receiver/leaders%00", "path")]:
        r = client.get(url, headers=me)
        assert r.status_code == 422 and r.json()["field"] == field, (url, r.text)
    r = client.post(f"/api/runs/{run['id']}/cancel", json={"reason": "误报\x00"},
                    headers=auth(COMMANDER))
    assert r.status_code == 422 and r.json()["field"] == "reason", r.text
    upload = client.post("/api/evidence", files={"file": ("a\x00.png", png_bytes(), "image/png")},
                         headers=auth("liuhe-safety"))
    assert upload.status_code < 500  # multipart is the upload's own business, never a 500
