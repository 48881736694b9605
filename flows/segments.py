"""Segments: short Prefect flow runs that carry a run forward.

Whenever something happens to a run (it starts, a person finishes a step, a stage moves, a
timer fires) a wake row is written with the change. The segment runner turns pending wakes into
one Prefect flow run per run (flow name = playbook id; tags playbook:/run:/unit:) that
 - executes every ready automatic step (notify, document, child playbook) as a task run named
   after the step, advancing the run after each, until nothing automatic is ready;
 - records every step a person finished, and every escalation fired, as a task run too,
so Prefect's history holds the whole run. Everything a segment does is guarded by the step's
status in the database, so replaying a segment after a crash does nothing twice."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, update
from sqlmodel import Session, col, select

from flows import rounds
from flows.context import evidence_view, expression_context, run_view, stage_history
from flows.drills import drill_of, may_drill
from flows.duty import duty_cut, fallback_events, role_groups
from flows.expressions import resolve_value
from flows.lifecycle import load_run, start_run
from flows.numbering import RUN_SUBJECT, issue_number, run_numbers
from flows.param_changes import param_history_by_name
from flows.progress import AUTOMATIC_ACTIONS, advance, lock_run
from flows.recipients import (
    notification_rows,
    resolve_targets,
    target_name,
    unreached_roles,
)
from flows.render import RenderFailed
from flows.runtime import Runtime
from models import run as rs
from models import task as st
from models.audit import SYSTEM, AuditEvent
from models.db import read_session, session_scope
from models.documents import Document
from models.escalation import Escalation
from models.org import ROLE_NAMES_ZH
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.wake import Wake
from models.writes import add_event, insert_ignoring_duplicates, insert_rows

log = logging.getLogger("closeloop.segments")
MAX_ROUNDS = 100  # automatic steps that ready further automatic steps; a guard, not a limit


# --- the work a segment does, plain functions over the database --------------------------

def ready_automatic_keys(rt: Runtime, run_id: int) -> list[str]:
    with session_scope(rt.db) as session:
        rows = session.exec(
            select(StepInstance.step_key).where(
                StepInstance.run_id == run_id, StepInstance.status == st.READY,
                StepInstance.action.in_(AUTOMATIC_ACTIONS),  # type: ignore[attr-defined]
                StepInstance.prefect_recorded == False,  # noqa: E712
            ).distinct()
        ).all()
    return sorted(rows)


def execute_step(
    rt: Runtime, run_id: int, step_key: str, *, recorded: bool = True
) -> dict[str, Any]:
    """Run every ready instance of an automatic step, in one transaction with its effects.
    `recorded=False` when Prefect is unavailable: the step still happens (a first report must
    go out), and the next segment that reaches Prefect records it as a task run."""
    with session_scope(rt.db) as session:
        run = load_run(session, run_id)
        # The run before its steps (progress.lock_run): a cancel that got in first is seen
        # here (no notice served for a cancelled run), one that comes later waits for this.
        lock_run(session, run)
        playbook = rt.catalog.pinned(session, run.playbook_sha)
        spec = playbook.step(step_key)
        instances = session.exec(
            select(StepInstance).where(
                StepInstance.run_id == run_id, StepInstance.step_key == step_key,
                StepInstance.status == st.READY, StepInstance.prefect_recorded == False,  # noqa: E712
            )
        ).all()
        now = rt.clock.now()
        done = 0
        for inst in instances:
            if run.status != rs.RUNNING:
                break
            context = _template_context(session, rt, run, inst)
            number = None
            if spec.number and spec.action in ("notify", "document"):
                # One number per prefix and run (a notice and its serving print the same); a
                # fanned-out document numbers each instance.
                subject = RUN_SUBJECT if inst.item_index == 0 else f"item|{inst.item_index}"
                # Numbered in the year the document fell due (its step became ready), the
                # moment its date is printed from, even if it is filed after New Year's midnight.
                number = issue_number(session, rt, prefix=spec.number, run_id=run_id,
                                      step_key=step_key, subject=subject,
                                      now=inst.ready_at or now)
                context["doc_no"] = number.text
                if subject == RUN_SUBJECT:  # the context's `numbers` read before it was issued
                    context["numbers"] = {**context["numbers"], number.step_key: number.text}
            if spec.action == "notify":
                people, channels = resolve_targets(rt.org, spec.to, inst.unit_id)
                body = _render(session, rt, spec.template or "", context, inst, playbook.templates)
                title = f"【{spec.title}】{run.title}"
                # A rostered role's message wakes the one on duty; the others get the inbox.
                cut = duty_cut(rt.org, rt.tz, now, role_groups(rt.org, spec.to, inst.unit_id))
                insert_rows(session, AuditEvent, fallback_events(
                    rt.org, cut, run_id=run_id, step_id=inst.id, now=now))
                insert_ignoring_duplicates(session, Notification, notification_rows(
                    rt.org, people=people, channels=channels, kind="notify", title=title,
                    body=body, dedupe=f"notify|{inst.id}", now=now, run_id=run_id,
                    step_id=inst.id, quiet=cut.quiet,
                ))
                unreached = unreached_roles(rt.org, spec.to, inst.unit_id)
                if unreached:
                    add_event(session, at=now, actor=SYSTEM, action="notify_unrouted",
                              run_id=run_id, step_id=inst.id, detail={
                                  "targets": unreached,
                                  "target_names": [target_name(r, ROLE_NAMES_ZH)
                                                   for r in unreached],
                                  "unit": inst.unit_id})
                _finish(session, inst, now, {"sent_to": people + channels}, recorded)
                done += 1
            elif spec.action == "document":
                body = _render(session, rt, spec.template or "", context, inst, playbook.templates)
                insert_ignoring_duplicates(session, Document, [{
                    "run_id": run_id, "step_id": inst.id, "template": spec.template,
                    "title": inst.title, "number": number.text if number else None,
                    "body": body, "created_at": now,
                }])
                _finish(session, inst, now, {"document": True}, recorded)
                done += 1
            elif spec.action == "playbook":
                drill = drill_of(run)
                child_playbook = rt.catalog.current.get(spec.playbook or "")
                if drill is not None and child_playbook and not may_drill(child_playbook):
                    # A drill registers no real hazard: the step is done, saying so.
                    _finish(session, inst, now, {"drill_not_started": spec.playbook}, recorded)
                    done += 1
                    continue
                existing = session.exec(select(Run).where(Run.parent_step_id == inst.id)).first()
                if existing is None:
                    params = {k: resolve_value(v, context) for k, v in spec.with_.items()}
                    child = start_run(rt, playbook_id=spec.playbook or "", unit_id=inst.unit_id,
                                      params=params, actor=run.started_by, session=session,
                                      parent_step_id=inst.id, check_rights=False,
                                      drill=drill)
                    inst.outputs = {"child_run": child.id}
                # The step stays ready until the child run finishes (progress.py finishes it).
                inst.prefect_recorded = recorded
                session.add(inst)
                add_event(session, at=now, actor=SYSTEM, action="child_started",
                          run_id=run_id, step_id=inst.id, detail=inst.outputs)
        if done:
            advance(session, rt, run, playbook, now=now)
        return {"step": step_key, "action": spec.action, "instances": len(instances)}


def _render(session: Session, rt: Runtime, template: str, context: dict[str, Any],
            inst: StepInstance, pinned: dict[str, str]) -> str:
    """A report must still go out if its template trips over missing data: send the plain
    facts, and put the template error in the timeline for the operator to fix. `pinned`: the
    templates as the run's playbook version has them (a file edited since changes nothing)."""
    try:
        return rt.renderer.render(template, context, pinned)
    except RenderFailed as exc:
        add_event(session, at=rt.clock.now(), actor=SYSTEM, action="render_failed",
                  run_id=inst.run_id, step_id=inst.id, detail={"error": str(exc)})
        run = context["run"]
        params = "；".join(f"{k}：{v}" for k, v in run["params"].items())
        return (f"{run['title']}（{run['unit']['name']}）\n开始时间：{run['started_at_local']}\n"
                f"{params}\n（模板 {template} 渲染失败，已记录）")


