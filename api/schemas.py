"""Request and response shapes of the HTTP API, and the views that fill them."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
)
from pydantic_core import PydanticCustomError

from api.event_names import event_name
from api.param_schemas import (
    ParamChangePublic,
    ParamNow,
    SignalAnswerPublic,
    history_view,
    params_now,
)
from flows.bulk_plan import constant_lookups
from flows.calendar_gaps import estimated_note
from flows.concurrent import RunningRun
from flows.durations import add_duration, duration_zh
from flows.expressions import ExpressionError, compile_expression
from flows.lateness import minutes_late, step_late_days
from flows.params import ParamValueError, end_of_day
from flows.params import check_text as check_plain_text
from flows.passed_stages import passed_over_keys
from flows.progress import due_time
from flows.rounds import is_scheduled
from flows.runtime import Runtime
from flows.spec import Playbook, StepSpec
from flows.sweeper import ladder_level
from models.audit import ACTOR_NAMES, AuditEvent
from models.base import MAX_ID
from models.escalation import Escalation
from models.org import ROLE_NAMES_ZH
from models.run import Run
from models.task import ACTIONABLE_STATUSES, READY, StepInstance


def _due_at(value: object) -> object:
    """A deadline as a person writes it: text, never a number (1900000000 is no date anyone
    means). A bare date ("2027-01-15") asks for the end of that day: 24:00, i.e. 00:00 of the
    next day, as a time without zone, which the engine reads in the bureau's time zone."""
    if isinstance(value, datetime):  # already one (a caller in Python)
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(
            "datetime_type", "a deadline is text such as 2027-01-15T18:00+08:00 or 2027-01-15, "
            "not a {kind}", {"kind": type(value).__name__})
    text = value.strip()
    try:
        end = end_of_day(text)  # "2027-01-15 24:00", as the product prints a deadline
    except (ValueError, OverflowError):
        raise PydanticCustomError(
            "date_value", "没有这一天：{date} / no such date: {date}", {"date": text}) from None
    if end is not None:
        return end
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise PydanticCustomError(
                "date_value", "没有这一天：{date} / no such date: {date}", {"date": text}
            ) from None
        try:
            return datetime.combine(day + timedelta(days=1), time())
        except OverflowError:  # 9999-12-31 has no next day
            raise PydanticCustomError(
                "date_value", "日期超出范围：{date} / date out of range: {date}", {"date": text}
            ) from None
    return value


# The deadline of POST /api/tasks/{id}/extend and of a request for more time: one shape for both.
DueAt = Annotated[datetime, BeforeValidator(_due_at), Field(
    description="A time with its zone (2027-01-15T18:00+08:00), a time without zone (read in "
    "the bureau's time zone), a date (the end of that day, 24:00), or that end written as "
    "2027-01-15 24:00.")]


def _note(value: str | None) -> str | None:
    """A note or reason: as flows/tasks.check_note has it, for the bodies whose text reaches no
    check of flows/ (a cancellation's reason)."""
    if value is not None:
        try:
            check_plain_text(value)
        except ParamValueError as exc:
            raise PydanticCustomError("text_invalid", "{text}", {"text": exc.text}) from None
    return value


Note = Annotated[str | None, AfterValidator(_note)]


class DrillBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(max_length=40, description="演练方式: 桌面推演 (tabletop), 实战演练 (field "
                      "drill) or 盲演 (unannounced: the participants were not told beforehand; "
                      "recorded, and every message still says 演练)")
    title: str | None = Field(default=None, max_length=400, description="The drill's name, "
                              "e.g. 2026年度燃气泄漏应急演练 (at most 120 characters)")


class PersonAway(BaseModel):
    unit_id: str
    unit_name: str
    step: str = Field(description="The step whose record is still owed")
    detail: str = Field(description="What the records say, in Chinese (已填报“危险区人员转移”，"
                        "未填报“转移人员返回”)")


class DrillPublic(BaseModel):
    kind: str = Field(description="桌面推演, 实战演练 or 盲演")
    title: str | None = None
    mark: str = Field(default="【演练】", description="What every page, message and document "
                      "of the run shows")


class AssessmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assessment: str = Field(max_length=8000, description="The evaluator's written assessment "
                            "(问题与整改建议), at most 4,000 characters; recorded as a new "
                            "timeline event each time, never an edit of an earlier one")


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    playbook: str = Field(description="Playbook id, e.g. gas-leak")
    unit: str = Field(description="Unit id the run is for")
    params: dict[str, Any] = Field(default_factory=dict)
    drill: DrillBody | None = Field(
        default=None, description="Start a drill (演练) of the playbook instead of a real "
        "event: the same steps, people, deadlines and escalations, every message and document "
        "marked 【演练】 (documents open with 「演练文书，非真实事件」), kept out of the ranking, "
        "the registers and campaign progress, and evaluated afterwards at GET "
        "/api/runs/{id}/evaluation. Started by whoever may start the playbook. Refused (422 "
        "naming `drill`) for a playbook that keeps or counts the hazard register "
        "(hazard-3030, campaign-3030). Absent or null: a real event")
    refuse_concurrent: bool = Field(
        default=False,
        description="Refuse (409, error concurrent_runs, listing them in `runs`) while a run of "
        "the same playbook is running for this unit, a unit above it or below it; the start "
        "page sends true first and false once the commander confirms. Without it the run "
        "starts and the answer lists them in `concurrent`. Register playbooks (a hazard) are "
        "never refused for this.")


