"""3030 campaigns: the live progress of a campaign run (found, rectifying, overdue, closed)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import CurrentPerson, RowId, RuntimeDep
from api.schemas import SECONDS
from flows import campaigns
from flows.exports import days_left
from flows.runtime import Runtime

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])


class CampaignProgress(BaseModel):
    run_id: int
    playbook: str
    title: str
    unit_id: str
    unit_name: str
    status: str
    started_at: datetime
    started_at_local: str
    grade: str = Field(description="Hazard grade counted (重大, 一般, or 全部 for every grade).")
    target: int = Field(description="Hazards to close within the window.")
    found: int = Field(description="Hazards registered for the campaign (not cancelled).")
    rectifying: int = Field(description="Found and not closed yet.")
    overdue: int = Field(description="Not closed, past their rectification deadline.")
    closed: int = Field(description="Closed (销号) within the window: what counts towards the "
                        "target.")
    closed_after_window: int = Field(description="Closed after the window ended (not counted "
                                     "towards the target).")
    met: bool = Field(description="closed >= target.")
    remaining: int = Field(description="Closures still needed to meet the target.")
    window_end: datetime | None
    window_end_local: str | None
    window_days_left: int | None = Field(
        default=None, description="剩余天数 of the window, as the 整改清单 counts a deadline's: "
        "calendar days from today to the window's last day, 0 on that day and once it ended; "
        "null without a window")
    as_of: datetime
    as_of_local: str


@router.get("/{run_id}/progress", response_model=CampaignProgress)
def progress(run_id: RowId, rt: RuntimeDep, person: CurrentPerson) -> CampaignProgress:
    """Counted live from the hazard register; readable by whoever may read the run."""
    run, p = campaigns.read_progress(rt, run_id=run_id, actor=person)
    unit = rt.org.units.get(run.unit_id)
    return CampaignProgress(
        run_id=run.id or 0, playbook=run.playbook_id, title=run.title, unit_id=run.unit_id,
        unit_name=unit.name if unit else run.unit_id, status=run.status,
        started_at=run.started_at, started_at_local=rt.renderer.local(run.started_at),
        grade=p["grade"], target=p["target"], found=p["found"],
        rectifying=p["rectifying"], overdue=p["overdue"], closed=p["closed"],
        closed_after_window=p["closed_after_window"], met=p["met"],
        remaining=max(p["target"] - p["closed"], 0), window_end=p["window_end"],
        window_end_local=rt.renderer.local(p["window_end"]) or None,
        window_days_left=_days_left(rt, p["window_end"], p["as_of"]), as_of=p["as_of"],
        as_of_local=rt.renderer.local(p["as_of"], SECONDS),
    )


def _days_left(rt: Runtime, end: datetime | None, now: datetime) -> int | None:
    left = days_left(end, now, rt.tz)
    return None if left is None else max(left, 0)