def _finish(session: Session, inst: StepInstance, now: Any, outputs: dict[str, Any],
            recorded: bool) -> None:
    inst.status = st.DONE
    inst.done_at = now
    inst.next_check_at = None
    inst.outputs = outputs
    inst.prefect_recorded = recorded
    inst.version += 1
    session.add(inst)
    add_event(session, at=now, actor=SYSTEM, action="done", run_id=inst.run_id,
              step_id=inst.id, from_state=st.READY, to_state=st.DONE, detail=outputs)


def _template_context(session: Session, rt: Runtime, run: Run, inst: StepInstance
                      ) -> dict[str, Any]:
    # The sending of one round of a 续报 reads that round, not the latest (flows/rounds.py).
    spec = rt.catalog.pinned(session, run.playbook_sha).step(inst.step_key)
    ctx = expression_context(session, rt, run, item=inst.item,
                             round_of=rounds.paired_rounds(spec, inst.item))
    history = stage_history(session, rt, run)
    ctx["run"] = run_view(rt, run) | {"unit": {"id": run.unit_id,
                                               "name": rt.org.unit(run.unit_id).name},
                                      "stages": history,
                                      "stage_title": history[-1]["title"] if history else None,
                                      "param_history": param_history_by_name(session, rt, run)}
    ctx["step"] = {"id": inst.step_key, "title": inst.title,
                   "due_at_local": rt.renderer.deadline(inst.due_at),
                   "assignees": [rt.org.people[p].name for p in inst.assignees
                                 if p in rt.org.people]}
    ctx["now_local"] = rt.renderer.local(rt.clock.now())
    # The org chart's root (坪山区): reports name the bureau's duty room after it.
    ctx["district_name"] = rt.org.unit(rt.org.root_id).name
    ctx["numbers"] = run_numbers(session, run.id or 0)  # 文号 issued so far, by step
    ctx["evidence"] = evidence_view(session, rt, run)  # the files a form lists, by step
    return ctx


