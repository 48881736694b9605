"""Starting, staging and cancelling runs. Each is one transaction that writes the run, its
step instances, audit events and a wake for the segment runner, then returns: the API never
waits on Prefect."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from flows.access import nobody_for, require_right, require_start
from flows.call_off import call_off as called_off
from flows.call_off import pick
from flows.campaigns import campaign_problem
from flows.concurrent import refuse_if_running
from flows.drills import Drill, refuse_drill_of
from flows.found_times import BadCell, Times
from flows.param_changes import announce_changes, apply_changes, checked_changes
from flows.params import validate_params
from flows.passed_stages import come_back_to, jumped_over
from flows.people_away import followed_up, round_text
from flows.progress import advance, cancel_open_steps, is_finished, lock_run, step_state, wake
from flows.registers import create_entry, sync_entry
from flows.run_titles import title_for
from flows.runtime import Runtime
from flows.spec import Playbook
from flows.stop_notices import tell_stopped
from flows.tabular import ZERO_WIDTH
from models import run as rs
from models import task as st
from models.audit import SYSTEM
from models.db import session_scope
from models.errors import Conflict, InvalidInput, NotFound
from models.hazard import Hazard
from models.run import Run
from models.task import StepInstance
from models.writes import add_event


def start_run(
    rt: Runtime,
    *,
    playbook_id: str,
    unit_id: str,
    params: dict[str, Any],
    actor: str,
    session: Session | None = None,
    parent_step_id: int | None = None,
    check_rights: bool = True,
    refuse_unstaffed: bool = False,
    refuse_concurrent: bool = False,
    drill: Drill | None = None,
) -> Run:
    """`drill`: a drill (演练) of the playbook, not a real event (flows/drills.py); refused
    for a playbook that keeps a register (a hazard) or counts one (a 3030 campaign).
    `refuse_unstaffed`: a person registering a hazard (the API, the CLI) is refused one
    whose task ready at once has nobody to do it (`_refuse_unstaffed`); the engine's own
    starts (child runs, the import, which checks its rows itself) are not.
    `refuse_concurrent`: refused (ConcurrentRuns) while a run of the playbook is running for
    the unit, above it or below it (flows/concurrent.py)."""
    try:
        playbook = rt.catalog.get(playbook_id)
    except NotFound:
        raise rt.catalog.unknown(playbook_id) from None
    if unit_id not in rt.org.units:
        raise InvalidInput("unit", f"没有单位 {unit_id} / unknown unit '{unit_id}'")
    if check_rights:
        require_start(rt.org, actor, playbook.started_by, unit_id)
    if drill is not None:
        refuse_drill_of(playbook)
    clean = validate_params(playbook, params)
    if playbook.register_ is not None:
        tidy_code(clean)
        check_register_fits(clean)
        check_found_at(rt, playbook, clean)
    if session is None:
        with session_scope(rt.db) as own:
            return _start(own, rt, playbook, unit_id, clean, actor, parent_step_id,
                          refuse_unstaffed=refuse_unstaffed,
                          refuse_concurrent=refuse_concurrent, drill=drill)
    return _start(session, rt, playbook, unit_id, clean, actor, parent_step_id,
                  refuse_unstaffed=refuse_unstaffed, refuse_concurrent=refuse_concurrent,
                  drill=drill)


def require_running(run: Run) -> None:
    """409 for anything but a running run (a step, a stage, a cancel, an extension)."""
    if run.status != rs.RUNNING:
        raise Conflict(f"流程已{rs.STATUS_ZH.get(run.status, run.status)} / run is {run.status}",
                       current=run.status)


# The register (台账) columns a register playbook's text params fill (flows/registers.py
# entry_row), with their widths: a param may be longer (flows.params.MAX_TEXT), a column not.
_REGISTER_TEXTS = ("code", "source", "grade", "category", "location", "enterprise", "found_by")
_REGISTER_WIDTHS: dict[str, int] = {
    name: Hazard.__table__.c[name].type.length  # type: ignore[attr-defined]
    for name in _REGISTER_TEXTS
}


def check_register_fits(params: dict[str, Any]) -> None:
    """InvalidInput naming params.<name> for a text too wide for its register column (on
    PostgreSQL the insert would fail; SQLite would keep it and the exports would not)."""
    for name, value in params.items():
        width = _REGISTER_WIDTHS.get(name)
        if width is not None and isinstance(value, str) and len(value) > width:
            raise InvalidInput(f"params.{name}",
                               f"过长：{len(value)} 个字符，台账最多 {width} 个 / too long: "
                               f"{len(value)} characters; the register holds at most {width}")


def tidy_code(params: dict[str, Any]) -> None:
    """A 隐患编号 as the import reads it (flows/tabular.py): without the spaces around it and the
    zero-width characters copied along from a web page, so " E000005 " or "E000005\u200b" is
    the stored E000005 (one code, one hazard) and not a second look-alike; nothing left means
    no code (the register numbers it)."""
    code = params.get("code")
    if isinstance(code, str):
        tidy = ZERO_WIDTH.sub("", code).strip()
        if tidy:
            params["code"] = tidy
        else:
            params.pop("code")


def check_found_at(rt: Runtime, playbook: Playbook, params: dict[str, Any]) -> None:
    """A register's 发现时间 as the import reads it (flows/found_times.py): a time without an
    offset is the bureau's clock (stored with its offset, so the hazard falls in the month it
    was found there), and a time in the future or before 2000 is refused, naming the field."""
    value = params.get("found_at")
    if value in (None, ""):
        return
    try:
        when = Times(rt.tz, rt.clock.now()).parse(value)
    except BadCell as exc:
        raise InvalidInput("params.found_at", f"{exc.zh} / {exc.en}") from None
    spec = playbook.params.get("found_at")
    if when is not None and (spec is None or spec.type == "datetime"):
        params["found_at"] = when.isoformat()


def _start(
    session: Session, rt: Runtime, playbook: Playbook, unit_id: str, params: dict[str, Any],
    actor: str, parent_step_id: int | None, *, refuse_unstaffed: bool = False,
    refuse_concurrent: bool = False, drill: Drill | None = None,
) -> Run:
    now = rt.clock.now()
    if refuse_concurrent:
        refuse_if_running(session, rt, playbook, unit_id, drill=drill is not None)
    campaign = params.get("campaign") if playbook.register_ is not None else None
    if campaign not in (None, ""):
        grade = params.get("grade")
        why = campaign_problem(session, rt, int(campaign), unit_id,
                               grade if isinstance(grade, str) else None)
        if why is not None:
            raise InvalidInput("params.campaign", f"{why[0]} / {why[1]}")
    rt.catalog.pin(session, playbook, now)
    title = title_for(playbook, params, rt.org.unit(unit_id).name)
    run = Run(
        playbook_id=playbook.id, playbook_version=playbook.version,
        playbook_sha=playbook.sha256, title=title, unit_id=unit_id,
        status=rs.RUNNING, stage=playbook.stages[0] if playbook.stages else None,
        stage_entered_at=now if playbook.stages else None, params=params, started_by=actor,
        started_at=now, parent_step_id=parent_step_id,
        drill_kind=drill.kind if drill else None, drill_title=drill.title if drill else None,
    )
    session.add(run)
    session.flush()
    create_entry(session, rt, run, playbook, now)
    add_event(session, at=now, actor=actor, action="run_started", run_id=run.id,
              to_state=rs.RUNNING, detail={"playbook": playbook.id,
                                           "version": playbook.version, "params": params}
              | ({"drill": drill.as_dict()} if drill else {}))
    advance(session, rt, run, playbook, now=now)
    if refuse_unstaffed and playbook.register_ is not None:
        _refuse_unstaffed(session, rt, run, playbook)
    wake(session, run, "started", now=now)
    session.flush()
    return run


def _refuse_unstaffed(session: Session, rt: Runtime, run: Run, playbook: Playbook) -> None:
    """A person registering an entry (a register playbook: a hazard) where a task ready at
    once has nobody to do it (a hazard registered at a street, which has no safety officer to
    rectify it) is refused, as the import refuses that row, rather than left with a task
    nobody sees and a 督办函 served on no one: the unit is the mistake. A response is never
    refused for this: at 3 a.m. a half-staffed response beats none, and its answer shows
    each step's (empty) assignees and its escalations still fire. Steps reached later are not
    checked: what becomes ready depends on what happens."""
    session.flush()
    for step in session.exec(select(StepInstance).where(
            StepInstance.run_id == run.id, StepInstance.status == st.READY,
            StepInstance.action == "task")).all():
        spec = playbook.step(step.step_key)
        if step.assignees or not step.role or spec.for_each:
            continue
        zh, en = nobody_for(rt.org, step.role, step.title, step.step_key, run.unit_id,
                            step.unit_id)
        raise InvalidInput("unit", f"{zh} / {en}")


def load_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound("run", run_id)
    return run


def _commanded_staged_run(session: Session, rt: Runtime, run_id: int, actor: str, field: str,
                          unstaged: Callable[[Playbook], str]) -> tuple[Run, Playbook]:
    """The run and its pinned playbook, for a commander over its unit (403 otherwise), when
    the playbook has stages (422 on `field`, saying `unstaged(playbook)`, otherwise)."""
    run = load_run(session, run_id)
    require_right(rt.org, actor, "commander", run.unit_id)
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    if not playbook.stages:
        raise InvalidInput(field, unstaged(playbook))
    return run, playbook


@dataclass
class StageMoved:
    """A stage change and, going back, what became of the higher stages' open tasks; going
    forward into stages a downgrade left, which of their called-off tasks went out again."""

    run: Run
    back: bool = False  # to an earlier stage
    called_off: list[int] = field(default_factory=list)  # step instance ids
    kept_open: list[int] = field(default_factory=list)
    # Forward: the instances handed out in place of called-off ones (flows/rehand.py); done
    # and kept tasks are not among them: they stay as they are.
    rehanded: list[int] = field(default_factory=list)
    # Forward: the stages jumped over whose steps were not handed out (`pass_over`); back: the
    # passed-over stages the run came down to again, owed when it enters them.
    passed_over: list[str] = field(default_factory=list)
    owed_again: list[str] = field(default_factory=list)


def set_stage(rt: Runtime, *, run_id: int, stage: str, actor: str,
              call_off: Sequence[int] = (), call_off_all: bool = False,
              note: str | None = None, pass_over: Sequence[str] = (),
              params: Mapping[str, Any] | None = None) -> Run:
    """change_stage, for callers that want only the run."""
    return change_stage(rt, run_id=run_id, stage=stage, actor=actor, call_off=call_off,
                        call_off_all=call_off_all, note=note, pass_over=pass_over,
                        params=params).run


def change_stage(rt: Runtime, *, run_id: int, stage: str, actor: str,
                 call_off: Sequence[int] = (), call_off_all: bool = False,
                 note: str | None = None, pass_over: Sequence[str] = (),
                 params: Mapping[str, Any] | None = None) -> StageMoved:
    """Move a staged run to `stage`; its steps (and those of stages jumped over) are handed
    out. Going back (the warning downgraded), the open tasks of the stages above are called
    off as the commander says: those named in `call_off`, or all with `call_off_all`, with a
    `note` saying why (422 without one); the rest stay open and the `stage_changed` event
    counts them, so keeping them is on record as a choice. Forward, nothing is called off
    (422 on call_off), and the tasks of the stages entered that a downgrade called off are
    handed out again (flows/rehand.py: done ones stay done, kept ones as they are); a
    `rehanded` event after their `ready` events counts them.

    Jumping forward, the stages in between named in `pass_over` (ids or titles; with a `note`)
    are passed over: their steps are not handed out (flows/passed_stages.py). Going back to or
    below a passed-over stage makes it owed again on entry.

    `params`: `changeable` params recorded in the same act (橙色/红色预警 entered at 红色,
    flows/param_changes.py); set before the stage's steps are handed out, so their `when`
    reads the new value, and told after, with the stage's tasks. A wrong one refuses the
    whole act (422 naming it), a value already current is no change."""
    with session_scope(rt.db) as session:
        run, playbook = _commanded_staged_run(
            session, rt, run_id, actor, "stage",
            lambda pb: f"流程 {pb.id} 不分阶段 / playbook '{pb.id}' has no stages")
        stage = stage_id(playbook, stage)
        lock_run(session, run)  # two stage changes, or one and a cancel: one after the other
        require_running(run)
        if run.stage == stage:
            raise Conflict(f"流程已处于阶段 {playbook.stage_title(stage)} / run is already in "
                           f"stage '{stage}'", current=run.stage)
        back = run.stage is not None and \
            playbook.stages.index(stage) < playbook.stages.index(run.stage)
        asked = call_off_all or bool(call_off)
        if asked and not back:
            raise InvalidInput("call_off", "只有退回到较早阶段（预警降级）时才能撤销任务 / tasks "
                               "are called off only when going back to an earlier stage")
        said = (note or "").strip()
        if asked and not said:
            raise InvalidInput("note", "撤销任务须写明说明（如：预警降为黄色，停止转移），将告知"
                               "任务负责人 / calling tasks off needs a note saying why; their "
                               "holders are told")
        passed = jumped_over(playbook, run, stage, pass_over, stage_id, said)
        new_values = checked_changes(playbook, run, params or {})
        stopped: list[StepInstance] = []
        kept: list[StepInstance] = []
        if back:
            stopped, kept = pick(session, playbook, run, stage, named=call_off,
                                 take_all=call_off_all)
        now = rt.clock.now()
        detail: dict[str, Any] = {}
        if back:
            detail = {"called_off": len(stopped), "kept_open": len(kept)}
            if said:
                detail["note"] = said
        owed_again = come_back_to(playbook, run, stage) if back else []
        if owed_again:
            detail["owed_again"] = owed_again
        if passed:
            detail.update(passed_over=passed, note=said)
            run.passed_over_stages = [s for s in playbook.stages
                                      if s in {*(run.passed_over_stages or ()), *passed}]
        add_event(session, at=now, actor=actor, action="stage_changed", run_id=run.id,
                  from_state=run.stage, to_state=stage, detail=detail)
        if stopped:
            called_off(session, rt, run, stopped, actor=actor, note=said, stage=stage,
                       stage_title=playbook.stage_title(stage) or stage, now=now)
        run.stage = stage
        run.stage_entered_at = now
        session.add(run)
        changed = apply_changes(session, rt, run, playbook, new_values)
        moved = advance(session, rt, run, playbook, now=now)
        if moved.rehanded or moved.passed_over_again:
            # After the `ready` events it sums up: how many called-off tasks this entry owes
            # again, handed out now, passed over (their `when` false now), or left to wait
            # for their `needs` (handed out when those finish).
            add_event(session, at=now, actor=actor, action="rehanded", run_id=run.id,
                      to_state=stage, detail={"rehanded": len(moved.rehanded),
                                              "passed_over": moved.passed_over_again,
                                              "waiting": moved.owed_waiting})
        announce_changes(session, rt, run, playbook, changed, actor=actor, now=now,
                         note=said or None)
        wake(session, run, "stage", now=now)
        return StageMoved(run=run, back=back, called_off=[s.id or 0 for s in stopped],
                          kept_open=[s.id or 0 for s in kept], rehanded=moved.rehanded,
                          passed_over=passed, owed_again=owed_again)


def change_params(rt: Runtime, *, run_id: int, params: Mapping[str, Any], actor: str,
                  note: str | None = None) -> Run:
    """Record new values of a running run's `changeable` params without a stage change (the
    signal raised from 橙色 to 红色 within 橙色/红色预警; flows/param_changes.py): by a commander
    over the run's unit, as a stage change is (403); 409 for a run no longer running, or when
    every value given is the current one already (a second tap); 422 naming `params.<name>`
    for an unknown param, one not changeable, or a value that does not fit. Nothing is handed
    out or called off; the holders of the current stage's open tasks are told."""
    with session_scope(rt.db) as session:
        run = load_run(session, run_id)
        require_right(rt.org, actor, "commander", run.unit_id)
        playbook = rt.catalog.pinned(session, run.playbook_sha)
        if not params:
            raise InvalidInput("params", "请给出要更改的参数及新值，如 {\"signal\": \"红色\"} / "
                               "give the params to change and their new values")
        lock_run(session, run)
        require_running(run)
        new_values = checked_changes(playbook, run, params)
        if not new_values:
            shown = "、".join(f"{playbook.params[n].title or n}已是{v}" for n, v in params.items())
            raise Conflict(f"{shown}，无需更改 / the run already has these values",
                           current=run.status)
        said = (note or "").strip() or None
        now = rt.clock.now()
        changed = apply_changes(session, rt, run, playbook, new_values)
        announce_changes(session, rt, run, playbook, changed, actor=actor, now=now, note=said)
        # No wake: nothing is handed out, so the segment runner has nothing to run.
        return run


