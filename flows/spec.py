"""The playbook format as pydantic models (SPEC.md §2).

Two families share these models:
- the *source* models (`PlaybookSource`, `ModuleSource`, `StepSource`, `ModuleUse`) are the
  YAML an operator writes; `flows/schema_export.py` publishes their JSON Schema for editors;
- the *compiled* models (`Playbook`, `StepSpec`) are what the loader produces and the engine
  runs: modules spliced in, step ids prefixed, steps in a deterministic topological order.
  The engine stores `Playbook.model_dump(mode="json", by_alias=True)` with each run and
  reloads it with `Playbook.model_validate`, so a run keeps the version it started with.

Checks that need the whole step (a notify needs `to`, escalation levels in order) live in
`flows.step_rules.step_problems`, a pure function: the models call it to refuse a bad step,
and the loader calls it to report *every* problem with its line (it validates with
`DEFER_CHECKS`).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flows.durations import Duration, parse_duration
from flows.params import ParamValueError, check_range, coerce
from flows.step_rules import NO_ITEMS, step_problems
from models import task as task_status
from models.clock_time import CLOCK_TIME_PATTERN, parse_clock_time
from models.errors import clipped
from models.numbering import MAX_PREFIX

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
# After splicing, a module's steps are `<as>.<id>`.
STEP_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$"
# Parameter and output names are read in expressions as `params.name`: identifiers only.
NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
DURATION_PATTERN = r"^\s*\d{1,6}\s*(s|m|h|d|wd)\s*$"

# Validation context key: the loader reports cross-field problems itself, with positions.
DEFER_CHECKS = "closeloop_defer_checks"

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
StepId = Annotated[str, StringConstraints(pattern=STEP_ID_PATTERN)]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
# What a photo shows (整改前, 整改后): a short word, read on a phone beside the picture.
MAX_LABEL = 20
EvidenceLabel = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                 max_length=MAX_LABEL)]
# A 文号 prefix (发文机关代字, e.g. 坪应急督): the year and number are added to it.
DOC_PREFIX_PATTERN = r"^[^\s〔〕\[\]()（）{}]+$"


def _doc_prefix(value: str) -> str:
    if not value or len(value) > MAX_PREFIX:
        raise ValueError(f"文号前缀须为 1 至 {MAX_PREFIX} 个字；收到 {len(value)} 个 / a 文号 "
                         f"prefix has 1 to {MAX_PREFIX} characters; got {len(value)}")
    if value.endswith(("第", "号")):
        raise ValueError("文号前缀写到年份之前为止，不带 第 或 号（系统会写成 "
                         "坪应急督〔2026〕15号） / a 文号 prefix ends before the year: no 第 "
                         "or 号 (the engine writes 坪应急督〔2026〕15号)")
    if not re.match(DOC_PREFIX_PATTERN, value):
        raise ValueError("文号前缀是发文机关代字（如 坪应急督），不含空格或括号：年份和序号"
                         "由系统添加 / a 文号 prefix is the issuer's short name (e.g. 坪应急督) "
                         "without spaces or brackets: the engine adds 〔year〕 and the number")
    return value


DocPrefix = Annotated[str, AfterValidator(_doc_prefix),
                      WithJsonSchema({"type": "string", "minLength": 1,
                                      "maxLength": MAX_PREFIX, "pattern": DOC_PREFIX_PATTERN})]

DurationField = Annotated[
    Duration,
    PlainValidator(parse_duration),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "30s | 5m | 2h | 30d | 5wd (working days, Chinese calendar)",
            "examples": ["5m", "1h", "30d", "5wd"],
        }
    ),
]


def _bound(value: Any) -> int | float:
    # YAML `true` is not 1, and "10" is not a number: a bound is written as a number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = clipped(repr(value), 60)
        raise ValueError(f"应为数字；收到 {shown} / expected a number; got {shown}")
    return value


# `min`/`max` of an int or number parameter; one error for a wrong type, not one per union arm.
Bound = Annotated[int | float, PlainValidator(_bound), WithJsonSchema({"type": "number"})]

_BOUND_ZH = {"min": "最小值", "max": "最大值"}

ParamType = Literal["string", "int", "number", "bool", "enum", "date", "datetime", "list"]
Action = Literal["task", "notify", "document", "wait", "playbook"]
DueFrom = Literal["ready", "run", "stage"]
VerifyDueFrom = Literal["submitted", "run"]
# How the holders of a task handed out are told: in the in-app inbox only (the reminders and
# the escalation ladder chase it), or on their own channels as well (DingTalk, SMS, mail).
Announce = Literal["inbox", "channels"]
# What kind of report a step's deadline is (信息报送考核, flows/reporting.py): a fixed list, so
# the monthly figures by kind never split over a typo (首报 and 首报告), and each is checked at
# load with the list it may take. 落实报告 is a lower level's report that its measures are in
# place (a typhoon stage's street and community answers).
ReportKind = Literal["首报", "口头报告", "系统首报", "续报", "补报", "终报", "零报告", "落实报告"]
REPORT_KINDS: tuple[str, ...] = get_args(ReportKind)  # in this order on pages and exports


class _Spec(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )


class ParamSpec(_Spec):
    """A typed input of a playbook or module, or a typed output of a step."""

    type: ParamType = Field(description="Value type; `enum` takes one of `values`.")
    values: list[str] | None = Field(
        default=None, validate_default=True, description="The allowed values of an enum."
    )
    # Before `default`, so the default's validator can hold it to them.
    min: Bound | None = Field(
        default=None, description="int and number: the smallest value accepted."
    )
    max: Bound | None = Field(
        default=None, description="int and number: the largest value accepted."
    )
    required: bool = Field(default=False, description="A value must be given (or defaulted).")
    not_future: bool = Field(
        default=False,
        description="datetime outputs: a time later than now is refused when the step is "
        "completed (when people were moved cannot be tomorrow).",
    )
    not_past: bool = Field(
        default=False,
        description="date and datetime outputs: a day before today (in the bureau's zone), or "
        "a time before now, is refused when the step is completed (a plan cannot set a "
        "completion date that has already passed).",
    )
    not_after_due: str | None = Field(
        default=None,
        description="date and datetime outputs: the id of a step of the same run whose current "
        "deadline (an approved extension included) the value may not pass, e.g. a plan's "
        "completion date within the rectification deadline; no check while that step has no "
        "deadline.",
    )
    default: Any = Field(default=None, description="Used when no value is given.")
    title: str | None = Field(default=None, description="Label shown to people (Chinese).")
    title_en: str | None = Field(default=None, description="Label in English.")
    description: str | None = Field(default=None, description="Help text.")

    @field_validator("values")
    @classmethod
    def _values_only_for_enum(cls, values: list[str] | None, info: ValidationInfo) -> Any:
        kind = info.data.get("type")
        if kind == "enum" and not values:
            raise ValueError("枚举类型须有 values 列表，且不能为空 / an enum needs a non-empty "
                             "list of values")
        if kind is not None and kind != "enum" and values is not None:
            raise ValueError(f"只有 enum 类型才能写 values（这里是 {kind}） / 'values' is only for "
                             f"type enum (this is {kind})")
        if values is not None and len(set(values)) != len(values):
            raise ValueError("枚举的可选值不能重复 / enum values must be distinct")
        return values

    @field_validator("not_future")
    @classmethod
    def _not_future_only_for_times(cls, flag: bool, info: ValidationInfo) -> bool:
        kind = info.data.get("type")
        if flag and kind is not None and kind != "datetime":
            raise ValueError(f"只有 datetime 类型才能写 not_future（这里是 {kind}） / "
                             f"'not_future' is only for type datetime (this is {kind})")
        return flag

    @field_validator("not_past", "not_after_due")
    @classmethod
    def _date_rules_only_for_dates(cls, rule: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("type")
        if rule not in (None, False) and kind is not None and kind not in ("date", "datetime"):
            name = info.field_name
            raise ValueError(f"只有 date 或 datetime 类型才能写 {name}（这里是 {kind}） / "
                             f"'{name}' is only for type date or datetime (this is {kind})")
        return rule

    @field_validator("min", "max")
    @classmethod
    def _bounds_only_for_numbers(cls, bound: float | None, info: ValidationInfo) -> Any:
        kind = info.data.get("type")
        if bound is None or kind is None:
            return bound
        if kind not in ("int", "number"):
            raise ValueError(f"只有 int 和 number 类型才能写 {info.field_name}（这里是 {kind}） / "
                             f"'{info.field_name}' is only for types int and number "
                             f"(this is {kind})")
        try:
            # The same limits as a value: finite, and a whole number within range for an int.
            return coerce(kind, bound)
        except ParamValueError as exc:
            raise ValueError(f"{_BOUND_ZH[info.field_name]} {info.field_name} 不符合 {kind} 类型："
                             f"{exc.zh} / "
                             f"'{info.field_name}' does not fit type {kind}: {exc.en}") from exc

    @field_validator("max")
    @classmethod
    def _max_not_below_min(cls, high: float | None, info: ValidationInfo) -> Any:
        low = info.data.get("min")
        if high is not None and low is not None and high < low:
            raise ValueError(f"最大值 max（{high}）小于最小值 min（{low}） / max ({high}) is below "
                             f"min ({low})")
        return high

    @field_validator("default")
    @classmethod
    def _default_fits_type(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("type")
        if value is None or kind is None or (kind == "enum" and "values" not in info.data):
            return value
        try:
            # Normalised (dates as ISO text) so the compiled playbook round-trips through JSON.
            result = coerce(kind, value, values=info.data.get("values"))
            check_range(result, low=info.data.get("min"), high=info.data.get("max"))
        except ParamValueError as exc:
            raise ValueError(f"默认值不符合 {kind} 类型：{exc.zh} / default does not fit type "
                             f"{kind}: {exc.en}") from exc
        return result


class RunParamSpec(ParamSpec):
    """A playbook's own param: a ParamSpec that may also say it changes while the run runs.
    Step outputs and module params are plain ParamSpecs, so `changeable` there is an unknown
    key, refused at its line."""

    changeable: bool = Field(
        default=False,
        description="A commander of the run's unit may record a new value while the run runs "
        "(typhoon-633's 台风预警信号, raised from 橙色 to 红色 within one stage): POST "
        "/api/runs/{id}/params, or `params` with a stage change. Each change is audited (who, "
        "when, from, to) and told to the holders of the current stage's open tasks; "
        "expressions, titles and documents read the current value, documents the history as "
        "`run.param_history`. An enum's `values` go from lowest to highest: a later value is a "
        "raise (升级), an earlier one a lowering (降级).",
    )
    ack: DurationField | None = Field(
        default=None,
        description="Only with `changeable`: each raise is a 叫应. Everyone told of it must "
        "answer that they received it within this (POST /api/runs/{id}/signal-acks/{ack_id}/"
        "ack, or 收到 on the run page); a miss is chased once, by the sweeper, to the first "
        "`escalate` level of the task the person holds (a community head's: the street head "
        "and commander), as 【叫应未回复】. A lowering asks no answer.",
    )

    @field_validator("ack")
    @classmethod
    def _ack_on_a_raise(cls, value: Duration | None, info: ValidationInfo) -> Duration | None:
        if value is None:
            return value
        if not info.data.get("changeable"):
            raise ValueError("ack（叫应时限）只用于运行中可更改的参数，请同时写 changeable: true / "
                             "ack is only for a param marked `changeable: true`")
        if info.data.get("type") not in ("enum", "int", "number"):
            raise ValueError("ack 要求参数有高低之分（enum、int 或 number），才能判断升级 / ack "
                             "needs a param with an order (enum, int or number) to tell a raise")
        if value.amount <= 0:
            raise ValueError(f"叫应时限须大于0；收到 {value} / the ack time must be above 0; "
                             f"got {value}")
        return value


_WHOLE_DAYS = (
    "Count the days as Chinese law counts a period (民法典 第二百零一条、第二百零三条): the "
    "start's local day is not counted, the deadline is 24:00 local of the last day, and a "
    "last day off (a weekend or holiday on the working-day calendar; a make-up workday is "
    "not one) moves to 24:00 of the first working day after it. Only for days (`30d`): hours "
    "and minutes are elapsed time, working days (`wd`) already end at 24:00.")


def _whole_days_in_days(value: bool, info: ValidationInfo) -> bool:
    after = info.data.get("after")
    if value and isinstance(after, Duration) and after.unit != "d":
        what = ("工作日已按日历计算、于届满日24时截止" if after.unit == "wd"
                else "小时、分钟、秒按实际经过时间计算")
        raise ValueError(f"whole_days 只用于以日计的期限（如 30d），{after} 不是：{what} / "
                         f"whole_days is only for a deadline in days (like 30d), not {after}")
    return value


def _due_shorthand(value: Any) -> Any:
    # `due: 5m` means {after: 5m, from: ready}.
    if isinstance(value, str | int | Duration) and not isinstance(value, bool):
        return {"after": value}
    return value


class DueSpec(_Spec):
    """When a step is due, counted from when it became ready, the run start or the stage."""

    after: DurationField = Field(description="How long after `from` the step is due.")
    from_: DueFrom = Field(
        default="ready",
        alias="from",
        description="ready: the step became ready (default); run: the run started; "
        "stage: the run entered the step's stage.",
    )
    whole_days: bool = Field(default=False, description=_WHOLE_DAYS)

    _days_only = field_validator("whole_days")(_whole_days_in_days)

    @property
    def on_calendar(self) -> bool:
        """Whether the working-day calendar moves this deadline (a year added to it may)."""
        return self.after.is_working_days or self.whole_days


class RemindSpec(_Spec):
    """A reminder sent before the due time."""

    before: DurationField = Field(description="How long before the due time to remind.")
    to: list[str] = Field(
        default_factory=list, description="Roles or channels; empty means the assignees."
    )


class EscalateSpec(_Spec):
    """One escalation level, counted from the due time (or the ack deadline)."""

    after: DurationField = Field(description="How long after the due time this level fires.")
    notify: list[str] = Field(
        min_length=1, description="Roles or channel names to notify; `a|b` names alternatives "
        "(whichever the unit has: `community_head|enterprise_head`).")
    at: Slug | None = Field(
        default=None,
        description="Unit type (district, street, ...) where this level's roles resolve: the "
        "nearest unit of that type at or above where the step is held, e.g. `at: district` so "
        "a street's overdue step reaches the bureau's commander, not the street's own "
        "(a role resolves in the nearest unit holding it). Default: where the step is held.",
    )
    repeat: DurationField | None = Field(
        default=None, description="Repeat this level at this interval until the step is done."
    )

    @field_validator("repeat")
    @classmethod
    def _repeat_is_an_interval(cls, value: Duration | None) -> Duration | None:
        # Every 0 minutes is no interval: the sweeper could never say when the next one is due.
        if value is not None and value.amount <= 0:
            raise ValueError(f"重复间隔 repeat 须大于 0；收到 {value} / repeat must be longer "
                             f"than 0; got {value}")
        return value
    title: str | None = Field(default=None, description="Label of the level (e.g. 督办函).")
    template: str | None = Field(
        default=None,
        description="Jinja2 template of this level's message (e.g. supervision-letter.md.j2); "
        "default alert-message.md.j2.",
    )
    number: DocPrefix | None = Field(
        default=None,
        description="文号 prefix: each firing of this level is a numbered letter (坪应急督函"
                    "〔2026〕3号), the next number of the prefix in its year; the template "
                    "reads it as `doc_no`.",
    )


class EvidenceSpec(_Spec):
    """What completing the step requires."""

    photos: int = Field(default=0, ge=0, description="Minimum number of photos.")
    files: int = Field(default=0, ge=0, description="Minimum number of files.")
    note: bool = Field(default=False, description="A written note is required.")
    labels: list[EvidenceLabel] = Field(
        default_factory=list,
        description="What each photo shows, e.g. [整改前, 整改后]: every photo handed in is "
        "marked with one of these (`evidence_labels` of the completion), and each needs at "
        "least one photo. A verifier judges a rectification by the scene before and after; "
        "two photos of the finished work are not that.")

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels):
            raise ValueError("照片类别不能重复 / evidence labels must be distinct")
        return labels

    @property
    def min_photos(self) -> int:
        """Photos a hand-in needs at least: one of each label counts toward `photos`."""
        return max(self.photos, len(self.labels))


class VerifyDueSpec(_Spec):
    """When the verifier must have decided, counted from the submission or the run start."""

    after: DurationField = Field(description="How long after `from` the verdict is due.")
    from_: VerifyDueFrom = Field(
        default="submitted",
        alias="from",
        description="submitted: the work was handed in (default); run: the run started (a "
        "report that must be signed off within the hour of the alert).",
    )
    whole_days: bool = Field(default=False, description=_WHOLE_DAYS)

    _days_only = field_validator("whole_days")(_whole_days_in_days)

    @property
    def on_calendar(self) -> bool:
        """Whether the working-day calendar moves this deadline (a year added to it may)."""
        return self.after.is_working_days or self.whole_days


VerifyDueField = Annotated[
    VerifyDueSpec | None,
    # `due: 10d` under verify means {after: 10d, from: submitted}.
    BeforeValidator(_due_shorthand, json_schema_input_type=DurationField | VerifyDueSpec | None),
]


class VerifySpec(_Spec):
    """A second person approves the work (四眼原则)."""

    role: str = Field(description="Role of the verifier.")
    distinct: bool = Field(
        default=True, description="The verifier must not be the person who completed the step."
    )
    phase: str | None = Field(
        default=None, max_length=40,
        description="Label of the run's phase while the work awaits verification (复查中); "
                    "without it the step's own phase is shown.",
    )
    reject_phase: str | None = Field(
        default=None, max_length=40,
        description="Label of the run's phase while work the verifier sent back is done "
                    "again (退回整改), so a register tells it from work never handed in; "
                    "without it the step's own phase is shown.",
    )
    # Without a deadline of its own, work handed in on time could wait for its verifier for
    # ever: the assignee's ladder pauses while the work is verified, and nobody else is chased.
    due: VerifyDueField = Field(
        default=None,
        description="Deadline for the verdict: `10d` (from the submission) or "
                    "{after: 60m, from: run}.",
    )
    escalate: list[EscalateSpec] = Field(
        default_factory=list,
        description="Levels chasing an overdue verdict, counted from verify.due; each "
                    "names who is told (the verifier's role, their superiors).",
    )

    @cached_property
    def ladder(self) -> list[EscalateSpec]:
        """The levels the sweeper fires: without `escalate`, the verifiers are told once at
        the deadline (a deadline nobody hears of chases nobody)."""
        if self.escalate or self.due is None:
            return list(self.escalate)
        return [EscalateSpec.model_validate({"after": "0m", "notify": [self.role],
                                             "title": "核验超时"})]


class CheckSpec(_Spec):
    """A rule the outputs must meet together when the step is completed (one output's type and
    bounds are its own; this is for what several say at once)."""

    expr: str = Field(
        description="An expression true when the outputs are acceptable. Sees `outputs` (the "
        "values being handed in), `item`, `params`, `run`, `steps` and `paired`: for a step "
        "with `item_needs`, each such need's record for the same item (its `outputs`), e.g. "
        "outputs.returned + outputs.remaining == paired.transfer.outputs.moved.")
    message: str = Field(
        min_length=1,
        description="Said to the person when the expression is false; may use {{ }} with the "
        "same names, e.g. 应等于转移人数 {{ paired.transfer.outputs.moved }} 人.")
    output: Name | None = Field(
        default=None, description="The output the message is about (its box is marked).")


class ExtensionSpec(_Spec):
    """Requests for more time: the assignee asks with a reason, this role decides."""

    role: str = Field(description="Role that approves or refuses (the supervising role).")
    ask_before: DurationField | None = Field(
        default=None,
        description="A request must come at least this long before the current deadline "
                    "(Qingdao's listed supervision: 20wd); a later one is refused.",
    )
    decide_within: DurationField | None = Field(
        default=None,
        description="The decider must decide within this long of the request (Qingdao: 10wd); "
                    "an undecided request is then chased once, to the decider and the unit "
                    "head above.",
    )


# A time of day, local to the installation (Asia/Shanghai by default): 08:00, 17:00.


def _clock_time(value: Any) -> str:
    parse_clock_time(value, name_zh="时刻", examples_zh='"08:00"、"17:30"',
                     subject_en="a time of day is written", example_en='"08:00"')
    return str(value)


ClockTime = Annotated[str, PlainValidator(_clock_time),
                      WithJsonSchema({"type": "string", "pattern": CLOCK_TIME_PATTERN,
                                      "examples": ["08:00", "17:00"]})]


class RecurSpec(_Spec):
    """Rounds of a step: a report owed again and again while the event lasts (续报 daily at
    08:00 and 17:00, DOMAIN.md), each round a task of its own with the step's deadline and
    ladder, until one of `until` has finished."""

    at: list[ClockTime] = Field(
        default_factory=list,
        description="Local times of day at which the next round is handed out, e.g. "
                    "['08:00', '17:00'] (the first round comes when the step is first ready).")
    every: DurationField | None = Field(
        default=None,
        description="Or: the next round this long after the previous one was handed out "
                    "(at least 10m).")
    early_by: list[str] = Field(
        default_factory=list,
        description="Roles that may also ask for the next round at once (立即续报), besides "
                    "whoever does the rounds and the run's commanders: the duty leader who "
                    "judges the situation has changed.")
    until: list[str] = Field(
        min_length=1,
        description="Steps whose finishing ends the rounds (the first of them to finish): no "
                    "round after it, and a round still open then is withdrawn (the final "
                    "report says the rest).")


class FollowUpSpec(_Spec):
    """Rounds of a fan-out step item by item, until each item's answer says it is over: a
    community with people still in the shelter after the return is asked every day how many
    came back and how many remain, until none remain (安置人员返回跟踪). The first round of an
    item comes after its `item_needs` record, the next after each round handed in, while
    `while` holds for the record before it (`previous`)."""

    at: ClockTime | None = Field(
        default=None,
        description="Local time of day each round is handed out, on the day after the record "
                    "it follows was handed in (\"09:00\": one round a day at most).")
    every: DurationField | None = Field(
        default=None,
        description="Or: each round this long after the record it follows was handed in "
                    "(at least 10m): people a typhoon's red signal finds still in a danger zone "
                    "are asked after every hour, not the next morning.")
    until_stage: Slug | None = Field(
        default=None,
        description="A later stage whose entry ends the rounds: none is written after it, one "
                    "written ahead or still open is withdrawn, and each item's last record "
                    "stands as its count (people still unmoved at 解除 are recorded, not "
                    "asked to move after the storm).")
    while_: str = Field(
        alias="while", min_length=1,
        description="An expression on `previous` (the item's record this round would follow: "
                    "its `item_needs` record for the first round, its last round after), true "
                    "while another round is owed, e.g. previous.outputs.remaining > 0. False "
                    "for the need's record: the item gets no round (passed over).")
    state: list[Name] = Field(
        default_factory=list,
        description="Outputs besides those `while` reads that say where an item stands (the "
                    "reasons the people still not moved are not moved): with those, each "
                    "item's latest round counts in the run's summary, never a sum of rounds.")
    label: str | None = Field(
        default=None,
        description="Added to each round's title, may use {{ previous.outputs.x }}: the "
                    "running count the person answers against, e.g. 上次仍在安置 "
                    "{{ previous.outputs.remaining }} 人.")


class AlertSpec(_Spec):
    """A message sent the moment a task is handed in with outputs that call for it: a
    community whose transfer (or a follow-up round) leaves people 应转未转 in a danger zone
    hours before a red signal's impact tells the street head and commander at once, not when
    a later round is late."""

    when: str = Field(
        min_length=1,
        description="An expression on the handed-in `outputs` (and `paired`, `previous`, "
                    "`item`, `params`), true when the message is owed, e.g. "
                    "outputs.not_moved > 0.")
    to: list[str] = Field(
        min_length=1,
        description="Roles (resolved up from the item's unit) or channels to tell, on their "
                    "own channels; `a|b` names alternatives.")
    title: str = Field(
        min_length=1, description="What the message is, in its title: 【<title>】 (Chinese).")
    message: str = Field(
        min_length=1,
        description="The body, a Jinja2 template over the same names as `when`: which "
                    "community (`item.name`), how many, why.")


class RegisterSpec(_Spec):
    """Which steps give a run's register entry (台账) its deadline, plan and closure."""

    closed_by: str = Field(description="Step whose finishing closes the record (销号).")
    due_by: str | None = Field(
        default=None, description="Step whose due time is the record's deadline."
    )
    plan_by: str | None = Field(
        default=None, description="Step whose outputs are the record's plan (整改方案)."
    )