def unrecorded_finished_keys(rt: Runtime, run_id: int) -> list[str]:
    """Finished steps not yet in Prefect's history: those with rows, then the steps the run
    passed over without a row, in the order they were skipped (record_step counts them off)."""
    with session_scope(rt.db) as session:
        rows = session.exec(
            select(StepInstance.step_key).where(
                StepInstance.run_id == run_id,
                StepInstance.status.in_((st.DONE, st.SKIPPED)),  # type: ignore[attr-defined]
                StepInstance.prefect_recorded == False,  # noqa: E712
            ).distinct()
        ).all()
        run = session.get(Run, run_id)
        passed_over = list((run.skipped or [])[run.skipped_recorded:]) if run else []
    return sorted(rows) + [k for k in passed_over if k not in rows]


def record_step(rt: Runtime, run_id: int, step_key: str) -> dict[str, Any]:
    """A step people finished: its Prefect task run carries who, when and the outputs."""
    with session_scope(rt.db) as session:
        rows = session.exec(
            select(StepInstance).where(
                StepInstance.run_id == run_id, StepInstance.step_key == step_key,
                StepInstance.status.in_((st.DONE, st.SKIPPED)),  # type: ignore[attr-defined]
                StepInstance.prefect_recorded == False,  # noqa: E712
            )
        ).all()
        session.execute(
            update(StepInstance)
            .where(StepInstance.id.in_([r.id for r in rows]))  # type: ignore[union-attr]
            .values(prefect_recorded=True)
        )
        run = session.get(Run, run_id)
        if not rows and run is not None and step_key in (run.skipped or [])[run.skipped_recorded:]:
            run.skipped_recorded = run.skipped.index(step_key, run.skipped_recorded) + 1
            session.add(run)
            return {"step": step_key, "instances": [], "status": st.SKIPPED}
        return {
            "step": step_key,
            "instances": [
                {"id": r.id, "status": r.status, "by": r.submitted_by,
                 "verified_by": r.verified_by, "outputs": r.outputs,
                 "done_at": r.done_at.isoformat() if r.done_at else None}
                for r in rows
            ],
        }