def stage_id(playbook: Playbook, given: str) -> str:
    """The stage `given` names: its id, or its title as people say it (橙色/红色预警), so a
    commander at 3 a.m. need not know the ids. Unknown: 422 listing both."""
    if given in playbook.stages:
        return given
    titled = [s for s in playbook.stages if playbook.stage_title(s) == given.strip()]
    if titled:
        return titled[0]
    shown = given[:80]
    zh = "、".join(f"{s}（{playbook.stage_title(s)}）" if playbook.stage_title(s) else s
                   for s in playbook.stages)
    known = ", ".join(playbook.stages)
    raise InvalidInput("stage", f"没有阶段 {shown}，可选：{zh} / unknown stage '{shown}' "
                       f"(known: {known})")


def end_response(rt: Runtime, *, run_id: int, actor: str, note: str | None = None) -> Run:
    """A commander ends a staged response (台风633): the run completes. Tasks still open are
    called off with it, their holders told, and the timeline's `run_completed` event lists
    them by title, so what was never answered stays on record (the summary names them too).

    In the last stage, once that stage's work is in (the returns, the 防御总结). Before it,
    when the warning is lifted early (the typhoon turned away at 台风警报), with a note saying
    so: jumping to the last stage instead would hand every community the transfer orders of
    the stages in between for a storm that never came, unless the commander passes them over
    (change_stage's `pass_over`, which a typhoon that turned away after people were moved
    needs: their returns are the last stage's work).

    Refused: a playbook without stages (it completes when its last step does, or is
    cancelled), an end before the last stage without a note, or one whose last stage still
    has work. A drill is not held to any of this: POST /api/runs/{id}/complete ends it at any
    point (flows/drill_end.py)."""
    with session_scope(rt.db) as session:
        run, playbook = _commanded_staged_run(
            session, rt, run_id, actor, "run",
            lambda pb: f"流程 {pb.title} 不分阶段，随最后一步完成而结束，或由指挥长取消 / "
                       f"playbook '{pb.id}' has no stages: it ends with its last step, or is "
                       "cancelled")
        lock_run(session, run)
        require_running(run)
        last = playbook.stages[-1]
        last_title = playbook.stage_title(last) or last
        early = run.stage != last
        if early and not (note or "").strip():
            here = playbook.stage_title(run.stage) or run.stage
            raise InvalidInput("note", f"在“{here}”阶段提前结束响应须说明原因（如：台风转向，预警"
                               f"解除）；否则请进入最后阶段“{last_title}”完成其工作后再结束 / "
                               f"ending before the last stage '{last}' needs a note saying "
                               "why (the warning was lifted)")
        if early:
            _refuse_dropping_follow_ups(session, rt, run, playbook, last_title)
        if not early:
            _refuse_dropping_people_away(session, run, playbook, last_title)
        state = step_state(session, run, playbook)
        owed = [] if early else [spec.title for spec in playbook.stage_steps(last)
                                 if not is_finished(state.get(spec.id, []))]
        if owed:
            raise Conflict(f"“{last_title}”阶段尚未完成：{'、'.join(owed)} / the last stage "
                           f"still has work: {', '.join(owed)}", current=run.stage)
        now = rt.clock.now()
        left = session.exec(select(StepInstance.title).where(
            StepInstance.run_id == run.id,
            StepInstance.status.in_([st.PENDING, *st.OPEN_STATUSES]),  # type: ignore[attr-defined]
        ).order_by(StepInstance.id)).all()  # type: ignore[arg-type]
        return stop_run(session, rt, run, playbook, actor, now, note, ended=True,
                        detail={"ended_by": actor, "note": note, "unanswered": list(left),
                                "stage": run.stage, "early": early})