DueField = Annotated[
    DueSpec | None,
    BeforeValidator(_due_shorthand, json_schema_input_type=DurationField | DueSpec | None),
]


class StepSource(_Spec):
    """One step as written in a playbook or module file."""

    id: Slug = Field(description="Unique in the playbook: lowercase letters, digits, - and _.")
    title: str = Field(min_length=1, description="What to do, as people read it (Chinese).")
    title_en: str | None = Field(default=None, description="The title in English.")
    description: str | None = Field(default=None, description="Instructions for the assignee.")
    role: str | None = Field(
        default=None, description="Who does it: a role resolved through the org chart."
    )
    at: Slug | None = Field(
        default=None,
        description="Unit type (district, street, ...) where the step is held: the nearest unit "
        "of that type at or above the run's (or item's) unit. Its roles, escalations and "
        "verifier resolve there, e.g. `at: district` for the bureau's duty room taking an "
        "alert whichever community it came from. Default: the run's unit.",
    )
    action: Action = Field(
        default="task",
        description="task: a person does it; notify: send `template` to `to`; document: "
        "render `template`; wait: wait for its due time or stage; playbook: start a child run.",
    )
    needs: list[str] = Field(
        default_factory=list,
        description="Steps that must finish first; a module step is `<as>.<id>`.",
    )
    item_needs: list[str] = Field(
        default_factory=list,
        description="Fan-out steps of `needs` this fan-out step waits for item by item, not "
        "whole: its instance for an item becomes ready once that item's instances of these "
        "steps have finished (they fan out over the same `for_each`), e.g. a community's "
        "return record waits for that community's transfer, not every community's. Until "
        "then the instance is listed as pending (未开始).",
    )
    when: str | None = Field(
        default=None, description="Jinja2 expression; when false the step is skipped."
    )
    stage: str | None = Field(
        default=None, description="The step becomes ready when the run enters this stage."
    )
    for_each: str | None = Field(
        default=None,
        description="Jinja2 expression giving a list; one step instance per item (`item`).",
    )
    due: DueField = Field(default=None, description="Deadline: `5m` or {after: 30d, from: run}.")
    remind: list[RemindSpec] = Field(
        default_factory=list, description="Reminders before the due time."
    )
    escalate: list[EscalateSpec] = Field(
        default_factory=list, description="Escalation levels, in order of `after`."
    )
    ack: DurationField | None = Field(
        default=None, description="Must be acknowledged within this, else it escalates."
    )
    announce: Announce | None = Field(
        default=None,
        description="How the task's holders are told it is handed out: `inbox` (the in-app "
        "inbox only) or `channels` (their own channels too, e.g. DingTalk at 3 a.m.). Default: "
        "the playbook's `announce`.",
    )
    evidence: EvidenceSpec | None = Field(
        default=None, description="What completing the step requires."
    )
    verify: VerifySpec | None = Field(
        default=None, description="A second person approves the work."
    )
    not_by: list[str] = Field(
        default_factory=list,
        description="Steps whose hand-in disqualifies: whoever handed one of them in may not "
                    "complete this one (四眼: 销号 not by the rectifier, even one it was "
                    "reassigned to).",
    )
    template: str | None = Field(
        default=None, description="Jinja2 template in playbooks/templates (notify, document)."
    )
    to: list[str] = Field(default_factory=list, description="notify: roles or channels; `a|b` "
                          "names alternatives (whichever the unit has).")
    number: DocPrefix | None = Field(
        default=None,
        description="document or notify: 文号 prefix (发文机关代字, e.g. 坪应急督); the document "
                    "takes the next number of the prefix in its year from the bureau's register "
                    "(坪应急督〔2026〕15号), as `doc_no` in the template. Steps of one run with "
                    "the same prefix share one number (a notice and its serving).",
    )
    playbook: str | None = Field(
        default=None, description="action: playbook: id of the playbook to start."
    )
    with_: dict[str, Any] = Field(
        default_factory=dict,
        alias="with",
        description="action: playbook: the child's params; strings may hold {{ expressions }}.",
    )
    outputs: dict[Name, ParamSpec] = Field(
        default_factory=dict, description="Typed values the person fills in when completing."
    )
    checks: list[CheckSpec] = Field(
        default_factory=list,
        description="Rules the outputs must meet together, checked when the step is completed; "
        "the first one false refuses the completion with its message.",
    )
    phase: str | None = Field(
        default=None,
        description="Label of the run's phase while this step is open (shown in registers, "
        "e.g. 整改中).",
    )
    extension: ExtensionSpec | None = Field(
        default=None,
        description="Who decides the assignee's requests for more time on this step.",
    )
    report: ReportKind | None = Field(
        default=None,
        description="This step's deadline is a reporting deadline (信息报送考核): the kind "
        "of report it is (首报, 口头报告, 系统首报, 续报, 补报, 终报, 零报告, 落实报告). "
        "Each instance (each round of a recurring 续报, each fan-out item) is measured in "
        "the monthly reporting figures: done by its deadline, late (迟报) or never done "
        "(漏报). Put it on the step a person completes by the deadline (the writing), not "
        "on the automatic sending that follows it. Needs `due`.",
    )
    recur: RecurSpec | None = Field(
        default=None,
        description="Hand the step out again in rounds (续报 at 08:00 and 17:00) until one of "
                    "`until` has finished; a step that waits for it item by item "
                    "(`item_needs`, no `for_each`) follows it round by round.",
    )

    follow_up: FollowUpSpec | None = Field(
        default=None,
        description="Hand each item of this fan-out out again, a round a day at `at`, while "
                    "`while` holds for the item's record before (`previous`): 安置人员返回跟踪 "
                    "until nobody remains in the shelter. Needs `for_each`, one `item_needs` "
                    "(what the first round follows) and `due` from the round's hand-out.",
    )

    alert: AlertSpec | None = Field(
        default=None,
        description="A task only: tell `to` at once when a hand-in's outputs make `when` true "
                    "(each instance and each round on its own): 应转未转 people left at the "
                    "transfer reach the street head and commander the moment it is handed in.",
    )

    def phase_while(self, statuses: list[str]) -> str | None:
        """The run's phase named by this step's instances (`statuses`, one per instance): the
        verifier's `phase` while all of them await verification (复查中), its `reject_phase`
        while one was sent back (退回整改), the step's `phase` while one is open, else None.
        One rule for the registers (a run's first open step in playbook order) and 当前卡点
        (each open task), so both say the same phase."""
        verify = self.verify
        if verify is not None and verify.phase and statuses and all(
                s == task_status.SUBMITTED for s in statuses):
            return verify.phase
        if verify is not None and verify.reject_phase and task_status.REJECTED in statuses:
            return verify.reject_phase
        if self.phase and any(s in task_status.OPEN_STATUSES for s in statuses):
            return self.phase
        return None

    @model_validator(mode="after")
    def _whole_step(self, info: ValidationInfo) -> Any:
        if not (info.context or {}).get(DEFER_CHECKS):
            problems = step_problems(self)
            if problems:
                at, message = problems[0]
                raise PydanticCustomError("closeloop", "{message}", {"message": message, "at": at})
        return self