def unrecorded_escalations(rt: Runtime, run_id: int) -> list[tuple[int, str]]:
    with session_scope(rt.db) as session:
        rows = session.exec(
            select(Escalation.id, Escalation.step_key, Escalation.kind, Escalation.level,
                   Escalation.repeat)
            .where(Escalation.run_id == run_id, Escalation.prefect_recorded == False)  # noqa: E712
            .order_by(Escalation.id)
        ).all()
    return [(r[0], f"{r[1]} · {r[2]} L{r[3]}" + (f" repeat {r[4]}" if r[4] else ""))
            for r in rows]


def record_escalation(rt: Runtime, escalation_id: int) -> dict[str, Any]:
    with session_scope(rt.db) as session:
        esc = session.get(Escalation, escalation_id)
        if esc is None:
            return {}
        esc.prefect_recorded = True
        session.add(esc)
        return {"step": esc.step_key, "kind": esc.kind, "level": esc.level,
                "repeat": esc.repeat, "scheduled_at": esc.scheduled_at.isoformat(),
                "fired_at": esc.fired_at.isoformat(), "recipients": esc.recipients}


def segment_body(
    rt: Runtime, run_id: int, *, execute: Any = None, record: Any = None, escalate: Any = None,
    recorded: bool = True,
) -> dict[str, Any]:
    """One segment's work. In the server each call below is a Prefect task run (see
    PrefectSegments); called bare it is the same logic, which is what unit tests exercise."""
    execute = execute or (lambda key: execute_step(rt, run_id, key, recorded=recorded))
    record = record or (lambda key: record_step(rt, run_id, key))
    escalate = escalate or (lambda esc_id, _name: record_escalation(rt, esc_id))
    executed: list[str] = []
    for _ in range(MAX_ROUNDS):
        # A child-playbook step stays ready while its child runs: execute each key once here.
        keys = [k for k in ready_automatic_keys(rt, run_id) if k not in executed]
        if not keys:
            break
        for key in keys:
            execute(key)
            executed.append(key)
    if not recorded:
        return {"executed": executed, "recorded": [], "escalations": 0}
    finished = unrecorded_finished_keys(rt, run_id)
    for key in finished:
        record(key)
    escalations = unrecorded_escalations(rt, run_id)
    for esc_id, name in escalations:
        escalate(esc_id, name)
    return {"executed": executed, "recorded": finished, "escalations": len(escalations)}


# --- Prefect ---------------------------------------------------------------------------

class PrefectSegments:
    """Builds the Prefect flow and tasks once (importing Prefect is slow; only the runner does)."""

    def __init__(self, rt: Runtime) -> None:
        from prefect import flow, tags, task
        from prefect.cache_policies import NO_CACHE

        self.rt = rt
        self._tags = tags
        opts = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 0}
        self.execute = task(name="step", **opts)(lambda run_id, key: execute_step(rt, run_id, key))
        self.record = task(name="step", **opts)(lambda run_id, key: record_step(rt, run_id, key))
        self.escalate = task(name="escalation", **opts)(
            lambda esc_id: record_escalation(rt, esc_id))
        self._flow = flow(name="segment", persist_result=False, validate_parameters=False,
                          log_prints=False)(self._body)
        self._flows: dict[str, Any] = {}

    def _body(self, run_id: int) -> dict[str, Any]:
        return segment_body(
            self.rt, run_id,
            execute=lambda key: self.execute.with_options(task_run_name=key)(run_id, key),
            record=lambda key: self.record.with_options(task_run_name=key)(run_id, key),
            escalate=lambda esc_id, name: self.escalate.with_options(task_run_name=name)(esc_id),
        )

    def run(self, run: Run, number: int) -> dict[str, Any]:
        flow = self._flows.get(run.playbook_id)
        if flow is None:
            flow = self._flow.with_options(name=run.playbook_id)
            self._flows[run.playbook_id] = flow
        named = flow.with_options(flow_run_name=f"run-{run.id}-segment-{number}")
        with self._tags(f"playbook:{run.playbook_id}", f"run:{run.id}", f"unit:{run.unit_id}"):
            return named(run.id)  # type: ignore[no-any-return]


