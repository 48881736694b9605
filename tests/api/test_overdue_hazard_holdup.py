"""当前卡点 in GET /api/runs/{id}: the director's "why is this 重大 hazard 12 days overdue, and who
has it now?" answered in one place (tests/hazard_walk.py): the late rectification, whose move it
is and since when, the holder with post, unit and phone, the deadline as extended and how it was
first counted, the ladder fired, the rejection with its reason and the requests for more time.
A task handed in shows the verifiers as its holders; a finished run has nothing holding it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import before_after
from fastapi.testclient import TestClient
from hazard_walk import MANAGER, REJECTION, SAFETY, Walked, photo

from flows.runtime import Runtime
from models.clock import ManualClock


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def test_the_overdue_rectification_is_what_holds_the_hazard_up(walked: Walked) -> None:
    [late] = walked.run["holdup"]
    assert {k: late[k] for k in (
        "task_id", "title", "phase", "status_name", "waiting_on", "since_local", "due_at_local",
        "original_due_at_local", "due_rule", "overdue_days", "escalation_level", "last_rung",
        "letters_sent", "rejections", "last_reject_reason", "extensions_asked",
        "extensions_granted", "extensions_refused")} == {
        "task_id": walked.rectify_id, "title": "隐患整改", "phase": "退回整改",
        "status_name": "已退回", "waiting_on": "复查退回，待承办人重新整改",
        "since_local": "2026-03-17 12:00",  # sent back at re-inspection
        # 30 whole days from registration (民法典 §201): 1 April to its end, then extended.
        "due_at_local": "2026-04-08 24:00", "original_due_at_local": "2026-04-01 24:00",
        "due_rule": "30日（自流程启动次日起算，届满日24时止，遇休息日、节假日顺延）",
        "overdue_days": 13, "escalation_level": 3,
        "last_rung": "约谈", "letters_sent": 3, "rejections": 1,
        "last_reject_reason": REJECTION, "extensions_asked": 2, "extensions_granted": 1,
        "extensions_refused": 1,
    }
    assert late["holders"] == [{"id": SAFETY, "name": "尹秀英", "title": "社区安全员",
                                "unit_id": "liuhe", "unit_name": "六和社区",
                                "phone": "13800138123"}]


def test_work_handed_in_is_held_by_its_verifiers_from_the_hand_in(
    walked: Walked, client: TestClient, auth, rt: Runtime, clock: ManualClock  # noqa: ANN001
) -> None:
    clock.advance(timedelta(hours=2))
    shots = [photo(client, auth, 5), photo(client, auth, 6)]
    r = client.post(f"/api/tasks/{walked.rectify_id}/complete", headers=auth(SAFETY), json={
        "note": "隔爆阀已安装", "outputs": {"done_measures": "更换泄爆片，安装隔爆阀"},
        "evidence": shots, "evidence_labels": before_after(shots)})
    assert r.status_code == 200, r.text
    [waiting] = client.get(f"/api/runs/{walked.run_id}", headers=auth(MANAGER)).json()["holdup"]
    assert (waiting["phase"], waiting["waiting_on"], waiting["since_local"]) == (
        "复查中", "已提交，待核验/复查", "2026-04-21 14:00")
    assert sorted(p["name"] for p in waiting["holders"]) == ["潘立新", "邓思远"]


def test_a_run_that_ended_has_nothing_holding_it(
    walked: Walked, client: TestClient, auth  # noqa: ANN001
) -> None:
    r = client.post(f"/api/runs/{walked.run_id}/cancel", headers=auth("wang-qiang"),
                    json={"reason": "重复登记"})
    assert r.status_code == 200, r.text
    read = client.get(f"/api/runs/{walked.run_id}", headers=auth(MANAGER)).json()
    assert read["holdup"] is None


def test_a_reassigned_task_is_held_since_the_reassignment_and_says_who_reassigned_it(
    walked: Walked, client: TestClient, auth, clock: ManualClock  # noqa: ANN001
) -> None:
    # Sent back on 03-17; the street's commander 胡红霞 hands it to the grid worker 熊淑芬 now.
    clock.advance(timedelta(hours=2))
    r = client.post(f"/api/tasks/{walked.rectify_id}/reassign",
                    headers=auth("pingshan-street-commander"), json={"person": "liuhe-grid"})
    assert r.status_code == 200, r.text
    [late] = client.get(f"/api/runs/{walked.run_id}", headers=auth(MANAGER)).json()["holdup"]
    assert [p["name"] for p in late["holders"]] == ["熊淑芬"]
    # Hers since she was given it, not since the rejection she never saw.
    assert late["since_local"] == "2026-04-21 14:00"
    assert late["reassignments"] == 1
    moved = late["last_reassignment"]
    assert {k: moved[k] for k in ("by", "by_name", "from_names", "to", "to_name", "at_local")} \
        == {"by": "pingshan-street-commander", "by_name": "胡红霞", "from_names": ["尹秀英"],
            "to": "liuhe-grid", "to_name": "熊淑芬", "at_local": "2026-04-21 14:00"}


def test_a_task_never_reassigned_says_so(walked: Walked) -> None:
    [late] = walked.run["holdup"]
    assert (late["reassignments"], late["last_reassignment"]) == (0, None)