class NextRound(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: str = Field(min_length=1, max_length=120,
                      description="The recurring step (`recur`) whose next round is due now, "
                                  "e.g. follow-up (续报).")
    note: Note = Field(default=None, description="Why now (事态扩大、出现人员伤亡): required; in "
                       "the timeline beside the round.")


class StageChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str
    # Going back (a warning downgraded): what becomes of the higher stages' open tasks is the
    # commander's word, never a default; without either field they stay open, as before.
    call_off: list[Annotated[StrictInt, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=100_000,
        description="Going back to an earlier stage: ids of the open tasks of the stages above "
        "it to call off (已撤销); the others stay open. Needs `note`.")
    # Strict: "yes" or 1 must not call off a whole district's tasks; only true does.
    call_off_all: StrictBool = Field(
        default=False, description="Going back: call off every open task of the stages above "
        "it. Needs `note`.")
    note: Note = Field(
        default=None, description="Why the tasks are called off (预警降级), or the stages "
        "passed over (台风转向，未登陆); the holders of called-off tasks are told it.")
    # Jumping forward past stages whose measures no longer apply (the typhoon turned away
    # after people were moved: 解除 without 台风登陆). Named, never implied by the jump.
    pass_over: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=list, max_length=50,
        description="Going forward past stages: those of them (ids or titles) whose steps "
        "are not handed out. Needs `note`.")
    # The signal the stage is entered at (橙色/红色预警 at 红色), in the same act.
    params: dict[str, Any] = Field(
        default_factory=dict, max_length=20,
        description="New values of `changeable` params recorded with the stage change (e.g. "
        "{\"signal\": \"红色\"}), set before the stage's steps are handed out; a wrong one "
        "refuses the whole change (422 naming `params.<name>`).")


class ParamsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(
        max_length=20, description="New values of params the run's playbook marks `changeable`, "
        "e.g. {\"signal\": \"红色\"}. 422 naming `params.<name>` for an unknown param, one not "
        "changeable, or a value that does not fit; 409 when every value is already current.")
    note: Note = Field(default=None, description="Why (optional): in the timeline and in the "
                       "message to the holders of the stage's open tasks.")


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Note = None


class EndBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Note = None


class Completion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    evidence: list[str] = Field(default_factory=list)
    evidence_labels: dict[str, str] = Field(
        default_factory=dict, description="Where the step's evidence has `labels` (整改前, "
        "整改后): evidence id -> the label of what that file shows. Every photo is marked, "
        "and each label needs a photo; a missing one is refused as "
        "`evidence_labels.<label>`.")


class Verification(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approve: StrictBool  # "yes", "false" or 1 must not decide anything: only true or false
    note: str | None = None
    submitted_at: datetime | None = Field(
        default=None, description="The task's `submitted_at` as read: the hand-in this "
        "verdict is about. Work handed in anew since is refused (409), not judged unseen.")


class Extension(BaseModel):
    model_config = ConfigDict(extra="forbid")
    due_at: DueAt
    reason: str


class Reassignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: str


class Person(BaseModel):
    id: str
    name: str
    # How to reach them (the director's "who has it now?"): post, unit and phone as the org
    # chart has them; none for someone no longer in it.
    title: str | None = Field(default=None,
                              description="Post as the org chart writes it (社区安全员)")
    unit_id: str | None = Field(default=None, description="The unit the person belongs to")
    unit_name: str | None = None
    phone: str | None = Field(default=None, description="Phone number from the org chart")


class ReassignCandidate(Person):
    roles: list[str] = Field(default_factory=list, description="Roles as people say them")
    holds_role: bool = Field(default=False, description="Holds the task's role for its unit "
                             "(could take it from the pool)")
    current: bool = Field(default=False, description="The task is already theirs by name")


class ReassignCandidates(BaseModel):
    data: list[ReassignCandidate]
    count: int = Field(description="All who match `q`, of whom `data` holds the first `limit`")


class HeldUpPublic(BaseModel):
    step: str
    title: str = Field(description="The task whose finish let this one be handed out")
    done_at: datetime
    done_at_local: str


class DeadlineBasisPublic(BaseModel):
    """How a deadline counted from the run's start (the alert) was set (flows/deadline_basis.py)."""

    counted_from: str = Field(description="run: from the run's start (for a response, the "
                              "alert: 接报)")
    since: datetime
    since_local: str
    deadline: datetime = Field(description="The deadline as the rule counts it (before any "
                               "extension)")
    deadline_local: str
    text: str = Field(description="As the task page says it: 时限自接报（11:02）起算，"
                      "应于11:32前报送")
    late_at_hand_out_minutes: int | None = Field(
        default=None, description="Handed out after that deadline (the steps it waited on "
        "finished late): by how many whole minutes, at least 1. 信息报送考核 counts such a "
        "report 漏报 from the moment it is handed out, 迟报 once done")
    held_up_by: HeldUpPublic | None = Field(
        default=None, description="Handed out late: the person's task whose finish let it be "
        "handed out (the last of its needs, followed back through automatic steps)")
    late_text: str | None = Field(default=None, description="已超时10分钟才派发（等待“初步研判事件"
                                  "等级和影响范围”，11:42完成）")


class StepPublic(BaseModel):
    id: int | None = Field(description="null for a step not reached yet (no instance exists)")
    run_id: int
    run_title: str | None = Field(
        default=None, description="The title of its run, so an inbox reads without fetching "
        "each run")
    step: str
    title: str
    drill: DrillPublic | None = Field(
        default=None, description="Its run is a drill (演练): the page marks the task 【演练】")
    action: str
    role: str | None
    role_name: str | None = Field(default=None, description="The role as people read it (检查员)")
    unit_id: str
    unit_name: str
    origin_unit_id: str | None = Field(
        default=None, description="Where the event is, when the playbook's `at:` holds the "
        "step at a unit above it (unit_id): the gas leak's duty-room steps of a leak in liuhe")
    item: Any = None
    assignees: list[Person]
    status: str
    overdue: bool
    escalation_level: int
    due_at: datetime | None
    due_at_local: str | None
    original_due_at: datetime | None
    original_due_at_local: str | None = None
    due_rule: str | None = Field(
        default=None, description="How the playbook counts the deadline, as people read it: "
        "3个工作日（自任务下达起）, 30天（自流程启动起）; read on a single task and in a run")
    due_working_days: bool | None = Field(
        default=None, description="Whether that count is in working days (weekends and "
        "statutory holidays not counted); null where the rule is not known")
    due_whole_days: bool | None = Field(
        default=None, description="Whether that count is in whole days as the law counts a "
        "period (民法典 §201/§203, the playbook's `whole_days`): the start's day not counted, "
        "due at 24:00 of the last day, a last day off moved to the next working day; null "
        "where the rule is not known")
    overdue_days: int | None = Field(
        default=None, description="逾期天数 while the task is open (ready, acked, sent back): "
        "0 until it is a full day past its deadline (less is said by overdue_minutes), then "
        "calendar days past the deadline's last day, as the rectification register counts "
        "them; null for a task not open or without a deadline")
    overdue_minutes: int | None = Field(
        default=None, description="While the task is open: whole minutes past its deadline, "
        "at least 1 once it has passed (the pages' countdown: 逾期 1分钟), 0 before; null "
        "for a task not open or without a deadline")
    due_estimated: str | None = Field(
        default=None, description="set when the deadline counts working days into a year the "
        "working-day calendar does not list: it was counted Mon-Fri, without that year's "
        "holidays (read on a single task and in a run)")
    ready_at: datetime | None
    ready_at_local: str | None = None
    acked_at: datetime | None
    acked_at_local: str | None = None
    submitted_by: str | None
    submitted_by_name: str | None = None
    submitted_at: datetime | None = Field(
        default=None, description="when the work was last handed in; a verdict names it "
        "(`/verify` `submitted_at`) so work handed in anew is not judged unseen")
    submitted_at_local: str | None = None
    verify_due_at: datetime | None = Field(
        default=None, description="submitted work: when the verifier must have decided")
    verify_due_at_local: str | None = None
    verify_due_estimated: str | None = None
    ack_due_at: datetime | None = Field(
        default=None, description="a ready task not yet acknowledged (签收/叫应) whose step has "
        "`ack`: when the acknowledgement is due (read on a single task and in a run)")
    ack_due_at_local: str | None = None
    paired: dict[str, Any] | None = Field(
        default=None, description="a step waiting item by item (item_needs), read singly: "
        "each need's record of the same item ({status, unit, outputs}), e.g. the transfer a "
        "community's return must add up to")
    earlier: dict[str, list[dict[str, Any]]] | None = Field(
        default=None, description="read singly: what the people's tasks this step needs "
        "recorded (handed in or done), by step: {task, title, status, unit, unit_name, by, "
        "by_name, at, at_local, note, outputs, evidence}; e.g. the on-site finding and photos "
        "a duty officer signs a report on")
    verify_level: int = Field(default=0, description="verifier's escalation levels fired")
    verified_by: str | None
    verified_by_name: str | None = None
    done_at: datetime | None
    done_at_local: str | None = None
    note: str | None
    outputs: dict[str, Any]
    evidence: list[str]
    evidence_labels: dict[str, str] = Field(
        default_factory=dict, description="What each handed-in file shows (evidence id -> "
        "整改前/整改后), where the step's evidence has labels")
    reject_reason: str | None
    rehanded_from: int | None = Field(
        default=None, description="Handed out again: the task a downgrade called off that "
        "this one replaces, the run having entered its stage again (its deadline counts from "
        "that entry)")
    scheduled_at: datetime | None = Field(
        default=None, description="The next round of a recurring step (`recur`), written "
        "ahead: when it will be handed out (it is pending until then)")
    scheduled_at_local: str | None = None
    deadline_basis: DeadlineBasisPublic | None = Field(
        default=None, description="Read singly (GET /api/tasks/{id}): for a deadline counted "
        "from the run's start (a report due 30 minutes after the alert), what it counts from "
        "and, when the task was handed out already past it, by how much and which step held "
        "it up")
    rehanded_as: int | None = Field(
        default=None, description="A called-off task whose stage the run entered again: the "
        "task that replaced it (handed out again, or `skipped` when its `when` no longer "
        "holds or its unit is no longer listed). Given in a run and on a single task")


class EscalationPublic(BaseModel):
    id: int
    step_id: int
    step: str
    kind: str
    level: int
    repeat: int
    scheduled_at: datetime
    scheduled_at_local: str
    fired_at: datetime
    fired_at_local: str
    recipients: list[str]
    recipient_names: list[str] = Field(
        default_factory=list, description="`recipients` as people read them: a person's name, "
        "a channel's name as the org chart writes it")
    title: str | None = Field(
        default=None, description="The ladder level as the playbook names it (督办函, 提级督办函, "
        "约谈, 通报批评); none for a reminder or a level without a title")
    number: str | None = Field(
        default=None, description="文号 of the letter this firing sent (坪应急督函〔2026〕1号), "
        "for a level that numbers its letters")
    ordinal: int = Field(
        default=1, description="Which firing of its level (and kind) this is, counted from "
        "those sent: after downtime missed repeats collapse into one, so `repeat` (the slot) is "
        "no count of what was sent")
    fired_late: bool = Field(
        default=False, description="Fired more than a sweep interval after `scheduled_at` (the "
        "server was down, or the sweeper stopped): the page shows 应触发 beside 触发")


class EventPublic(BaseModel):
    id: int
    at: datetime
    at_local: str
    actor: str
    actor_name: str = ""
    action: str
    action_name: str = Field(default="", description="The action as people read it (同意延期)")
    step_id: int | None
    from_state: str | None
    to_state: str | None
    detail: dict[str, Any]
    # How people read the detail's person ids and times (a reassignment's from and to, an
    # extension's old and new deadline): person id -> name, detail key -> local time.
    names: dict[str, str] = Field(default_factory=dict)
    times_local: dict[str, str] = Field(default_factory=dict)


def _event_names(rt: Runtime, detail: dict[str, Any]) -> dict[str, str]:
    ids: list[str] = []
    for key in ("from", "to"):
        value = detail.get(key)
        ids += [v for v in value if isinstance(v, str)] if isinstance(value, list) else (
            [value] if isinstance(value, str) else [])
    return {pid: rt.org.person_name(pid) for pid in ids if pid in rt.org.people}


def _event_times(rt: Runtime, detail: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in ("from", "to", "due_at", "new_due_at", "old_due_at"):
        value = detail.get(key)
        if isinstance(value, str) and len(value) > 10 and value[4:5] == "-":
            try:
                out[key] = rt.renderer.deadline(datetime.fromisoformat(value)) or value
            except ValueError:
                continue
    return out


class Reassigned(BaseModel):
    """One 改派 as a manager asks about it: who handed the task on, from whom, to whom, when."""
    by: str
    by_name: str
    from_names: list[str]
    to: str
    to_name: str
    at: datetime
    at_local: str


class Holdup(BaseModel):
    task_id: int
    step: str
    title: str
    phase: str | None = Field(description="The run's phase while it waits here (整改中, 复查中)")
    status: str
    status_name: str
    waiting_on: str = Field(description="Whose move it is, in words (复查退回，待承办人重新整改)")
    holders: list[Person] = Field(
        description="Who has it now: the assignees, or for submitted work the verifiers; each "
        "with name, post, unit and phone")
    since: datetime | None = Field(description="When it came to them: handed out, sent back, "
                                   "reassigned (改派) to them, or handed in for verification")
    since_local: str | None
    due_at: datetime | None = Field(description="The deadline, for the page's countdown")
    due_at_local: str | None
    original_due_at_local: str | None
    due_rule: str | None
    overdue: bool
    overdue_days: int | None = Field(description="As the task's: days from a full day late on")
    overdue_minutes: int | None = Field(description="As the task's: minutes past the deadline")
    escalation_level: int
    last_rung: str | None = Field(description="The last ladder rung fired on it (约谈)")
    letters_sent: int = Field(description="Letters (督办函, 约谈通知) its ladder sent, with a 文号")
    rejections: int
    last_reject_reason: str | None
    extensions_asked: int
    extensions_granted: int
    extensions_refused: int
    reassignments: int = Field(default=0, description="How often it was handed to another "
                               "person (改派)")
    last_reassignment: Reassigned | None = Field(
        default=None, description="The last 改派: who did it, from whom, to whom, when")


class RunPublic(BaseModel):
    id: int
    playbook: str
    playbook_version: int
    title: str
    unit_id: str
    unit_name: str
    status: str
    stage: str | None
    stage_title: str | None = Field(
        default=None, description="The stage as people read it (the playbook's stage_titles), "
        "else its id")
    params: dict[str, Any] = Field(description="The run's params as they stand: a `changeable` "
                                   "one (a typhoon's signal) at its current value; the values "
                                   "it started with are in the timeline's run_started")
    changeable_params: list[ParamNow] = Field(
        default_factory=list, description="The params its playbook lets a commander change "
        "while it runs (typhoon-633: 台风预警信号), with their current values")
    param_history: list[ParamChangePublic] | None = Field(
        default=None, description="Only in GET /api/runs/{id} and the answer to POST "
        "/api/runs/{id}/params: "
        "each changeable param's value at the start, then every change (who, when, from, to, "
        "raised or lowered, the stage), oldest first")
    signal_answers: list[SignalAnswerPublic] | None = Field(
        default=None, description="Only in GET /api/runs/{id} and the answers to POST "
        "/api/runs/{id}/params and .../signal-acks/{ack_id}/ack: who was called (叫应) at the "
        "latest raise of a param with `ack` and whether each answered, unanswered first")
    drill: DrillPublic | None = Field(
        default=None, description="A drill (演练), not a real event: pages show 【演练】 "
        "wherever the run is shown; null for a real event")
    started_by: str
    started_by_name: str = ""
    started_at: datetime
    started_at_local: str
    finished_at: datetime | None
    finished_at_local: str | None = None
    parent_step_id: int | None
    steps: list[StepPublic] | None = None
    escalations: list[EscalationPublic] | None = None
    timeline: list[EventPublic] | None = None
    concurrent: list[RunningRun] | None = Field(
        default=None, description="Only in the answer to a start: other runs of the playbook "
        "running for this unit, a unit above or below it (newest first, at most 10)")
    called_off: list[int] | None = Field(
        default=None, description="Only in the answer to a stage change back to an earlier "
        "stage: the tasks of the stages above it called off by it")
    kept_open: list[int] | None = Field(
        default=None, description="Only in the answer to a stage change back to an earlier "
        "stage: the open tasks of the stages above it that stay open")
    rehanded: list[int] | None = Field(
        default=None, description="Only in the answer to a stage change forward: the tasks "
        "handed out again, each in place of a task of the stages entered that a downgrade "
        "called off (named in its `rehanded_from`), with new deadlines from this entry. Tasks "
        "done before the downgrade stay done and tasks kept open then stay as they are: "
        "neither is handed out twice. [] when nothing was called off")
    passed_over_stages: list[str] = Field(
        default_factory=list, description="Stages a forward jump passed over at the "
        "commander's word (`pass_over`): their steps are not handed out unless the run comes "
        "back down to them")
    overdue_tasks: int | None = Field(
        default=None, description="Only in GET /api/runs, for a running run: how many of its "
        "tasks still to be done (ready, acked, sent back) are past their deadline; 0 when "
        "none; null for a run not running. Work handed in and awaiting its verifier is not "
        "counted: the assignee's clock stops there, as the run page's 逾期 N 天 does")
    max_overdue_days: int | None = Field(
        default=None, description="Only in GET /api/runs: the most overdue of those tasks in "
        "逾期天数, as a task's `overdue_days` counts them (from a full day late on); null when "
        "none is overdue or the worst is less than a day late (`earliest_overdue_due_at` "
        "then says by how long)")
    earliest_overdue_due_at: datetime | None = Field(
        default=None, description="Only in GET /api/runs: the earliest deadline those tasks "
        "missed (UTC), so a run less than a day late can say by how many minutes or hours "
        "(a gas leak's steps are minutes long); null when none is overdue")
    people_away: list[PersonAway] | None = Field(
        default=None, description="Only in the answer to a drill's end (结束演练): each "
        "community its records still have people away from home (moved and not recorded "
        "back, or still followed up in a shelter), which a real response could not end with "
        "(409); [] when nobody is away")
    holdup: list[Holdup] | None = Field(
        default=None, description="Only in GET /api/runs/{id} of a running run: its open tasks "
        "(当前卡点), the overdue first, each with who has it now and since when, its days "
        "overdue, the ladder fired on it, its rejections and requests for more time")


class Page(BaseModel):
    count: int
    limit: int
    offset: int


class RunsPublic(Page):
    data: list[RunPublic]


class StepsPublic(Page):
    data: list[StepPublic]


def role_name(role: str | None) -> str | None:
    return None if role is None else ROLE_NAMES_ZH.get(role, role)


def _stage_title(rt: Runtime, run: Run, playbook: Playbook | None) -> str | None:
    if run.stage is None:
        return None  # most runs: no playbook read for them
    return (playbook or rt.catalog.pinned(rt.db, run.playbook_sha)).stage_title(run.stage)


def person_view(rt: Runtime, person_id: str) -> Person:
    p = rt.org.people.get(person_id)
    if p is None:
        return Person(id=person_id, name=person_id)
    return Person(id=person_id, name=p.name, title=p.title, unit_id=p.unit_id,
                  unit_name=rt.org.unit_name(p.unit_id), phone=p.phone)


def actor_name(rt: Runtime, actor: str) -> str:
    """Who did it, as people read it: a person's name, 系统 for the engine, 运维命令行 for the
    operator console (`closeloop start` without --as)."""
    p = rt.org.people.get(actor)
    return p.name if p else ACTOR_NAMES.get(actor, actor)


# Moments people did something (ready, acknowledged, done, fired) to the second, like the
# timeline: a deadline is to the minute (`*_local` of due times, through renderer.deadline).
SECONDS = "%Y-%m-%d %H:%M:%S"


def _seconds(rt: Runtime, at: datetime | None) -> str | None:
    return rt.renderer.local(at, SECONDS) if at is not None else None


def ack_due(rt: Runtime, s: StepInstance, spec: StepSpec | None) -> datetime | None:
    """When a ready task's acknowledgement (叫应, e.g. 30 minutes) is due; None once acked,
    or for a step without `ack`."""
    if spec is None or spec.ack is None or s.status != READY or s.ready_at is None:
        return None
    return add_duration(s.ready_at, spec.ack, calendar=rt.calendar, tz=rt.tz)


def drill_view(kind: str | None, title: str | None) -> DrillPublic | None:
    return DrillPublic(kind=kind, title=title) if kind is not None else None


def step_view(rt: Runtime, s: StepInstance, *, run_title: str | None = None,
              spec: StepSpec | None = None, drill: DrillPublic | None = None) -> StepPublic:
    """`spec` (the step as its run's playbook has it): given, the view says when a ready
    task's acknowledgement is due."""
    unit = rt.org.units.get(s.unit_id)
    acked_by = ack_due(rt, s, spec)
    # A deadline moved by an approved extension is a date someone chose, not a count.
    counted = spec is not None and spec.due is not None and s.original_due_at is None
    verify_due = spec.verify.due if spec is not None and spec.verify is not None else None
    now, open_ = rt.clock.now(), s.status in ACTIONABLE_STATUSES
    scheduled = is_scheduled(s.status, s.next_check_at)
    return StepPublic(
        id=s.id or 0, run_id=s.run_id, run_title=run_title, step=s.step_key, title=s.title,
        drill=drill, action=s.action,
        role=s.role, role_name=role_name(s.role), unit_id=s.unit_id,
        unit_name=unit.name if unit else s.unit_id, origin_unit_id=s.origin_unit_id, item=s.item,
        assignees=[person_view(rt, p) for p in s.assignees], status=s.status,
        overdue=s.overdue, escalation_level=s.escalation_level, due_at=s.due_at,
        due_at_local=rt.renderer.deadline(s.due_at) or None, original_due_at=s.original_due_at,
        original_due_at_local=rt.renderer.deadline(s.original_due_at) or None,
        due_rule=duration_zh(spec.due.after, spec.due.from_, whole_days=spec.due.whole_days)
        if spec and spec.due else None,
        due_working_days=spec.due.after.is_working_days if spec and spec.due else None,
        due_whole_days=spec.due.whole_days if spec and spec.due else None,
        overdue_days=step_late_days(s.due_at, now, rt.tz) if open_ else None,
        overdue_minutes=minutes_late(s.due_at, now) if open_ else None,
        due_estimated=estimated_note(rt, spec.due.after, s.ready_at, s.due_at,
                                     whole_days=spec.due.whole_days)
        if counted and spec and spec.due else None,
        ready_at=s.ready_at, ready_at_local=_seconds(rt, s.ready_at),
        acked_at=s.acked_at, acked_at_local=_seconds(rt, s.acked_at),
        submitted_by=s.submitted_by,
        submitted_by_name=actor_name(rt, s.submitted_by) if s.submitted_by else None,
        submitted_at=s.submitted_at, submitted_at_local=_seconds(rt, s.submitted_at),
        verify_due_at=s.verify_due_at,
        verify_due_at_local=rt.renderer.deadline(s.verify_due_at) or None,
        verify_due_estimated=estimated_note(rt, verify_due.after, s.submitted_at or s.ready_at,
                                            s.verify_due_at, whole_days=verify_due.whole_days)
        if verify_due else None,
        ack_due_at=acked_by, ack_due_at_local=rt.renderer.deadline(acked_by) or None,
        verify_level=s.verify_level, verified_by=s.verified_by,
        verified_by_name=actor_name(rt, s.verified_by) if s.verified_by else None,
        done_at=s.done_at,
        done_at_local=_seconds(rt, s.done_at),
        note=s.note, outputs=s.outputs or {},
        evidence=s.evidence or [], evidence_labels=s.evidence_labels or {},
        reject_reason=s.reject_reason,
        rehanded_from=s.rehanded_from,
        scheduled_at=s.next_check_at if scheduled else None,
        scheduled_at_local=rt.renderer.local(s.next_check_at) if scheduled else None,
    )


def spec_of(playbook: Playbook | None, key: str) -> StepSpec | None:
    if playbook is None:
        return None
    try:
        return playbook.step(key)
    except KeyError:  # a step of an older version, gone from this one
        return None


def not_reached_view(rt: Runtime, run: Run, spec: StepSpec, status: str = "pending"
                     ) -> StepPublic:
    """A step with no instance: not reached yet (`pending`), or passed over (`skipped`: its
    `when` was false). A pending step shows what is already known of it: who it will go to
    (its role resolved at the run's unit, or where its `at` holds it; not for a fan-out,
    whose units come later) and, when
    its deadline runs from the start of the run (the 30-minute verbal report counts from the
    alert, not from when the step before it is done), that deadline, so a commander sees
    every legal clock from the first answer."""
    unit_id = run.unit_id
    if unit_id in rt.org.units:
        unit_id = rt.org.held_at(unit_id, spec.at)
    unit = rt.org.units.get(unit_id)
    assignees: list[Person] = []
    due_at = None
    if status == "pending" and _may_come(spec, run):
        if spec.role and not spec.for_each and unit is not None:
            _, holders = rt.org.resolve_role(spec.role, unit_id)
            assignees = [person_view(rt, h.id) for h in holders]
        if spec.due is not None and spec.due.from_ == "run":
            due_at = due_time(rt, run, spec, ready_at=run.started_at)
    return StepPublic(
        id=None, run_id=run.id or 0, run_title=run.title, step=spec.id, title=spec.title,
        drill=drill_view(run.drill_kind, run.drill_title),
        action=spec.action,
        role=spec.role, role_name=role_name(spec.role), unit_id=unit_id,
        unit_name=unit.name if unit else unit_id, assignees=assignees, status=status,
        overdue=False, escalation_level=0, due_at=due_at,
        due_at_local=rt.renderer.deadline(due_at) or None, original_due_at=None, ready_at=None,
        due_rule=duration_zh(spec.due.after, spec.due.from_, whole_days=spec.due.whole_days)
        if spec.due else None,
        due_working_days=spec.due.after.is_working_days if spec.due else None,
        due_whole_days=spec.due.whole_days if spec.due else None,
        due_estimated=estimated_note(rt, spec.due.after, run.started_at, due_at,
                                     whole_days=spec.due.whole_days)
        if spec.due is not None else None,
        acked_at=None,
        submitted_by=None, verified_by=None, done_at=None, note=None, outputs={},
        evidence=[], reject_reason=None,
    )


def _may_come(spec: StepSpec, run: Run) -> bool:
    """False for a step whose `when` reads only the run's params and is false for them (the
    30-minute verbal report of a 一般 gas leak): it will be passed over, so it shows no
    deadline nor people. Anything else is shown: whether it comes is decided when it is
    reached."""
    if not spec.when or constant_lookups(spec.when) is None:
        return True
    try:
        return bool(compile_expression(spec.when).evaluate(
            {"params": dict(run.params), "run": {"unit": run.unit_id, "params": run.params}}))
    except ExpressionError:
        return True


def _firing_key(step_id: int | None, kind: str, level: object, repeat: object) -> str:
    return f"{step_id}|{kind}|{level}|{repeat}"


def _letter_numbers(events: list[AuditEvent]) -> dict[str, str]:
    """文号 of each ladder firing, read from the firing's own audit event (the sweeper writes
    the number it issued there): no query beyond the timeline the view already has."""
    out: dict[str, str] = {}
    for e in events:
        number = (e.detail or {}).get("number")
        if e.action in ("escalate", "verify") and isinstance(number, str):
            d = e.detail
            out[_firing_key(e.step_id, e.action, d.get("level"), d.get("repeat"))] = number
    return out


def _rung_title(playbook: Playbook | None, e: Escalation) -> str | None:
    spec = spec_of(playbook, e.step_key)
    level = ladder_level(spec, e.kind, e.level) if spec is not None else None
    return level.title if level is not None else None


def _escalation_views(rt: Runtime, escalations: list[Escalation], playbook: Playbook | None,
                      numbers: dict[str, str]) -> list[EscalationPublic]:
    # A sweep late by up to its own interval is the normal lag, not worth a second time.
    lag = timedelta(seconds=rt.settings.sweep_seconds)
    ordinals: dict[tuple[int, str, int], int] = {}
    sent_before: dict[int, int] = {}
    for e in sorted(escalations, key=lambda e: (e.scheduled_at, e.id or 0)):
        key = (e.step_id, e.kind, e.level)
        ordinals[key] = sent_before[e.id or 0] = ordinals.get(key, 0) + 1
    return [
        EscalationPublic(id=e.id or 0, step_id=e.step_id, step=e.step_key, kind=e.kind,
                         level=e.level, repeat=e.repeat, scheduled_at=e.scheduled_at,
                         scheduled_at_local=rt.renderer.local(e.scheduled_at, SECONDS),
                         fired_at=e.fired_at,
                         fired_at_local=rt.renderer.local(e.fired_at, SECONDS),
                         recipients=e.recipients,
                         recipient_names=[rt.org.person_name(r) for r in e.recipients],
                         title=_rung_title(playbook, e), number=numbers.get(_firing_key(
                             e.step_id, e.kind, e.level, e.repeat)),
                         ordinal=sent_before[e.id or 0],
                         fired_late=e.fired_at - e.scheduled_at > lag)
        for e in escalations
    ]


def run_view(
    rt: Runtime, run: Run, *, steps: list[StepInstance] | None = None,
    escalations: list[Escalation] | None = None, events: list[AuditEvent] | None = None,
    playbook: Playbook | None = None,
) -> RunPublic:
    unit = rt.org.units.get(run.unit_id)
    numbers = _letter_numbers(events or [])
    drill = drill_view(run.drill_kind, run.drill_title)
    step_views = ([step_view(rt, s, run_title=run.title, spec=spec_of(playbook, s.step_key),
                             drill=drill)
                   for s in steps] if steps is not None else None)
    if step_views is not None:
        # A called-off task handed out again names the task that replaced it.
        replaced = {v.rehanded_from: v.id for v in step_views if v.rehanded_from is not None}
        for v in step_views:
            v.rehanded_as = replaced.get(v.id)
    if step_views is not None and playbook is not None:
        reached = {s.step_key for s in steps or []}
        passed_over = {*(run.skipped or ()), *passed_over_keys(playbook, run)}
        step_views += [not_reached_view(rt, run, spec,
                                        "skipped" if spec.id in passed_over else "pending")
                       for spec in playbook.steps if spec.id not in reached]
    return RunPublic(
        id=run.id or 0, playbook=run.playbook_id, playbook_version=run.playbook_version,
        title=run.title, unit_id=run.unit_id, unit_name=unit.name if unit else run.unit_id,
        status=run.status, stage=run.stage, stage_title=_stage_title(rt, run, playbook),
        passed_over_stages=list(run.passed_over_stages or ()),
        params=run.params, changeable_params=params_now(rt, run, playbook),
        param_history=history_view(rt, run, playbook, events)
        if events is not None and playbook is not None else None,
        drill=drill, started_by=run.started_by,
        started_by_name=actor_name(rt, run.started_by),
        started_at=run.started_at, started_at_local=rt.renderer.local(run.started_at),
        finished_at=run.finished_at, finished_at_local=_seconds(rt, run.finished_at),
        parent_step_id=run.parent_step_id,
        steps=step_views,
        escalations=_escalation_views(rt, escalations, playbook, numbers)
        if escalations is not None else None,
        timeline=[
            EventPublic(id=e.id or 0, at=e.at,
                        at_local=rt.renderer.local(e.at, "%Y-%m-%d %H:%M:%S"),
                        actor=e.actor, actor_name=actor_name(rt, e.actor), action=e.action,
                        action_name=event_name(e.action),
                        step_id=e.step_id,
                        from_state=e.from_state, to_state=e.to_state, detail=e.detail,
                        names=_event_names(rt, e.detail or {}),
                        times_local=_event_times(rt, e.detail or {}))
            for e in events
        ] if events is not None else None,
    )