def _refuse_dropping_follow_ups(session: Session, rt: Runtime, run: Run, playbook: Playbook,
                                last_title: str) -> None:
    """409 for an early end that would leave work done without its own follow-up: a step of
    the last stage waiting item by item (`item_needs`) on records already made, as 转移人员返回
    waits on each community's 危险区人员转移. Once people are in shelters, nobody may end the
    response with nobody asked to bring them back; the commander enters the last stage instead,
    whose work (the returns, the safety checks before them) is what the early end would skip."""
    for spec in playbook.stage_steps(playbook.stages[-1]):
        if not spec.item_needs:
            continue
        done = session.exec(select(StepInstance.step_key, StepInstance.unit_id).where(
            StepInstance.run_id == run.id,
            StepInstance.step_key.in_(spec.item_needs),  # type: ignore[attr-defined]
            StepInstance.status == st.DONE).order_by(StepInstance.id)).all()  # type: ignore[arg-type]
        if not done:
            continue
        needs = "、".join(dict.fromkeys(playbook.step(key).title for key, _ in done))
        where = "、".join(dict.fromkeys(rt.org.unit_name(unit) for _, unit in done))
        raise Conflict(
            f"{where}已填报“{needs}”，其后续“{spec.title}”属于“{last_title}”阶段；提前结束将无人"
            f"跟进。请进入“{last_title}”阶段完成后再结束响应（越过的阶段可选择跳过，不下发其"
            f"任务） / "
            f"{len(done)} record(s) of '{', '.join(spec.item_needs)}' are in and their "
            f"follow-up '{spec.id}' belongs to the last stage: enter it instead of ending early "
            "(the stages in between may be passed over)", current=run.stage)


