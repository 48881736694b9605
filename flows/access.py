"""Who may do what (SPEC §3): `commander`, `manager` and `admin` carry rights in the product;
every other role only lets its holders act on the step instances assigned to that role in
their unit or below."""

from __future__ import annotations

from models.errors import Forbidden, InvalidInput
from models.org import OrgChart
from models.run import Run
from models.task import StepInstance


def is_admin(org: OrgChart, person_id: str) -> bool:
    return "admin" in org.person(person_id).roles


def can_act_on(org: OrgChart, person_id: str, step: StepInstance) -> bool:
    if step.assignee_person_id is not None:
        return step.assignee_person_id == person_id
    return step.role is not None and org.can_act_as(person_id, step.role, step.unit_id)


def require_act(org: OrgChart, person_id: str, step: StepInstance) -> None:
    if not can_act_on(org, person_id, step):
        raise Forbidden(
            f"该任务不属于你：需要{step.role or '指定人员'}（{step.unit_id} 或上级单位）"
            f" / not assigned to you (role {step.role}, unit {step.unit_id})"
        )


def require_right(org: OrgChart, person_id: str, right: str, unit_id: str) -> None:
    if not org.has_right(person_id, right, unit_id):
        raise Forbidden(
            f"需要 {right} 权限（{unit_id} 或上级单位）/ requires role '{right}' in unit "
            f"'{unit_id}' or above"
        )


def can_read_unit(org: OrgChart, person_id: str, unit_id: str) -> bool:
    """A person sees runs of their own branch of the tree: their unit and below (their units'
    work) and the units above it (district-wide runs they take part in)."""
    person = org.person(person_id)
    return (
        org.is_within(unit_id, person.unit_id)
        or org.is_within(person.unit_id, unit_id)
        or is_admin(org, person_id)
    )


def require_read_run(org: OrgChart, person_id: str, run: Run) -> None:
    if not can_read_unit(org, person_id, run.unit_id):
        raise Forbidden(
            f"无权查看该事件（属于 {run.unit_id}）/ run belongs to unit '{run.unit_id}', "
            "outside your units"
        )


def can_read_step(org: OrgChart, person_id: str, step: StepInstance) -> bool:
    """Their own tasks, and the tasks of their unit and the units below it."""
    if can_act_on(org, person_id, step) or is_admin(org, person_id):
        return True
    return org.is_within(step.unit_id, org.person(person_id).unit_id)


def readable_units(
    org: OrgChart, person_id: str, *, above: bool = True
) -> list[str] | None:
    """Units whose runs (above=True: also the units above, whose runs they take part in) or
    tasks (above=False) the person may list; None means every unit (admin)."""
    if is_admin(org, person_id):
        return None
    person = org.person(person_id)
    below = org.descendants(person.unit_id, include_self=True)
    ups = org.ancestors(person.unit_id, include_self=False) if above else []
    return list(dict.fromkeys([*below, *ups]))


def listing_units(
    org: OrgChart, person_id: str, unit: str | None, *, above: bool = True
) -> list[str] | None:
    """Units a list may show: what the person may read, narrowed to `unit` and below."""
    units = readable_units(org, person_id, above=above)
    if not unit:
        return units
    if unit not in org.units:
        raise InvalidInput("unit", f"unknown unit '{unit}'")
    return [u for u in org.descendants(unit) if units is None or u in units]
