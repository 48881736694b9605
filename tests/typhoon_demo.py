"""The shipped 台风633 playbook on the demo district, for the stage tests (going back a stage
and calling off, coming up again and handing out again): 坪山街道's commander runs it, and
六和社区's head has a channel of her own (in the shipped chart community heads have only the
inbox), so being told on one's own channel is seen."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from factories import DEMO_ORG, SHIPPED_PLAYBOOKS, make_runtime, run_steps
from sqlmodel import select

from flows.runtime import Runtime
from flows.sweeper import sweep_once
from models.clock import ManualClock
from models.db import read_session
from models.escalation import Escalation
from models.task import StepInstance

PLAYBOOK = "typhoon-633"
COMMANDER = "pingshan-street-commander"  # commands 坪山街道 and its five communities
LIUHE_URL = "json://127.0.0.1:9/liuhe-head"
NOTE = "预警降为黄色，暂停转移"


def typhoon_runtime(tmp_path: Path, clock: ManualClock) -> Runtime:
    text = DEMO_ORG.read_text(encoding="utf-8")
    liuhe = "title: 社区党委书记、居委会主任, roles: [community_head], notify: []}"
    assert text.count(liuhe) > 1
    at = text.index("{id: liuhe-head")
    text = text[:at] + text[at:].replace(liuhe, liuhe.replace("[]", f'["{LIUHE_URL}"]'), 1)
    rt = make_runtime(tmp_path / "typhoon", clock=clock, playbooks=SHIPPED_PLAYBOOKS,
                      org_text=text)
    assert rt.catalog.errors == []
    return rt


def at(local: str) -> datetime:
    """A Beijing time as UTC: the moments a test moves the clock to."""
    return datetime.fromisoformat(local + "+08:00").astimezone(UTC)


def keyed(rt: Runtime, run_id: int) -> dict[str, list[StepInstance]]:
    """A run's step instances by step id, in order."""
    out: dict[str, list[StepInstance]] = {}
    for row in run_steps(rt, run_id):
        out.setdefault(row.step_key, []).append(row)
    return out


def escalations(rt: Runtime, step_id: int | None) -> list[tuple[int, list[str]]]:
    """The levels of the ladder fired for a task, each with whom it reached."""
    with read_session(rt.db) as session:
        fired = session.exec(select(Escalation).where(
            Escalation.step_id == step_id, Escalation.kind == "escalate")).all()
    return [(e.level, sorted(e.recipients)) for e in fired]


def sweep_at(rt: Runtime, clock: ManualClock, *moments: str) -> None:
    """The sweeper's pass at each of these Beijing times in turn (rounds handed out, ladders
    fired), as the server's would."""
    for local in moments:
        clock.set(at(local))
        sweep_once(rt)
