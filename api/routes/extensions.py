"""Requests for more time (延期申请): the assignee asks, the step's supervising role decides."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.deps import MAX_ROW, CurrentPerson, Offset, RowId, RuntimeDep
from api.schemas import SECONDS, DueAt, Page, Person, person_view
from flows import extensions
from flows.extensions import RequestView
from flows.runtime import Runtime

router = APIRouter(tags=["extensions"])


class ExtensionRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    due_at: DueAt = Field(
        description="The deadline asked for, later than the current one: a time with its zone "
        "(2027-01-15T18:00+08:00), a time without zone (read in the bureau's time zone), or a "
        "date (the end of that day, 24:00).")
    reason: str = Field(description="Why more time is needed (required).")


class ExtensionDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approve: StrictBool  # "yes" or 1 must not approve anything
    note: str | None = Field(default=None, description="Required when refusing.")


class ExtensionRequestPublic(BaseModel):
    id: int
    task_id: int
    run_id: int
    step: str
    task_title: str
    task_status: str
    unit_id: str
    unit_name: str
    # lapsed: still pending when its work ended (done, or the run cancelled)
    status: Literal["pending", "approved", "refused", "lapsed"]
    reason: str
    requested_by: Person
    requested_at: datetime
    requested_at_local: str
    old_due_at: datetime | None = Field(description="The deadline the request would replace "
                                        "(for an approved one: the one it replaced).")
    old_due_at_local: str | None
    new_due_at: datetime
    new_due_at_local: str
    original_due_at: datetime | None = Field(description="The task's first deadline, before "
                                             "any extension.")
    original_due_at_local: str | None
    decider_role: str | None
    can_decide: bool = Field(description="Whether the caller may decide it now.")
    decided_by: Person | None
    decided_at: datetime | None
    decided_at_local: str | None
    decide_by: datetime | None = Field(description="When the decision is due (the step's "
                                       "extension.decide_within), if it has such a limit.")
    decide_by_local: str | None
    decision_overdue: bool = Field(description="Pending past decide_by.")
    note: str | None


class ExtensionRequestsPublic(Page):
    data: list[ExtensionRequestPublic]


def request_view(rt: Runtime, v: RequestView) -> ExtensionRequestPublic:
    r, s = v.request, v.step
    unit = rt.org.units.get(s.unit_id)
    return ExtensionRequestPublic(
        id=r.id or 0, task_id=r.step_id, run_id=r.run_id, step=s.step_key, task_title=s.title,
        task_status=s.status, unit_id=s.unit_id, unit_name=unit.name if unit else s.unit_id,
        status=r.status, reason=r.reason,  # type: ignore[arg-type]
        requested_by=person_view(rt, r.requested_by), requested_at=r.requested_at,
        requested_at_local=rt.renderer.local(r.requested_at, SECONDS),
        old_due_at=r.old_due_at, old_due_at_local=rt.renderer.deadline(r.old_due_at) or None,
        new_due_at=r.new_due_at, new_due_at_local=rt.renderer.deadline(r.new_due_at),
        original_due_at=s.original_due_at or s.due_at,
        original_due_at_local=rt.renderer.deadline(s.original_due_at or s.due_at) or None,
        decider_role=v.decider_role,
        can_decide=v.can_decide,
        decided_by=person_view(rt, r.decided_by) if r.decided_by else None,
        decided_at=r.decided_at,
        decided_at_local=rt.renderer.local(r.decided_at, SECONDS) if r.decided_at else None,
        decide_by=r.decide_by,
        decide_by_local=rt.renderer.deadline(r.decide_by) or None,
        decision_overdue=r.status == "pending" and r.decide_by is not None
        and r.decide_by < rt.clock.now(),
        note=r.note,
    )


def _one(rt: Runtime, request_id: int, person: str) -> ExtensionRequestPublic:
    return request_view(rt, extensions.read_request(rt, request_id=request_id, person=person))


_ASK_ERRORS = {409: {"description": "`extension_past_deadline`: the task's deadline has "
                     "passed (a request is made before it; the overdue task stays on its "
                     "escalation ladder); `conflict`: a request is already pending, the task is "
                     "closed, or its step takes no requests"}}


@router.post("/api/tasks/{task_id}/extension-requests", status_code=201,
             response_model=ExtensionRequestPublic,
             responses=_ASK_ERRORS)  # type: ignore[arg-type]
def create(task_id: RowId, body: ExtensionRequestCreate, rt: RuntimeDep,
           person: CurrentPerson) -> ExtensionRequestPublic:
    """The assignee asks for a later deadline, with a reason, before the current one has
    passed; one pending request per task. One asked in time may be decided after it."""
    req = extensions.request_extension(rt, step_id=task_id, actor=person, due_at=body.due_at,
                                       reason=body.reason)
    return _one(rt, req.id or 0, person)


@router.get("/api/extension-requests", response_model=ExtensionRequestsPublic)
def list_(
    rt: RuntimeDep, person: CurrentPerson,
    status: Literal["pending", "approved", "refused", "lapsed"] | None = None,
    mine: bool = False,
    task: Annotated[int | None, Query(ge=1, le=MAX_ROW)] = None,
    unit: Annotated[str | None, Query(description="Tasks of this unit and "
                                      "below (or of events there)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Offset = 0,
) -> ExtensionRequestsPublic:
    """Requests the caller may see, newest first; `mine=true`: those the caller may decide."""
    rows, total = extensions.list_requests(rt, person=person, status=status, mine=mine,
                                           task_id=task, limit=limit, offset=offset, unit=unit)
    return ExtensionRequestsPublic(data=[request_view(rt, v) for v in rows], count=total,
                                   limit=limit, offset=offset)


@router.get("/api/extension-requests/{request_id}", response_model=ExtensionRequestPublic)
def read(request_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> ExtensionRequestPublic:
    return _one(rt, request_id, person)


@router.post("/api/extension-requests/{request_id}/decide",
             response_model=ExtensionRequestPublic)
def decide(request_id: RowId, body: ExtensionDecision, rt: RuntimeDep,
           person: CurrentPerson) -> ExtensionRequestPublic:
    """Approve (the deadline moves, the first one is kept) or refuse (a note is required)."""
    extensions.decide_extension(rt, request_id=request_id, actor=person, approve=body.approve,
                                note=body.note)
    return _one(rt, request_id, person)
