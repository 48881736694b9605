"""Evidence as proof (SQLite): one picture uploaded twice is one photo, and a picture that proved a
task of another run proves nothing here; a stored file damaged on disk or in an object store is
refused on completion and on read (EvidenceDamaged, logged) and repaired by uploading the genuine
file again; file names are cleaned before anything is stored. Around the tasks: the audit trail
keeps the previous assignees and deadline, notes and reasons refuse control and bidi characters,
and a closed task is a Conflict whatever date is asked for."""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from factories import ENGINE_PLAYBOOKS, png_bytes
from factories import run_events as events
from factories import step_row as step_of
from object_server import ObjectServer
from sqlmodel import select

from flows import extensions, lifecycle, tasks
from flows.evidence import NEUTRAL_NAME, read_evidence, safe_filename, store_evidence
from flows.evidence_store import DirectoryStore, HttpStore, content_key
from flows.runtime import Runtime
from models.clock import ManualClock
from models.db import read_session
from models.documents import Evidence
from models.errors import Conflict, EvidenceDamaged, InvalidInput, NotFound
from models.outbox import Notification
from models.run import Run

DAY = timedelta(days=1)
TWO_PHOTOS = """\
id: two-photos
version: 1
title: 双照片整改
title_en: Rectify with two photos
kind: rectification
params:
  location: {type: string, required: true, title: 地点}
steps:
  - id: fix
    title: 整改
    title_en: Fix
    role: grid_worker
    due: 1d
    evidence: {photos: 2}
"""


@pytest.fixture
def books(tmp_path: Path) -> Path:
    """The engine playbooks (copied: tests/fixtures stays as it is) and one asking two photos."""
    path = tmp_path / "books"
    shutil.copytree(ENGINE_PLAYBOOKS, path)
    (path / "two-photos.yaml").write_text(TWO_PHOTOS, encoding="utf-8")
    return path


def start(rt: Runtime, playbook: str = "quick-escalation") -> int:
    params = {"location": "一社区3号楼"}
    return lifecycle.start_run(rt, playbook_id=playbook, unit_id="c1", params=params,
                               actor="s1-commander").id or 0


def inbox(rt: Runtime, person: str, kind: str) -> list[Notification]:
    with read_session(rt.db) as session:
        return list(session.exec(select(Notification).where(
            Notification.recipient == person, Notification.kind == kind)).all())


def run_title(rt: Runtime, run_id: int) -> str:
    with read_session(rt.db) as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run.title


def evidence_row(rt: Runtime, ev_id: str) -> Evidence:
    with read_session(rt.db) as session:
        row = session.get(Evidence, ev_id)
        assert row is not None
        return row


def upload(rt: Runtime, who: str, data: bytes | None = None, name: str = "现场.png") -> str:
    return store_evidence(rt, data=data or png_bytes(), filename=name, uploaded_by=who).id


# --- the same picture twice --------------------------------------------------------------------

def test_one_picture_uploaded_twice_does_not_meet_two_photos(
    make_rt: Callable[..., Runtime], books: Path
) -> None:
    rt = make_rt(playbooks=books)
    fix = step_of(rt, start(rt, "two-photos"), "fix")
    first, again = upload(rt, "c1-grid"), upload(rt, "c1-grid")
    assert first != again
    with pytest.raises(InvalidInput) as caught:
        tasks.complete(rt, step_id=fix.id or 0, actor="c1-grid", evidence=[first, again])
    assert caught.value.field == "evidence"
    # Named as the person chose them, then by id: which of the two to take off is plain.
    assert caught.value.message.startswith(
        f"证据 「现场.png」（{again}） 与 「现场.png」（{first}） 是同一个文件")
    assert step_of(rt, fix.run_id, "fix").status == "ready"
    other = upload(rt, "c1-grid", png_bytes(3, 2))
    done = tasks.complete(rt, step_id=fix.id or 0, actor="c1-grid", evidence=[first, other])
    assert done.status == "done" and done.evidence == [first, other]


