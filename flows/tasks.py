"""What people do to step instances: acknowledge, complete (with evidence), verify (四眼),
extend and reassign. Each is one transaction with a conditional update on the row's version,
so two people closing the same task at once give one success and one Conflict (409)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from flows.access import (
    can_read_step,
    reassign_targets,
    require_act,
    require_reassign,
    verifiers,
    who_may,
)
from flows.alerts import alert_on_hand_in
from flows.evidence import read_evidence
from flows.lifecycle import load_run, require_running
from flows.message_titles import message_title
from flows.output_checks import check_together
from flows.params import DueOf, ParamValueError, validate_values
from flows.params import check_text as check_plain_text
from flows.progress import advance, due_time, first_check, lock_run, verify_due_time, wake
from flows.recipients import notification_rows
from flows.registers import sync_entry
from flows.runtime import Runtime
from flows.spec import StepSpec
from models import run as run_status
from models import task as st
from models.db import read_session, session_scope
from models.documents import Evidence
from models.errors import Conflict, Forbidden, InvalidInput, NotFound, clipped
from models.org import Person
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.writes import add_event, insert_ignoring_duplicates, lapse_extension_requests

MAX_EXTENSION = timedelta(days=3660)
# What one action may write. Every note and output is kept in the task row, its audit event and
# every read of the task: an unbounded one made a single task 18 MB to read.
MAX_NOTE = 2000  # note, rejection reason, extension reason (flows/extensions.py)
MAX_OUTPUT_TEXT = 4000  # one text value among the outputs
MAX_OUTPUTS_BYTES = 64 * 1024  # the whole outputs object, as stored (UTF-8 JSON)
MAX_OUTPUTS_DEPTH = 16  # nesting of free-form outputs; deeper is never a form a person filled
MAX_OUTPUT_NAME = 100  # a key of free-form outputs (it is echoed in the field of an error)
MAX_EVIDENCE = 50  # files attached by one completion


@dataclass
class Loaded:
    step: StepInstance
    run: Run
    spec: StepSpec


def _load(session: Session, rt: Runtime, step_id: int) -> Loaded:
    step = session.get(StepInstance, step_id)
    if step is None:
        raise NotFound("task", step_id)
    run = load_run(session, step.run_id)
    if lock_run(session, run):  # the run first (progress.lock_run), then the task as it is now
        session.refresh(step)
    spec = rt.catalog.pinned(session, run.playbook_sha).step(step.step_key)
    return Loaded(step, run, spec)


def task_conflict(step: StepInstance, action: str = "") -> Conflict:
    """409 for a task whose status does not allow the action; `action` (Chinese) names it."""
    then = f"，不能{action}" if action else ""
    return Conflict(f"任务{st.STATUS_ZH.get(step.status, step.status)}{then} / task is "
                    f"{step.status}", current=step.status)


def transition(
    session: Session, step: StepInstance, *, allowed: tuple[str, ...], values: dict[str, Any]
) -> None:
    """Move the row only if nobody else moved it since we read it."""
    if step.status not in allowed:
        raise task_conflict(step)
    result = session.execute(
        update(StepInstance)
        .where(StepInstance.id == step.id, StepInstance.version == step.version)
        .values(version=step.version + 1, **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("任务已被他人改动，请刷新 / task was changed by someone else; reload it",
                       current=None)
    session.expire(step)


def check_text(field: str, value: str | None, limit: int = MAX_NOTE) -> None:
    """Refuse text longer than `limit` characters (422 on `field`)."""
    if value is not None and len(value) > limit:
        raise InvalidInput(field, f"最多 {limit} 个字符（收到 {len(value)} 个）/ at most "
                           f"{limit} characters; got {len(value)}")


def check_note(field: str, value: str | None) -> None:
    """A note or reason a person writes (completion, verification, extension, refusal): at most
    MAX_NOTE characters and, like a text param (flows/params.check_text), no control or bidi
    characters, which would make it read backwards in every notice it is copied into. Line
    breaks and tabs are text. 422 on `field`."""
    check_text(field, value)
    if value is not None:
        try:
            check_plain_text(value)
        except ParamValueError as exc:
            raise InvalidInput(field, exc.text) from None


def ack(rt: Runtime, *, step_id: int, actor: str) -> StepInstance:
    with session_scope(rt.db) as session:
        got = _load(session, rt, step_id)
        require_act(rt.org, actor, got.step)
        require_running(got.run)
        if got.step.status == st.ACKED:
            if got.step.acked_by == actor:
                # Acknowledging twice (a retried request, a second tap) is not a second event.
                return got.step
            by = got.step.acked_by or "?"
            raise Conflict(f"任务已由 {rt.org.person_name(by)} 签收 / task is acked by {by}",
                           current=got.step.status)
        now = rt.clock.now()
        transition(session, got.step, allowed=(st.READY,),
                    values={"status": st.ACKED, "acked_at": now, "acked_by": actor})
        add_event(session, at=now, actor=actor, action="acked", run_id=got.run.id,
                  step_id=step_id, from_state=st.READY, to_state=st.ACKED)
        return session.get(StepInstance, step_id)  # type: ignore[return-value]


def validate_outputs(spec: StepSpec, outputs: dict[str, Any], *, now: datetime | None = None,
                     tz: tzinfo = UTC, due_of: DueOf | None = None) -> dict[str, Any]:
    """Typed outputs when the playbook declares them; free-form otherwise. Either way within
    the size limits above; with `now`, no `not_future` time after it, no `not_past` one
    before it and, with `due_of`, no `not_after_due` one after that step's deadline."""
    _check_output_sizes(outputs)
    if spec.outputs:
        return validate_values(spec.outputs, outputs, prefix="outputs", now=now, tz=tz,
                               due_of=due_of)
    return dict(outputs)


