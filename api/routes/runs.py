"""Runs: start, list, read (steps, escalations, timeline), cancel, stage, change a changeable
param (a typhoon's signal), end a staged response or a drill (结束演练), and the evaluation
(演练评估 / 复盘)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlmodel import Session

from api.deps import CurrentPerson, Offset, RowId, RuntimeDep, filter_time
from api.document_html import document_html
from api.evaluation_schemas import EvaluationPublic
from api.holdup import holdups
from api.param_schemas import answers_view
from api.schemas import (
    AssessmentBody,
    CancelBody,
    EndBody,
    NextRound,
    ParamsChange,
    PersonAway,
    RunCreate,
    RunPublic,
    RunsPublic,
    StageChange,
    StepPublic,
    run_view,
    step_view,
)
from flows import lifecycle
from flows.access import listing_units, require_read_run
from flows.concurrent import overlapping_runs
from flows.drill_end import DRILL_END, end_run
from flows.drills import read_drill
from flows.evaluation import assess, evaluate
from flows.lateness import step_late_days
from flows.round_start import report_now
from flows.runtime import Runtime
from flows.signal_acks import acknowledge
from models.db import read_session
from models.errors import InvalidInput
from models.queries import (
    late_work,
    list_runs,
    playbook_has_runs,
    playbooks_with_runs,
    run_detail,
)
from models.run import RUN_STATUSES, RUNNING, Run

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.post("", status_code=201, response_model=RunPublic)
def start(body: RunCreate, rt: RuntimeDep, person: CurrentPerson) -> RunPublic:
    """Start a run of a playbook for a unit; returns at once with its step instances."""
    drill = read_drill(body.drill.kind, body.drill.title) if body.drill else None
    run = lifecycle.start_run(rt, playbook_id=body.playbook, unit_id=body.unit,
                              params=body.params, actor=person, refuse_unstaffed=True,
                              refuse_concurrent=body.refuse_concurrent, drill=drill)
    playbook = rt.catalog.pinned(rt.db, run.playbook_sha)
    with read_session(rt.db) as session:
        steps, escalations, events = run_detail(session, run_id=run.id or 0)
        others = overlapping_runs(session, rt, playbook, run.unit_id, exclude=run.id,
                                  drill=run.drill_kind is not None)
    # The same shape as GET /api/runs/{id}: a client reads one kind of answer.
    view = run_view(rt, run, steps=steps, escalations=escalations, events=events,
                    playbook=playbook)
    view.concurrent = others
    return view


@router.get("", response_model=RunsPublic)
def list_(
    rt: RuntimeDep, person: CurrentPerson,
    playbook: str | None = None, status: str | None = None, unit: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
    drill: Annotated[bool | None, Query(description="true: drills (演练) only; false: real "
                                              "events only; absent: both, each drill "
                                              "carrying `drill`")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Offset = 0,
) -> RunsPublic:
    """Runs the caller may see, newest first. `status` may be a comma list (any of them);
    `unit` is that unit and the units below it; `drill` keeps drills only (true) or real
    events only (false)."""
    since = filter_time(rt, "since", since)
    until = filter_time(rt, "until", until)
    if since is not None and until is not None and until < since:
        # Nothing starts after since and before an earlier until: an empty page would read as
        # "no runs then", when the dates were only swapped.
        raise InvalidInput("until", "结束时间早于开始时间（since），请检查是否填反 / until is "
                           "before since")
    statuses: list[str] = []
    for s in status.split(",") if status else []:
        if s not in RUN_STATUSES:
            known = ", ".join(RUN_STATUSES)
            raise InvalidInput("status", f"不认识的状态 {s[:40]}，可选：{known} / unknown "
                               f"status '{s[:40]}' (known: {known})")
        statuses.append(s)
    units = listing_units(rt.org, person, unit)
    with read_session(rt.db) as session:
        if playbook:
            _check_playbook(rt, session, playbook)
        rows, total = list_runs(session, units=units, playbook=playbook, status=statuses,
                                since=since, until=until, drill=drill, limit=limit,
                                offset=offset)
        views = _with_late_work(rt, session, rows)
    return RunsPublic(data=views, count=total, limit=limit, offset=offset)


def _with_late_work(rt: Runtime, session: Session, rows: list[Run]) -> list[RunPublic]:
    """The page's runs, each running one with its overdue tasks and the worst lateness, so a
    commander scanning the list sees which runs are late without opening each. Only a running
    run owes work; the page's running runs are read in one query together."""
    now = rt.clock.now()
    late = late_work(session, run_ids=[r.id or 0 for r in rows if r.status == RUNNING], now=now)
    views = [run_view(rt, r) for r in rows]
    for run, view in zip(rows, views, strict=True):
        if run.status == RUNNING:
            work = late.get(view.id)
            view.overdue_tasks = work.tasks if work else 0
            view.max_overdue_days = (step_late_days(work.earliest_due, now, rt.tz) or None
                                     if work else None)
            view.earliest_overdue_due_at = work.earliest_due if work else None
    return views