def test_a_picture_that_proved_a_task_of_another_run_does_not_prove_this_one(
    rt: Runtime
) -> None:
    here, there = (step_of(rt, start(rt), "receive") for _ in range(2))
    used, copy = upload(rt, "s1-duty"), upload(rt, "s1-duty")
    tasks.complete(rt, step_id=here.id or 0, actor="s1-duty", evidence=[used])
    with pytest.raises(InvalidInput) as caught:
        tasks.complete(rt, step_id=there.id or 0, actor="s1-duty", evidence=[copy])
    assert caught.value.field == "evidence"
    assert caught.value.message.startswith(
        f"证据 「现场.png」（{copy}） 与另一流程实例中任务上的证据")
    assert evidence_row(rt, copy).step_id is None
    assert step_of(rt, there.run_id, "receive").status == "ready"
    fresh = upload(rt, "s1-duty", png_bytes(5, 5))
    assert tasks.complete(rt, step_id=there.id or 0, actor="s1-duty",
                          evidence=[fresh]).status == "done"


def test_a_picture_of_a_cancelled_run_may_prove_the_run_that_replaces_it(rt: Runtime) -> None:
    def to_inspect(run_id: int) -> int:
        tasks.complete(rt, step_id=step_of(rt, run_id, "receive").id or 0, actor="s1-duty")
        return step_of(rt, run_id, "inspect").id or 0

    wrong = start(rt)  # started at the wrong unit, then cancelled
    used, copy = upload(rt, "c1-grid"), upload(rt, "c1-grid")
    tasks.complete(rt, step_id=to_inspect(wrong), actor="c1-grid", note="现场", evidence=[used])
    lifecycle.cancel_run(rt, run_id=wrong, actor="s1-commander", reason="单位登记错误，重新登记")
    assert step_of(rt, wrong, "inspect").status == "cancelled"  # handed in, never verified
    again = to_inspect(start(rt))
    assert tasks.complete(rt, step_id=again, actor="c1-grid", note="现场",
                          evidence=[copy]).status == "submitted"


def test_a_picture_that_did_its_work_before_the_run_was_cancelled_proves_nothing_else(
    rt: Runtime
) -> None:
    closed = start(rt)
    used, copy = upload(rt, "s1-duty"), upload(rt, "s1-duty")
    tasks.complete(rt, step_id=step_of(rt, closed, "receive").id or 0, actor="s1-duty",
                   evidence=[used])  # done: it proved that step
    lifecycle.cancel_run(rt, run_id=closed, actor="s1-commander", reason="后续不再跟进")
    other = step_of(rt, start(rt), "receive")
    with pytest.raises(InvalidInput, match="另一流程实例"):
        tasks.complete(rt, step_id=other.id or 0, actor="s1-duty", evidence=[copy])


# --- damaged stored files --------------------------------------------------------------------

