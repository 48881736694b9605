"""The 约谈 rung of the shipped hazard playbook's ladder (playbooks/hazard-3030.yaml, `rectify`):
seven days past the rectification deadline the bureau summons the unit's head, so the 约谈通知
reaches that head as well as the director and the street's section chief who hold the talk.
A community has no enterprise head and an enterprise no community head: the role that does
not exist for the unit is passed over, as the 督办函 rung already does. Real sweeper on the
demo district, clock moved past each rung."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import run_steps
from sqlmodel import select

from flows import lifecycle
from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.escalation import Escalation
from models.outbox import Notification

COMMANDER = "pingshan-street-commander"  # 胡红霞, may start runs for 坪山街道 and below
DIRECTOR = "chen-jianguo"  # 陈建国, the bureau's director
CHIEF = "pingshan-street-chief"  # 赵丽娟, the street's safety office
STREET_HEAD = "pingshan-street-head"  # 王建华: the 提级督办函


@pytest.mark.parametrize(("unit", "head"), [
    ("liuhe", "liuhe-head"),  # 六和社区: the community head 贾丽萍 (no enterprise head)
    ("shenzhen-gas-pingshan", "gas-station-head"),  # an enterprise: 沈德福 (no community head)
])
def test_summons_reaches_the_units_head_with_the_bureau(
    demo: Runtime, clock: ManualClock, unit: str, head: str
) -> None:
    run = lifecycle.start_run(demo, playbook_id="hazard-3030", unit_id=unit, actor=COMMANDER,
                              params={"location": "坪山街道某处", "grade": "一般",
                                      "description": "消防通道堵塞"})
    [rectify] = [s for s in run_steps(demo, run.id or 0) if s.step_key == "rectify"]
    assert rectify.status == "ready" and rectify.due_at is not None
    for days in (0, 3, 7):  # 督办函, 提级督办函, 约谈
        clock.set(rectify.due_at + timedelta(days=days, minutes=1))
        sweep_once(demo)
    with read_session(demo.db) as session:
        fired = session.exec(select(Escalation).where(Escalation.step_id == rectify.id)
                             .order_by(Escalation.level)).all()  # type: ignore[arg-type]
        summons = session.exec(select(Notification).where(
            Notification.step_id == rectify.id, Notification.kind == "escalate",
            Notification.title == "【督办提醒·约谈】隐患整改·坪山街道某处")).all()
    assert [(e.level, sorted(e.recipients)) for e in fired] == [
        (1, [head]),  # 督办函: the unit's head, whichever kind of unit it is
        (2, [STREET_HEAD]),
        (3, sorted([head, DIRECTOR, CHIEF])),  # 约谈: the head summoned, and the bureau
    ]
    by = {n.recipient: n for n in summons}
    assert set(by) == {head, DIRECTOR, CHIEF}
    assert "# 约谈通知" in by[head].body and "主要负责人" in by[head].body
