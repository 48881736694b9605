"""Bulk import of the registers from CSV/XLSX uploads: hazards, one run each
(flows/hazard_import.py), and risk points (flows/risk_import.py). All or nothing: a file with
a mistake answers 422 with every mistake (the first 100, and the count) and writes nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import CurrentPerson, RuntimeDep
from api.uploads import sent_name
from flows import hazard_import, risk_import
from flows.hazard_import import DEFAULT_PLAYBOOK
from flows.import_checks import MAX_IMPORT_BYTES, ImportInvalid, check_size

router = APIRouter(tags=["imports"])
SHOWN_RUNS = 10

_ERRORS = {
    422: {"description": "The file has mistakes; nothing was imported. `errors` lists "
                         "{file, row, column, field, message} (the first 100); `error_count` "
                         "counts them all."},
    403: {"description": "The importer lacks manager/commander rights over a row's unit "
                         "(the first such row is named)."},
    409: {"description": "The same file was imported before (pass repeat=true to import it "
                         "again)."},
}


class HazardImported(BaseModel):
    import_id: int
    file: str
    playbook: str
    rows: int = Field(description="Hazards imported: one run each.")
    runs: list[int] = Field(description=f"Ids of the first {SHOWN_RUNS} runs, in file order.")
    ignored_columns: list[str] = Field(description="Columns of the file that were not read.")
    skipped_rows: list[int] = Field(default_factory=list, description="Rows left out as "
                                    "合计/小计 rows (a label and counts only), by row number.")


class RisksImported(BaseModel):
    import_id: int
    file: str
    rows: int
    inserted: int = Field(description="Risk points new to the register.")
    updated: int = Field(description="Risk points whose code was stored already (upserted).")
    ignored_columns: list[str]
    skipped_rows: list[int] = Field(default_factory=list, description="Rows left out as "
                                    "合计/小计 rows (a label and counts only), by row number.")


def _read(file: UploadFile) -> bytes:
    # A plain (not async) route: FastAPI runs it in a worker thread, so a long import does
    # not hold up the event loop.
    data = file.file.read(MAX_IMPORT_BYTES + 1)
    check_size(data, sent_name(file, "upload"))
    return data


def _invalid(exc: ImportInvalid) -> JSONResponse:
    return JSONResponse(status_code=422, content=exc.payload())


@router.post("/api/hazards/import", status_code=201, response_model=HazardImported,
             responses=_ERRORS)  # type: ignore[arg-type]
def import_hazards(
    rt: RuntimeDep, person: CurrentPerson, file: Annotated[UploadFile, File()],
    playbook: Annotated[str, Query(max_length=80)] = DEFAULT_PLAYBOOK,
    repeat: bool = False,
) -> HazardImported | JSONResponse:
    """Import a hazard list (.csv or .xlsx, Chinese headers 隐患编号, 单位编号/单位, 隐患来源,
    隐患等级, 隐患类别, 隐患地点, 隐患描述, 涉及企业, 发现时间, 发现人, 专项行动): one run of
    `playbook` per row, all in one transaction."""
    name = sent_name(file, "upload.csv")
    try:
        result = hazard_import.import_hazards(rt, data=_read(file), filename=name,
                                              actor=person, playbook_id=playbook,
                                              allow_repeat=repeat)
    except ImportInvalid as exc:
        return _invalid(exc)
    return HazardImported(import_id=result.import_id, file=name, playbook=result.playbook or "",
                          rows=result.rows, runs=result.run_ids[:SHOWN_RUNS],
                          ignored_columns=result.ignored_columns,
                          skipped_rows=result.skipped_rows)


@router.post("/api/risks/import", status_code=201, response_model=RisksImported,
             responses=_ERRORS)  # type: ignore[arg-type]
def import_risks(
    rt: RuntimeDep, person: CurrentPerson, file: Annotated[UploadFile, File()],
    repeat: bool = False,
) -> RisksImported | JSONResponse:
    """Import a risk point list (风险清单: 风险点编号, 单位编号/单位, 风险点名称, 风险类别, 位置,
    风险等级, 管控措施, 责任人); a code already stored is updated (upsert by code)."""
    name = sent_name(file, "upload.csv")
    try:
        result = risk_import.import_risks(rt, data=_read(file), filename=name, actor=person,
                                            allow_repeat=repeat)
    except ImportInvalid as exc:
        return _invalid(exc)
    return RisksImported(import_id=result.import_id, file=name, rows=result.rows,
                         inserted=result.inserted, updated=result.updated,
                         ignored_columns=result.ignored_columns,
                         skipped_rows=result.skipped_rows)
