"""Import templates (导入模板): an empty register a clerk fills in and uploads as it is, for the
hazard import (flows/hazard_import.py) and the risk point import (flows/risk_import.py).

The register sheet holds exactly the header row the import reads, in its column order (for
hazards, the columns the playbook has params for: a column it has none for is refused), and
no example row: a forgotten example would become a real hazard. A second sheet, 填写说明,
lists each column (required or not, what it accepts, the other header names also read, an
example) and the units the person may import for. The reader skips it (flows/tabular.py reads
the one sheet that is a register, a header of known names with rows below): no row of it names
two columns, so it never looks like one. The CSV is the header row alone, UTF-8 with a BOM, as
the exports write it (Excel on a Chinese Windows opens it right).

Only someone who may import gets a template: manager or commander rights over some unit (the
import checks them row by row, flows/import_checks.require_rights), or admin."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from flows import exports
from flows.access import who_may
from flows.found_times import EARLIEST_FOUND, WRITTEN_FORMS
from flows.hazard_import import (
    DEFAULT_PLAYBOOK,
    GRADES,
    HAZARD_COLUMNS,
    SOURCES,
    allowed_values,
    location_limit,
    register_playbook,
)
from flows.import_checks import RIGHTS, Column, header_names
from flows.params import MAX_TEXT
from flows.risk_import import RISK_COLUMNS, RISK_LEVELS
from flows.runtime import Runtime
from flows.spec import Playbook
from models.errors import Forbidden, InvalidInput, clipped
from models.org import Unit

FORMATS = exports.FORMATS
NOTES_SHEET = "填写说明"
XLSX_ROWS = 1_048_576  # the last row a dropdown or a text format reaches
# Columns whose values are codes: typed as text so Excel keeps 0012 as 0012, not 12.
TEXT_KEYS = frozenset({"code", "unit"})
WIDTHS = {"description": 40, "location": 30, "controls": 40, "found_at": 18, "enterprise": 20}


@dataclass(frozen=True)
class Guide:
    """One column's line in 填写说明."""

    column: Column
    required: str  # 必填 / 选填 / 单位编号与单位至少填一项
    accepts: str
    example: str = ""


@dataclass
class Template:
    title: str  # the register sheet's title: 隐患清单 / 风险清单
    filename: str  # 隐患导入模板 / 风险点导入模板 (without the suffix)
    ascii_filename: str  # for a client that cannot read filename*
    intro: list[str]  # the lines above 填写说明's table
    guides: list[Guide]
    units: list[tuple[str, str, str]]  # (id, name, the name of the unit above it)
    choices: dict[str, Sequence[str]] = field(default_factory=dict)  # key -> dropdown values

    @property
    def headers(self) -> list[str]:
        return [g.column.header for g in self.guides]


def check_format(fmt: str) -> str:
    """xlsx or csv, as written (lower case); InvalidInput naming `format` otherwise."""
    if fmt not in FORMATS:
        shown = clipped(fmt, 80)
        raise InvalidInput("format", f"未知的模板格式“{shown}”（可选：{'、'.join(FORMATS)}）/ "
                                     f"unknown format '{shown}' (known: {', '.join(FORMATS)})")
    return fmt


def importable_units(rt: Runtime, actor: str) -> list[Unit]:
    """The units `actor` may import rows for, in tree order; Forbidden when there are none
    (nobody is handed a template they cannot use)."""
    org = rt.org
    units = [u for u in org.units_where()
             if any(org.has_right(actor, right, u.id) for right in RIGHTS)]
    if not units:
        person = org.people.get(actor)
        where = person.unit_id if person is not None and person.unit_id in org.units \
            else org.root_id
        (zh_m, en_m), (zh_c, en_c) = (who_may(org, right, where) for right in RIGHTS)
        raise Forbidden(f"无权导入清单，因此不提供导入模板：需要{zh_m}或{zh_c}的权限 / importing "
                        f"a register (and its template) requires {en_m} or {en_c}")
    return units


# -- the columns --------------------------------------------------------------------------------

def _limit(col: Column, most: int | None = None) -> str:
    most = most if most is not None else col.max_len
    return f"；最多 {most} 个字符" if most is not None else ""


def _unit_rows(rt: Runtime, units: list[Unit]) -> list[tuple[str, str, str]]:
    org = rt.org
    return [(u.id, u.name, org.unit_name(u.parent_id) if u.parent_id in org.units else "")
            for u in units]


def _unit_guides(units: list[Unit], columns: Sequence[Column]) -> list[Guide]:
    by_key = {c.key: c for c in columns}
    # A unit of the type most listed (the communities of a street): what most rows name.
    types = Counter(u.type for u in units)
    example = next(u for u in units if u.type == types.most_common(1)[0][0])
    return [
        Guide(by_key["unit"], "与“单位”至少填一项",
              "组织架构中的单位编号，见本表下方“可导入的单位”；与“单位”两列都填时须是同一单位",
              example.id),
        Guide(by_key["unit_name"], "与“单位编号”至少填一项",
              "单位名称，见本表下方“可导入的单位”；重名的单位请填单位编号",
              example.name),
    ]