class StepSpec(StepSource):
    """A compiled step: ids prefixed, module `when` folded in, with where it came from."""

    id: StepId = Field(  # type: ignore[assignment]
        description="Unique in the playbook; module steps are `<as>.<id>`."
    )
    line: int = Field(default=0, description="Line of the step in `file`, for messages.")
    file: str = Field(default="", description="The playbook or module file the step came from.")


class ModuleUse(_Spec):
    """Splices a module's steps into the playbook, their ids prefixed with `as.`."""

    use: Slug = Field(description="Module name: playbooks/modules/<use>.yaml.")
    as_: Slug | None = Field(
        default=None, alias="as", description="Prefix of the spliced step ids (default: use)."
    )
    with_: dict[str, Any] = Field(
        default_factory=dict,
        alias="with",
        description="Values for the module's params; `${name}` in the module is replaced.",
    )
    needs: list[str] = Field(
        default_factory=list,
        description="Steps that must finish before the module's first steps (those with no "
        "needs inside the module).",
    )
    when: str | None = Field(
        default=None, description="Jinja2 expression; when false every module step is skipped."
    )
    at: Slug | None = Field(
        default=None,
        description="Unit type where the module's steps are held (a step's own `at` wins).",
    )

    @property
    def prefix(self) -> str:
        return self.as_ or self.use


