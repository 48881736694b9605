"""A message's title names its task and what the run is about, within the title column.

A street head's inbox once had 200 titles reading 【督办提醒·提级督办函】隐患整改, and a section
chief's 200 reading 【延期申请】整改: every message about a task now ends with the run's title
without the playbook's own in front (the hazard's place: 隐患整改·六和社区和平路18号富达五金厂),
so two leaks at once or 200 hazards are told apart on a phone's notification line. Used for
every kind: new tasks, reminders, 督办, verification, returns, extensions, deadline changes.
"""

from __future__ import annotations

from sqlmodel import Session

from flows.runtime import Runtime
from models.outbox import Notification
from models.run import Run

# How much of the run's title a message's title carries: enough to tell 200 hazards apart in
# one inbox (六和社区和平路18号富达五金厂), short enough for a phone's notification line and a
# mail subject.
ABOUT_WIDTH = 24
TITLE_WIDTH: int = Notification.__table__.c.title.type.length  # type: ignore[attr-defined]


def run_about(rt: Runtime, run: Run, session: Session | None) -> str:
    """What the run is about, briefly: its title without the playbook's own title in front
    (every hazard's begins 隐患排查整治闭环销号·), cut to ABOUT_WIDTH with "…"."""
    about = run.title
    if session is not None:
        prefix = rt.catalog.pinned(session, run.playbook_sha).title + "·"
        about = about.removeprefix(prefix) or about
    return about if len(about) <= ABOUT_WIDTH else about[:ABOUT_WIDTH - 1] + "…"


def message_title(rt: Runtime, run: Run, head: str, step_title: str,
                  session: Session | None) -> str:
    """`head` (【新任务】, 【督办提醒·督办函】), the task's title and what the run is about; a
    step title long enough to overflow the column is cut, never the head or the run's part."""
    about = run_about(rt, run, session)
    room = TITLE_WIDTH - len(head) - len(about) - 1  # a step's title may be 300 on its own
    what = step_title if len(step_title) <= room else step_title[:room - 1] + "…"
    return f"{head}{what}·{about}"
