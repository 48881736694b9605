"""The operator's routes: reading the org chart, playbooks and calendar again without a restart."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import CurrentPerson, RuntimeDep
from api.reloading import reload_now
from flows.access import is_admin
from models.errors import Forbidden

router = APIRouter(tags=["admin"])


@router.post("/api/admin/reload")
def reload_setup_files(request: Request, rt: RuntimeDep, person: CurrentPerson
                       ) -> dict[str, Any]:
    """重新加载组织架构、流程和工作日历（管理员）/ Read the org chart (rosters included), the
    playbooks and the working-day calendar again, without a restart: a shift swapped in the
    roster, a new playbook version, next year's holidays.

    All or nothing: a mistake in any file is a 422 listing every mistake at file:line:col (as
    `closeloop validate` prints them), and the server keeps what it had. Runs keep the playbook
    version they started with. The answer says what changed; the audit trail keeps who
    reloaded and when (`setup_reloaded`). Each server process reads its own files: with several
    servers, reload each (or send each SIGHUP)."""
    if not is_admin(rt.org, person):
        raise Forbidden("只有系统管理员（admin）可以重新加载配置 / only an admin may reload the "
                        "org chart, playbooks and calendar")
    return reload_now(rt, request.app.state.workers, actor=person).as_dict()