class PlaybookHeader(_Spec):
    """The fields a playbook has apart from its steps."""

    id: Slug = Field(description="Unique among playbooks; the file is playbooks/<id>.yaml.")
    version: int = Field(ge=1, strict=True, description="A run pins the version it started with.")
    title: str = Field(min_length=1, description="Name of the playbook (Chinese).")
    title_en: str | None = Field(default=None, description="Name in English.")
    kind: str = Field(
        default="response", description="Free label: response | rectification | typhoon | ..."
    )
    description: str | None = Field(default=None, description="What the playbook is for.")
    params: dict[Name, RunParamSpec] = Field(
        default_factory=dict, description="Typed inputs, checked when a run starts; those "
        "marked `changeable` may be changed while it runs."
    )
    stages: list[Slug] = Field(
        default_factory=list, description="Ordered stages of a staged run (typhoon)."
    )
    title_params: list[Name] = Field(
        default_factory=list,
        description="Params whose values name a run after the playbook's title, before where it "
        "is: [name] titles a typhoon's run 台风633分级响应·山竹·坪山区.",
    )
    stage_titles: dict[Slug, str] = Field(
        default_factory=dict,
        description="Names of the stages as people read them (Chinese), e.g. {warning: 台风警报}; "
        "a stage without one is shown by its id.",
    )
    register_: RegisterSpec | None = Field(
        default=None, alias="register",
        description="Keep a register entry (台账) for each run of this playbook.",
    )
    announce: Announce = Field(
        default="inbox",
        description="How the holders of its tasks are told a task is handed out, unless a step "
        "says otherwise: `inbox` (the in-app inbox; reminders and escalations chase it: a "
        "district's 400,000 hazards a year) or `channels` (their own channels too: a response "
        "whose first tasks are due in minutes).",
    )
    started_by: list[str] = Field(
        default_factory=list,
        description="Roles that may start a run, besides `commander`, in the units where they "
        "hold the role and below (an inspector registering the hazard they found).",
    )

    @field_validator("params", mode="before")
    @classmethod
    def _plain_specs_taken(cls, params: Any) -> Any:
        # A playbook built in code from plain ParamSpecs (tests, tools) is read as written.
        if not isinstance(params, dict):
            return params
        return {name: spec.model_dump(exclude_unset=True) if type(spec) is ParamSpec else spec
                for name, spec in params.items()}

    @field_validator("stages")
    @classmethod
    def _distinct_stages(cls, stages: list[str]) -> list[str]:
        seen: set[str] = set()
        for stage in stages:
            if stage in seen:
                raise ValueError(f"阶段 {stage} 写了两次 / stage '{stage}' is listed twice")
            seen.add(stage)
        return stages

    def stage_title(self, stage: str | None) -> str | None:
        """A stage as people read it: its title, else its id."""
        return None if stage is None else self.stage_titles.get(stage, stage)


