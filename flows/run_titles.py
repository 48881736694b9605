"""A run's title, as its start writes it and as a change of a titling param writes it again."""

from __future__ import annotations

from typing import Any

from flows.spec import Playbook
from models.run import Run

# The title column's width (VARCHAR(300)): PostgreSQL refuses a longer title, and a 2,000-character
# location is a valid param.
MAX_TITLE: int = Run.__table__.c.title.type.length  # type: ignore[attr-defined]


def title_for(playbook: Playbook, params: dict[str, Any], unit_name: str) -> str:
    """A run's title: the playbook's title, the values of its `title_params` (a typhoon's name),
    and where (the location param, else the unit's name), on one line and cut to MAX_TITLE with
    "…". The bulk import (flows/bulk_plan.py) titles its runs the same way."""
    parts = [playbook.title]
    parts += [str(params[name]) for name in playbook.title_params if params.get(name)]
    parts.append(str(params.get("location") or unit_name))
    title = "·".join(" ".join(part.split()) for part in parts)
    return title if len(title) <= MAX_TITLE else title[:MAX_TITLE - 1] + "…"
