"""Who may do what (SPEC §3): `commander`, `manager` and `admin` carry rights in the product;
every other role only lets its holders act on the step instances assigned to that role in
their unit or below."""

from __future__ import annotations

from models.errors import Forbidden, InvalidInput, clipped
from models.org import ROLE_NAMES_ZH, OrgChart, Person
from models.run import Run
from models.task import StepInstance


def is_admin(org: OrgChart, person_id: str) -> bool:
    return "admin" in org.person(person_id).roles


def can_act_on(org: OrgChart, person_id: str, step: StepInstance) -> bool:
    if step.assignee_person_id is not None:
        return step.assignee_person_id == person_id
    # The unit that holds the step (`at:`), never its origin_unit_id: the street's duty officer
    # sees the district duty room's step of a leak in the street but does not do it. A unit
    # gone from the org chart has nobody in it: no right (not a 404 about the unit).
    return (step.role is not None and step.unit_id in org.units
            and org.can_act_as(person_id, step.role, step.unit_id))




def role_zh(role: str) -> str:
    """带班领导（duty_leader）: the role as people say it, with its id for the admin."""
    said = ROLE_NAMES_ZH.get(role)
    return f"{said}（{role}）" if said else role


def who_may(org: OrgChart, role: str, unit_id: str) -> tuple[str, str]:
    """(Chinese, English): the role, where, and the people who hold it there now, so a 403
    tells the person at 3 a.m. whom to call instead of only what they lack."""
    unit = org.unit_name(unit_id) if unit_id in org.units else unit_id
    holders = org.resolve_role(role, unit_id)[1] if unit_id in org.units else []
    names = "、".join(h.name for h in holders[:5])
    # The holders inside the brackets: callers wrap this in 需要…的权限 and join several with
    # 或, which a trailing "，现为…" would garble (需要指挥长（…），现为王强的权限).
    return (f"{role_zh(role)}（{unit}或上级单位" + (f"；现任：{names}" if names else "") + "）",
            f"role '{role}' in unit '{unit_id}' or above"
            + (f", now {', '.join(h.id for h in holders[:5])}" if holders else ""))


def may_start(org: OrgChart, person_id: str, started_by: list[str], unit_id: str) -> bool:
    """A commander of the unit or above (an admin anywhere) starts any playbook there; a
    playbook's `started_by` roles start it in their own unit and below: an inspector registers
    the hazard found on the street's rounds, a grid worker the one in the community."""
    if org.has_right(person_id, "commander", unit_id):
        return True
    person = org.people.get(person_id)
    return person is not None and any(role in person.roles for role in started_by) \
        and org.is_within(unit_id, person.unit_id)


def require_start(org: OrgChart, person_id: str, started_by: list[str], unit_id: str) -> None:
    if may_start(org, person_id, started_by, unit_id):
        return
    said = [who_may(org, role, unit_id) for role in ("commander", *started_by)]
    raise Forbidden("需要" + "；或".join(zh for zh, _ in said) + " / requires "
                    + "; or ".join(en for _, en in said))


def nobody_for(org: OrgChart, role: str, title: str, step_id: str, unit_id: str,
               held_at: str) -> tuple[str, str]:
    """(zh, en): nobody holds `role` where a step of a run at `unit_id` would be done
    (`held_at`, the unit its `at` holds it at, or the run's own), so its task would go to no
    one. Where the step is held above the run's unit, another unit for the run cannot help:
    the org chart lacks the role there."""
    unit = org.unit(unit_id)
    if held_at != unit_id:
        above = org.unit(held_at)
        return (f"{above.name}（{held_at}）及其上级均无{role_zh(role)}，“{title}”在该单位办理，"
                "无人可办：请在组织架构中为其配备该岗位人员",
                f"neither unit '{held_at}' ({above.name}), where step '{step_id}' ({title}) is "
                f"held, nor any unit above it has a {role}: nobody could do it; the org chart "
                "needs one")
    return (f"单位 {unit_id}（{unit.name}）及其上级均无{role_zh(role)}，“{title}”无人可办，"
            "请改填有该岗位人员的单位",
            f"neither unit '{unit_id}' ({unit.name}) nor any unit above it has a {role}: "
            f"nobody could do step '{step_id}' ({title})")


