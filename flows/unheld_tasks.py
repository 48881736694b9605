"""Open tasks nobody can see any more: their holder left the org chart. A task's inbox key is
the role and the unit it resolved to when it was handed out (models/task.py ix_step_inbox), or
the person it was reassigned to; when the org chart no longer has a holder of that role in that
unit (the street's section chief removed), or that person, the task is in nobody's 我的待办 and
sits unseen until its ladder fires. The server names them at start so the operator reassigns
them (改派) or puts the role back, as it names units that left with running runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlmodel import Session

from models.org import OrgChart
from models.queries import open_task_holders


@dataclass(frozen=True)
class UnheldTasks:
    unit: str | None
    role: str
    person: str | None  # the person a reassigned task was handed to, when it is them
    open_tasks: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        who = f"{self.person}（{self.role}）" if self.person else f"{self.role}@{self.unit}"
        return f"{who}: {self.open_tasks}"


def unheld_tasks(session: Session, org: OrgChart) -> list[UnheldTasks]:
    """Groups of open tasks whose inbox key no one in `org` holds. Tasks of a unit the org
    chart lost are left to the units check (the admin closes their runs)."""
    out: list[UnheldTasks] = []
    for unit, role, person, n in open_task_holders(session):
        if person is not None:
            if person not in org.people:
                out.append(UnheldTasks(unit, role, person, n))
            continue
        if unit is None or unit not in org.units:
            continue
        found_at, _ = org.resolve_role(role, unit)
        if found_at != unit:
            out.append(UnheldTasks(unit, role, None, n))
    return sorted(out, key=lambda u: (u.unit or "", u.role, u.person or ""))
