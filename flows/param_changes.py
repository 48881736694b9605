"""Params a playbook marks `changeable`, changed while the run runs: typhoon-633's 台风预警信号.

The observatory raises the signal from 蓝色 to 黄色 and from 橙色 to 红色 within one response
stage (紧急警报 is 蓝色/黄色, 橙色/红色预警 is both), and 红色 means impact within 6 hours: the
commander records it, alone or with a stage change, and the run reads it from then on.

* The run's `params` hold the current value, so every place a param shows (the run page, the
  runs list, `when` expressions, documents) reads what the district is at now; a param named
  in `title_params` titles the run anew. The value it started with stays in `run_started`.
* Each change is a `param_changed` event (who, when, from, to, up or down, the stage): the
  history the run page lists and documents read as `run.param_history`.
* The holders of the current stage's open tasks are told on their channels, as the stage's
  own hand-out told them (a step's `announce`): a raise is a 叫应 (【台风预警信号升级】), a
  lowering is told too, but no task is handed out or called off by either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from flows.duty import fallback_events, holders_cut
from flows.message_titles import TITLE_WIDTH, run_about
from flows.params import ParamValueError, coerce_value
from flows.recipients import notification_rows
from flows.run_titles import title_for
from flows.runtime import Runtime
from flows.signal_acks import ask_to_answer
from flows.spec import Playbook, RunParamSpec
from models import task as st
from models.audit import ACTOR_NAMES, AuditEvent
from models.errors import InvalidInput
from models.outbox import Notification
from models.run import Run
from models.task import StepInstance
from models.writes import add_event, insert_ignoring_duplicates, insert_rows

PARAM_CHANGED = "param_changed"
RAISED, LOWERED, CHANGED = "raised", "lowered", "changed"
_VERB = {RAISED: "升级", LOWERED: "降级", CHANGED: "变更"}


def changeable(playbook: Playbook) -> dict[str, RunParamSpec]:
    return {name: spec for name, spec in playbook.params.items() if spec.changeable}


def checked_changes(playbook: Playbook, run: Run, given: Mapping[str, Any]) -> dict[str, Any]:
    """The values of `given` that differ from the run's, coerced as a start coerces them.
    422 naming `params.<name>` for a param the playbook lacks or does not mark `changeable`
    (its pinned version: a run started before the mark keeps its start value), no value, or a
    value that does not fit (an unknown signal colour, with the list)."""
    open_ = changeable(playbook)
    known = "、".join(open_) or "无"
    out: dict[str, Any] = {}
    for name, value in given.items():
        field = f"params.{str(name)[:80]}"
        spec = open_.get(name)
        if spec is None:
            what = "没有此参数" if name not in playbook.params else "不能在运行中更改"
            raise InvalidInput(field, f"参数 {str(name)[:80]} {what}（运行中可更改：{known}） / "
                               f"param '{str(name)[:80]}' cannot be changed while the run runs "
                               f"(changeable: {', '.join(open_) or 'none'})")
        if value is None or value == "":
            raise InvalidInput(field, f"请给出“{spec.title or name}”的新值 / a new value is "
                               "required")
        try:
            value = coerce_value(spec, value)
        except ParamValueError as exc:
            raise InvalidInput(field, exc.text) from None
        if value != (run.params or {}).get(name):
            out[name] = value
    return out


def direction(spec: RunParamSpec, before: Any, after: Any) -> str:
    """Up or down: an enum by the order of its values (lowest first), a number by size."""
    if spec.type == "enum" and spec.values and before in spec.values:
        return RAISED if spec.values.index(after) > spec.values.index(before) else LOWERED
    if spec.type in ("int", "number") and isinstance(before, int | float):
        return RAISED if after > before else LOWERED
    return CHANGED


@dataclass(frozen=True)
class Change:
    name: str
    spec: RunParamSpec
    before: Any
    after: Any
    direction: str


def apply_changes(session: Session, rt: Runtime, run: Run, playbook: Playbook,
                  changes: Mapping[str, Any]) -> list[Change]:
    """Write `changes` (from checked_changes) into the run's params, and its title when a
    titling param changed. Before a stage change hands its steps out, so their `when` reads
    the new value (a step only for 红色). The caller holds the run's lock and has checked it
    is running; announce_changes records and tells them."""
    before = dict(run.params or {})
    run.params = before | dict(changes)  # a new dict: the JSON column sees the change
    if any(name in playbook.title_params for name in changes):
        run.title = title_for(playbook, run.params, rt.org.unit(run.unit_id).name)
    session.add(run)
    return [Change(name, playbook.params[name], before.get(name), after,
                   direction(playbook.params[name], before.get(name), after))
            for name, after in changes.items()]


def announce_changes(session: Session, rt: Runtime, run: Run, playbook: Playbook,
                     changes: Sequence[Change], *, actor: str, now: datetime,
                     note: str | None) -> None:
    """One `param_changed` event per change; the holders of the current stage's open tasks
    told (after a stage change: of the stage entered, its tasks just handed out)."""
    if not changes:
        return
    # Counted once per act: each change's messages are keyed apart from every earlier one's,
    # two changes at the same instant included.
    seq = session.exec(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.run_id == run.id, AuditEvent.action == PARAM_CHANGED)).one()
    for i, change in enumerate(changes):
        label = change.spec.title or change.name
        detail: dict[str, Any] = {"param": change.name, "title": label,
                                  "value_from": change.before, "value_to": change.after,
                                  "direction": change.direction, "stage": run.stage}
        if note:
            detail["note"] = note
        told = _tell(session, rt, run, playbook, label, change, actor=actor, note=note,
                     now=now, seq=seq + i)
        add_event(session, at=now, actor=actor, action=PARAM_CHANGED, run_id=run.id,
                  detail=detail | {"told": told})


def _stage_tasks(session: Session, playbook: Playbook, run: Run) -> list[StepInstance]:
    """The run's open tasks of its current stage (every open task of an unstaged run)."""
    query = select(StepInstance).where(StepInstance.run_id == run.id,
                                       StepInstance.action == "task",
                                       col(StepInstance.status).in_(st.OPEN_STATUSES))
    if run.stage is not None:
        keys = [spec.id for spec in playbook.stage_steps(run.stage)]
        query = query.where(col(StepInstance.step_key).in_(keys))
    return list(session.exec(query.order_by(col(StepInstance.id))).all())


