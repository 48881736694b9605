"""The director's question, set up through the API as the people do it: a 重大 hazard in 六和社区
registered by a street inspector, listed (挂牌督办), its controls and plan in, rectification
handed in and sent back at re-inspection, one request for more time refused and a second
granted, then left until it is 12 days past the extended deadline with the 督办函, the 提级督办函
and the 约谈通知 sent. Used by the tests of what the manager (孙丽, sun-li) can read off it.

Segments run bare (drain_wakes) and the sweeper is called as the clock moves, half a day at a
time, so every rung fires when it falls due, as a server's sweeper would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from factories import before_after, png_bytes
from fastapi.testclient import TestClient

from flows.runtime import Runtime
from flows.segments import drain_wakes
from flows.sweeper import sweep_once
from models.clock import ManualClock

Auth = Callable[[str], dict[str, str]]

MANAGER = "sun-li"  # 孙丽, 综合科科长
INSPECTOR = "pingshan-street-inspector-1"  # 邓思远 finds and registers it
RECHECKER = "pingshan-street-inspector-2"  # 潘立新 re-inspects and sends it back
CHIEF = "pingshan-street-chief"  # 赵丽娟 lists it, reviews the plan, decides the requests
SAFETY = "liuhe-safety"  # 尹秀英, 社区安全员: controls, plan, rectification
REJECTION = "泄爆片规格不符，隔爆阀未安装"
REFUSAL = "理由不充分，延期过长"
GRANT = "同意延期至4月8日"


@dataclass
class Walked:
    run_id: int
    rectify_id: int
    run: dict[str, Any]  # GET /api/runs/{id} as the manager reads it at the end


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code < 300, (response.status_code, response.text[:500])
    return response.json()


def _steps(client: TestClient, auth: Auth, run_id: int) -> dict[str, dict[str, Any]]:
    run = _ok(client.get(f"/api/runs/{run_id}", headers=auth(MANAGER)))
    return {s["step"]: s for s in run["steps"]}


def photo(client: TestClient, auth: Auth, n: int) -> str:
    files = {"file": (f"现场{n}.png", png_bytes(2 + n, 3), "image/png")}
    return _ok(client.post("/api/evidence", headers=auth(SAFETY), files=files))["id"]


def _complete(client: TestClient, auth: Auth, task: int, who: str, outputs: dict[str, Any],
              evidence: list[str] | None = None, labels: dict[str, str] | None = None
              ) -> None:
    _ok(client.post(f"/api/tasks/{task}/complete", headers=auth(who),
                    json={"note": "已办理", "outputs": outputs, "evidence": evidence or [],
                          "evidence_labels": labels or {}}))


def twelve_days_overdue(client: TestClient, auth: Auth, rt: Runtime, clock: ManualClock
                        ) -> Walked:
    def sweep() -> None:
        sweep_once(rt)
        drain_wakes(rt)

    run = _ok(client.post("/api/runs", headers=auth(INSPECTOR), json={
        "playbook": "hazard-3030", "unit": "liuhe", "params": {
            "location": "六和社区和平路18号富达五金厂", "grade": "重大", "category": "粉尘防爆",
            "description": "打磨车间除尘系统未设泄爆装置",
            "enterprise": "深圳市富达五金制品有限公司", "code": "PS-2026-007"}}))
    run_id = run["id"]
    drain_wakes(rt)
    clock.advance(timedelta(hours=3))
    steps = _steps(client, auth, run_id)
    _complete(client, auth, steps["list"]["id"], CHIEF, {
        "responsible_unit": "深圳市富达五金制品有限公司", "responsible_person": "李富达"})
    drain_wakes(rt)
    steps = _steps(client, auth, run_id)
    _complete(client, auth, steps["interim"]["id"], SAFETY,
              {"evacuated": True, "stopped": True, "signs": True, "watch": True},
              [photo(client, auth, 0)])
    clock.advance(timedelta(days=2))
    _complete(client, auth, steps["plan"]["id"], SAFETY, {
        "measures": "加装泄爆片和隔爆阀", "funds": 12.5, "deadline": "2026-03-28",
        "responsible": "李富达", "contingency": "整改期间停产"})
    clock.advance(timedelta(days=1))
    _ok(client.post(f"/api/tasks/{steps['plan']['id']}/verify", headers=auth(CHIEF),
                    json={"approve": True, "note": "方案可行"}))
    drain_wakes(rt)
    clock.advance(timedelta(days=10))
    sweep()
    rectify = _steps(client, auth, run_id)["rectify"]["id"]
    shots = [photo(client, auth, 1), photo(client, auth, 2)]
    _complete(client, auth, rectify, SAFETY, {"done_measures": "已加装泄爆片"}, shots,
              before_after(shots))
    clock.advance(timedelta(days=2))
    sweep()
    _ok(client.post(f"/api/tasks/{rectify}/verify", headers=auth(RECHECKER),
                    json={"approve": False, "note": REJECTION}))
    drain_wakes(rt)
    clock.advance(timedelta(days=3))
    asked = _ok(client.post(f"/api/tasks/{rectify}/extension-requests", headers=auth(SAFETY),
                            json={"due_at": "2026-04-30", "reason": "隔爆阀订货周期长"}))
    clock.advance(timedelta(days=1))
    _ok(client.post(f"/api/extension-requests/{asked['id']}/decide", headers=auth(CHIEF),
                    json={"approve": False, "note": REFUSAL}))
    asked = _ok(client.post(f"/api/tasks/{rectify}/extension-requests", headers=auth(SAFETY),
                            json={"due_at": "2026-04-08", "reason": "隔爆阀已下单，4月5日到货"}))
    clock.advance(timedelta(days=1))
    _ok(client.post(f"/api/extension-requests/{asked['id']}/decide", headers=auth(CHIEF),
                    json={"approve": True, "note": GRANT}))
    due = datetime.fromisoformat(_steps(client, auth, run_id)["rectify"]["due_at"])
    # 2026-04-08 24:00 (Shanghai); read on 2026-04-21 12:00, past 督办函, 提级督办函 and 约谈.
    while clock.now() < due + timedelta(days=12, hours=1):
        clock.advance(timedelta(hours=12))
        sweep()
    read = _ok(client.get(f"/api/runs/{run_id}", headers=auth(MANAGER)))
    return Walked(run_id=run_id, rectify_id=rectify, run=read)