def _refuse_dropping_people_away(session: Session, run: Run, playbook: Playbook,
                                 last_title: str) -> None:
    """409 naming each item still followed up (`follow_up`: a community with people still in
    the shelter, asked every day until none remain) and the round it is at: ending the
    response would call those rounds off and nobody would ask about the people again."""
    for spec, rows in followed_up(session, run, playbook):
        which = "；".join(round_text(spec, r) for r in rows)
        raise Conflict(
            f"“{spec.title}”尚未结束：{which}。人员全部返回、跟踪闭环前不能结束响应，请督促社区按时"
            f"填报 / '{spec.id}' is still following {len(rows)} item(s) up (people still "
            f"away): the response cannot end before it closes", current=run.stage)


def cancel_run(
    rt: Runtime, *, run_id: int, actor: str, reason: str | None = None,
    session: Session | None = None,
) -> Run:
    if session is None:
        with session_scope(rt.db) as own:
            return cancel_run(rt, run_id=run_id, actor=actor, reason=reason, session=own)
    run = load_run(session, run_id)
    if actor != SYSTEM:
        require_right(rt.org, actor, "commander", run.unit_id)
    lock_run(session, run)  # after an approval that made steps ready: this sees them
    require_running(run)
    if actor != SYSTEM:
        _require_cancel_reason(rt, session, run, reason)
    return stop_run(session, rt, run, rt.catalog.pinned(session, run.playbook_sha), actor,
                    rt.clock.now(), reason, ended=False, detail={"reason": reason})