def require_act(org: OrgChart, person_id: str, step: StepInstance) -> None:
    if not can_act_on(org, person_id, step):
        if step.assignee_person_id is not None or not step.role:
            names = "、".join(org.people[p].name for p in step.assignees if p in org.people)
            raise Forbidden(f"该任务不属于你：已指定由{names or '他人'}办理 / not assigned to "
                            f"you (assigned to {', '.join(step.assignees) or 'someone else'})")
        zh, en = who_may(org, step.role, step.unit_id)
        raise Forbidden(f"该任务不属于你：需要{zh} / not assigned to you: needs {en}")


def require_right(org: OrgChart, person_id: str, right: str, unit_id: str) -> None:
    if not org.has_right(person_id, right, unit_id):
        zh, en = who_may(org, right, unit_id)
        raise Forbidden(f"需要{zh}的权限 / requires {en}")


def require_reassign(
    org: OrgChart, actor: str, step: StepInstance, run: Run, person: str
) -> None:
    """Who may hand a task to whom (SPEC §5 /reassign; §3: a commander directs their unit and
    the units below it, every other role only acts on what is assigned to it).

    - Whoever may act on the task (its assignee, or a holder of its role) hands it to a
      colleague: a person of the task's unit or of the unit its role resolved to, or one who
      holds its role for the task's unit (who could have taken it from the pool anyway). Not to
      a commander above, nor sideways to another community: that is for a commander to decide.
    - A commander of the task's unit or above (an admin anywhere) hands it to a colleague as
      above, or to anyone of the commander's own unit and below (an admin: anyone).
    - Never to a person who cannot see the run: they could not open what they were given.

    Raises Forbidden (403) for an actor who may not reassign at all, InvalidInput on `person`
    (422) for a person the actor may not hand it to, with the reason."""
    target = org.people.get(person)
    if target is None:
        raise InvalidInput("person", f"人员 '{clipped(person, 80)}' 不存在 / unknown person "
                           f"'{clipped(person, 80)}'")
    supervisor = _may_reassign(org, actor, step)
    refusal = _refusal(org, actor, step, run, target, supervisor=supervisor)
    if refusal is not None:
        raise refusal


def reassign_targets(org: OrgChart, actor: str, step: StepInstance, run: Run) -> list[Person]:
    """Everyone `actor` may hand the task to (require_reassign's rule, asked of each), for the
    page's 改派 list: those holding the task's role for its unit first (who could take it
    from the pool), then its unit's people, then the rest in tree order. Found from the
    units that rule admits (the task's units and their role's holders; for a commander, their
    own unit and below), not by asking every person of the district. Raises Forbidden for an
    actor who may not reassign at all."""
    supervisor = _may_reassign(org, actor, step)
    units = [u for u in dict.fromkeys((step.unit_id, step.assignee_unit_id)) if u in org.units]
    pool: list[Person] = []
    if step.role is not None and step.unit_id in org.units:
        pool += [p for uid in org.ancestors(step.unit_id) for p in org.people_in(uid)
                 if step.role in p.roles]
    pool += [p for uid in units for p in org.people_in(uid)]
    if supervisor:
        below = (org.units_where() if is_admin(org, actor) else
                 org.units_where(within=org.person(actor).unit_id))
        pool += [p for u in below for p in org.people_in(u.id)]
    return [p for p in {p.id: p for p in pool}.values()
            if _refusal(org, actor, step, run, p, supervisor=supervisor) is None]


def _may_reassign(org: OrgChart, actor: str, step: StepInstance) -> bool:
    """True for a commander of the task's unit or above (or an admin); for anyone else,
    Forbidden unless they may act on the task (then False: they hand it only to colleagues)."""
    if org.has_right(actor, "commander", step.unit_id):
        return True
    require_act(org, actor, step)
    return False