class PlaybookSource(PlaybookHeader):
    """A playbook file as written (playbooks/<id>.yaml)."""

    model_config = ConfigDict(
        title="closeloop playbook",
        json_schema_extra={"description": "A closeloop playbook (SPEC.md §2)."},
    )

    modules: list[ModuleUse] = Field(
        default_factory=list, description="Reusable step groups spliced into this playbook."
    )
    steps: list[StepSource] = Field(default_factory=list, description="The steps.")


class ModuleHeader(_Spec):
    """The fields a module has apart from its steps."""

    id: Slug = Field(description="Module name; the file is playbooks/modules/<id>.yaml.")
    title: str = Field(min_length=1, description="Name of the module (Chinese).")
    title_en: str | None = Field(default=None, description="Name in English.")
    description: str | None = Field(default=None, description="What the module does.")
    params: dict[Name, ParamSpec] = Field(
        default_factory=dict, description="Typed values a `with` sets; used as ${name}."
    )


class ModuleSource(ModuleHeader):
    """A module file as written (playbooks/modules/<id>.yaml)."""

    model_config = ConfigDict(title="closeloop module")

    steps: list[StepSource] = Field(min_length=1, description="The module's steps.")


class Playbook(PlaybookHeader):
    """A compiled playbook, ready for the engine."""

    steps: list[StepSpec] = Field(
        min_length=1,
        description="Modules spliced in, in topological order (ties in file order).",
    )
    source_file: str = Field(description="The file it was loaded from.")
    sha256: str = Field(description="Hash of the playbook text, of the modules it uses and of "
                        "the templates it renders.")
    source_sha256: str | None = Field(
        default=None,
        description="Hash of the playbook text and its modules alone (what `sha256` was before "
                    "templates were pinned; None in versions stored then, whose `sha256` is it).",
    )
    templates: dict[str, str] = Field(
        default_factory=dict,
        description="The texts of the templates its steps and levels render (and those they "
                    "include), as they were when it was loaded: a run renders what it started "
                    "with. Empty in versions stored before templates were pinned.",
    )

    @model_validator(mode="after")
    def _graph(self) -> Playbook:
        # The loader reports these with positions; this guards playbooks built elsewhere
        # (tests, a stored JSON copy) so the engine can rely on the order.
        seen: set[str] = set()
        stages = set(self.stages)
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"步骤 id {step.id} 重复 / duplicate step id '{step.id}'")
            for need in step.needs:
                if need not in seen:
                    raise ValueError(
                        f"步骤 {step.id} 依赖的 {need} 不存在或不在它之前 / "
                        f"step '{step.id}' needs '{need}', which is unknown or not before it"
                    )
            for need in step.item_needs:
                if need not in step.needs:
                    raise ValueError(
                        f"步骤 {step.id} 的 item_needs 中的 {need} 不在它的 needs 中 / step "
                        f"'{step.id}': item_needs '{need}' is not one of its needs"
                    )
            if step.stage is not None and step.stage not in stages:
                raise ValueError(f"步骤 {step.id} 的阶段 {step.stage} 不存在 / "
                                 f"step '{step.id}' has unknown stage '{step.stage}'")
            seen.add(step.id)
        by_id = {step.id: step for step in self.steps}
        for step in self.steps:
            for ref in step.recur.until if step.recur is not None else ():
                if ref not in by_id:
                    raise ValueError(f"步骤 {step.id} 的 recur.until 中的 {ref} 不存在 / step "
                                     f"'{step.id}': recur.until names unknown step '{ref}'")
            if step.item_needs and step.for_each is None and not all(
                    by_id[need].recur is not None for need in step.item_needs):
                raise ValueError(f"步骤 {step.id}：{NO_ITEMS}")
        for name in self.title_params:
            if name not in self.params:
                raise ValueError(f"title_params 中的参数 {name} 不存在 / title_params names "
                                 f"unknown param '{name}'")
        for stage in self.stage_titles:
            if stage not in stages:
                raise ValueError(f"stage_titles 中的阶段 {stage} 不存在 / stage_titles names "
                                 f"unknown stage '{stage}'")
        if self.register_ is not None:
            for key in ("closed_by", "due_by", "plan_by"):
                ref = getattr(self.register_, key)
                if ref is not None and ref not in seen:
                    raise ValueError(f"台账 register.{key} 中没有步骤 {ref}（可选："
                                     f"{'、'.join(sorted(seen))}） / register.{key}: unknown "
                                     f"step '{ref}' (known: {', '.join(sorted(seen))})")
        return self

    @cached_property
    def _index(self) -> dict[str, StepSpec]:
        return {step.id: step for step in self.steps}

    @cached_property
    def _dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {step.id: [] for step in self.steps}
        for step in self.steps:
            for need in step.needs:
                out[need].append(step.id)
        return out

    @cached_property
    def recurring(self) -> list[StepSpec]:
        """The steps handed out in rounds (`recur`); empty for almost every playbook."""
        return [step for step in self.steps if step.recur is not None]

    def step(self, id: str) -> StepSpec:
        """The step with this id; KeyError if there is none."""
        try:
            return self._index[id]
        except KeyError:
            raise KeyError(f"playbook '{self.id}' has no step '{id}'") from None

    @property
    def step_ids(self) -> list[str]:
        return [step.id for step in self.steps]

    def dependents(self, id: str) -> list[str]:
        """Ids of the steps that list `id` in their needs, in playbook order."""
        self.step(id)
        return list(self._dependents[id])

    def stage_steps(self, stage: str) -> list[StepSpec]:
        """Steps that become ready when the run enters `stage`."""
        return [step for step in self.steps if step.stage == stage]