def stop_run(session: Session, rt: Runtime, run: Run, playbook: Playbook, actor: str,
             now: datetime, said: str | None, *, ended: bool, detail: dict[str, Any],
             tell: bool = True) -> Run:
    """What ending a response or a drill (completed) and cancelling a run share: holders
    told, open steps called off, the run finished, its event (with how many steps were
    stopped), the segment woken, the register entry synced, child runs still running stopped
    with it (a drill's end ends its children first, flows/drill_end.py, and tells everyone
    once beforehand, hence `tell=False`)."""
    if tell:
        tell_stopped(session, rt, run, actor, said, now, ended=ended)
    stopped = cancel_open_steps(session, run.id or 0, now=now)
    status = rs.COMPLETED if ended else rs.CANCELLED
    run.status = status
    run.finished_at = now
    session.add(run)
    counted = "steps_called_off" if ended else "steps_cancelled"
    add_event(session, at=now, actor=actor, action="run_completed" if ended else "run_cancelled",
              run_id=run.id, from_state=rs.RUNNING, to_state=status,
              detail=detail | {counted: stopped})
    wake(session, run, status, now=now)
    sync_entry(session, rt, run, playbook, now)
    _stop_children(session, rt, run, "parent ended" if ended else "parent cancelled")
    return run


def _require_cancel_reason(rt: Runtime, session: Session, run: Run, reason: str | None) -> None:
    """A register entry (a hazard) cancelled leaves the registers, its campaign and the
    monthly ranking, where an overdue one counts against its unit: when a manager is asked why
    it is gone, the timeline must say. So a person cancelling one gives the reason (重复登记,
    误报, 合并到 …); a response may still be called off at once without one."""
    if reason is not None and reason.strip():
        return
    if rt.catalog.pinned(session, run.playbook_sha).register_ is None:
        return
    raise InvalidInput("reason", "撤销隐患须说明理由（如：重复登记、误报）；撤销后不再计入"
                       "台账、专项行动和月排名 / a reason is required to cancel a "
                       "hazard: it leaves the registers, its campaign and the monthly "
                       "ranking")


def _stop_children(session: Session, rt: Runtime, run: Run, reason: str) -> None:
    """Child runs started by this run's steps stop with it."""
    children = session.exec(
        select(Run).join(StepInstance, StepInstance.id == Run.parent_step_id).where(
            StepInstance.run_id == run.id, Run.status == rs.RUNNING
        )
    ).all()
    for child in children:
        cancel_run(rt, run_id=child.id or 0, actor=SYSTEM, reason=reason, session=session)
