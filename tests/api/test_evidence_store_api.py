"""Evidence upload and download through the API with CLOSELOOP_EVIDENCE_URL pointing at a real
object server on loopback (tests/object_server.py) that requires HTTP Basic: the bytes land in
the store, come back through it, a swapped object is refused, and a store that goes down
answers 503 "evidence store unavailable" with no row written."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
from factories import png_bytes
from fastapi.testclient import TestClient
from object_server import PREFIX, ObjectServer
from sqlmodel import select

from flows.runtime import Runtime
from models.db import read_session
from models.documents import Evidence

Auth = Callable[[str], dict[str, str]]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours *_proxy variables; a CI proxy must not stand between us and loopback.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def objects() -> Iterator[ObjectServer]:
    with ObjectServer(user="closeloop", password="s3cret") as server:
        yield server


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], objects: ObjectServer) -> Runtime:
    return make_rt(settings={"evidence_url": objects.url("closeloop:s3cret")})


def upload(client: TestClient, auth: Auth, data: bytes) -> dict[str, object]:
    r = client.post("/api/evidence", files={"file": ("现场.png", data, "image/png")},
                    headers=auth("c1-grid"))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_upload_goes_to_the_object_store_and_download_comes_back_from_it(
    client: TestClient, auth: Auth, objects: ObjectServer, rt: Runtime
) -> None:
    data = png_bytes(4, 3)
    body = upload(client, auth, data)
    digest = hashlib.sha256(data).hexdigest()
    assert body["sha256"] == digest
    assert objects.objects == {f"{PREFIX}{digest[:2]}/{digest}": data}
    got = client.get(f"/api/evidence/{body['id']}", headers=auth("c1-grid"))
    assert got.status_code == 200 and got.content == data
    assert objects.methods() == ["HEAD", "PUT", "GET"]
    with read_session(rt.db) as session:
        row = session.get(Evidence, body["id"])
    assert row is not None and "s3cret" not in row.stored_path
    assert not (rt.settings.data_dir / "evidence").exists()


def test_swapped_object_is_refused_on_download(
    client: TestClient, auth: Auth, objects: ObjectServer
) -> None:
    data = png_bytes()
    body = upload(client, auth, data)
    [key] = objects.objects
    objects.objects[key] = png_bytes(8, 8)
    r = client.get(f"/api/evidence/{body['id']}", headers=auth("c1-grid"))
    # The store's state, not the request, is wrong: 409, not 422 (nor a 500).
    assert r.status_code == 409 and r.json()["error"] == "evidence_damaged"
    assert r.json()["evidence"] == body["id"]
    detail = r.json()["detail"]
    assert detail.startswith("证据文件") and "does not match its hash" in detail


def test_store_down_is_503_evidence_store_unavailable_and_writes_no_row(
    client: TestClient, auth: Auth, objects: ObjectServer, rt: Runtime
) -> None:
    # 503 is the one 5xx the API gives on purpose (a store it depends on is down), so this
    # test takes off the conftest's never-5xx hook (its only response hook) and checks the
    # answer itself.
    client.event_hooks["response"].clear()
    objects.close()
    r = client.post("/api/evidence", files={"file": ("现场.png", png_bytes(), "image/png")},
                    headers=auth("c1-grid"))
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "evidence_store_unavailable"
    assert r.json()["detail"].startswith("证据存储暂不可用")
    assert str(objects.port) not in r.text  # where the store is stays in the log
    assert r.headers["retry-after"] == "30"
    with read_session(rt.db) as session:
        assert session.exec(select(Evidence)).all() == []
