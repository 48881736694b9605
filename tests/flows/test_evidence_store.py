"""Evidence in the store CLOSELOOP_EVIDENCE_URL names: a real HTTP object server on loopback
(tests/object_server.py) and file:// directories. Uploads round-trip, the same photo is one
PUT, credentials go to the store and never into the database, a swapped object is refused as a
swapped file is, and a store that is down fails the upload before any row is written."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from factories import REPO, png_bytes
from object_server import PREFIX, ObjectServer
from pydantic import ValidationError
from sqlmodel import select

from flows.evidence import read_evidence, store_evidence
from flows.evidence_store import DirectoryStore, HttpStore, ObjectMissing, content_key
from flows.runtime import Runtime
from models.db import read_session
from models.documents import Evidence
from models.errors import EvidenceDamaged, StoreUnavailable
from models.settings import Settings

MakeRt = Callable[..., Runtime]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours *_proxy variables; a CI proxy must not stand between us and loopback.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[ObjectServer]:
    with ObjectServer() as s:
        yield s


def store(rt: Runtime, data: bytes | None = None, name: str = "现场.png") -> Evidence:
    return store_evidence(rt, data=data or png_bytes(), filename=name, uploaded_by="c1-grid")


def rows(rt: Runtime) -> list[Evidence]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Evidence)).all())


def object_path(data: bytes) -> str:
    return PREFIX + content_key(hashlib.sha256(data).hexdigest())


# --- HTTP store ------------------------------------------------------------------------------

def test_upload_and_download_round_trip_through_the_http_store(
    make_rt: MakeRt, server: ObjectServer
) -> None:
    rt = make_rt(settings={"evidence_url": server.url()})
    data = png_bytes(3, 2)
    row = store(rt, data)
    assert server.objects == {object_path(data): data}
    assert row.stored_path == server.origin + object_path(data)
    assert not (rt.settings.data_dir / "evidence").exists()  # nothing went to the data dir
    assert read_evidence(row, rt) == data
    assert server.methods() == ["HEAD", "PUT", "GET"]


def test_the_same_photo_twice_is_one_put(make_rt: MakeRt, server: ObjectServer) -> None:
    rt = make_rt(settings={"evidence_url": server.url()})
    first, second = store(rt, name="a.png"), store(rt, name="b.png")
    # The second upload reads the object back to check it still holds the photo: no PUT.
    assert server.methods() == ["HEAD", "PUT", "HEAD", "GET"]
    assert first.id != second.id and first.stored_path == second.stored_path
    assert len(rows(rt)) == 2 and len(server.objects) == 1


def test_basic_credentials_are_sent_and_never_stored(make_rt: MakeRt) -> None:
    with ObjectServer(user="closeloop", password="p@ss word") as server:
        rt = make_rt(settings={"evidence_url": server.url("closeloop:p%40ss%20word")})
        row = store(rt)
        assert read_evidence(row, rt) == png_bytes()
        expected = "Basic " + base64.b64encode(b"closeloop:p@ss word").decode()
        assert [r.headers.get("authorization") for r in server.requests] == [expected] * 3
        assert [r.status for r in server.requests] == [404, 201, 200]
    assert row.stored_path.startswith(f"http://127.0.0.1:{server.port}/")
    assert "closeloop" not in row.stored_path and "p%40ss" not in row.stored_path
    [saved] = rows(rt)
    assert saved.stored_path == row.stored_path


def test_bearer_token_is_sent(make_rt: MakeRt) -> None:
    with ObjectServer(token="t0ken") as server:
        rt = make_rt(settings={"evidence_url": server.url(), "evidence_token": "t0ken"})
        assert read_evidence(store(rt), rt) == png_bytes()
        assert {r.headers.get("authorization") for r in server.requests} == {"Bearer t0ken"}


def test_wrong_credentials_are_store_unavailable_and_write_no_row(make_rt: MakeRt) -> None:
    with ObjectServer(user="closeloop", password="right") as server:
        rt = make_rt(settings={"evidence_url": server.url("closeloop:wrong")})
        with pytest.raises(StoreUnavailable, match="HEAD .* answered 401") as caught:
            store(rt)
    assert "wrong" not in str(caught.value)
    assert rows(rt) == [] and server.objects == {}


def test_swapped_object_in_the_store_is_refused_on_read(
    make_rt: MakeRt, server: ObjectServer
) -> None:
    rt = make_rt(settings={"evidence_url": server.url()})
    row = store(rt)
    server.objects[object_path(png_bytes())] = png_bytes(9, 9)  # someone swapped the photo
    with pytest.raises(EvidenceDamaged, match="does not match its hash") as caught:
        read_evidence(row, rt)
    assert caught.value.evidence_id == row.id


def test_object_gone_from_the_store_is_refused_on_read(
    make_rt: MakeRt, server: ObjectServer
) -> None:
    rt = make_rt(settings={"evidence_url": server.url()})
    row = store(rt)
    server.objects.clear()
    with pytest.raises(EvidenceDamaged, match="is missing") as caught:
        read_evidence(row, rt)
    assert caught.value.evidence_id == row.id and caught.value.missing


def test_store_down_is_a_clear_error_and_writes_no_row(make_rt: MakeRt) -> None:
    with ObjectServer() as gone:
        url = gone.url()
    rt = make_rt(settings={"evidence_url": url})  # nothing listens there any more
    with pytest.raises(StoreUnavailable) as caught:
        store(rt)
    assert str(caught.value).startswith("证据存储不可用 / evidence store unavailable")
    assert f"127.0.0.1:{gone.port}" in caught.value.reason
    assert rows(rt) == []


@pytest.mark.parametrize(("method", "status"), [
    ("HEAD", 500), ("HEAD", 403), ("PUT", 503), ("PUT", 507),
])
def test_store_answering_an_error_fails_the_upload_and_writes_no_row(
    make_rt: MakeRt, server: ObjectServer, method: str, status: int
) -> None:
    rt = make_rt(settings={"evidence_url": server.url()})
    server.failing[method] = status
    with pytest.raises(StoreUnavailable, match=f"{method} .* answered {status}"):
        store(rt)
    assert rows(rt) == [] and server.objects == {}


def test_refused_webdav_collection_fails_the_upload_and_writes_no_row(
    make_rt: MakeRt, server: ObjectServer
) -> None:
    rt = make_rt(settings={"evidence_url": server.url()})
    server.require_collections = True
    server.failing["MKCOL"] = 403
    with pytest.raises(StoreUnavailable, match="MKCOL .* answered 403"):
        store(rt)
    assert server.methods() == ["HEAD", "PUT", "MKCOL"]
    assert rows(rt) == [] and server.objects == {}


def test_stuck_store_times_out_as_unavailable(server: ObjectServer) -> None:
    http = HttpStore(server.url(), timeout=0.3)
    server.hang()
    try:
        with pytest.raises(StoreUnavailable, match="HEAD"):
            http.put(content_key("ab" * 32), png_bytes())
    finally:
        server.release()
    assert server.objects == {}


def test_webdav_collection_is_made_when_the_put_needs_it(
    make_rt: MakeRt, server: ObjectServer
) -> None:
    server.require_collections = True
    rt = make_rt(settings={"evidence_url": server.url()})
    data = png_bytes()
    row = store(rt, data)
    folder = object_path(data).rsplit("/", 1)[0] + "/"
    assert [(r.method, r.status) for r in server.requests] == [
        ("HEAD", 404), ("PUT", 409), ("MKCOL", 201), ("PUT", 201)]
    assert folder in server.collections and read_evidence(row, rt) == data


def test_credentials_do_not_follow_a_redirect(make_rt: MakeRt) -> None:
    # A presigning gateway answers GET with 307 to a signed URL elsewhere: our Basic
    # credentials must not travel there.
    with ObjectServer(user="u", password="secret") as gateway, ObjectServer() as signed:
        rt = make_rt(settings={"evidence_url": gateway.url("u:secret")})
        row = store(rt)
        signed.objects.update(gateway.objects)
        gateway.redirect_gets_to = signed.origin
        assert read_evidence(row, rt) == png_bytes()
    [got] = signed.requests
    assert got.method == "GET" and "authorization" not in got.headers


def test_a_row_stored_before_the_store_was_configured_still_reads(make_rt: MakeRt,
                                                                   server: ObjectServer) -> None:
    rt = make_rt()
    row = store(rt)
    assert Path(row.stored_path).is_file()
    moved = make_rt(settings={"evidence_url": server.url(), "data_dir": rt.settings.data_dir})
    assert read_evidence(row, moved) == png_bytes()
    assert server.requests == []


def test_a_url_outside_the_configured_store_is_not_fetched(
    make_rt: MakeRt, server: ObjectServer
) -> None:
    rt = make_rt(settings={"evidence_url": server.url()})
    row = store(rt)
    other = make_rt()  # evidence_url unset now: the row's URL is no store we know
    with pytest.raises(StoreUnavailable, match="outside the configured evidence store"):
        read_evidence(row, other)
    assert server.methods() == ["HEAD", "PUT"]


# --- directory stores ------------------------------------------------------------------------

def test_file_url_store_writes_under_that_directory(make_rt: MakeRt, tmp_path: Path) -> None:
    share = tmp_path / "share" / "证据"
    share.mkdir(parents=True)
    rt = make_rt(settings={"evidence_url": share.as_uri()})
    data = png_bytes()
    row = store(rt, data)
    digest = hashlib.sha256(data).hexdigest()
    path = share / digest[:2] / digest
    assert row.stored_path == str(path) and path.read_bytes() == data
    assert not (rt.settings.data_dir / "evidence").exists()
    assert [p.name for p in path.parent.iterdir()] == [digest]  # no temporary file left
    assert read_evidence(row, rt) == data
    path.write_bytes(png_bytes(7, 7))
    with pytest.raises(EvidenceDamaged, match="does not match its hash"):
        read_evidence(row, rt)


def test_unwritable_directory_store_is_unavailable_and_writes_no_row(
    make_rt: MakeRt, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the share should be")
    rt = make_rt(settings={"evidence_url": blocker.as_uri()})
    with pytest.raises(StoreUnavailable, match="cannot write"):
        store(rt)
    assert rows(rt) == []


def test_default_store_is_the_data_dir_as_before(make_rt: MakeRt) -> None:
    rt = make_rt()
    row = store(rt)
    digest = row.sha256
    assert row.stored_path == str(rt.settings.data_dir / "evidence" / digest[:2] / digest)
    assert read_evidence(row, rt) == png_bytes()


def test_keys_cannot_leave_the_store(tmp_path: Path) -> None:
    (tmp_path / "evidence").mkdir()
    files = DirectoryStore(tmp_path / "evidence")
    for key in ("../secret", "ab/../../secret", "AB/" + "A" * 64, "ab", ""):
        with pytest.raises(ValueError, match="not an evidence key"):
            files.get(key)
    with pytest.raises(ObjectMissing):
        files.get(content_key("cd" * 32))


def test_unmounted_share_is_unavailable_not_missing(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="is missing"):
        DirectoryStore(tmp_path / "unmounted").get(content_key("cd" * 32))


# --- configuration ---------------------------------------------------------------------------

def settings(tmp_path: Path, **fields: object) -> Settings:
    return Settings(data_dir=tmp_path, _env_file=None, **fields)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize("url", [
    "ftp://user:hunter2@files.example/evidence/",
    "s3://user:hunter2@bucket/evidence",
    "file://relative/dir",
    "http:///no-host",
    "http://user:hunter2@host:notaport/",
    "https://host/bucket/?sig=hunter2",
    "/just/a/path",
    "http://host/" + "x" * 400,
])
def test_bad_evidence_url_is_a_configuration_error_naming_the_setting(
    tmp_path: Path, url: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(tmp_path, evidence_url=url)
    text = str(caught.value)
    assert "evidence_url" in text and "CLOSELOOP_EVIDENCE_URL" in text
    assert "hunter2" not in text  # the message never repeats a password


def test_bad_evidence_url_from_the_environment_stops_the_cli(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOSELOOP_", "PREFECT_"))}
    env |= {"CLOSELOOP_DATA_DIR": str(tmp_path), "PYTHONIOENCODING": "utf-8",
            "CLOSELOOP_EVIDENCE_URL": "ftp://user:hunter2@files.example/"}
    done = subprocess.run([sys.executable, "-m", "api.cli", "token", "c1-grid"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "CLOSELOOP_EVIDENCE_URL" in done.stderr and "ftp://" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


@pytest.mark.parametrize("fields", [
    {"evidence_token": "t"},  # a token with no store to send it to
    {"evidence_token": "t", "evidence_url": "file:///srv/evidence"},
    {"evidence_token": "t", "evidence_url": "https://u:p@store.example/b/"},
])
def test_evidence_token_needs_an_http_store_without_url_credentials(
    tmp_path: Path, fields: dict[str, str]
) -> None:
    with pytest.raises(ValidationError, match="CLOSELOOP_EVIDENCE_TOKEN"):
        settings(tmp_path, **fields)


@pytest.mark.parametrize("url", [
    "file:///srv/evidence", "http://127.0.0.1:9000/bucket/", "https://store.example",
    "HTTPS://u:p@[::1]:8443/bucket/evidence/", "",
])
def test_good_evidence_urls_are_accepted(tmp_path: Path, url: str) -> None:
    assert settings(tmp_path, evidence_url=url).evidence_url == (url or None)


def test_http_store_base_url_drops_the_credentials() -> None:
    http = HttpStore("HTTPS://u:p@[::1]:8443/bucket/evidence")
    assert http.base == "https://[::1]:8443/bucket/evidence/"
    key = content_key("ef" * 32)
    assert http.location(key) == http.base + key and http.key_at(http.location(key)) == key
