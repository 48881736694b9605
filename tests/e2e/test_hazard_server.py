"""A 重大 hazard walked end to end on a real `closeloop serve` with its embedded defaults (the
shipped playbooks, the demo district, SQLite, its own Prefect server), through the HTTP API
only: listing, the supervision notice, interim controls, the plan, rectification with photos,
a rejection at re-inspection, rectification again, acceptance, the closure form, closure and,
after a restart 31 days later (CLOSELOOP_CLOCK_OFFSET), the look-back. Every step must be in
the run's timeline and a task run in Prefect's history of the run's flow runs."""

from __future__ import annotations

import itertools
import json
import re
import urllib.request
from typing import Any

import pytest
from factories import png_bytes
from server_process import ServerProcess, prefect_post, wait_until

UNIT = "liuhe"
COMMANDER = "pingshan-street-commander"
SAFETY = "liuhe-safety"
CHIEF = "pingshan-street-chief"
INSPECTOR_1 = "pingshan-street-inspector-1"
INSPECTOR_2 = "pingshan-street-inspector-2"
OTHER_STREET = "maluan-chief"
BEFORE_AFTER = ("整改前", "整改后")
STEPS = ["list", "notice", "notice-send", "interim", "plan", "rectify", "accept",
         "closure-form", "close", "lookback-wait", "lookback", "lookback-record"]
PARAMS = {
    "location": "六和社区和平路18号富达五金厂", "grade": "重大", "source": "执法检查",
    "category": "粉尘防爆", "description": "打磨车间除尘系统未设泄爆装置",
    "enterprise": "深圳市富达五金制品有限公司", "found_by": "邓思远",
    "code": "PS-E2E-0001",
}
PLAN = {"measures": "加装泄爆片和隔爆阀", "funds": 12.5, "deadline": "2026-12-28",
        "responsible": "企业法定代表人负总责", "contingency": "整改期间停产并编制专项预案"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    data = tmp_path_factory.mktemp("hazard-server")
    srv = ServerProcess(data, env={"CLOSELOOP_SWEEP_INTERVAL": "1s",
                                   "CLOSELOOP_SECRET": "e2e-hazard"})
    srv.start()
    yield srv
    srv.stop()


_PHOTOS = itertools.count(3)


def upload(server: ServerProcess, token: str, name: str) -> str:
    """A photo of its own each time: the same picture twice is one photo, and refused."""
    boundary = "closeloopboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").encode()
    body += png_bytes(next(_PHOTOS), 2) + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(server.base + "/api/evidence", data=body, method="POST")
    req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(json.loads(resp.read())["id"])


class Walk:
    def __init__(self, server: ServerProcess, run_id: int) -> None:
        self.server, self.run_id = server, run_id
        self.tokens: dict[str, str] = {}

    def token(self, person: str) -> str:
        if person not in self.tokens:
            self.tokens[person] = self.server.token(person)
        return self.tokens[person]

    def run(self) -> dict[str, Any]:
        return self.server.get(f"/api/runs/{self.run_id}", self.token(COMMANDER))  # type: ignore[no-any-return]

    def step(self, key: str) -> dict[str, Any]:
        """The step's instance once the engine has made it ready (segments run in the
        background, so a step after a document step appears a moment later)."""
        def ready() -> dict[str, Any] | None:
            found = [s for s in self.run()["steps"] if s["step"] == key and s["id"]]
            return found[0] if found and found[0]["status"] in ("ready", "rejected") else None
        return wait_until(ready, timeout=60, what=f"step {key} ready")  # type: ignore[no-any-return]

    def complete(self, key: str, who: str, outputs: dict[str, Any] | None = None, *,
                 photos: int = 0, labels: tuple[str, ...] = (), note: str = "已完成"
                 ) -> dict[str, Any]:
        """Hand in step `key`; `labels` marks the photos in order (整改前, 整改后)."""
        step = self.step(key)
        evidence = [upload(self.server, self.token(who), f"{key}-{i}.png") for i in range(photos)]
        status, body = self.server.request(
            "POST", f"/api/tasks/{step['id']}/complete", token=self.token(who),
            body={"note": note, "outputs": outputs or {}, "evidence": evidence,
                  "evidence_labels": dict(zip(evidence, labels, strict=False))})
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def verify(self, step_id: int, who: str, *, approve: bool, note: str) -> tuple[int, Any]:
        return self.server.request("POST", f"/api/tasks/{step_id}/verify", token=self.token(who),
                                   body={"approve": approve, "note": note})