def step_deadlines(session: Session, rt: Runtime, run: Run) -> DueOf:
    """A step of the run's deadline as it stands (extensions included) and its title, for
    `not_after_due`: the latest of its instances' (a fan-out's items may differ). A step not
    reached yet whose deadline counts from the run already has it (a major hazard's
    rectification, 30 days from registration, is due before its plan is filed); otherwise
    None (no deadline yet)."""
    def due_of(step_key: str) -> tuple[datetime, str] | None:
        rows = session.exec(select(StepInstance.due_at, StepInstance.title).where(
            StepInstance.run_id == run.id, StepInstance.step_key == step_key,
            col(StepInstance.due_at).is_not(None))).all()
        if rows:
            due, title = max(rows, key=lambda row: row[0])
            return due, title
        reached = session.exec(select(StepInstance.id).where(
            StepInstance.run_id == run.id, StepInstance.step_key == step_key)).first()
        spec = rt.catalog.pinned(session, run.playbook_sha).step(step_key)
        if reached is not None or spec.due is None or spec.due.from_ != "run":
            return None
        fixed = due_time(rt, run, spec, ready_at=run.started_at)
        return (fixed, spec.title) if fixed is not None else None
    return due_of


def _check_output_sizes(outputs: dict[str, Any]) -> None:
    # Walked with a stack, not recursion: free-form outputs come straight from the request body.
    stack: list[tuple[str, Any, int]] = [("outputs", outputs, 0)]
    while stack:
        field, value, depth = stack.pop()
        if isinstance(value, str):
            check_text(field, value, MAX_OUTPUT_TEXT)
        elif isinstance(value, dict | list):
            if depth >= MAX_OUTPUTS_DEPTH:
                raise InvalidInput(field, f"嵌套超过 {MAX_OUTPUTS_DEPTH} 层 / nested more than "
                                   f"{MAX_OUTPUTS_DEPTH} levels deep")
            if isinstance(value, dict):
                long = next((str(k) for k in value if len(str(k)) > MAX_OUTPUT_NAME), None)
                if long is not None:
                    raise InvalidInput(field, f"填报项名称超过 {MAX_OUTPUT_NAME} 个字符 / a name "
                                       f"longer than {MAX_OUTPUT_NAME} characters: "
                                       f"'{long[:40]}...'")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((f"{field}.{k}", v, depth + 1) for k, v in items)
    size = len(json.dumps(outputs, ensure_ascii=False).encode("utf-8"))
    if size > MAX_OUTPUTS_BYTES:
        raise InvalidInput("outputs", f"填报内容共 {size} 字节，上限 {MAX_OUTPUTS_BYTES} 字节 / "
                           f"outputs are {size} bytes; the limit is {MAX_OUTPUTS_BYTES}")



def _named(row: Evidence) -> str:
    """An evidence file as its uploader knows it: 「现场1.jpg」（id）."""
    return f"「{row.filename}」（{row.id}）" if row.filename else f"'{row.id}'"

