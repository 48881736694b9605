"""Starting a drill (演练): the same playbook as a real event, recorded as a drill on its run.

What is a drill is checked here, once, for the API, the CLI and the child runs a drill starts:
a kind of the three the field knows, a title of at most 120 characters, and a playbook a drill
may run. Which is every playbook but those that keep a register of real hazards (a hazard of a
drill would sit in the 整改清单 beside real ones, and be counted in the ranking) or count one (a
3030 campaign counts the register's hazards). A drill's messages and documents are marked
【演练】 by models/drill.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.spec import Playbook
from models.drill import DRILL_KINDS, DRILL_KINDS_EN
from models.errors import InvalidInput
from models.run import Run

MAX_DRILL_TITLE = 120  # run.drill_title is VARCHAR(120)


@dataclass(frozen=True)
class Drill:
    kind: str
    title: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title}


def drill_of(run: Run) -> Drill | None:
    """The drill a run is (its child runs are the same drill), or None for a real event."""
    if run.drill_kind is None:
        return None
    return Drill(kind=run.drill_kind, title=run.drill_title)


def read_drill(kind: Any, title: Any = None, *, field: str = "drill") -> Drill:
    """A drill as a person asked for it, or InvalidInput naming `field`.kind / .title."""
    if kind not in DRILL_KINDS:
        known = "、".join(DRILL_KINDS)
        known_en = ", ".join(f"{k} ({v})" for k, v in DRILL_KINDS_EN.items())
        raise InvalidInput(f"{field}.kind", f"演练方式应为 {known} 之一 / drill kind must be one "
                           f"of {known_en}")
    if title is not None:
        if not isinstance(title, str):
            raise InvalidInput(f"{field}.title", "演练名称应为文字 / drill title must be text")
        title = " ".join(title.split()) or None
        if title is not None and len(title) > MAX_DRILL_TITLE:
            raise InvalidInput(f"{field}.title", f"演练名称过长：{len(title)} 个字符，最多 "
                               f"{MAX_DRILL_TITLE} 个 / drill title too long: {len(title)} "
                               f"characters, at most {MAX_DRILL_TITLE}")
    return Drill(kind=kind, title=title)


def may_drill(playbook: Playbook) -> bool:
    return playbook.register_ is None and playbook.kind != "campaign"


def refuse_drill_of(playbook: Playbook) -> None:
    if not may_drill(playbook):
        raise InvalidInput("drill", f"“{playbook.title}”登记或统计真实隐患，不能演练 / "
                           f"{playbook.id} keeps or counts the hazard register and cannot be "
                           "run as a drill")