def test_a_major_hazard_walks_the_loop_on_a_real_server(server: ServerProcess) -> None:
    status, run = server.request("POST", "/api/runs", token=server.token(COMMANDER),
                                 body={"playbook": "hazard-3030", "unit": UNIT,
                                       "params": PARAMS})
    assert status == 201, run
    walk = Walk(server, run["id"])
    listing = {"responsible_unit": "深圳市富达五金制品有限公司", "responsible_person": "李富达",
               "supervising_unit": "坪山区安全生产委员会办公室", "contact": "赵丽娟 0755-28888888"}
    walk.complete("list", CHIEF, listing)
    walk.complete("interim", SAFETY, {"evacuated": True, "stopped": True, "signs": True,
                                      "watch": True}, photos=1)
    plan = walk.complete("plan", SAFETY, PLAN)
    assert walk.verify(plan["id"], CHIEF, approve=True, note="同意备案")[0] == 200

    # A person of another street can neither read nor touch the hazard.
    assert server.request("GET", f"/api/runs/{walk.run_id}",
                          token=walk.token(OTHER_STREET))[0] in (403, 404)
    rectify = walk.complete("rectify", SAFETY, {"done_measures": "已加装泄爆片"}, photos=2,
                            labels=BEFORE_AFTER)
    assert rectify["status"] == "submitted"
    # The rectifier cannot re-inspect their own work, even holding the role elsewhere.
    status, body = walk.verify(rectify["id"], SAFETY, approve=True, note="自查合格")
    assert status == 403, body
    status, body = walk.verify(rectify["id"], INSPECTOR_1, approve=False, note="隔爆阀未安装")
    assert status == 200 and body["status"] == "rejected", body
    again = walk.complete("rectify", SAFETY, {"done_measures": "已加装泄爆片和隔爆阀"}, photos=2,
                          labels=BEFORE_AFTER)
    assert walk.verify(again["id"], INSPECTOR_1, approve=True, note="复查合格")[0] == 200
    walk.complete("accept", CHIEF, {"opinion": "整改合格，同意销号"})
    walk.complete("close", INSPECTOR_2, note="办理销号、摘牌")
    hazard = server.get(f"/api/hazards/{walk.run_id}", walk.token(CHIEF))
    assert hazard["status"] == "已销号" and hazard["closed_at"]

    # 回头看 30 whole days after closure (to 24:00, moved past a weekend or holiday it ends on:
    # up to ~9 days at 国庆, whatever day this test runs): the server goes down and comes
    # back 45 days later.
    server.stop()
    server.start(extra_env={"CLOSELOOP_CLOCK_OFFSET": "45d"})
    walk.complete("lookback", INSPECTOR_1, {"result": "整改成果巩固"}, photos=1)
    wait_until(lambda: walk.run()["status"] == "completed", timeout=60,
               what="run completed after the look-back record")

    run = walk.run()
    # The hazard held at the look-back: nobody is told to register it again.
    assert {s["step"]: s["status"] for s in run["steps"]} == dict.fromkeys(
        STEPS, "done") | {"lookback-rebound": "skipped"}
    in_timeline = {e["detail"].get("step") for e in run["timeline"] if e["detail"]}
    by_id = {s["id"]: s["step"] for s in run["steps"]}
    in_timeline |= {by_id.get(e["step_id"]) for e in run["timeline"]}
    assert set(STEPS) <= in_timeline
    actions = [e["action"] for e in run["timeline"] if by_id.get(e["step_id"]) == "rectify"]
    assert actions == ["ready", "submitted", "rejected", "submitted", "verified"]
    docs = server.get(f"/api/runs/{walk.run_id}/documents", walk.token(COMMANDER))["data"]
    bodies = {d["template"]: d["body"] for d in docs}
    assert "重大事故隐患挂牌督办通知书" in bodies["supervision-notice.md.j2"]
    numbered = {d["template"]: d["number"] for d in docs}
    notice_no = numbered["supervision-notice.md.j2"]  # the first of its year on this server
    assert re.fullmatch(r"坪应急督〔20\d\d〕1号", notice_no or ""), notice_no
    assert numbered["closure-form.md.j2"] is None  # the form cites it, it is not a 发文
    assert notice_no in bodies["closure-form.md.j2"]
    issued = server.get(f"/api/runs/{walk.run_id}/documents", walk.token(COMMANDER))["numbers"]
    assert [(n["number"], n["step"], n["for"]) for n in issued] == [
        (notice_no, "notice", "document")]
    assert "重大事故隐患整改销号审批表" in bodies["closure-form.md.j2"]
    assert PARAMS["code"] in bodies["lookback-record.md.j2"]

    # Prefect's history: the run's flow runs by tag, a task run for every step.
    api = server.get("/healthz")["prefect"]["api_url"]

    def recorded() -> set[str] | None:
        flows = prefect_post(api, "/flow_runs/filter",
                             {"flow_runs": {"tags": {"all_": [f"run:{walk.run_id}"]}}})
        if not flows:
            return None
        tasks = prefect_post(api, "/task_runs/filter",
                             {"flow_runs": {"id": {"any_": [f["id"] for f in flows]}}})
        names = {t["name"] for t in tasks}  # a task run is named after its step
        return names if set(STEPS) <= names else None

    names = wait_until(recorded, timeout=90, what="a Prefect task run per step")
    assert names