def _tell(session: Session, rt: Runtime, run: Run, playbook: Playbook, label: str,
          change: Change, *, actor: str, note: str | None, now: datetime, seq: int) -> int:
    """Each holder of the stage's open tasks hears once, on the channels the stage's hand-out
    reached them by (the step's `announce`; a rostered role's one on duty and whoever signed
    for the task), the rest in the inbox. A raise of a param with `ack` asks each of them to
    answer 收到 by its due time (flows/signal_acks.py). Returns how many people were told."""
    key = f"{run.id}|{seq}"
    tasks = _stage_tasks(session, playbook, run)
    mine: dict[str, list[StepInstance]] = defaultdict(list)
    loud: set[str] = set()
    fallbacks: list[dict[str, Any]] = []
    for inst in tasks:
        for person in inst.assignees:
            mine[person].append(inst)
        spec = playbook.step(inst.step_key) if inst.step_key in playbook.step_ids else None
        if spec is None or spec.announce != "channels":
            continue
        cut = holders_cut(rt.org, rt.tz, now, inst)
        loud.update(p for p in inst.assignees if p not in cut.quiet)
        fallbacks += fallback_events(rt.org, cut, run_id=run.id, step_id=inst.id, now=now)
    if not mine:
        return 0
    insert_rows(session, AuditEvent, fallbacks)
    way, after = change.direction, change.after
    was = "未填写" if change.before in (None, "") else str(change.before)
    verb = _VERB[way]
    head = f"【{label}{verb}】{run_about(rt, run, session)}："
    title = f"{head}{was}→{after}"
    if len(title) > TITLE_WIDTH:
        title = title[:TITLE_WIDTH - 1] + "…"
    who = rt.org.people[actor].name if actor in rt.org.people else ACTOR_NAMES.get(actor, actor)
    said = f"{run.title}：{who}于 {rt.renderer.local(now)} 将{label}由{was}{_said(way)}{after}"
    stage = playbook.stage_title(run.stage)
    said += f"（当前阶段：{stage}）。" if stage else "。"
    if note:
        said += f"说明：{note}。"
    if way == RAISED and change.spec.ack is not None:
        due = ask_to_answer(session, rt, run, param=change.name, value=after,
                            ack=change.spec.ack, seq=seq, held=mine, now=now)
        said += (f"此为叫应：请于 {rt.renderer.local(due)} 前在运行页面“{label}”栏点“收到”回复，"
                 "逾时未回复将报告你的上级。")
    said += ("请立即按新的预警信号抓紧落实你的以下任务：" if way == RAISED
             else "你的以下任务不变，请继续落实：")
    rows: list[dict[str, Any]] = []
    for person, held in sorted(mine.items()):
        listed = "\n".join(f"- {t.title}" for t in held)
        rows += notification_rows(
            rt.org, people=[person], kind=PARAM_CHANGED, title=title, body=f"{said}\n{listed}",
            dedupe=f"{PARAM_CHANGED}|{key}", now=now, run_id=run.id,
            step_id=held[0].id if len(held) == 1 else None,
            inbox_only=person not in loud)
    insert_ignoring_duplicates(session, Notification, rows)
    return len(mine)