def _check_playbook(rt: Runtime, session: Session, playbook: str) -> None:
    """422 on `playbook` for an id that is neither loaded now nor was ever run: a typo would
    otherwise list nothing and look like "no runs". A playbook whose file was removed or
    renamed since, or fails to load today, still has its runs (each pins its compiled version),
    and they stay listable."""
    if playbook in rt.catalog.current or playbook_has_runs(session, playbook_id=playbook):
        return
    known = ", ".join(sorted({*rt.catalog.current, *playbooks_with_runs(session)}))
    raise InvalidInput("playbook", f"没有流程 {playbook[:80]}，可选：{known} / unknown playbook "
                       f"'{playbook[:80]}' (known: {known})")


@router.get("/{run_id}", response_model=RunPublic)
def read(run_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> RunPublic:
    """A run with its steps, escalations and timeline (the audit trail)."""
    with read_session(rt.db) as session:
        run = lifecycle.load_run(session, run_id)
        require_read_run(rt.org, person, run)
        steps, escalations, events = run_detail(session, run_id=run_id)
    playbook = rt.catalog.pinned(rt.db, run.playbook_sha)
    view = run_view(rt, run, steps=steps, escalations=escalations, events=events,
                    playbook=playbook)
    if run.status == "running":
        view.holdup = holdups(rt, steps=view.steps or [], events=events,
                              escalations=view.escalations or [], playbook=playbook)
    view.signal_answers = answers_view(rt, run_id, playbook)
    return view


@router.post("/{run_id}/cancel", response_model=RunPublic)
def cancel(run_id: RowId, rt: RuntimeDep, person: CurrentPerson,
           body: CancelBody | None = None) -> RunPublic:
    """Cancel a running run and its open steps (commander)."""
    run = lifecycle.cancel_run(rt, run_id=run_id, actor=person,
                               reason=body.reason if body else None)
    return run_view(rt, run)


@router.post("/{run_id}/complete", response_model=RunPublic)
def complete(run_id: RowId, rt: RuntimeDep, person: CurrentPerson,
             body: EndBody | None = None) -> RunPublic:
    """End a staged response (commander): in its last stage with that stage's work in, the
    run completes; earlier stages' open tasks are called off and listed in the timeline
    (flows/lifecycle.end_response). 409 with what is still owed otherwise; 422 naming `run`
    for a real run of a playbook without stages (it ends with its last step, or is cancelled).

    A drill (演练) of any playbook is ended at any point (结束演练, flows/drill_end.py), by a
    commander who may cancel it: the run completes (not 已取消); its open tasks are called off
    and listed in the timeline's `run_completed` event (`drill_end`, `unanswered`), its
    running child runs end with it, and those who held open tasks, the verifiers waiting and
    whoever its messages reached are told 【演练】演练结束 with the optional `note`. A typhoon
    drill whose records still have people away (moved and not back: a real response's end is
    a 409 naming each community) ends too, and says so: `people_away` in the answer, the
    event and the notice. 409 once it is no longer running."""
    end_run(rt, run_id=run_id, actor=person, note=body.note if body else None)
    with read_session(rt.db) as session:
        run = lifecycle.load_run(session, run_id)
        steps, _, events = run_detail(session, run_id=run_id)
    view = run_view(rt, run, steps=steps, events=events,
                    playbook=rt.catalog.pinned(rt.db, run.playbook_sha))
    ended = [e.detail for e in events if e.action == "run_completed"
             and (e.detail or {}).get(DRILL_END)]
    if ended:  # a drill's end says who its records still have away (flows/people_away.py)
        view.people_away = [PersonAway(**a) for a in ended[-1].get("people_away", [])]
    return view


@router.post("/{run_id}/stage", response_model=RunPublic)
def stage(run_id: RowId, body: StageChange, rt: RuntimeDep, person: CurrentPerson) -> RunPublic:
    """Move a staged run (typhoon) to a stage; that stage's steps become ready. Going back,
    the higher stages' open tasks named in `call_off` (or all, `call_off_all`) are called off
    with `note`; the others stay open. Going forward, the called-off tasks of the stages
    entered are handed out again (`rehanded`); done and kept ones stay as they are, and the
    stages jumped over named in `pass_over` (with `note`) are not handed out. `params` records
    new values of `changeable` params (the signal, 红色) in the same act."""
    moved = lifecycle.change_stage(rt, run_id=run_id, stage=body.stage, actor=person,
                                   call_off=body.call_off, call_off_all=body.call_off_all,
                                   note=body.note, pass_over=body.pass_over,
                                   params=body.params)
    with read_session(rt.db) as session:
        run = lifecycle.load_run(session, run_id)
        steps, _, _ = run_detail(session, run_id=run_id)
    view = run_view(rt, run, steps=steps, playbook=rt.catalog.pinned(rt.db, run.playbook_sha))
    if moved.back:
        view.called_off, view.kept_open = moved.called_off, moved.kept_open
    else:
        view.rehanded = moved.rehanded
    return view


@router.post("/{run_id}/params", response_model=RunPublic)
def change_params(run_id: RowId, body: ParamsChange, rt: RuntimeDep,
                  person: CurrentPerson) -> RunPublic:
    """Record new values of params the run's playbook marks `changeable` (typhoon-633's
    `signal`, raised from 橙色 to 红色 within a stage), for those who may change its stage:
    audited, in the timeline and `param_history`, told to the holders of the current stage's
    open tasks (a raise as 【台风预警信号升级】); nothing is handed out or called off. 422 naming
    `params.<name>` (nothing changed), 409 on a run no longer running or a value already
    current, 403 for anyone but a commander over the run's unit."""
    lifecycle.change_params(rt, run_id=run_id, params=body.params, actor=person, note=body.note)
    return _with_answers(rt, run_id)


@router.post("/{run_id}/signal-acks/{ack_id}/ack", response_model=RunPublic)
def answer_signal(run_id: RowId, ack_id: RowId, rt: RuntimeDep,
                  person: CurrentPerson) -> RunPublic:
    """Answer 收到 to a raise of the warning signal (叫应), as the person it called: the run
    with `signal_answers`. A second tap answers as the first; 403 for anyone else, 409 on a
    run no longer running or a raise a newer one superseded (answer that one)."""
    acknowledge(rt, run_id=run_id, ack_id=ack_id, actor=person)
    return _with_answers(rt, run_id)


def _with_answers(rt: Runtime, run_id: int) -> RunPublic:
    """The run as the signal box redraws it: params, history and the latest 叫应."""
    with read_session(rt.db) as session:
        run = lifecycle.load_run(session, run_id)
        steps, _, events = run_detail(session, run_id=run_id)
    playbook = rt.catalog.pinned(rt.db, run.playbook_sha)
    view = run_view(rt, run, steps=steps, events=events, playbook=playbook)
    view.signal_answers = answers_view(rt, run_id, playbook)
    return view


@router.post("/{run_id}/rounds", response_model=StepPublic)
def next_round(run_id: RowId, body: NextRound, rt: RuntimeDep,
               person: CurrentPerson) -> StepPublic:
    """Hand out the next round of a recurring step now (情况发生重大变化时随时续报), with `note`
    saying why; the regular times go on after it. For whoever would do the round and the
    run's commanders. 409 while a round is still open, or when the rounds have not begun or
    have ended; 422 naming `step` for a step that does not recur."""
    handed = report_now(rt, run_id=run_id, step_key=body.step, actor=person, note=body.note)
    with read_session(rt.db) as session:
        run = lifecycle.load_run(session, run_id)
    return step_view(rt, handed, run_title=run.title,
                     spec=rt.catalog.pinned(rt.db, run.playbook_sha).step(handed.step_key))


@router.get("/{run_id}/evaluation", response_model=EvaluationPublic)
def evaluation(run_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> dict[str, Any]:
    """演练评估 of a drill, 复盘 of a real event (the same view): per task, when it was handed
    out, signed for and finished, against its deadline (`outcome`: on_time, late with
    `late_minutes`, missed, open, no_deadline, called_off, ended_not_due: open when 结束演练
    ended the drill, not yet due), the escalation level it reached and who acted, under the
    unit of whoever did it; a `summary` (on time / late / missed, the first report's minutes
    from the alert, the longest delays, how the run `ended`, when and by whom); the
    assessments written so far (the latest in `assessment`); and the rendered 演练评估报告
    (`report` as Markdown, `html` for the page). For commanders and managers of the run's
    unit or above."""
    view = evaluate(rt, run_id=run_id, actor=person)
    return view | {"html": document_html(view["report"])}


@router.post("/{run_id}/evaluation", response_model=EvaluationPublic)
def assess_run(run_id: RowId, body: AssessmentBody, rt: RuntimeDep,
               person: CurrentPerson) -> dict[str, Any]:
    """Write the evaluation's assessment (问题与整改建议): a new event in the run's timeline,
    the earlier ones kept; answers the evaluation as GET does. Commanders and managers."""
    view = assess(rt, run_id=run_id, actor=person, assessment=body.assessment)
    return view | {"html": document_html(view["report"])}
