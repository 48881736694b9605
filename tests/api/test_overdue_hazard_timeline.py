"""The history of an overdue 重大 hazard as the manager reads it in GET /api/runs/{id}
(tests/hazard_walk.py): every timeline action named in Chinese (a refused or granted extension
was sent as its identifier, and the page printed `extension_refused`), each request for more
time with the deadline it would have replaced and the one asked, and every rung of the ladder
fired on the late rectification with the playbook's name for it (督办函, 提级督办函, 约谈) and
the 文号 of the letter it sent."""

from __future__ import annotations

import re

import pytest
from factories import REPO
from hazard_walk import GRANT, REFUSAL, REJECTION, Walked

from api.event_names import EVENT_NAMES_ZH
from flows.runtime import Runtime


@pytest.fixture
def rt(demo: Runtime) -> Runtime:
    return demo


def test_every_action_the_engine_writes_has_a_chinese_name() -> None:
    written: set[str] = set()
    for folder in ("models", "flows"):
        for path in (REPO / folder).glob("*.py"):
            text = path.read_text(encoding="utf-8")
            written |= set(re.findall(r'action="([a-z_]+)"', text))
            written |= set(re.findall(r'_event\(step, now, "([a-z_]+)"', text))  # the sweeper's
            # An action written through a module constant (bulk_start's IMPORTED), by its value.
            for const in re.findall(r'(?:action=|"action": )([A-Z][A-Z_]+)\b', text):
                written |= set(re.findall(rf'^{const} = "([a-z_]+)"', text, re.M))
    assert written and written - set(EVENT_NAMES_ZH) == set()


def test_the_timeline_names_each_event_and_each_extension_says_its_deadlines(
    walked: Walked
) -> None:
    timeline = walked.run["timeline"]
    assert all(e["action_name"] and e["action_name"] != e["action"] for e in timeline)
    on_rectify = [e for e in timeline if e["step_id"] == walked.rectify_id
                  and e["action"] in ("rejected", "extension_requested", "extension_refused",
                                      "extension_approved")]
    assert [(e["action_name"], e["times_local"].get("from"), e["times_local"].get("to"),
             e["detail"].get("reason") or e["detail"].get("note")) for e in on_rectify] == [
        ("退回", None, None, REJECTION),
        ("申请延期", "2026-04-01 24:00", "2026-04-30 24:00", "隔爆阀订货周期长"),
        ("不同意延期", "2026-04-01 24:00", "2026-04-30 24:00", REFUSAL),
        ("申请延期", "2026-04-01 24:00", "2026-04-08 24:00", "隔爆阀已下单，4月5日到货"),
        ("同意延期", "2026-04-01 24:00", "2026-04-08 24:00", GRANT),
    ]


def test_each_rung_fired_is_named_with_its_letters_number(walked: Walked) -> None:
    rungs = [e for e in walked.run["escalations"] if e["kind"] == "escalate"]
    assert [(e["title"], e["number"], e["fired_at_local"], e["recipient_names"])
            for e in rungs] == [
        ("督办函", "坪应急督函〔2026〕1号", "2026-04-09 00:00:00", ["贾丽萍"]),
        ("提级督办函", "坪应急督函〔2026〕2号", "2026-04-12 00:00:00", ["王建华"]),
        ("约谈", "坪应急约〔2026〕1号", "2026-04-16 00:00:00", ["贾丽萍", "陈建国", "赵丽娟"]),
    ]
    # Reminders are no rung: no title, no letter.
    reminders = [e for e in walked.run["escalations"] if e["kind"] == "remind"]
    assert reminders and all(e["title"] is None and e["number"] is None for e in reminders)