def hazard_template(rt: Runtime, actor: str, playbook_id: str = DEFAULT_PLAYBOOK) -> Template:
    """The hazard import's template for `playbook_id` (the import's own `playbook`)."""
    playbook = register_playbook(rt, playbook_id)
    units = importable_units(rt, actor)
    specs = playbook.params
    today = rt.clock.now().astimezone(rt.tz).date()
    sources = list(allowed_values(playbook, "source", SOURCES))
    grades = list(allowed_values(playbook, "grade", GRADES))
    cols = {c.key: c for c in HAZARD_COLUMNS}
    who = rt.org.people.get(actor)
    accepts: dict[str, tuple[str, str]] = {
        "code": ("隐患的编号，文件内和已登记的隐患中都不能重复；不填则自动编号（YH+流程编号）"
                 + _limit(cols["code"]), f"{today:%Y%m%d}-001"),
        "source": (f"可选：{'、'.join(sources)}" + _default(playbook, "source"), sources[0]),
        "grade": (f"可选：{'、'.join(grades)}（也可写作“{grades[0]}隐患”“{grades[0]}事故隐患”）"
                  + _default(playbook, "grade"), grades[0]),
        "category": ("隐患类别，自由填写（消防安全、用电安全、燃气安全……）"
                     + _limit(cols["category"]), "消防安全"),
        "location": ("隐患所在的地点，越具体越好" + _limit(cols["location"], location_limit()),
                     "和平路12号一楼"),
        "description": ("隐患的具体情况" + _limit(cols["description"], MAX_TEXT),
                        "疏散通道堆放杂物"),
        "enterprise": ("隐患所在的企业或场所" + _limit(cols["enterprise"]), "某某百货有限公司"),
        "found_at": (
            f"日期或日期时间，例如 {'、'.join(WRITTEN_FORMS)}，或 Excel 日期单元格；按 "
            f"{rt.tz.key} 本地时间（写明 +08:00 等时区的除外）；不能晚于当前时间，不能早于 "
            f"{EARLIEST_FOUND.isoformat()}；不填为导入时间",
            f"{today - timedelta(days=1):%Y-%m-%d} 09:30"),
        "found_by": ("发现人的姓名或人员编号；不填为导入人" + _limit(cols["found_by"]),
                     who.name if who is not None else ""),
        "campaign": ("所属 3030 专项行动的编号（行动的流程编号，正整数）：须是本单位或上级单位正在"
                     "进行的专项行动；不属于专项行动则不填", ""),
    }
    guides: list[Guide] = []
    for col in HAZARD_COLUMNS:
        if col.key in ("unit", "unit_name"):
            if col.key == "unit":
                guides += _unit_guides(units, HAZARD_COLUMNS)
            continue
        spec = specs.get(col.key)
        if spec is None:
            continue  # the import refuses a column the playbook has no param for
        needed = col.required or (spec.required and spec.default is None)
        text, example = accepts[col.key]
        guides.append(Guide(col, "必填" if needed else "选填", text, example))
    intro = [
        f"隐患清单导入模板 · 填写说明（按流程“{playbook.title}”（{playbook.id}）导入）",
        "在“隐患清单”工作表第 2 行起每行填写一条隐患，不要改动第 1 行的表头，不要合并单元格；"
        "本工作表只作说明，不会被导入。",
        "每行建立一个整改流程。整个文件无误才导入；有任何错误则一条也不导入，并列出出错的行和列。",
        "同一文件不会重复导入；CSV 文件用同样的表头（第一行），Excel 另存为的 CSV 也可以。",
    ]
    choices = {k: v for k, v in (("source", sources), ("grade", grades))
               if k in specs and specs[k].type == "enum"}
    return Template("隐患清单", "隐患导入模板", "hazard-import-template", intro, guides,
                    _unit_rows(rt, units), choices)


def _default(playbook: Playbook, name: str) -> str:
    spec = playbook.params.get(name)
    return f"；不填为“{spec.default}”" if spec is not None and spec.default else ""