def claim_wakes(rt: Runtime, *, limit: int = 20, lease: timedelta = timedelta(minutes=2)
                ) -> list[tuple[int, int]]:
    """(run id, highest wake id) for runs with pending wakes; pushes their not_before forward by
    a lease so another runner (another process) leaves them alone while this one works."""
    now = rt.clock.now()
    with session_scope(rt.db) as session:
        rows = session.exec(
            select(Wake.run_id, func.max(Wake.id))
            .where(Wake.done_at == None, Wake.not_before <= now)  # noqa: E711
            .group_by(Wake.run_id)
            # Work first (a run started, a step done), then pure history (timers fired), so a
            # burst of escalations never delays a first report waiting to be sent.
            .order_by(func.min(case((Wake.reason == "timers", 1), else_=0)), func.min(Wake.id))
            .limit(limit)
        ).all()
        for run_id, max_id in rows:
            session.execute(
                update(Wake).where(Wake.run_id == run_id, Wake.id <= max_id,
                                   Wake.done_at == None)  # noqa: E711
                .values(not_before=now + lease, attempts=Wake.attempts + 1)
            )
    return [(int(r), int(m)) for r, m in rows]


def _has_work(rt: Runtime, run_ids: list[int]) -> bool:
    """Whether any of these runs' claimed wakes is work (anything but timers)."""
    with read_session(rt.db) as session:
        return session.exec(select(Wake.id).where(
            col(Wake.run_id).in_(run_ids), Wake.done_at == None,  # noqa: E711
            Wake.reason != "timers").limit(1)).first() is not None


def _work_waiting(rt: Runtime) -> bool:
    """A wake other than timers, due and pending (claimed by nobody)."""
    with read_session(rt.db) as session:
        return session.exec(select(Wake.id).where(
            Wake.done_at == None, Wake.not_before <= rt.clock.now(),  # noqa: E711
            Wake.reason != "timers").limit(1)).first() is not None


def _hand_back(rt: Runtime, unstarted: list[tuple[int, int]]) -> None:
    """Release claimed wakes not begun: due again at once, the claim not counted."""
    now = rt.clock.now()
    with session_scope(rt.db) as session:
        for run_id, max_id in unstarted:
            session.execute(update(Wake).where(
                Wake.run_id == run_id, Wake.id <= max_id, Wake.done_at == None)  # noqa: E711
                .values(not_before=now, attempts=Wake.attempts - 1))


def finish_wakes(rt: Runtime, run_id: int, max_id: int, *, error: str | None = None) -> None:
    now = rt.clock.now()
    with session_scope(rt.db) as session:
        if error is None:
            session.execute(update(Wake).where(Wake.run_id == run_id, Wake.id <= max_id,
                                               Wake.done_at == None)  # noqa: E711
                            .values(done_at=now))
        else:
            # Retry with backoff; Prefect being briefly unavailable must not lose the wake.
            session.execute(update(Wake).where(Wake.run_id == run_id, Wake.id <= max_id,
                                               Wake.done_at == None)  # noqa: E711
                            .values(last_error=error[:2000],
                                    not_before=now + timedelta(seconds=15)))


# What a wake left pending while Prefect was unreachable says: not a failure of the segment.
NOT_RECORDED = "executed without Prefect; to be recorded"
# A segment that failed this many times in a row is no passing hiccup: the run's timeline says
# so (once), /healthz counts it, and it is retried less often.
FAILED_AFTER = 3


