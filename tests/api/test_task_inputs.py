"""What people send to the task and evidence routes (TestClient on a real SQLite runtime): file
names with control characters or in GBK, a damaged stored file (409 evidence_damaged, logged,
never a 422 as if the request were wrong), deadlines written as dates, times without zone,
impossible dates and bare numbers (one shape for /extend and requests for more time, Chinese
first), notes with bidi overrides, a closed task before a past date, and a 404 that does not
echo a 5,000-character id."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from factories import png_bytes
from fastapi.testclient import TestClient

from flows.runtime import Runtime
from models.clock import ManualClock
from models.db import read_session
from models.documents import Evidence

Json = dict[str, Any]
Auth = Callable[[str], dict[str, str]]
SHANGHAI = ZoneInfo("Asia/Shanghai")
BOUNDARY = "closeloop-test-boundary"


def upload_raw(client: TestClient, auth: Auth, filename: bytes, data: bytes | None = None,
               who: str = "c1-grid") -> httpx.Response:
    """A multipart upload written byte for byte: httpx would escape what a phone may send."""
    body = (f"--{BOUNDARY}\r\n".encode()
            + b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
            + b"Content-Type: image/png\r\n\r\n" + (data or png_bytes()) + b"\r\n"
            + f"--{BOUNDARY}--\r\n".encode())
    return client.post("/api/evidence", content=body, headers=auth(who) | {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


def stored_row(rt: Runtime, ev_id: str) -> Evidence:
    with read_session(rt.db) as session:
        row = session.get(Evidence, ev_id)
        assert row is not None
        return row


def start(client: TestClient, auth: Auth, playbook: str = "register-demo") -> Json:
    r = client.post("/api/runs", json={"playbook": playbook, "unit": "c1",
                                       "params": {"location": "一社区加油站"}},
                    headers=auth("s1-commander"))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def task(client: TestClient, auth: Auth, key: str = "rectify",
         playbook: str = "register-demo") -> Json:
    return next(s for s in start(client, auth, playbook)["steps"] if s["step"] == key)


def extend(client: TestClient, auth: Auth, step: Json, due_at: Any,
           who: str = "s1-commander") -> httpx.Response:
    return client.post(f"/api/tasks/{step['id']}/extend",
                       json={"due_at": due_at, "reason": "设备到货延迟"}, headers=auth(who))


def ask(client: TestClient, auth: Auth, step: Json, due_at: Any) -> httpx.Response:
    return client.post(f"/api/tasks/{step['id']}/extension-requests",
                       json={"due_at": due_at, "reason": "设备到货延迟"}, headers=auth("c1-grid"))


def refused(r: httpx.Response, field: str) -> str:
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field, r.json()
    return r.json()["errors"][0]["message"]  # type: ignore[no-any-return]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- file names --------------------------------------------------------------------------------

@pytest.mark.parametrize(("sent", "kept"), [
    (b"\xe7\x8e\xb0\xe5\x9c\xba\x00.png", "现场.png"),  # UTF-8 with a NUL
    ("整改后照片.png".encode("gbk"), "整改后照片.png"),  # a Windows PC set to Chinese
    ("C:\\Users\\网格员\\整改\x07.png".encode(), "整改.png"),
    ("\u202egnp.exe".encode(), "gnp.exe"),
    (b"\x00\x01", "证据.png"),
])
def test_upload_file_names_are_cleaned_before_anything_is_stored(
    client: TestClient, auth: Auth, rt: Runtime, sent: bytes, kept: str
) -> None:
    r = upload_raw(client, auth, sent)
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == kept
    row = stored_row(rt, r.json()["id"])
    assert row.filename == kept and Path(row.stored_path).read_bytes() == png_bytes()


# --- damaged stored files --------------------------------------------------------------------

def test_a_damaged_file_is_409_on_download_and_on_completion_and_logged(
    client: TestClient, auth: Auth, rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    up = upload_raw(client, auth, b"site.png", who="s1-duty").json()
    Path(stored_row(rt, up["id"]).stored_path).write_bytes(png_bytes(7, 7))
    with caplog.at_level(logging.WARNING, logger="closeloop.evidence"):
        got = client.get(f"/api/evidence/{up['id']}", headers=auth("s1-duty"))
    assert got.status_code == 409, got.text
    assert got.json()["error"] == "evidence_damaged" and got.json()["evidence"] == up["id"]
    assert got.json()["detail"].startswith("证据文件")
    assert any(up["id"] in r.getMessage() for r in caplog.records)
    receive = task(client, auth, "receive", "quick-escalation")
    done = client.post(f"/api/tasks/{receive['id']}/complete", json={"evidence": [up["id"]]},
                       headers=auth("s1-duty"))
    assert done.status_code == 409 and up["id"] in done.json()["detail"], done.text
    again = upload_raw(client, auth, b"site.png", who="s1-duty")  # the genuine file again
    assert again.status_code == 201
    assert client.get(f"/api/evidence/{up['id']}", headers=auth("s1-duty")).content == png_bytes()
    done = client.post(f"/api/tasks/{receive['id']}/complete", json={"evidence": [up["id"]]},
                       headers=auth("s1-duty"))
    assert done.status_code == 200, done.text


def test_a_very_long_evidence_id_is_not_echoed(client: TestClient, auth: Auth) -> None:
    r = client.get("/api/evidence/" + "a" * 5000, headers=auth("c1-grid"))
    assert r.status_code == 404 and len(r.content) < 400, len(r.content)
    assert r.json()["detail"].startswith("证据文件 aaa")


# --- deadlines ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("due_at", "zh"), [
    ("2027-02-30", "没有这一天：2027-02-30 / "),
    ("9999-12-31", "日期超出范围：9999-12-31 / "),
    (1900000000, "应为日期时间 / "),
    (1.5, "应为日期时间 / "),
])
def test_bad_deadlines_are_422_chinese_first_on_both_routes(
    client: TestClient, auth: Auth, due_at: Any, zh: str
) -> None:
    step = task(client, auth)
    for r in (extend(client, auth, step, due_at), ask(client, auth, step, due_at)):
        message = refused(r, "due_at")
        assert message.startswith(zh), message


def test_extend_takes_a_date_and_a_time_without_zone_as_requests_do(
    client: TestClient, auth: Auth
) -> None:
    step = task(client, auth)
    day = (utc(step["due_at"]) + timedelta(days=3)).astimezone(SHANGHAI).date()
    r = extend(client, auth, step, day.isoformat())
    assert r.status_code == 200, r.text
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI)
    assert utc(r.json()["due_at"]) == end and r.json()["due_at_local"].endswith("24:00")
    r = extend(client, auth, step, f"{day.isoformat()}T18:00")
    assert r.status_code == 200, r.text
    assert utc(r.json()["due_at"]) == datetime.combine(
        day, datetime.min.time().replace(hour=18), tzinfo=SHANGHAI)


def test_extend_refuses_a_deadline_not_later_than_now(
    client: TestClient, auth: Auth, clock: ManualClock
) -> None:
    step = task(client, auth)
    now = clock.now().astimezone(SHANGHAI)
    for past in (now.isoformat(), (now - timedelta(hours=1)).replace(tzinfo=None).isoformat(),
                 (now - timedelta(days=1)).date().isoformat()):
        message = refused(extend(client, auth, step, past), "due_at")
        assert message.startswith("新期限须晚于现在"), message
    sooner = (now + timedelta(days=1)).isoformat()  # earlier than the current deadline
    assert utc(step["due_at"]) > utc(sooner)
    r = extend(client, auth, step, sooner)
    assert r.status_code == 200 and utc(r.json()["due_at"]) == utc(sooner), r.text


def test_a_closed_task_answers_409_before_its_date_is_read(
    client: TestClient, auth: Auth
) -> None:
    step = task(client, auth)
    done = client.post(f"/api/tasks/{step['id']}/complete", json={"note": "已整改"},
                       headers=auth("c1-grid"))
    assert done.status_code == 200, done.text
    for r in (ask(client, auth, step, "2020-01-01T00:00:00+08:00"),
              extend(client, auth, step, "2020-01-01T00:00:00+08:00")):
        assert r.status_code == 409 and r.json()["detail"].startswith("任务已完成"), r.text


# --- notes and reasons -------------------------------------------------------------------------

def test_notes_and_reasons_with_bidi_or_control_characters_are_422_naming_the_field(
    client: TestClient, auth: Auth
) -> None:
    step = task(client, auth)
    r = client.post(f"/api/tasks/{step['id']}/complete", json={"note": "已整改\u202e"},
                    headers=auth("c1-grid"))
    assert "控制字符" in refused(r, "note")
    later = (utc(step["due_at"]) + timedelta(days=2)).isoformat()
    r = client.post(f"/api/tasks/{step['id']}/extension-requests",
                    json={"due_at": later, "reason": "延期\x07"}, headers=auth("c1-grid"))
    assert "控制字符" in refused(r, "reason")
    r = client.post(f"/api/tasks/{step['id']}/extend",
                    json={"due_at": later, "reason": "\u2066延期\u2069"},
                    headers=auth("s1-commander"))
    assert "控制字符" in refused(r, "reason")
    r = client.post(f"/api/runs/{step['run_id']}/cancel", json={"reason": "误报\u202e"},
                    headers=auth("s1-commander"))
    assert "控制字符" in refused(r, "reason")
    r = client.post(f"/api/runs/{step['run_id']}/cancel", json={"reason": "误报，\n已核实"},
                    headers=auth("s1-commander"))
    assert r.status_code == 200, r.text