def risk_template(rt: Runtime, actor: str) -> Template:
    """The risk point import's template."""
    units = importable_units(rt, actor)
    cols = {c.key: c for c in RISK_COLUMNS}
    who = rt.org.people.get(actor)
    accepts: dict[str, tuple[str, str]] = {
        "code": ("风险点的编号；已登记的编号会更新该风险点（只更新文件中有的列）"
                 + _limit(cols["code"]), "FX-001"),
        "name": ("风险点名称" + _limit(cols["name"]), "和平加油站"),
        "category": ("风险类别，自由填写" + _limit(cols["category"]), "危险化学品"),
        "location": ("风险点所在的位置" + _limit(cols["location"]), "和平路88号"),
        "level": (f"可选：{'、'.join(RISK_LEVELS)}", RISK_LEVELS[2]),
        "controls": ("管控措施，自由填写", "每日巡查，配备灭火器材"),
        "responsible": ("责任人的姓名或人员编号；能对应到唯一人员的存为该人员，否则按原文保存"
                        + _limit(cols["responsible"]), who.name if who is not None else ""),
    }
    guides: list[Guide] = []
    for col in RISK_COLUMNS:
        if col.key == "unit":
            guides += _unit_guides(units, RISK_COLUMNS)
        if col.key in ("unit", "unit_name"):
            continue
        text, example = accepts[col.key]
        guides.append(Guide(col, "必填" if col.required else "选填", text, example))
    intro = [
        "风险清单导入模板 · 填写说明",
        "在“风险清单”工作表第 2 行起每行填写一个风险点，不要改动第 1 行的表头，不要合并单元格；"
        "本工作表只作说明，不会被导入。",
        "整个文件无误才导入；有任何错误则一条也不导入，并列出出错的行和列。",
    ]
    return Template("风险清单", "风险点导入模板", "risk-import-template", intro, guides,
                    _unit_rows(rt, units), {"level": RISK_LEVELS})


# -- the files ---------------------------------------------------------------------------------

def template_bytes(template: Template, fmt: str) -> bytes:
    """The template as a file of `fmt` (xlsx or csv)."""
    if check_format(fmt) == "csv":
        table = exports.Table(template.title, [exports.Column(h) for h in template.headers], [])
        return b"".join(exports.csv_chunks(table))
    out = io.BytesIO()
    _workbook(template).save(out)
    return out.getvalue()


def _append(ws: Any, values: list[str]) -> Any:
    """A row of text cells: what XLSX cannot hold dropped (exports.xlsx_text), and a name
    from the org chart that starts with "=" kept as text, never made a formula."""
    ws.append([exports.xlsx_text(v) for v in values])
    row = ws[ws.max_row]
    for cell in row:
        if isinstance(cell.value, str) and cell.value.startswith("="):
            cell.data_type = "s"
    return row


def _workbook(template: Template) -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = template.title
    bold = Font(bold=True)
    _append(ws, template.headers)
    for pos, guide in enumerate(template.guides, start=1):
        letter = get_column_letter(pos)
        ws.cell(row=1, column=pos).font = bold
        ws.column_dimensions[letter].width = max(WIDTHS.get(guide.column.key, 14),
                                                 len(guide.column.header) * 2 + 2)
        if guide.column.key in TEXT_KEYS:
            ws.column_dimensions[letter].number_format = "@"
        values = template.choices.get(guide.column.key)
        listed = ",".join(values or ())
        # A dropdown to pick from, not a rule: the import also reads 重大隐患 for 重大, and a
        # list Excel cannot hold (over 255 characters, a comma in a value) is left out.
        if values and len(listed) <= 255 and not any("," in v or '"' in v for v in values):
            dv = DataValidation(type="list", formula1=f'"{listed}"', allow_blank=True,
                                showErrorMessage=False)
            dv.add(f"{letter}2:{letter}{XLSX_ROWS}")
            ws.add_data_validation(dv)
    ws.freeze_panes = "A2"
    _notes(wb.create_sheet(NOTES_SHEET), template)
    wb.active = 0
    return wb


def _notes(ws: Any, template: Template) -> None:
    """填写说明: no row names two of the import's columns (see the module docstring)."""
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    for line in template.intro:
        _append(ws, [line])
    ws.cell(row=1, column=1).font = Font(bold=True, size=14)
    ws.append([])
    for cell in _append(ws, ["列名（表头）", "是否必填", "可填写的内容", "也可写作（其他表头）",
                             "示例"]):
        cell.font = bold
    for guide in template.guides:
        others = [n for n in header_names(guide.column) if n != guide.column.header]
        for cell in _append(ws, [guide.column.header, guide.required, guide.accepts,
                                 # Quoted: a lone name would make the row name two columns
                                 "、".join(f"“{n}”" for n in others) or "无",
                                 guide.example]):
            cell.alignment = wrap
    ws.append([])
    _append(ws, [f"可导入的单位（共 {len(template.units)} 个；填在“单位编号”列或“单位”列）"
                 ])[0].font = bold
    for cell in _append(ws, ["填写的单位编号", "对应的单位名称", "上级"]):
        cell.font = bold
    for unit_id, name, above in template.units:
        _append(ws, [unit_id, name, above])
    for letter, width in zip("ABCDE", (16, 20, 60, 34, 22), strict=True):
        ws.column_dimensions[letter].width = width