def report_failure(rt: Runtime, run_id: int, max_id: int, error: str) -> None:
    """After a segment raised (not merely ran without Prefect): on the FAILED_AFTER-th failure
    in a row, an audit event in the run's timeline, so a child run that cannot start or a
    report that cannot be filed is not only a traceback in a server log; retries back off
    from 15 s to 15 min."""
    now = rt.clock.now()
    with session_scope(rt.db) as session:
        attempts = session.exec(select(func.max(Wake.attempts)).where(
            Wake.run_id == run_id, Wake.id <= max_id, Wake.done_at == None)).one()  # noqa: E711
        if not attempts:
            return
        if attempts >= FAILED_AFTER:
            delay = min(15 * 2 ** (attempts - 1), 900)
            session.execute(update(Wake).where(Wake.run_id == run_id, Wake.id <= max_id,
                                               Wake.done_at == None)  # noqa: E711
                            .values(not_before=now + timedelta(seconds=delay)))
        if attempts == FAILED_AFTER:
            add_event(session, at=now, actor=SYSTEM, action="segment_failed", run_id=run_id,
                      detail={"error": error[:500], "attempts": attempts})


def failing_wakes(rt: Runtime) -> int:
    """Runs whose segment has failed FAILED_AFTER times or more and is still pending."""
    with read_session(rt.db) as session:
        return int(session.exec(select(func.count(func.distinct(Wake.run_id))).where(
            Wake.done_at == None, Wake.attempts >= FAILED_AFTER,  # noqa: E711
            col(Wake.last_error).is_not(None),
            col(Wake.last_error) != NOT_RECORDED)).one())


def next_segment_number(rt: Runtime, run_id: int) -> tuple[Run, int]:
    with session_scope(rt.db) as session:
        run = load_run(session, run_id)
        run.segments += 1
        session.add(run)
        return run, run.segments


