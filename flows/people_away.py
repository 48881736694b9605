"""Who is still recorded away from home in a staged run, community by community: what a real
typhoon response's end refuses over (flows/lifecycle.end_response, a 409 naming each
community), and what a drill's end, which is never refused, says instead (flows/drill_end.py):
a drill of 台风633 that recorded people moved and never recorded them back must not read as if
everyone were home.

Two records leave people away, both of the last stage's steps:

* a step waiting item by item (`item_needs`) on a record that is in, without its own record:
  the community moved people (危险区人员转移) and has not recorded their return (转移人员返回);
* a follow-up (`follow_up`) with a round still owed: the community recorded a return that
  left people in the shelter (安置人员返回跟踪, its title says how many at the last count).

Which outputs count people is the playbook's business, not the engine's: like the real end's
refusal, a community is named for its records, not for a number the engine would have to
guess the field of."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from flows import follow_ups
from flows.rehand import current
from flows.runtime import Runtime
from flows.spec import Playbook, StepSpec
from flows.step_rows import item_key
from models import task as st
from models.run import Run
from models.task import StepInstance


@dataclass(frozen=True)
class Away:
    unit_id: str
    unit_name: str
    step: str  # the step whose record is owed
    detail: str  # in Chinese, as the commander reads it

    def shown(self) -> str:
        return f"{self.unit_name}（{self.detail}）"


def followed_up(session: Session, run: Run, playbook: Playbook
                ) -> list[tuple[StepSpec, list[StepInstance]]]:
    """Each follow-up step of the last stage with the rounds it still owes."""
    found = []
    for spec in playbook.stage_steps(playbook.stages[-1]):
        if spec.follow_up is not None:
            rows = follow_ups.open_rounds(session, run, spec)
            if rows:
                found.append((spec, rows))
    return found


def round_text(spec: StepSpec, row: StepInstance) -> str:
    """A round's title without the step's: 马峦社区，第1次，03-03 17:00前，上次仍在安置 8 人."""
    prefix = f"{spec.title}（"
    return row.title[len(prefix):-1] if row.title.startswith(prefix) else row.title


def people_away(session: Session, rt: Runtime, run: Run, playbook: Playbook) -> list[Away]:
    """Every community with people recorded away, in the order their records were made."""
    if not playbook.stages:
        return []
    away: list[Away] = []
    for spec in playbook.stage_steps(playbook.stages[-1]):
        if not spec.item_needs or spec.follow_up is not None:
            continue  # a follow-up's items are its rounds, below
        own = {item_key(r.item) for r in current(session.exec(select(StepInstance).where(
            StepInstance.run_id == run.id, StepInstance.step_key == spec.id)).all())
            if r.status == st.DONE}
        needs = session.exec(select(StepInstance).where(
            StepInstance.run_id == run.id, col(StepInstance.step_key).in_(spec.item_needs),
            StepInstance.status == st.DONE).order_by(col(StepInstance.id))).all()
        for need in needs:
            if item_key(need.item) not in own:
                title = playbook.step(need.step_key).title
                away.append(Away(need.unit_id, rt.org.unit_name(need.unit_id), spec.id,
                                 f"已填报“{title}”，未填报“{spec.title}”"))
    for spec, rows in followed_up(session, run, playbook):
        away += [Away(r.unit_id, rt.org.unit_name(r.unit_id), spec.id,
                      f"“{spec.title}”未结束：{round_text(spec, r)}") for r in rows]
    return away


def away_sentence(away: list[Away]) -> str:
    """What a drill's end says of them (empty when nobody is away)."""
    if not away:
        return ""
    return (f"按演练记录，仍有转移人员未返回：{'；'.join(a.shown() for a in away)}。"
            "真实响应须待人员全部返回、跟踪闭环后方可结束。")
