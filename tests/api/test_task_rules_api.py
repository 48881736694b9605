"""What the task actions refuse (SPEC §5): evidence that is not the completer's, the same file
twice, handing a task to someone it does not belong to, text without a length limit, a
"yes" that is not a boolean; and acknowledging twice. TestClient on a real SQLite runtime
with the small test org and a movable clock; every response passes the no-5xx hook."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import evidence_file, pdf_bytes, png_bytes
from fastapi.testclient import TestClient

from flows.runtime import Runtime
from flows.tasks import MAX_NOTE, MAX_OUTPUT_TEXT, MAX_OUTPUTS_BYTES, MAX_OUTPUTS_DEPTH
from models.clock import ManualClock

Json = dict[str, Any]
Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def rt(make_rt: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    # A small upload limit, so the "too large" message is reached with a small file.
    return make_rt(settings={"max_evidence_bytes": 4096})


# --- helpers -------------------------------------------------------------------------------

def start(client: TestClient, auth: Auth, who: str = "s1-commander") -> Json:
    r = client.post("/api/runs", json={"playbook": "quick-escalation", "unit": "c1",
                                       "params": {"location": "一社区3号楼"}}, headers=auth(who))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def task(client: TestClient, auth: Auth, run_id: int, key: str) -> Json:
    run = client.get(f"/api/runs/{run_id}", headers=auth("d1-admin")).json()
    return next(s for s in run["steps"] if s["step"] == key)


def act(client: TestClient, auth: Auth, task_id: int, action: str, who: str,
        body: Json | None = None) -> httpx.Response:
    return client.post(f"/api/tasks/{task_id}/{action}", json=body, headers=auth(who))


def upload(client: TestClient, auth: Auth, who: str, data: bytes | None = None) -> str:
    r = client.post("/api/evidence", files={"file": ("site.png", data or png_bytes(), "image/png")},
                    headers=auth(who))
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def inspection(client: TestClient, auth: Auth) -> tuple[int, Json]:
    """A run whose grid-worker inspection (1 photo and a note, verified) is ready."""
    run_id = start(client, auth)["id"]
    r = act(client, auth, task(client, auth, run_id, "receive")["id"], "complete", "s1-duty", {})
    assert r.status_code == 200, r.text
    return run_id, task(client, auth, run_id, "inspect")


def submitted(client: TestClient, auth: Auth) -> tuple[int, Json, str]:
    run_id, inspect = inspection(client, auth)
    photo = upload(client, auth, "c1-grid")
    r = act(client, auth, inspect["id"], "complete", "c1-grid",
            {"note": "阀门已关闭", "evidence": [photo]})
    assert r.status_code == 200, r.text
    return run_id, r.json(), photo


def refused(r: httpx.Response, field: str) -> str:
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field, r.json()
    return r.json()["errors"][0]["message"]  # type: ignore[no-any-return]


# --- evidence must be the completer's own, and each file counts once ------------------------

def test_complete_with_evidence_someone_else_uploaded_is_422_naming_it(
    client: TestClient, auth: Auth
) -> None:
    run_id, inspect = inspection(client, auth)
    theirs = upload(client, auth, "c2-grid")
    mine = upload(client, auth, "c1-grid")
    r = act(client, auth, inspect["id"], "complete", "c1-grid",
            {"note": "已核查", "evidence": [mine, theirs]})
    detail = refused(r, "evidence[1]")
    assert theirs in detail and detail.startswith("证据")
    assert "uploaded by someone else" in detail
    after = task(client, auth, run_id, "inspect")
    assert after["status"] == "ready" and after["evidence"] == []
    # Nothing was attached: the uploader may still use their file, and the completer theirs.
    r = act(client, auth, inspect["id"], "complete", "c1-grid",
            {"note": "已核查", "evidence": [mine]})
    assert r.status_code == 200 and r.json()["evidence"] == [mine]


def test_the_same_evidence_id_twice_is_422_on_evidence(client: TestClient, auth: Auth) -> None:
    run_id, inspect = inspection(client, auth)
    photo = upload(client, auth, "c1-grid")
    r = act(client, auth, inspect["id"], "complete", "c1-grid",
            {"note": "已核查", "evidence": [photo, photo]})
    detail = refused(r, "evidence")
    assert photo in detail and "listed twice" in detail and "重复" in detail
    assert task(client, auth, run_id, "inspect")["status"] == "ready"


def test_resubmitting_after_a_rejection_may_keep_the_tasks_own_evidence(
    client: TestClient, auth: Auth
) -> None:
    _, done, photo = submitted(client, auth)
    r = act(client, auth, done["id"], "verify", "s1-insp1", {"approve": False, "note": "不清晰"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    more = upload(client, auth, "c1-grid", png_bytes(3, 3))
    r = act(client, auth, done["id"], "complete", "c1-grid",
            {"note": "补拍", "evidence": [photo, more]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted" and r.json()["evidence"] == [photo, more]


def test_too_many_or_absurd_evidence_ids_are_422(client: TestClient, auth: Auth) -> None:
    _, inspect = inspection(client, auth)
    r = act(client, auth, inspect["id"], "complete", "c1-grid",
            {"note": "x", "evidence": [f"e{i}" for i in range(51)]})
    assert "at most 50 files" in refused(r, "evidence")
    for ids, field in (["x" * 100_000], "evidence[0]"), (["y" * 100_000] * 2, "evidence"):
        r = act(client, auth, inspect["id"], "complete", "c1-grid", {"note": "x", "evidence": ids})
        assert len(refused(r, field)) < 300


# --- reassigning: who may hand a task to whom --------------------------------------------

def test_assignee_cannot_hand_a_task_up_to_a_commander_or_sideways(
    client: TestClient, auth: Auth
) -> None:
    run_id, inspect = inspection(client, auth)
    # c1-grid's inspection: not to the district's commander, not to the street's inspector
    # (who verifies it), not to the grid worker of the next community.
    for person in ("d1-commander", "s1-insp1"):
        detail = refused(act(client, auth, inspect["id"], "reassign", "c1-grid",
                             {"person": person}), "person")
        assert detail.startswith("只能转派给一社区或持有 grid_worker 角色的人员")
        assert "a commander of 'c1' or above may hand it to others" in detail
    detail = refused(act(client, auth, inspect["id"], "reassign", "c1-grid",
                         {"person": "c2-grid"}), "person")
    assert "无权查看该事件" in detail and "'c2-grid' cannot see this run" in detail
    after = task(client, auth, run_id, "inspect")
    assert [a["id"] for a in after["assignees"]] == ["c1-grid"]
    # To a colleague of the same community it goes, and the giver no longer holds it.
    r = act(client, auth, inspect["id"], "reassign", "c1-grid", {"person": "c1-safety"})
    assert r.status_code == 200 and r.json()["assignees"][0]["id"] == "c1-safety"
    assert act(client, auth, inspect["id"], "ack", "c1-grid").status_code == 403


def test_assignee_may_hand_a_task_to_a_person_of_the_unit_its_role_resolved_to(
    client: TestClient, auth: Auth
) -> None:
    """receive is for c1 and resolves to the street's duty officer: the street's people are
    colleagues; the district's are not, nor the other street's."""
    receive = start(client, auth)["steps"][0]
    for person in ("d1-director", "d1-commander"):
        refused(act(client, auth, receive["id"], "reassign", "s1-duty", {"person": person}),
                "person")
    assert "cannot see this run" in refused(
        act(client, auth, receive["id"], "reassign", "s1-duty", {"person": "s2-insp"}), "person")
    r = act(client, auth, receive["id"], "reassign", "s1-duty", {"person": "s1-insp2"})
    assert r.status_code == 200


def test_commander_hands_tasks_within_their_own_unit_and_only_to_who_can_see_the_run(
    client: TestClient, auth: Auth
) -> None:
    _, inspect = inspection(client, auth)
    # The street's commander: not up to the district, not to a community outside the run.
    detail = refused(act(client, auth, inspect["id"], "reassign", "s1-commander",
                         {"person": "d1-director"}), "person")
    assert "people of unit 's1' and below" in detail
    assert "cannot see this run" in refused(
        act(client, auth, inspect["id"], "reassign", "s1-commander", {"person": "c2-grid"}),
        "person")
    assert act(client, auth, inspect["id"], "reassign", "s1-commander",
               {"person": "s1-insp1"}).status_code == 200
    # The district's commander may give it to someone of the district; an admin to anyone
    # who can see the run, never to one who cannot.
    assert act(client, auth, inspect["id"], "reassign", "d1-commander",
               {"person": "d1-director"}).status_code == 200
    assert act(client, auth, inspect["id"], "reassign", "d1-admin",
               {"person": "s1-head"}).status_code == 200
    assert "cannot see this run" in refused(
        act(client, auth, inspect["id"], "reassign", "d1-admin", {"person": "s2-insp"}), "person")


def test_someone_who_may_not_act_on_the_task_cannot_reassign_it(
    client: TestClient, auth: Auth
) -> None:
    _, inspect = inspection(client, auth)
    for who in ("c1-safety", "s1-insp1", "d1-manager"):
        r = act(client, auth, inspect["id"], "reassign", who, {"person": "c1-safety"})
        assert r.status_code == 403, (who, r.text)


def test_reassign_to_a_very_long_unknown_id_does_not_echo_it(
    client: TestClient, auth: Auth
) -> None:
    receive = start(client, auth)["steps"][0]
    detail = refused(act(client, auth, receive["id"], "reassign", "s1-commander",
                         {"person": "x" * 20000}), "person")
    assert detail.startswith("人员 'xxx") and len(detail) < 300


# --- text has a length limit ----------------------------------------------------------------

def test_an_overlong_note_or_output_is_422_and_nothing_is_stored(
    client: TestClient, auth: Auth
) -> None:
    run_id = start(client, auth)["id"]
    receive = task(client, auth, run_id, "receive")
    long = "长" * 100_000  # within the 1 MiB body cap (api/body_guard.py), over the text caps
    r = act(client, auth, receive["id"], "complete", "s1-duty",
            {"note": long, "outputs": {"done_measures": long}})
    detail = refused(r, "note")
    assert f"at most {MAX_NOTE} characters; got 100000" in detail and len(detail) < 200
    r = act(client, auth, receive["id"], "complete", "s1-duty",
            {"note": "x", "outputs": {"done_measures": long}})
    assert f"at most {MAX_OUTPUT_TEXT} characters" in refused(r, "outputs.done_measures")
    r = act(client, auth, receive["id"], "complete", "s1-duty",
            {"note": "长" * 3_000_000})  # a body of 9 MB stops at the guard
    assert refused(r, "body")
    got = client.get(f"/api/tasks/{receive['id']}", headers=auth("s1-duty"))
    assert got.status_code == 200 and len(got.content) < 5000
    assert got.json()["status"] == "ready" and got.json()["note"] is None


def test_note_and_text_outputs_at_the_limit_are_accepted(client: TestClient, auth: Auth) -> None:
    receive = start(client, auth)["steps"][0]
    r = act(client, auth, receive["id"], "complete", "s1-duty",
            {"note": "注" * MAX_NOTE, "outputs": {"caller": "话" * MAX_OUTPUT_TEXT}})
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["note"]) == MAX_NOTE


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(("outputs", "field"), [
    ({"a": {"b": ["x" * (MAX_OUTPUT_TEXT + 1)]}}, "outputs.a.b.0"),
    ({f"f{i}": "x" * MAX_OUTPUT_TEXT for i in range(MAX_OUTPUTS_BYTES // MAX_OUTPUT_TEXT + 1)},
     "outputs"),
    ({"deep": nested(MAX_OUTPUTS_DEPTH + 4)}, "outputs.deep" + ".0" * (MAX_OUTPUTS_DEPTH - 1)),
    ({"a": {"名" * 3000: "x" * 5000}}, "outputs.a"),  # a name never echoed back in full
])
def test_free_form_outputs_too_long_too_big_or_too_deep_are_422(
    client: TestClient, auth: Auth, outputs: Json, field: str
) -> None:
    receive = start(client, auth)["steps"][0]
    message = refused(act(client, auth, receive["id"], "complete", "s1-duty",
                          {"outputs": outputs}), field)
    assert len(message) < 300


def test_verify_note_and_extend_reason_have_the_same_limit(
    client: TestClient, auth: Auth, clock: ManualClock
) -> None:
    _, done, _ = submitted(client, auth)
    long = "因" * (MAX_NOTE + 1)
    for approve in (False, True):
        r = act(client, auth, done["id"], "verify", "s1-insp1", {"approve": approve, "note": long})
        assert f"最多 {MAX_NOTE} 个字符" in refused(r, "note")
    due = (clock.now() + timedelta(days=1)).isoformat()
    r = act(client, auth, done["id"], "extend", "s1-commander", {"due_at": due, "reason": long})
    refused(r, "reason")
    r = act(client, auth, done["id"], "verify", "s1-insp1",
            {"approve": False, "note": "因" * MAX_NOTE})
    assert r.status_code == 200 and r.json()["status"] == "rejected"


# --- booleans are booleans ------------------------------------------------------------------

@pytest.mark.parametrize("value", ["yes", "true", "false", 1, 0, "1", "on"])
def test_verify_approve_must_be_a_json_boolean(
    client: TestClient, auth: Auth, value: object
) -> None:
    run_id, done, _ = submitted(client, auth)
    refused(act(client, auth, done["id"], "verify", "s1-insp1", {"approve": value}), "approve")
    assert task(client, auth, run_id, "inspect")["status"] == "submitted"


# --- acknowledging ------------------------------------------------------------------------

def test_ack_of_a_task_someone_else_acked_is_409_naming_them(
    client: TestClient, auth: Auth
) -> None:
    _, inspect = inspection(client, auth)
    assert act(client, auth, inspect["id"], "ack", "c1-grid").status_code == 200
    # The commander hands the acked task to the community's safety officer ...
    r = act(client, auth, inspect["id"], "reassign", "s1-commander", {"person": "c1-safety"})
    assert r.status_code == 200
    # ... whose own ack is refused: it is acknowledged already, by the grid worker.
    r = act(client, auth, inspect["id"], "ack", "c1-safety")
    assert r.status_code == 409 and r.json()["current"] == "acked"
    assert "一社区网格员" in r.json()["detail"] and "c1-grid" in r.json()["detail"]


# --- messages a bureau user meets are Chinese first --------------------------------------------

def test_task_and_run_conflicts_are_chinese_first(client: TestClient, auth: Auth) -> None:
    run = start(client, auth)
    receive = run["steps"][0]
    assert act(client, auth, receive["id"], "complete", "s1-duty", {}).status_code == 200
    # Another hand-in (the same one again would be a retry, answered as the first).
    r = act(client, auth, receive["id"], "complete", "s1-duty", {"note": "再次办结"})
    assert r.status_code == 409
    assert r.json()["detail"] == "任务已完成，不能办结 / task is done"
    other = start(client, auth)
    assert client.post(f"/api/runs/{other['id']}/cancel",
                       headers=auth("s1-commander")).status_code == 200
    r = act(client, auth, other["steps"][0]["id"], "complete", "s1-duty", {})
    assert r.status_code == 409 and r.json()["detail"] == "流程已撤销 / run is cancelled"


@pytest.mark.parametrize(("data", "start_zh", "english"), [
    (b"", "文件是空的", "empty file"),
    (b"just text", "只接受照片（JPEG、PNG、GIF、WebP、HEIC）、PDF 和视频（MP4、MOV）",
     "only photos (JPEG"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000, "文件超过上限 4 KB，请压缩后重新上传",
     "file is larger than the limit of 4096 bytes"),
])
def test_upload_refusals_are_chinese_first(
    client: TestClient, auth: Auth, data: bytes, start_zh: str, english: str
) -> None:
    r = client.post("/api/evidence", files={"file": ("a.png", data, "image/png")},
                    headers=auth("c1-grid"))
    detail = refused(r, "file")
    assert detail.startswith(start_zh) and f" / {english}" in detail


@pytest.mark.parametrize(("name", "data", "kind", "said"), [
    ("IMG_0042.HEIC", b"\x00\x00\x00\x18ftypheic" + bytes(range(7, 47)), "image/heic",
     "HEIC 图片"),
    ("整改报告.pdf", b"%PDF-1.4\n\x00\x01garbage", "application/pdf", "PDF 文件"),
    ("现场.mp4", b"\x00\x00\x00\x08ftypmp42", "video/mp4", "MP4 视频"),
    ("IMG_0043.MOV", evidence_file("clip.mov")[:-200], "video/quicktime", "MOV 视频"),
])
def test_a_damaged_heic_pdf_or_video_is_refused_on_file(
    client: TestClient, auth: Auth, name: str, data: bytes, kind: str, said: str
) -> None:
    """The API probe's files: once stored, any of them could complete a rectification, and
    none has a preview to give it away to the re-inspector."""
    r = client.post("/api/evidence", files={"file": (name, data, kind)},
                    headers=auth("c1-grid"))
    detail = refused(r, "file")
    assert detail.startswith(f"文件不是完整有效的{said}（可能已损坏或被改名）")
    assert f" / the file starts like {kind} but is not a whole, valid one" in detail


def test_real_heic_pdf_and_video_are_stored(client: TestClient, auth: Auth) -> None:
    for name, data, kind in (("IMG_0042.HEIC", evidence_file("photo.heic"), "image/heic"),
                             ("整改报告.pdf", pdf_bytes(), "application/pdf"),
                             ("现场.mp4", evidence_file("clip.mp4"), "video/mp4"),
                             # What an iPhone records: QuickTime (brand "qt  ").
                             ("IMG_0043.MOV", evidence_file("clip.mov"), "video/quicktime")):
        r = client.post("/api/evidence", files={"file": (name, data, kind)},
                        headers=auth("c1-grid"))
        assert r.status_code == 201, r.text
        assert r.json()["content_type"] == kind and r.json()["size"] == len(data)


def test_work_awaiting_verification_is_in_the_verifiers_inbox(client: TestClient,
                                                               auth: Auth) -> None:
    """An inspector learns of work to re-inspect from their inbox, not only from a note."""
    def inbox(who: str) -> list[int]:
        r = client.get("/api/tasks?mine=true", headers=auth(who))
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["data"]]

    _, done, _ = submitted(client, auth)
    assert done["status"] == "submitted"
    assert done["id"] in inbox("s1-insp1")
    assert done["id"] in inbox("c1-grid")  # still the submitter's, awaiting the verdict
    assert done["id"] not in inbox("s2-insp")  # another street's inspector
    r = act(client, auth, done["id"], "verify", "s1-insp1", {"approve": True})
    assert r.status_code == 200, r.text
    assert done["id"] not in inbox("s1-insp1")