def test_completion_refuses_a_file_damaged_on_disk_and_a_reupload_repairs_it(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    receive = step_of(rt, start(rt), "receive")
    photo = upload(rt, "s1-duty")
    stored = Path(evidence_row(rt, photo).stored_path)
    stored.write_bytes(png_bytes(6, 6))  # the disk (or someone) changed it
    with caplog.at_level(logging.WARNING, logger="closeloop.evidence"), \
            pytest.raises(EvidenceDamaged) as caught:
        tasks.complete(rt, step_id=receive.id or 0, actor="s1-duty", evidence=[photo])
    assert isinstance(caught.value, Conflict)  # 409: not the request's fault
    assert caught.value.evidence_id == photo and photo in str(caught.value)
    assert str(caught.value).startswith("证据文件")
    assert any(photo in r.getMessage() and "does not match" in r.getMessage()
               for r in caplog.records)
    assert step_of(rt, receive.run_id, "receive").status == "ready"
    assert evidence_row(rt, photo).step_id is None
    # The genuine photo uploaded again rewrites the stored bytes: the first id reads again.
    upload(rt, "s1-duty")
    assert stored.read_bytes() == png_bytes()
    assert read_evidence(evidence_row(rt, photo), rt) == png_bytes()
    done = tasks.complete(rt, step_id=receive.id or 0, actor="s1-duty", evidence=[photo])
    assert done.status == "done"


def test_completion_refuses_a_file_gone_from_the_store(rt: Runtime) -> None:
    receive = step_of(rt, start(rt), "receive")
    photo = upload(rt, "s1-duty")
    Path(evidence_row(rt, photo).stored_path).unlink()
    with pytest.raises(EvidenceDamaged) as caught:
        tasks.complete(rt, step_id=receive.id or 0, actor="s1-duty", evidence=[photo])
    assert caught.value.missing and "已不在存储中" in str(caught.value)


def test_directory_store_put_checks_an_existing_key(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "evidence")
    data = png_bytes()
    key = content_key(hashlib.sha256(data).hexdigest())
    store.put(key, data)
    path = tmp_path / "evidence" / key
    before = path.stat().st_mtime_ns
    store.put(key, data)  # intact: left alone
    assert path.stat().st_mtime_ns == before
    path.write_bytes(b"garbage")
    store.put(key, data)
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_http_store_put_rewrites_a_swapped_object(
    make_rt: Callable[..., Runtime], object_server: ObjectServer
) -> None:
    rt = make_rt(settings={"evidence_url": object_server.url()})
    first = store_evidence(rt, data=png_bytes(), filename="a.png", uploaded_by="c1-grid")
    [key] = object_server.objects
    object_server.objects[key] = png_bytes(9, 9)
    with pytest.raises(EvidenceDamaged):
        read_evidence(first, rt)
    store_evidence(rt, data=png_bytes(), filename="b.png", uploaded_by="c1-grid")
    assert object_server.objects[key] == png_bytes()
    assert object_server.methods()[-3:] == ["HEAD", "GET", "PUT"]
    assert read_evidence(first, rt) == png_bytes()
    HttpStore(object_server.url()).put(content_key(first.sha256), png_bytes())
    assert object_server.methods()[-2:] == ["HEAD", "GET"]  # intact: no PUT


# --- file names --------------------------------------------------------------------------------

@pytest.mark.parametrize(("sent", "kept"), [
    ("现场\x00照片.png", "现场照片.png"),
    ("a\x07b\x1b\x7f\x85.jpg", "ab.jpg"),
    ("\u202egnp.exe", "gnp.exe"),
    ("\u2066整改\u2069.png", "整改.png"),
    ("C:\\Users\\网格员\\Desktop\\整改后.jpg", "整改后.jpg"),
    ("../../etc/passwd", "passwd"),
    ("\x00\x01\x02", NEUTRAL_NAME),
    ("\x00.png", NEUTRAL_NAME + ".png"),
    ("..", NEUTRAL_NAME),
    ("   ", NEUTRAL_NAME),
    ("\ud800.png", NEUTRAL_NAME + ".png"),
    ("e\u0301.png", "\u00e9.png"),
])
def test_safe_filename(sent: str, kept: str) -> None:
    assert safe_filename(sent) == kept


def test_safe_filename_caps_the_length_and_keeps_the_extension() -> None:
    name = safe_filename("现" * 5000 + ".jpeg")
    assert len(name) == 255 and name.endswith("现.jpeg")


def test_an_upload_whose_name_has_nothing_left_is_named_by_its_kind(rt: Runtime) -> None:
    row = store_evidence(rt, data=png_bytes(), filename="\x00\x00", uploaded_by="c1-grid")
    assert row.filename == NEUTRAL_NAME + ".png"
    assert evidence_row(rt, row.id).filename == NEUTRAL_NAME + ".png"


# --- the audit trail keeps what was there before --------------------------------------------

def test_reassignment_records_the_previous_assignees(rt: Runtime) -> None:
    run_id = start(rt, "register-demo")
    rectify = step_of(rt, run_id, "rectify")
    assert rectify.assignees == ["c1-grid"]
    tasks.reassign(rt, step_id=rectify.id or 0, actor="s1-commander", person="s1-head")
    [event] = events(rt, run_id, "reassigned")
    assert event.detail == {"from": ["c1-grid"], "to": "s1-head"}
    # The one it was with is told it is no longer theirs; the new holder that it is.
    assert [n.body for n in inbox(rt, "c1-grid", "reassigned_away")] == [
        f"{run_title(rt, run_id)}：整改 已转派给 {rt.org.person_name('s1-head')}，无需你再办理。"]
    assert len(inbox(rt, "s1-head", "assigned")) == 1
    # The same reassignment again (a retry) is idempotent: no second event, no second note.
    again = tasks.reassign(rt, step_id=rectify.id or 0, actor="s1-commander", person="s1-head")
    assert again.assignees == ["s1-head"]
    assert len(events(rt, run_id, "reassigned")) == 1
    assert len(inbox(rt, "s1-head", "assigned")) == 1


def test_extension_records_the_previous_deadline(rt: Runtime) -> None:
    run_id = start(rt, "register-demo")
    rectify = step_of(rt, run_id, "rectify")
    old = rectify.due_at
    assert old is not None
    new = old + 3 * DAY
    tasks.extend(rt, step_id=rectify.id or 0, actor="s1-commander", due_at=new, reason="设备未到")
    [event] = events(rt, run_id, "extended")
    assert event.detail["from"] == old.isoformat() and event.detail["to"] == new.isoformat()
    assert event.detail["from"] != event.detail["to"]
    # Whoever holds the task is told the new deadline, and why.
    [note] = inbox(rt, "c1-grid", "extended")
    assert note.title == "【期限调整】整改·一社区3号楼"
    assert (f"期限由 {rt.renderer.deadline(old)} 调整为 {rt.renderer.deadline(new)}。"
            "原因：设备未到") in note.body
    # The same extension again (a retry) changes and records nothing more.
    tasks.extend(rt, step_id=rectify.id or 0, actor="s1-commander", due_at=new, reason="设备未到")
    assert len(events(rt, run_id, "extended")) == 1 and len(inbox(rt, "c1-grid", "extended")) == 1


# --- deadlines ---------------------------------------------------------------------------------

def test_extend_reads_a_time_without_zone_in_the_bureau_zone(
    rt: Runtime, clock: ManualClock
) -> None:
    rectify = step_of(rt, start(rt, "register-demo"), "rectify")
    wall = datetime(2026, 3, 20, 18, 0)
    moved = tasks.extend(rt, step_id=rectify.id or 0, actor="s1-commander", due_at=wall,
                         reason="x")
    assert moved.due_at == wall.replace(tzinfo=rt.tz)


def test_extend_may_tighten_a_deadline_but_never_into_the_past(
    rt: Runtime, clock: ManualClock
) -> None:
    rectify = step_of(rt, start(rt, "register-demo"), "rectify")
    assert rectify.due_at is not None and rectify.due_at > clock.now() + DAY
    sooner = clock.now() + DAY
    moved = tasks.extend(rt, step_id=rectify.id or 0, actor="s1-commander", due_at=sooner,
                         reason="隐患扩大")
    assert moved.due_at == sooner
    for past in (clock.now(), clock.now() - DAY):
        with pytest.raises(InvalidInput) as caught:
            tasks.extend(rt, step_id=rectify.id or 0, actor="s1-commander", due_at=past,
                         reason="x")
        assert caught.value.field == "due_at"


def test_a_closed_task_is_a_conflict_whatever_date_is_asked(
    rt: Runtime, clock: ManualClock
) -> None:
    rectify = step_of(rt, start(rt, "register-demo"), "rectify")
    tasks.complete(rt, step_id=rectify.id or 0, actor="c1-grid", note="已整改")
    past = clock.now() - DAY
    with pytest.raises(Conflict) as caught:
        extensions.request_extension(rt, step_id=rectify.id or 0, actor="c1-grid",
                                     due_at=past, reason="x")
    assert str(caught.value).startswith("任务已完成")
    with pytest.raises(Conflict):
        tasks.extend(rt, step_id=rectify.id or 0, actor="s1-commander", due_at=past,
                     reason="x")


# --- notes and reasons -------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["已整改\u202e", "响铃\x07", "\u2066隔离\u2069", "退格\x08"])
def test_notes_and_reasons_refuse_control_and_bidi_characters(rt: Runtime, bad: str) -> None:
    run_id = start(rt, "register-demo")
    rectify = step_of(rt, run_id, "rectify")
    sid = rectify.id or 0
    assert rectify.due_at is not None
    later = rectify.due_at + DAY
    calls: list[tuple[str, Callable[[], object]]] = [
        ("note", lambda: tasks.complete(rt, step_id=sid, actor="c1-grid", note=bad)),
        ("reason", lambda: tasks.extend(rt, step_id=sid, actor="s1-commander", due_at=later,
                                        reason=bad)),
        ("reason", lambda: extensions.request_extension(rt, step_id=sid, actor="c1-grid",
                                                        due_at=later, reason=bad)),
    ]
    for field, call in calls:
        with pytest.raises(InvalidInput) as caught:
            call()
        assert caught.value.field == field
        assert "控制字符" in caught.value.message
    req = extensions.request_extension(rt, step_id=sid, actor="c1-grid", due_at=later,
                                       reason="设备\n到货\t延迟")  # line breaks are text
    with pytest.raises(InvalidInput) as caught:
        extensions.decide_extension(rt, request_id=req.id or 0, actor="s1-head",
                                    approve=False, note=bad)
    assert caught.value.field == "note"


def test_a_verification_note_refuses_a_bidi_override(rt: Runtime) -> None:
    run_id = start(rt)
    receive = step_of(rt, run_id, "receive")
    tasks.complete(rt, step_id=receive.id or 0, actor="s1-duty")
    inspect = step_of(rt, run_id, "inspect")
    photo = upload(rt, "c1-grid")
    tasks.complete(rt, step_id=inspect.id or 0, actor="c1-grid", note="已核查",
                   evidence=[photo])
    with pytest.raises(InvalidInput) as caught:
        tasks.verify(rt, step_id=inspect.id or 0, actor="s1-insp1", approve=False,
                     note="照片\u202e不清")
    assert caught.value.field == "note"


# --- not found -----------------------------------------------------------------------------

def test_not_found_clips_what_was_asked_for() -> None:
    error = NotFound("evidence", "x" * 5000)
    assert len(str(error)) < 250 and error.ident == "x" * 5000
    assert str(NotFound("task", 12)) == "任务 12 不存在 / task '12' not found"


# -- a file that only starts like a photo ------------------------------------------------------

# The smallest whole GIF (1x1, one image, trailer), and a JPEG's segments as the check reads
# them (start of image, JFIF, a 1x1 baseline frame, a scan, its data, the end of image).
TINY_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00"
            b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
JFIF = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
FRAME = b"\xff\xc0\x00\x0b\x08\x00\x01\x00\x01\x01\x01\x11\x00"
SCAN = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x7f\x80"
TINY_JPEG = b"\xff\xd8" + JFIF + FRAME + SCAN + b"\xff\xd9"
PROGRAM = b"\x7fELF\x02\x01\x01" + b"\x00" * 32


@pytest.mark.parametrize("data", [TINY_GIF, TINY_JPEG, png_bytes(3, 2),
                                  TINY_JPEG + b"SEFH phone trailer", TINY_GIF + b"\x00\x00"])
def test_a_whole_photo_is_stored(rt: Runtime, data: bytes) -> None:
    assert store_evidence(rt, data=data, filename="现场.img", uploaded_by="c1-grid").id


@pytest.mark.parametrize(("data", "kind"), [
    (b"GIF89aMZ\x90\x00This program cannot be run in DOS mode", "image/gif"),  # a program
    (b"\xff\xd8\xffnot really a jpeg at all", "image/jpeg"),
    (b"\xff\xd8" + JFIF, "image/jpeg"),  # cut before its frame
    (png_bytes(3, 2)[:-12], "image/png"),  # cut before its end
    (png_bytes(3, 2)[:29] + b"\x00\x00\x00\x00" + png_bytes(3, 2)[33:], "image/png"),  # CRC
    (TINY_GIF[:-1], "image/gif"),
    (b"\xff\xd8" + JFIF + FRAME + SCAN, "image/jpeg"),  # cut: no end of image
    (b"\xff\xd8" + JFIF + FRAME, "image/jpeg"),  # cut right after the frame header
    (TINY_JPEG + PROGRAM, "image/jpeg"),  # a photo with a program after it
    (TINY_GIF + PROGRAM, "image/gif"),
    (b"RIFF\xff\xff\x00\x00WEBPVP8 " + b"\x00" * 16, "image/webp"),  # length not the file's
])
def test_a_file_that_only_starts_like_a_photo_is_refused(rt: Runtime, data: bytes,
                                                          kind: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        store_evidence(rt, data=data, filename="整改后.jpg", uploaded_by="c1-grid")
    assert caught.value.field == "file" and "不是完整有效的" in caught.value.message
    assert kind in caught.value.message
    with read_session(rt.db) as session:
        assert session.exec(select(Evidence)).all() == []
