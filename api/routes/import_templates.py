"""Import templates (导入模板, flows/import_template.py): the empty register a clerk fills in for
POST /api/hazards/import and /api/risks/import, as XLSX (with its 填写说明 sheet) or CSV.
Included before the registers' routes: /api/hazards/{run_id} would otherwise take
`import-template` for a run id."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import CurrentPerson, RuntimeDep
from flows import exports
from flows.hazard_import import DEFAULT_PLAYBOOK
from flows.import_template import (
    Template,
    check_format,
    hazard_template,
    risk_template,
    template_bytes,
)

router = APIRouter(tags=["imports"])

TemplateFormat = Annotated[str, Query(description="xlsx (with a 填写说明 sheet) or csv (UTF-8 "
                                                  "with BOM, the header row alone)")]
_ERRORS = {
    403: {"description": "The person may not import (manager or commander rights over some "
                         "unit, or admin)."},
    422: {"description": "An unknown `format`, or (hazards) a `playbook` that is unknown or "
                         "keeps no register."},
}


def _file(template: Template, fmt: str) -> Response:
    name = f"{template.filename}.{fmt}"
    return Response(template_bytes(template, fmt), media_type=exports.MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f"attachment; filename=\"{template.ascii_filename}.{fmt}\"; "
                               f"filename*=UTF-8''{quote(name)}"})


@router.get("/api/hazards/import-template", responses=_ERRORS)  # type: ignore[arg-type]
def hazard_import_template(
    rt: RuntimeDep, person: CurrentPerson, format: TemplateFormat = "xlsx",
    playbook: Annotated[str, Query(max_length=80)] = DEFAULT_PLAYBOOK,
) -> Response:
    """The hazard import's template (隐患导入模板.xlsx): the header row the import reads for
    `playbook`, no example row, and a 填写说明 sheet (each column's values, the other header
    names read, the units the person may import for), which the import does not read."""
    fmt = check_format(format)
    return _file(hazard_template(rt, person, playbook), fmt)


@router.get("/api/risks/import-template", responses=_ERRORS)  # type: ignore[arg-type]
def risk_import_template(rt: RuntimeDep, person: CurrentPerson,
                         format: TemplateFormat = "xlsx") -> Response:
    """The risk point import's template (风险点导入模板.xlsx), as the hazards' one."""
    fmt = check_format(format)
    return _file(risk_template(rt, person), fmt)