class SegmentRunner:
    """A daemon thread: starts (or connects to) Prefect, then drains wakes forever.

    If Prefect cannot be reached the runner does not stop the engine: it keeps executing
    automatic steps bare (a first report must still go out at 3 a.m.), leaves their wakes
    pending, and retries Prefect; once Prefect answers, the next segments record everything
    that happened meanwhile as task runs."""

    def __init__(self, rt: Runtime, *, api_url_provider: Any, poll: float = 0.5,
                 retry_prefect: float = 30.0) -> None:
        self.rt = rt
        self.poll = poll
        self.retry_prefect = retry_prefect
        self._api_url_provider = api_url_provider
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.error: str | None = None
        self.segments_run = 0
        self.degraded_segments = 0
        self.lost: str | None = None  # set by a segment that found Prefect gone

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="closeloop-segments",
                                        daemon=True)
        self._thread.start()

    def kick(self) -> None:
        self._kick.set()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _connect(self, stack: contextlib.ExitStack) -> PrefectSegments | None:
        try:
            url = self._api_url_provider()
            from prefect.settings import (
                PREFECT_API_URL,
                PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
                temporary_settings,
            )
            # No heartbeat thread: it adds ~0.9 s to every short flow run for nothing here.
            stack.enter_context(temporary_settings(updates={
                PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
            segments = PrefectSegments(self.rt)
        except Exception as exc:  # the API keeps serving; /healthz reports this
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("Prefect unavailable; executing segments without recording")
            return None
        self.error = None
        self.ready.set()
        return segments

    def _recorded_or_bare(self, segments: PrefectSegments) -> Any:
        """segments.run, or, when Prefect cannot be reached, the same segment executed bare
        (its wakes kept to be recorded later): a first report is not held up by Prefect."""
        def run(run: Run, number: int) -> bool:
            # Once one segment of the batch found Prefect gone, the rest do not try it again
            # (each try waits out the client's retries).
            if self.lost is None:
                try:
                    segments.run(run, number)
                    return True
                except Exception as exc:
                    if not prefect_unreachable(exc):
                        raise
                    self.lost = f"{type(exc).__name__}: {exc}"[:500]
                    log.warning("Prefect unreachable (%s); executing segments without "
                                "recording", self.lost)
            segment_body(self.rt, run.id or 0, recorded=False)
            self.degraded_segments += 1
            return False
        return run

    def _main(self) -> None:
        with contextlib.ExitStack() as stack:
            segments: PrefectSegments | None = None
            next_try = 0.0
            failures = 0
            while not self._stop.is_set():
                if segments is None and time.monotonic() >= next_try:
                    segments = self._connect(stack)
                    next_try = time.monotonic() + self.retry_prefect
                try:
                    if segments is not None:
                        worked = drain_wakes(self.rt, self._recorded_or_bare(segments))
                        self.segments_run += worked
                        if self.lost is not None:
                            # Prefect stopped answering (its server killed, the network to
                            # it cut): on without it, and reconnect (restart it) shortly.
                            self.error, self.lost = self.lost, None
                            self.ready.clear()
                            segments = None
                            next_try = time.monotonic() + min(self.retry_prefect, 10.0)
                    else:
                        worked = drain_wakes(self.rt, keep_pending=True)
                        self.degraded_segments += worked
                except Exception as exc:  # a database hiccup must not end the runner
                    failures += 1
                    # The first failure with its traceback; while the database stays away,
                    # one line now and then, and the runner backs off instead of retrying
                    # (and logging) twice a second.
                    if failures == 1:
                        log.exception("draining wakes failed")
                    elif failures % 20 == 0:
                        log.warning("draining wakes still failing (%d times): %s", failures,
                                    str(exc).splitlines()[0][:300] if str(exc) else exc)
                    self._stop.wait(min(30.0, self.poll * 2 ** min(failures, 6)))
                    continue
                if failures:
                    log.info("draining wakes works again after %d failures", failures)
                    failures = 0
                if not worked:
                    self._kick.wait(self.poll)
                    self._kick.clear()


def prefect_unreachable(exc: BaseException) -> bool:
    """Whether a segment failed because Prefect's API could not be reached (connection refused
    or reset, a timeout, a 5xx from a server going down), not because of its own work."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.TransportError):
            return True
        if isinstance(current, httpx.HTTPStatusError) and current.response.status_code >= 500:
            return True
        if "Failed to reach API" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def drain_wakes(rt: Runtime, run_segment: Any = None, *, keep_pending: bool = False) -> int:
    """Claim pending wakes and run one segment per run. `run_segment(run, number)` defaults to
    the bare segment_body (no Prefect): used by `closeloop` commands and unit tests, and by the
    runner while Prefect is unreachable (`keep_pending`: the wakes stay, to be recorded)."""
    if run_segment is None:
        def run_segment(run: Run, _number: int) -> None:
            segment_body(rt, run.id or 0, recorded=not keep_pending)
    claimed = claim_wakes(rt)
    # Work is claimed first, but a batch of pure history (timers fired: a sweep of 60,000
    # overdue hazards leaves that many) takes a while, and an inspector's closure form waking
    # meanwhile must not wait behind all of it: between two history segments the batch hands
    # back what it has not begun if work is waiting, and the next claim takes the work first.
    history_only = bool(claimed) and not _has_work(rt, [run_id for run_id, _ in claimed])
    for done, (run_id, max_id) in enumerate(claimed):
        if history_only and done and _work_waiting(rt):
            _hand_back(rt, claimed[done:])
            return done
        try:
            run, number = next_segment_number(rt, run_id)
            recorded = run_segment(run, number)
        except Exception as exc:
            log.exception("segment for run %s failed", run_id)
            error = f"{type(exc).__name__}: {exc}"
            finish_wakes(rt, run_id, max_id, error=error)
            report_failure(rt, run_id, max_id, error)
        else:
            # `recorded` False: executed without Prefect after all (it went away).
            finish_wakes(rt, run_id, max_id,
                         error=NOT_RECORDED if keep_pending or recorded is False
                         else None)
    return len(claimed)