def _check_evidence(
    session: Session, step: StepInstance, spec: StepSpec, evidence_ids: list[str],
    labels: dict[str, str], note: str | None, actor: str,
) -> tuple[list[Evidence], dict[str, str]]:
    """The cited evidence rows, locked (FOR UPDATE on PostgreSQL; SQLite's writers queue
    anyway) with every row of the same content until the transaction ends, so two completions
    at once that cite the same file, or the same photo uploaded twice, are decided one after the
    other: the second sees what the first attached. With them, what each shows (`labels`,
    checked by check_labels)."""
    if len(evidence_ids) > MAX_EVIDENCE:
        raise InvalidInput("evidence", f"最多附 {MAX_EVIDENCE} 个文件 / at most {MAX_EVIDENCE} "
                           f"files; got {len(evidence_ids)}")
    seen: set[str] = set()
    for ev_id in evidence_ids:
        # One photo listed twice is still one photo: it must not meet a two-photo minimum.
        if ev_id in seen:
            shown = clipped(ev_id)
            raise InvalidInput("evidence", f"证据 '{shown}' 重复 / evidence '{shown}' is listed "
                               "twice")
        seen.add(ev_id)
    rows: list[Evidence] = []
    locked: list[Evidence] = []
    if evidence_ids:
        # The content of each cited row (it never changes), then one statement that locks the
        # cited rows and their same-content twins in id order: one order for every completion,
        # so two never wait on each other in a circle.
        digests = set(session.exec(
            select(Evidence.sha256).where(Evidence.id.in_(evidence_ids))  # type: ignore[attr-defined]
        ).all())
        locked = list(session.exec(
            select(Evidence)
            .where(or_(Evidence.id.in_(evidence_ids),  # type: ignore[attr-defined]
                       Evidence.sha256.in_(digests)))  # type: ignore[attr-defined]
            .order_by(Evidence.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all())
    by_id = {row.id: row for row in locked}
    for i, ev_id in enumerate(evidence_ids):
        row = by_id.get(ev_id)
        if row is None:
            shown = clipped(ev_id)
            raise InvalidInput(f"evidence[{i}]", f"证据 '{shown}' 不存在 / unknown evidence id "
                               f"'{shown}'")
        if row.step_id is not None and row.step_id != step.id:
            raise InvalidInput(f"evidence[{i}]", f"证据 '{ev_id}' 已附在其他任务上 / evidence "
                               f"'{ev_id}' is already attached to another task")
        # An upload records only who made it (not for which task), so a file not yet attached
        # proves the completer's work only if they uploaded it; one already on this task (a
        # resubmission after a rejection) was accepted for it before.
        if row.step_id is None and row.uploaded_by != actor:
            raise InvalidInput(f"evidence[{i}]", f"证据 '{ev_id}' 不是你上传的 / evidence "
                               f"'{ev_id}' was uploaded by someone else")
        rows.append(row)
    # The same picture uploaded twice is two ids but one photo: it does not meet a two-photo
    # minimum, nor does a photo of another incident (on a step of another run: last month's
    # rectification) prove this one. Within one run the same picture may document two steps
    # (the scene as found, and again in the report); a run cancelled (registered in error,
    # started at the wrong unit) proves nothing with steps it never finished, so their photos
    # may serve the run that replaces it.
    # Messages name a file as the person chose it (现场1.jpg), then its id.
    first: dict[str, str] = {}
    index: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.sha256 in first:
            twin = rows[index[row.sha256]]
            raise InvalidInput("evidence", f"证据 {_named(row)} 与 {_named(twin)} 是同一个"
                               f"文件（内容相同）/ evidence '{row.id}' has the same content as "
                               f"'{first[row.sha256]}'")
        first[row.sha256] = row.id
        index[row.sha256] = i
    elsewhere = {o.step_id: o.sha256 for o in locked
                 if o.step_id is not None and o.step_id != step.id and o.sha256 in first}
    if elsewhere:
        other = _proving_elsewhere(session, step, elsewhere)
        if other:
            dup = first[elsewhere[other[0][0]]]
            named = next(_named(r) for r in rows if r.id == dup)
            raise InvalidInput("evidence", f"证据 {named} 与另一流程实例中任务上的证据是同一个"
                               f"文件 / evidence '{dup}' has the same content as evidence "
                               "already attached to a task of another run")
    # What each photo shows before how many there are: "缺少整改后照片" tells a person what to
    # do where "at least 2 photos" does not.
    marks = check_labels(spec, rows, labels)
    need = spec.evidence
    if need is None:
        return rows, marks
    photos = sum(1 for r in rows if r.content_type.startswith("image/"))
    if photos < need.min_photos:
        raise InvalidInput("evidence", f"需要至少 {need.min_photos} 张照片 / at least "
                           f"{need.min_photos} photo(s) required, got {photos}")
    if len(rows) < need.files + need.min_photos:
        raise InvalidInput("evidence", f"需要至少 {need.files + need.min_photos} 个文件 / at "
                           f"least {need.files + need.min_photos} file(s) required")
    if need.note and not (note or "").strip():
        raise InvalidInput("note", "需要填写说明 / a note is required")
    return rows, marks


def check_labels(spec: StepSpec, rows: list[Evidence], labels: dict[str, str]
                 ) -> dict[str, str]:
    """What each handed-in file shows (evidence id -> 整改前/整改后), checked against the
    step's `evidence.labels`: every photo marked with one of them, each of them shown by a
    photo. Files are named as their uploader chose them. A step without labels takes none."""
    allowed = spec.evidence.labels if spec.evidence is not None else []
    if not labels and not allowed:
        return {}
    if not allowed:
        raise InvalidInput("evidence_labels", "本任务的证据不分类别，请勿标注 / this task's "
                           "evidence takes no labels")
    position = {row.id: i for i, row in enumerate(rows)}
    shown = "、".join(allowed)
    for ev_id, label in labels.items():
        if ev_id not in position:
            named = clipped(ev_id)
            raise InvalidInput(f"evidence_labels.{named}", f"证据 '{named}' 不在本次提交的"
                               f"文件中 / evidence '{named}' is not among the files handed in")
        if label not in allowed:
            raise InvalidInput(f"evidence_labels.{ev_id}", f"证据 {_named(rows[position[ev_id]])}"
                               f" 的类别 '{clipped(label)}' 不是 {shown} 之一 / label "
                               f"'{clipped(label)}' is not one of {', '.join(allowed)}")
    # Every photo left unmarked and every label left without a photo, in one answer: a
    # rectifier on site fixes them all at once, not one refusal per try.
    problems = [(f"evidence[{i}]", f"照片 {_named(row)} 未标明是{shown}中的哪一类 / photo "
                 f"'{row.id}' is not marked as one of {', '.join(allowed)}")
                for i, row in enumerate(rows)
                if row.content_type.startswith("image/") and row.id not in labels]
    problems += [(f"evidence_labels.{label}", f"缺少{label}照片，{shown}照片各需至少一张 / no "
                  f"photo marked {label}: each of {', '.join(allowed)} needs one")
                 for label in allowed
                 if not any(labels.get(row.id) == label and row.content_type.startswith("image/")
                            for row in rows)]
    if problems:
        (field, message), *others = problems
        raise InvalidInput(field, message, tuple(others))
    return {row.id: labels[row.id] for row in rows if row.id in labels}


def _proving_elsewhere(session: Session, step: StepInstance, holders: Iterable[int]
                       ) -> list[tuple[int, int]]:
    """(step id, run id), by step id, of the `holders` (steps holding a file with the content of
    one cited for `step`) where that file proves another run's work: one cited for `step`
    too would be refused. The one rule for completing (_check_evidence) and for the warning an
    upload gives at once (earlier_uses)."""
    rows = session.exec(
        select(StepInstance.id, StepInstance.run_id)
        .join(Run, Run.id == StepInstance.run_id)
        .where(StepInstance.id.in_(list(holders)),  # type: ignore[union-attr]
               # A photo that did its work (a step done) proves that run's, cancelled
               # later or not (a closed hazard whose look-back was called off).
               or_(Run.status != run_status.CANCELLED, StepInstance.status == st.DONE))
    ).all()
    return sorted((sid, run_id) for sid, run_id in rows
                  if sid is not None and run_id != step.run_id)


@dataclass(frozen=True)
class EarlierUse:
    """A task of another run whose handed-in evidence has the same content as an upload. The
    task and its run are named only to someone who may read them (another street's hazard is
    not theirs to learn of): for anyone else all four are None."""

    task_id: int | None
    task_title: str | None
    run_id: int | None
    run_title: str | None


def require_readable(rt: Runtime, *, step_id: int, person: str) -> None:
    """NotFound for no such task, Forbidden for one `person` may not read (as GET
    /api/tasks/{id} answers)."""
    with read_session(rt.db) as session:
        step = session.get(StepInstance, step_id)
        if step is None:
            raise NotFound("task", step_id)
        run = session.get(Run, step.run_id)
    if not can_read_step(rt.org, person, step, run_unit_id=run.unit_id if run else None):
        raise Forbidden("无权查看该任务 / task belongs to another unit")


def earlier_uses(rt: Runtime, *, step_id: int, sha256: str, person: str) -> list[EarlierUse]:
    """The tasks of other runs whose evidence has this content, where citing a file of it for
    task `step_id` would be refused at completion (_proving_elsewhere): told at upload, so the
    inspector retakes the photo on the spot instead of learning it when handing in. Those
    `person` may not read are one unnamed entry at the end."""
    with read_session(rt.db) as session:
        step = session.get(StepInstance, step_id)
        if step is None:
            return []
        holders = set(session.exec(select(Evidence.step_id).where(
            Evidence.sha256 == sha256, col(Evidence.step_id).is_not(None),
            Evidence.step_id != step_id)).all())
        found = _proving_elsewhere(session, step, {h for h in holders if h is not None})
        if not found:
            return []
        steps = {s.id: s for s in session.exec(select(StepInstance).where(
            col(StepInstance.id).in_([sid for sid, _ in found]))).all()}
        runs = {r.id: r for r in session.exec(select(Run).where(
            col(Run.id).in_({rid for _, rid in found}))).all()}
    named: list[EarlierUse] = []
    hidden = False
    for sid, rid in found:
        other, run = steps[sid], runs[rid]
        if can_read_step(rt.org, person, other, run_unit_id=run.unit_id):
            named.append(EarlierUse(sid, other.title, rid, run.title))
        else:
            hidden = True
    return named + ([EarlierUse(None, None, None, None)] if hidden else [])


def reuse_warning(uses: list[EarlierUse]) -> str | None:
    """The upload's warning in the person's words, Chinese first: where the photo was used,
    and that handing it in here would be refused."""
    if not uses:
        return None
    zh = "、".join(f"「{u.run_title}」的任务「{u.task_title}」" if u.task_id is not None
                  else "另一流程实例中的任务" for u in uses)
    en = ", ".join(f"task '{u.task_title}' of '{u.run_title}'" if u.task_id is not None
                   else "a task of another run" for u in uses)
    return (f"这张照片已用于{zh}，作为本任务的证据提交时会被拒绝，请重新拍照 / this photo was "
            f"already handed in for {en}; completing this task with it will be refused")


def _check_stored(rt: Runtime, *, step_id: int, actor: str, evidence_ids: list[str]) -> None:
    """Each cited file the actor may cite still holds what was uploaded (its bytes hash to the
    recorded SHA-256): EvidenceDamaged (409) naming the first that does not. Read before the
    write transaction opens, so no lock is held while a store is read; ids the actor may not
    cite are not read at all (the checks in the transaction refuse them)."""
    if not evidence_ids or len(evidence_ids) > MAX_EVIDENCE:
        return
    with read_session(rt.db) as session:
        found = {row.id: row for row in session.exec(
            select(Evidence).where(Evidence.id.in_(evidence_ids))  # type: ignore[attr-defined]
        ).all()}
    read: set[str] = set()
    for ev_id in evidence_ids:
        row = found.get(ev_id)
        if row is None or row.sha256 in read:
            continue
        if row.step_id == step_id or (row.step_id is None and row.uploaded_by == actor):
            read_evidence(row, rt)
            read.add(row.sha256)


def _attach(session: Session, step_id: int, files: list[Evidence]) -> None:
    """Mark the files as this task's, only where nobody attached them elsewhere meanwhile."""
    if not files:
        return
    ids = [f.id for f in files]
    result = session.execute(
        update(Evidence)
        .where(Evidence.id.in_(ids),  # type: ignore[attr-defined]
               or_(Evidence.step_id.is_(None), Evidence.step_id == step_id))  # type: ignore[union-attr]
        .values(step_id=step_id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != len(ids):  # type: ignore[attr-defined]
        raise InvalidInput("evidence", "证据已附在其他任务上 / evidence is already attached to "
                           "another task")


def complete(
    rt: Runtime, *, step_id: int, actor: str, note: str | None = None,
    outputs: dict[str, Any] | None = None, evidence: list[str] | None = None,
    evidence_labels: dict[str, str] | None = None,
) -> StepInstance:
    """Hand in the work: done, or submitted for verification where the step has `verify`.
    `evidence_labels` marks what each photo shows where the step's evidence has labels."""
    _check_stored(rt, step_id=step_id, actor=actor, evidence_ids=evidence or [])
    with session_scope(rt.db) as session:
        got = _load(session, rt, step_id)
        require_act(rt.org, actor, got.step)
        require_running(got.run)
        if got.step.action != "task":
            raise Conflict(f"该步骤由系统自动完成 / step is automatic ({got.step.action}); the "
                           "engine completes it", current=got.step.status)
        if got.step.status not in st.ACTIONABLE_STATUSES:
            if _handed_in_already(session, rt, got, actor=actor, note=note,
                                  outputs=outputs or {}, evidence=evidence or [],
                                  labels=evidence_labels or {}):
                # The same hand-in again: a phone that lost the answer sends the form once
                # more. Idempotent (SPEC §4): the task as it stands, nothing recorded twice.
                return got.step
            raise task_conflict(got.step, "办结")
        _require_not_by(session, got, actor)
        check_note("note", note)
        clean = validate_outputs(got.spec, outputs or {}, now=rt.clock.now(), tz=rt.tz,
                                 due_of=step_deadlines(session, rt, got.run))
        check_together(session, rt, got.run, got.step, got.spec, clean)
        files, marks = _check_evidence(session, got.step, got.spec, evidence or [],
                                       evidence_labels or {}, note, actor)
        now = rt.clock.now()
        verifying = got.spec.verify is not None
        to_state = st.SUBMITTED if verifying else st.DONE
        values: dict[str, Any] = {
            "status": to_state, "submitted_at": now, "submitted_by": actor, "note": note,
            "outputs": clean, "evidence": [f.id for f in files], "evidence_labels": marks,
            "reject_reason": None,
        }
        # Done: no more timers. Submitted: the assignee's ladder pauses and the verifier's
        # starts (verify.due), afresh for each submission.
        values["next_check_at"] = None
        if verifying:
            verify_due = verify_due_time(rt, got.run, got.spec, submitted_at=now)
            if verify_due is not None and verify_due < now:
                # Handed in after the verdict was due (a deadline counted from the run): due
                # at once, and this submission's chase counts from now, not from a deadline an
                # earlier submission was already chased for.
                verify_due = now
            values |= {"verify_due_at": verify_due, "verify_level": 0, "verify_last_at": None}
            if verify_due is not None:
                values["next_check_at"] = first_check(
                    rt, got.spec, status=st.SUBMITTED, ready_at=got.step.ready_at or now,
                    due_at=got.step.due_at, now=now, verify_due_at=verify_due)
        else:
            values["done_at"] = now
        from_state = got.step.status
        transition(session, got.step, allowed=st.ACTIONABLE_STATUSES, values=values)
        _attach(session, step_id, files)
        detail: dict[str, Any] = {"note": note, "outputs": clean,
                                  "evidence": [f.id for f in files]}
        if marks:
            detail["evidence_labels"] = marks  # the history says which photo was 整改前
        add_event(session, at=now, actor=actor, action="submitted" if verifying else "done",
                  run_id=got.run.id, step_id=step_id, from_state=from_state, to_state=to_state,
                  detail=detail)
        # Told at the hand-in, not at the verdict: people left in a danger zone need help now.
        alert_on_hand_in(session, rt, got.run, got.step, got.spec, clean, actor=actor, now=now)
        if verifying:
            _notify_verifiers(session, rt, got, now=now)
            # The register shows what was filed (a plan awaiting review) without waiting for it.
            playbook = rt.catalog.pinned(session, got.run.playbook_sha)
            if playbook.register_ is not None:
                session.flush()
                sync_entry(session, rt, got.run, playbook, now)
        else:
            _after_done(session, rt, got.run, step_id, now=now)
        return session.get(StepInstance, step_id)  # type: ignore[return-value]


def _handed_in_already(session: Session, rt: Runtime, got: Loaded, *, actor: str,
                       note: str | None, outputs: dict[str, Any], evidence: list[str],
                       labels: dict[str, str]) -> bool:
    """Whether the task's last hand-in (waiting for its verdict, or done since) is this one:
    by the same person, with the same note, values and files."""
    step = got.step
    if step.status not in (st.SUBMITTED, st.DONE) or step.submitted_by != actor:
        return False
    if step.note != note or list(step.evidence or []) != evidence:
        return False
    if (step.evidence_labels or {}) != labels:
        return False
    try:
        clean = validate_outputs(got.spec, outputs, now=rt.clock.now(), tz=rt.tz,
                                 due_of=step_deadlines(session, rt, got.run))
    except InvalidInput:
        return False
    return clean == (step.outputs or {})


def _require_same_hand_in(step: StepInstance, seen: datetime | None) -> None:
    """A verdict is on the hand-in the verifier saw. A rejection whose answer was lost and is
    sent again after the work was handed in anew would otherwise send back work nobody has
    looked at, with the reason written for the last."""
    now_in = step.submitted_at
    if seen is None or now_in is None:
        return
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    if abs((now_in - seen).total_seconds()) < 0.001:  # as read: JSON keeps microseconds
        return
    raise Conflict("该任务在您查看后已重新提交，请先查看新提交的内容再核验 / handed in again "
                   "since the submission this verdict is about; look at the new one first",
                   current=step.status)


def _require_not_by(session: Session, got: Loaded, actor: str) -> None:
    """`not_by`: whoever handed in one of those steps of the run may not do this one."""
    if not got.spec.not_by:
        return
    handed = session.exec(select(StepInstance).where(
        StepInstance.run_id == got.run.id, col(StepInstance.step_key).in_(got.spec.not_by),
        StepInstance.submitted_by == actor).limit(1)).first()
    if handed is not None:
        raise Forbidden(f"“{handed.title}”由您提交，不能再办理“{got.step.title}”（四眼原则），"
                        f"请由他人办理 / you handed in '{handed.step_key}', so you may not do "
                        f"'{got.step.step_key}' as well (four-eyes rule)")


def _notify_verifiers(session: Session, rt: Runtime, got: Loaded, *, now: datetime) -> None:
    rule = got.spec.verify
    assert rule is not None
    # Not the one who handed it in when they may not verify it (`distinct`): a 【待核验】 they
    # cannot act on would only send them to a refusal.
    holders = verifiers(rt.org, rule.role, got.step.unit_id, distinct=rule.distinct,
                        submitted_by=got.step.submitted_by)
    rows = notification_rows(
        rt.org, people=[p.id for p in holders], kind="verify",
        title=message_title(rt, got.run, "【待核验】", got.step.title, session),
        body=f"{got.run.title}：{got.step.title} 已提交，请核验。",
        dedupe=f"verify|{got.step.id}|{got.step.version}", now=now, run_id=got.run.id,
        step_id=got.step.id, inbox_only=True,
    )
    insert_ignoring_duplicates(session, Notification, rows)


def _after_done(session: Session, rt: Runtime, run: Run, step_id: int, *, now: datetime
                ) -> None:
    lapse_extension_requests(session, run_id=run.id or 0, step_id=step_id, now=now)
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    advance(session, rt, run, playbook, now=now)
    wake(session, run, "step_done", now=now)


def verify(
    rt: Runtime, *, step_id: int, actor: str, approve: bool, note: str | None = None,
    submitted_at: datetime | None = None,
) -> StepInstance:
    """`submitted_at`, when given, is the hand-in the verdict is about (as the verifier read
    it): work handed in anew since is not judged by a verdict on the last (409)."""
    with session_scope(rt.db) as session:
        got = _load(session, rt, step_id)
        require_running(got.run)
        rule = got.spec.verify
        if rule is None:
            raise Conflict("该任务无需核验 / this task needs no verification",
                           current=got.step.status)
        if not rt.org.can_act_as(actor, rule.role, got.step.unit_id):
            zh, en = who_may(rt.org, rule.role, got.step.unit_id)
            raise Forbidden(f"核验需要{zh} / verifying requires {en}")
        if rule.distinct and actor == got.step.submitted_by:
            raise Forbidden("不能核验自己完成的任务 / you cannot verify a task you completed "
                            "yourself (four-eyes rule)")
        if got.step.status != st.SUBMITTED:
            decided = st.DONE if approve else st.REJECTED
            if (got.step.verified_by == actor and got.step.status == decided
                    and (approve or got.step.reject_reason == note)):
                # The same verdict again (a retry after a lost answer): idempotent (SPEC §4).
                return got.step
            raise task_conflict(got.step, "核验")
        _require_same_hand_in(got.step, submitted_at)
        check_note("note", note)
        now = rt.clock.now()
        if approve:
            transition(session, got.step, allowed=(st.SUBMITTED,), values={
                "status": st.DONE, "verified_by": actor, "done_at": now, "next_check_at": None,
            })
            add_event(session, at=now, actor=actor, action="verified", run_id=got.run.id,
                      step_id=step_id, from_state=st.SUBMITTED, to_state=st.DONE,
                      detail={"note": note})
            _after_done(session, rt, got.run, step_id, now=now)
        else:
            if not (note or "").strip():
                raise InvalidInput("note", "退回需说明原因 / a rejection needs a reason")
            # The deadline stands (it is the one the notice printed, or the report's legal
            # hour): only an approved extension moves it. The ladder resumes where it stood.
            due = got.step.due_at
            transition(session, got.step, allowed=(st.SUBMITTED,), values={
                "status": st.REJECTED, "verified_by": actor, "reject_reason": note,
                "next_check_at": now,  # the ladder resumes: the next sweep catches up
            })
            add_event(session, at=now, actor=actor, action="rejected", run_id=got.run.id,
                      step_id=step_id, from_state=st.SUBMITTED, to_state=st.REJECTED,
                      detail={"reason": note})
            people = [got.step.submitted_by] if got.step.submitted_by else got.step.assignees
            later = ""
            if due is not None:
                later = (f"。期限 {rt.renderer.deadline(due)} 不变，确需更多时间的，请申请延期"
                         if due > now else
                         f"。已超过期限 {rt.renderer.deadline(due)}，请立即整改；确需更多时间的，"
                         "请申请延期")
            insert_ignoring_duplicates(session, Notification, notification_rows(
                rt.org, people=people, kind="rejected",
                title=message_title(rt, got.run, "【退回】", got.step.title, session),
                body=f"{got.run.title}：{got.step.title} 被退回，原因：{note}{later}",
                dedupe=f"rejected|{step_id}|{got.step.version}", now=now, run_id=got.run.id,
                step_id=step_id, inbox_only=True,
            ))
            playbook = rt.catalog.pinned(session, got.run.playbook_sha)
            if playbook.register_ is not None:  # back from 复查中 (to 退回整改)
                session.flush()
                sync_entry(session, rt, got.run, playbook, now)
        return session.get(StepInstance, step_id)  # type: ignore[return-value]


def extend(
    rt: Runtime, *, step_id: int, actor: str, due_at: datetime, reason: str
) -> StepInstance:
    """A commander (who directs the unit's runs) moves an open task's deadline. A manager
    reviews and exports (SPEC §3) and moves none: a deadline a manager could move directly
    would bypass the supervising role's decision on a request for more time
    (flows/extensions.py). `due_at` without a zone is read in the bureau's. The new deadline
    must be later than now; it may be earlier than the current one: a commander may also
    tighten it (a danger that grew), which a request for more time cannot."""
    with session_scope(rt.db) as session:
        got = _load(session, rt, step_id)
        require_running(got.run)
        if not rt.org.has_right(actor, "commander", got.step.unit_id):
            zh, en = who_may(rt.org, "commander", got.step.unit_id)
            zh, en = f"直接调整期限需要{zh}的权限", f"moving a deadline requires {en}"
            if got.spec.extension is not None:
                zh += "；承办人可提交延期申请，由审批人决定"
                en += "; the assignee may ask for more time, for the approver to decide"
            raise Forbidden(f"{zh} / {en}")
        if got.step.status not in st.OPEN_STATUSES:  # a closed task first: nothing to move
            raise task_conflict(got.step, "延期")
        if not reason.strip():
            raise InvalidInput("reason", "延期需说明原因 / a reason is required")
        check_note("reason", reason)
        now = rt.clock.now()
        if due_at.tzinfo is None:  # a time as the user's wall clock shows it
            due_at = due_at.replace(tzinfo=rt.tz)
        if due_at <= now:
            raise InvalidInput("due_at", f"新期限须晚于现在（{rt.renderer.deadline(now)}）/ "
                               "must be in the future")
        if due_at > now + MAX_EXTENSION:
            raise InvalidInput("due_at", "须在 10 年以内 / must be within 10 years")
        old_due = got.step.due_at  # read before transition() expires the row
        if old_due is not None and old_due == due_at:
            # The same request again (a retry after a lost answer): idempotent (SPEC §4),
            # nothing restarts and nothing is recorded twice.
            return got.step
        # A new deadline restarts the ladder: reminders and escalations count from it. Work
        # awaiting verification keeps the verifier's ladder; the assignee's restarts from the
        # new deadline if the work is sent back.
        check = (got.step.next_check_at if got.step.status == st.SUBMITTED else
                 first_check(rt, got.spec, status=got.step.status,
                             ready_at=got.step.ready_at or now, due_at=due_at, now=now))
        transition(session, got.step, allowed=st.OPEN_STATUSES, values={
            "due_at": due_at, "original_due_at": got.step.original_due_at or old_due,
            "overdue": False, "escalation_level": 0, "last_escalated_at": None,
            "reminders_sent": 0, "next_check_at": check,
        })
        playbook = rt.catalog.pinned(session, got.run.playbook_sha)
        session.flush()
        sync_entry(session, rt, got.run, playbook, now)
        add_event(session, at=now, actor=actor, action="extended", run_id=got.run.id,
                  step_id=step_id, detail={
                      "from": old_due.isoformat() if old_due else None,
                      "to": due_at.isoformat(), "reason": reason})
        # Whoever holds the task works to the new deadline: they are told, in the app.
        was = f"由 {rt.renderer.deadline(old_due)} " if old_due else ""
        insert_ignoring_duplicates(session, Notification, notification_rows(
            rt.org, people=list(got.step.assignees), kind="extended",
            title=message_title(rt, got.run, "【期限调整】", got.step.title,
                                session),
            body=f"{got.run.title}：{got.step.title} 的期限{was}调整为 "
                 f"{rt.renderer.deadline(due_at)}。原因：{reason}",
            dedupe=f"extended|{step_id}|{due_at.isoformat()}", now=now, run_id=got.run.id,
            step_id=step_id, inbox_only=True,
        ))
        return session.get(StepInstance, step_id)  # type: ignore[return-value]


def reassign(rt: Runtime, *, step_id: int, actor: str, person: str) -> StepInstance:
    """Hand a task to a named person: who may, and to whom, is flows.access.require_reassign."""
    with session_scope(rt.db) as session:
        got = _load(session, rt, step_id)
        require_running(got.run)
        require_reassign(rt.org, actor, got.step, got.run, person)
        if got.step.status not in st.OPEN_STATUSES:
            raise task_conflict(got.step, "转派")
        now = rt.clock.now()
        before = list(got.step.assignees)  # read before transition() expires the row
        if got.step.assignee_person_id == person:
            # Already theirs: idempotent (SPEC §4), no second event and no second note.
            return got.step
        version = got.step.version
        transition(session, got.step, allowed=st.OPEN_STATUSES, values={
            "assignee_person_id": person, "assignees": [person],
        })
        add_event(session, at=now, actor=actor, action="reassigned", run_id=got.run.id,
                  step_id=step_id, detail={"from": before, "to": person})
        insert_ignoring_duplicates(session, Notification, notification_rows(
            rt.org, people=[person], kind="assigned", title=f"【转派任务】{got.step.title}",
            body=f"{got.run.title}：{got.step.title} 已转派给你。",
            dedupe=f"reassigned|{step_id}|{version}", now=now, run_id=got.run.id,
            step_id=step_id, inbox_only=True,
        ))
        # Those it was with are told it is no longer theirs, so nobody works it twice.
        insert_ignoring_duplicates(session, Notification, notification_rows(
            rt.org, people=[p for p in before if p != person], kind="reassigned_away",
            title=f"【任务已转派】{got.step.title}",
            body=f"{got.run.title}：{got.step.title} 已转派给 {rt.org.person_name(person)}，"
                 "无需你再办理。",
            dedupe=f"reassigned-away|{step_id}|{version}", now=now, run_id=got.run.id,
            step_id=step_id, inbox_only=True,
        ))
        return session.get(StepInstance, step_id)  # type: ignore[return-value]


def reassign_candidates(rt: Runtime, *, step_id: int,
                        actor: str) -> tuple[StepInstance, list[Person]]:
    """The task, and whom `actor` may hand it to now (flows.access.reassign_targets), for the
    改派 list: asked of a running run's open task only, as reassign() would refuse the rest."""
    with read_session(rt.db) as session:
        step = session.get(StepInstance, step_id)
        if step is None:
            raise NotFound("task", step_id)
        run = load_run(session, step.run_id)
    if not can_read_step(rt.org, actor, step, run_unit_id=run.unit_id):
        raise Forbidden("无权查看该任务 / task belongs to another unit")
    targets = reassign_targets(rt.org, actor, step, run)
    require_running(run)
    if step.status not in st.OPEN_STATUSES:
        raise task_conflict(step, "转派")
    return step, targets


def steps_of_run(session: Session, run_id: int) -> list[StepInstance]:
    return list(session.exec(
        select(StepInstance).where(StepInstance.run_id == run_id)
        .order_by(StepInstance.id)
    ).all())


def verifiable(rt: Runtime, person_id: str) -> tuple[list[str], list[str]]:
    """Where the person verifies others' work (四眼): the units at and below theirs, and the
    step keys whose `verify.role` they hold, across the loaded playbooks. Their inbox lists the
    submitted steps among these (models.queries.list_steps `verify`); a key shared by two
    playbooks with different verifier roles may list a step the verify action then refuses."""
    person = rt.org.people.get(person_id)
    if person is None:
        return [], []
    roles = set(person.roles)
    keys = sorted({step.id for pb in rt.catalog.current.values() for step in pb.steps
                   if step.verify is not None and step.verify.role in roles})
    return (rt.org.descendants(person.unit_id) if keys else []), keys