def _refusal(org: OrgChart, actor: str, step: StepInstance, run: Run, target: Person, *,
             supervisor: bool) -> InvalidInput | None:
    """Why `target` may not be handed the task by `actor` (None: they may)."""
    person = target.id
    if not can_read_unit(org, person, run.unit_id):
        return InvalidInput(
            "person",
            f"{target.name}（{org.unit_name(target.unit_id)}）无权查看该事件，不能接收其任务 / "
            f"'{person}' cannot see this run (unit '{run.unit_id}'), so cannot take its task",
        )
    units = list(dict.fromkeys(u for u in (step.unit_id, step.assignee_unit_id) if u))
    if target.unit_id in units or (
        step.role is not None and org.can_act_as(person, step.role, step.unit_id)
    ):
        return None
    if supervisor:
        own = org.person(actor).unit_id
        if is_admin(org, actor) or org.is_within(target.unit_id, own):
            return None
        return InvalidInput(
            "person",
            f"只能转派给{org.unit_name(own)}及下级单位的人员，或本任务单位的人员 / a commander "
            f"hands a task only to people of unit '{own}' and below, or of the task's unit "
            f"({', '.join(units)})",
        )
    role = f"或持有 {step.role} 角色的" if step.role else ""
    role_en = f" or one holding role '{step.role}' for it" if step.role else ""
    return InvalidInput(
        "person",
        f"只能转派给{'、'.join(org.unit_name(u) for u in units)}{role}人员；转派给其他人请由"
        f"{org.unit_name(step.unit_id)}或上级的指挥长办理 / a task may be handed only to a "
        f"person of unit {', '.join(units)}{role_en}; a commander of '{step.unit_id}' or above "
        "may hand it to others",
    )


def can_read_unit(org: OrgChart, person_id: str, unit_id: str, *, above: bool = True) -> bool:
    """A person sees runs of their own branch of the tree: their unit and below (their units'
    work) and, with `above`, the units above it (district-wide runs they take part in)."""
    person = org.person(person_id)
    # Admin first: it also reads runs of a unit gone from the org chart, to close them out.
    return (
        is_admin(org, person_id)
        or (unit_id in org.units and (
            org.is_within(unit_id, person.unit_id)
            or (above and org.is_within(person.unit_id, unit_id))))
    )


def require_read_run(org: OrgChart, person_id: str, run: Run) -> None:
    if not can_read_unit(org, person_id, run.unit_id):
        raise Forbidden(
            f"无权查看该事件（属于{org.unit_name(run.unit_id)}，{run.unit_id}）/ run belongs "
            f"to unit '{run.unit_id}', "
            "outside your units"
        )


def can_read_step(
    org: OrgChart, person_id: str, step: StepInstance, *, run_unit_id: str | None = None
) -> bool:
    """Their own tasks, the tasks of their unit and the units below it, and every step of a run
    they may read (`run_unit_id`, the run's unit, when the caller has it): GET /api/runs/{id}
    shows all of a run's steps to whoever may read the run, so refusing one of them on
    /api/tasks/{id} would protect nothing and only make the two disagree."""
    # Admin first: it also reads the steps of a unit gone from the org chart, to close them out.
    if is_admin(org, person_id) or can_act_on(org, person_id, step):
        return True
    own = org.person(person_id).unit_id
    if step.unit_id in org.units and org.is_within(step.unit_id, own):
        return True
    # A step a playbook's `at:` holds above the unit its event is in is also that unit's
    # (origin_unit_id), as GET /api/tasks lists it (models.queries.step_in_units): whoever's
    # list shows it may open it. Reading only: acting stays with the unit that holds it.
    origin = step.origin_unit_id
    if origin is not None and origin in org.units and org.is_within(origin, own):
        return True
    return run_unit_id is not None and can_read_unit(org, person_id, run_unit_id)


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
    shown = [u for u in unit_and_below(org, unit) if units is None or u in units]
    if not shown:  # not an empty answer: the caller would read "that unit has nothing"
        name = clipped(unit, 80)
        raise Forbidden(f"无权查看单位 {name} / unit '{name}' is outside your units")
    return shown


def unit_and_below(org: OrgChart, unit: str) -> list[str]:
    """What a `unit` filter means in every list: the unit and the units below it. InvalidInput
    (422 on `unit`) for a unit the org chart does not have."""
    if unit not in org.units:
        name = clipped(unit, 80)
        raise InvalidInput("unit", f"没有单位 {name} / unknown unit '{name}'")
    return org.descendants(unit)


def verifiers(org: OrgChart, role: str, unit_id: str, *, distinct: bool,
              submitted_by: str | None) -> list[Person]:
    """Who may verify work handed in at `unit_id`: the verifier role's holders in the nearest
    unit that has any, less the one who handed it in when the rule is `distinct` (verify
    refuses them). The one answer for everyone who asks: who is told of the submission, who
    is chased when the verdict is late, who the 当前卡点 and a moved deadline name."""
    if unit_id not in org.units:
        return []
    _, holders = org.resolve_role(role, unit_id)
    return [p for p in holders if not (distinct and p.id == submitted_by)]