def _said(way: str) -> str:
    return {RAISED: "升为", LOWERED: "降为"}.get(way, "改为")


def param_history(rt: Runtime, playbook: Playbook, run: Run,
                  events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
    """Each changeable param's values, oldest first: the one it started with (`direction`
    start), then each change, with when (UTC and local), by whom and in which stage. Read
    from the run's events (`run_started`, `param_changed`), in the order given."""
    names = changeable(playbook)
    if not names:
        return []
    out: list[dict[str, Any]] = []
    for event in events:
        d = event.detail or {}
        if event.action == "run_started":
            started = d.get("params") or {}
            out += [_entry(rt, playbook, name, started.get(name), None, "start", event,
                           run.stage and playbook.stages[0]) for name in names]
        elif event.action == PARAM_CHANGED and d.get("param") in names:
            out.append(_entry(rt, playbook, d["param"], d.get("value_to"), d.get("value_from"),
                              d.get("direction", CHANGED), event, d.get("stage"), d.get("note")))
    return out


def _entry(rt: Runtime, playbook: Playbook, name: str, value: Any, previous: Any, way: str,
           event: AuditEvent, stage: str | None, note: str | None = None) -> dict[str, Any]:
    spec = playbook.params[name]
    by = event.actor
    return {"param": name, "title": spec.title or name, "value": value, "previous": previous,
            "direction": way, "at": event.at, "at_local": rt.renderer.local(event.at),
            "by": by, "by_name": rt.org.people[by].name if by in rt.org.people
            else ACTOR_NAMES.get(by, by), "stage": stage,
            "stage_title": playbook.stage_title(stage) if stage else None, "note": note}


def param_history_by_name(session: Session, rt: Runtime, run: Run) -> dict[str, list[Any]]:
    """param_history by param, as documents read it: `run.param_history['signal']`, each
    entry's `value`, `previous`, `direction`, `at_local`, `by_name`, `stage_title`, `note`.
    {} for a playbook with no changeable param."""
    playbook = rt.catalog.pinned(session, run.playbook_sha)
    if not changeable(playbook):
        return {}
    events = session.exec(select(AuditEvent).where(
        AuditEvent.run_id == run.id,
        col(AuditEvent.action).in_(("run_started", PARAM_CHANGED)),
    ).order_by(col(AuditEvent.at), col(AuditEvent.id))).all()
    out: dict[str, list[Any]] = {}
    for entry in param_history(rt, playbook, run, events):
        out.setdefault(entry["param"], []).append(entry)
    return out
