// 三个清单: the hazard register (隐患清单), the rectification register (整改清单) and the risk
// register (风险清单) as tables with the exports' own Chinese headers, filtered, paged, exported
// as CSV or Excel, and filled from a spreadsheet. The register, its filters and the page are
// kept in the address (?register=…&unit=…) so a link or a reload shows the same list.
import {
  $, ApiError, api, clear, clearFlash, download, flash, h, markField, query, showError, startPage,
  unitChoices,
} from "/static/closeloop.js";

const LIMIT = 50;

const YES_NO = [["", "全部"], ["true", "是"], ["false", "否"]];
// The statuses, grades, sources and risk levels the lists accept come from the loaded register
// playbooks (GET /api/registers/vocabulary), so a bureau's own playbook brings its own phases.
// Besides the phases the API takes two groups, `open` and `closed`. Only `open` is offered:
// `closed` (销号 done, so also the hazards in 回头看) would read 已销号 like the phase 已销号,
// which lists only the hazards whose 状态 says 已销号, and two options of one name listing
// different hazards is what a person cannot tell apart. A link may still carry `closed`.
const STATUS_GROUPS = { open: "未销号（全部）", closed: "已销号（含回头看）" };
const OFFERED_GROUPS = ["open"];
let vocabulary = { statuses: [], grades: [], sources: [], risk_levels: [] };

function vocabularyOptions(key) {
  const values = vocabulary[key];
  if (values === null) return null; // free text in some register playbook: a text box
  if (key !== "statuses") return [["", "全部"], ...values.map((v) => [v, v])];
  const phases = values.filter((v) => !Object.hasOwn(STATUS_GROUPS, v));
  const options = [...OFFERED_GROUPS.map((v) => [v, STATUS_GROUPS[v]]), ...phases.map((v) => [v, v])];
  // Each name once, whatever a playbook calls its phases: the first option of a name stays.
  const byLabel = new Map();
  for (const [value, label] of options) if (!byLabel.has(label)) byLabel.set(label, value);
  return [["", "全部"], ...[...byLabel].map(([label, value]) => [value, label])];
}

// What a value from the address reads as when the list does not offer it.
const valueLabel = (f, value) => (f.name === "status" && STATUS_GROUPS[value]) || value;

// A month "2026-03" as the found_since / found_until pair (local time: the API reads a time
// without a zone as the bureau's).
// The first instant of the month after `month` (YYYY-MM), in the bureau's time; null when
// `month` is not one.
function monthAfter(month) {
  const match = /^(\d{4})-(\d{2})$/.exec(month);
  if (!match) return null;
  let [year, mon] = [Number(match[1]), Number(match[2]) + 1];
  if (mon > 12) [year, mon] = [year + 1, 1];
  return `${String(year).padStart(4, "0")}-${String(mon).padStart(2, "0")}-01T00:00:00`;
}

function monthRange(month) {
  const next = monthAfter(month);
  if (!next) return { found_since: month };  // the API names the field it cannot read
  return { found_since: `${month}-01T00:00:00`, found_until: next };
}

// A month's 月末逾期未销号数, hazard by hazard (the ranking's count): overdue at its end.
function monthEnd(month) {
  return { overdue_at: monthAfter(month) || month };
}

const UNIT = { name: "unit", label: "单位", kind: "unit" };
const Q_HAZARD = { name: "q", label: "编号、地点、描述或企业包含", kind: "text" };

// Each filter: its name in the address (and the API's, unless `toApi` says otherwise).
const HAZARD_FILTERS = [
  UNIT,
  { name: "status", label: "状态", kind: "select", options: "statuses" },
  { name: "grade", label: "隐患等级", kind: "select", options: "grades" },
  { name: "source", label: "隐患来源", kind: "select", options: "sources" },
  { name: "overdue", label: "是否逾期", kind: "select", options: YES_NO },
  { name: "month", label: "发现月份", kind: "month", toApi: monthRange },
  { name: "overdue_month", label: "月末逾期未销号（月份）", kind: "month", toApi: monthEnd },
  { name: "campaign", label: "专项行动编号", kind: "number" },
  Q_HAZARD,
];

// The rectification register is the open hazards' list: no status to pick. The month found
// is the API's filter there as on the hazard list (and its export's).
const RECTIFICATION_FILTERS = HAZARD_FILTERS.filter((f) => f.name !== "status");

const RISK_FILTERS = [
  UNIT,
  { name: "level", label: "风险等级", kind: "select", options: "risk_levels" },
  { name: "category", label: "风险类别", kind: "text" },
  { name: "q", label: "名称或位置包含", kind: "text" },
];

// -- table cells -------------------------------------------------------------------------------

const text = (value) => (value === null || value === undefined ? "" : String(value));
const yesNo = (flag) => (flag ? "是" : "否");
const runLink = (row) => h("a", { href: `/runs/${row.run_id}`, text: row.code });

// 剩余天数 / 逾期天数 as the rectification export counts them (flows/exports.py): no days left
// once closed; a deadline passed earlier today is already one day overdue.
const daysLeft = (row) => (row.days_left === null || row.days_left === undefined ? "" : Math.max(row.days_left, 0));
const daysLate = (row) => {
  if (row.days_left === null || row.days_left === undefined || !row.overdue) return 0;
  return Math.max(-row.days_left, 1);
};

// [header (the export's), cell, class]
const HAZARD_COLUMNS = [
  ["隐患编号", runLink, "nowrap"], ["单位", (r) => r.unit_name], ["街道", (r) => r.street_name],
  ["来源", (r) => r.source], ["等级", (r) => r.grade], ["类别", (r) => r.category],
  ["地点", (r) => r.location, "long"], ["描述", (r) => r.description, "long"],
  ["涉及企业", (r) => r.enterprise], ["发现时间", (r) => r.found_at_local, "nowrap"],
  ["发现人", (r) => r.found_by_name || r.found_by], ["整改期限", (r) => r.due_at_local, "nowrap"],
  ["原整改期限", (r) => r.original_due_at_local, "nowrap"], ["状态", (r) => r.status, "nowrap"],
  ["是否逾期", (r) => yesNo(r.overdue)], ["逾期天数", daysLate, "num"],
  ["销号时间", (r) => r.closed_at_local, "nowrap"],
];

const RECTIFICATION_COLUMNS = [
  ["隐患编号", runLink, "nowrap"], ["单位", (r) => r.unit_name], ["街道", (r) => r.street_name],
  ["等级", (r) => r.grade], ["地点", (r) => r.location, "long"], ["描述", (r) => r.description, "long"],
  ["整改措施", (r) => r.plan.measures, "long"], ["整改资金", (r) => r.plan.funds],
  ["整改时限", (r) => r.plan.deadline], ["整改责任人", (r) => r.plan.responsible],
  ["应急预案", (r) => r.plan.contingency], ["整改期限", (r) => r.due_at_local, "nowrap"],
  ["剩余天数", daysLeft, "num"], ["逾期天数", daysLate, "num"], ["是否逾期", (r) => yesNo(r.overdue)],
  ["状态", (r) => r.status, "nowrap"],
  // Where each open hazard waits and whose move it is: a list to chase from, not to open one
  // by one (the assignees, or once handed in the people who may re-inspect it).
  ["当前环节", (r) => r.current_step, "nowrap"],
  ["当前办理人", (r) => (r.current_holder_names || []).join("、")],
  // How far the chase has gone (督办函, 提级督办, 约谈): a hazard 12 days overdue with nobody
  // chased reads differently from one already at the bureau's 约谈.
  ["督办级别", (r) => r.current_escalation || "—", "nowrap"],
];

const RISK_COLUMNS = [
  ["风险点编号", (r) => r.code, "nowrap"], ["单位", (r) => r.unit_name], ["街道", (r) => r.street_name],
  ["名称", (r) => r.name], ["类别", (r) => r.category], ["地点", (r) => r.location, "long"],
  ["风险等级", (r) => r.level, "nowrap"], ["管控措施", (r) => r.controls, "long"],
  ["责任人", (r) => r.responsible_name || r.responsible], ["更新时间", (r) => r.updated_at_local, "nowrap"],
];

const HAZARD_IMPORT_HINT = "表头（第一行）：隐患编号、单位编号（或 单位）、隐患来源、隐患等级、隐患类别、" +
  "隐患地点（必填）、隐患描述、涉及企业、发现时间、发现人、专项行动。每行建立一个隐患整改流程。" +
  "整个文件无误才导入；有任何错误则一条也不导入，并列出出错的行和列。";
const RISK_IMPORT_HINT = "表头（第一行）：风险点编号（必填）、单位编号（或 单位）、风险点名称（必填）、风险类别、" +
  "位置、风险等级（必填：重大、较大、一般、低）、管控措施、责任人。编号已有的风险点会被更新。" +
  "整个文件无误才导入；有任何错误则一条也不导入。";

// The registers. `manager`: a manager's register (the API needs manager rights over `unit`,
// the whole district when none is given, so the person's own unit is sent instead).
const REGISTERS = {
  hazards: {
    label: "隐患清单", list: "/api/hazards", exportPath: "/api/hazards/export", manager: false,
    filters: HAZARD_FILTERS, columns: HAZARD_COLUMNS, noun: "条隐患",
    importPath: "/api/hazards/import", importTitle: "导入隐患清单", importHint: HAZARD_IMPORT_HINT,
    templatePath: "/api/hazards/import-template", templateName: "隐患导入模板",
  },
  rectification: {
    label: "整改清单", list: "/api/registers/rectification",
    exportPath: "/api/registers/rectification/export", manager: true,
    filters: RECTIFICATION_FILTERS, columns: RECTIFICATION_COLUMNS, noun: "条未销号隐患",
    about: "未销号隐患的整改措施、期限和当前办理人",
    importPath: "/api/hazards/import", importTitle: "导入隐患清单", importHint: HAZARD_IMPORT_HINT,
    templatePath: "/api/hazards/import-template", templateName: "隐患导入模板",
  },
  risks: {
    label: "风险清单", list: "/api/risks", exportPath: "/api/risks/export", manager: true,
    filters: RISK_FILTERS, columns: RISK_COLUMNS, noun: "个风险点", about: "风险点及其管控措施",
    importPath: "/api/risks/import", importTitle: "导入风险清单", importHint: RISK_IMPORT_HINT,
    templatePath: "/api/risks/import-template", templateName: "风险点导入模板",
  },
};

// -- the address -----------------------------------------------------------------------------

function readState() {
  const params = new URLSearchParams(window.location.search);
  const register = Object.hasOwn(REGISTERS, params.get("register")) ? params.get("register") : "hazards";
  const filters = {};
  for (const f of REGISTERS[register].filters) filters[f.name] = params.get(f.name) || "";
  const offset = Math.max(0, Number.parseInt(params.get("offset") || "0", 10) || 0);
  return { register, filters, offset };
}

function writeState(state, { push = true } = {}) {
  const url = window.location.pathname +
    query({ register: state.register, ...state.filters, offset: state.offset || "" });
  if (url === window.location.pathname + window.location.search) return;
  window.history[push ? "pushState" : "replaceState"](null, "", url);
}

// The API's parameters for the state: `toApi` filters translated, a manager's unit filled in.
function apiParams(state, who, { forManager }) {
  const reg = REGISTERS[state.register];
  const out = {};
  for (const f of reg.filters) {
    const value = state.filters[f.name];
    if (!value) continue;
    Object.assign(out, f.toApi ? f.toApi(value) : { [f.name]: value });
  }
  if (forManager && !out.unit) out.unit = who.unit_id;
  return out;
}

// -- drawing -----------------------------------------------------------------------------------

function isManager(who) {
  return who.manager; // /api/me: the manager right in their own unit (an admin holds it too)
}

function mayImport(who) {
  return isManager(who) || who.commander;
}

function unitOptions(who) {
  return [["", "全部（我的辖区）"], ...unitChoices(who)];
}

function field(f, value, who) {
  const id = `filter-${f.name}`;
  let input;
  const options = f.kind === "unit" ? unitOptions(who)
    : typeof f.options === "string" ? vocabularyOptions(f.options) : f.options;
  if (options) {
    input = h("select", { id, name: f.name },
      options.map(([v, label]) => h("option", { value: v, selected: v === value, text: label })));
    if (value && !options.some(([v]) => v === value)) {
      // A value from the address the list does not offer: kept, so the API can say what is wrong.
      input.append(h("option", { value, selected: true, text: valueLabel(f, value) }));
    }
  } else {
    // A number in a text box: a number box turns "abc" into nothing, so the list would show
    // everything instead of the API saying what is wrong.
    const type = f.kind === "month" ? "month" : f.kind === "number" ? "text" : "search";
    input = h("input", { id, name: f.name, type, value,
      inputmode: f.kind === "number" ? "numeric" : null });
  }
  return h("div", { class: "filter" }, h("label", { for: id, text: f.label }), input);
}

function drawTabs(state, who, onPick) {
  const tabs = clear($("#tabs"));
  for (const [key, reg] of Object.entries(REGISTERS)) {
    // The manager's registers are offered to managers; the API refuses anyone else anyway.
    if (reg.manager && !isManager(who) && key !== state.register) continue;
    tabs.append(h("button", {
      type: "button", role: "tab", id: `tab-${key}`, dataset: { register: key },
      "aria-selected": key === state.register ? "true" : "false", text: reg.label,
      onclick: () => onPick(key),
    }));
  }
}

function drawFilters(state, who) {
  const form = clear($("#filters"));
  for (const f of REGISTERS[state.register].filters) form.append(field(f, state.filters[f.name], who));
  form.append(h("div", { class: "filter" },
    h("button", { type: "submit", class: "primary", text: "查询" })));
  form.append(h("div", { class: "filter" },
    h("button", { type: "reset", id: "filters-clear", text: "清除条件" })));
}

function readFilters(state) {
  const form = $("#filters");
  const filters = {};
  for (const f of REGISTERS[state.register].filters) {
    const input = form.elements.namedItem(f.name);
    filters[f.name] = input ? input.value.trim() : "";
  }
  return filters;
}

function drawTable(reg, rows) {
  const wrap = clear($("#table"));
  if (rows.length === 0) {
    wrap.append(h("p", { class: "empty", text: "没有符合条件的记录。" }));
    return;
  }
  const head = h("tr", {}, reg.columns.map(([header, , cls]) =>
    h("th", { class: cls === "num" ? "num" : null, scope: "col", text: header })));
  const body = rows.map((row) => h("tr", {
    class: row.overdue ? "overdue-row" : null, dataset: { overdue: row.overdue ? "true" : "false" },
  }, reg.columns.map(([, cell, cls]) => {
    const value = cell(row);
    return h("td", { class: cls || null }, value instanceof Node ? value : text(value));
  })));
  wrap.append(h("table", { id: "register-table" }, h("thead", {}, head), h("tbody", {}, body)));
}

function drawPager(page, state, go) {
  const pager = clear($("#pager"));
  const { count, offset, limit } = page;
  const from = count === 0 ? 0 : offset + 1;
  const to = Math.min(offset + page.data.length, count);
  $("#summary").textContent = `共 ${count} ${REGISTERS[state.register].noun}` +
    (count > 0 ? `，第 ${from}–${to} 条` : "");
  if (count <= limit && offset === 0) return;
  pager.append(
    h("button", { type: "button", id: "page-prev", disabled: offset === 0, text: "上一页",
      onclick: () => go(Math.max(0, offset - limit)) }),
    h("button", { type: "button", id: "page-next", disabled: offset + limit >= count, text: "下一页",
      onclick: () => go(offset + limit) }),
  );
}

// -- a manager's register refused ----------------------------------------------------------------

// The API's Chinese half of "中文 / English": the page speaks Chinese first, and the English
// role name ("requires role 'manager' …") is for the log, not for a street's inspector.
const chinese = (detail) => String(detail).split(" / ")[0];

// Whether the page may draw a register's controls before the API has answered: a manager's
// register only for a manager (/api/me), so nobody else sees filters the API will refuse.
function controlsAllowed(reg, who) {
  return !reg.manager || isManager(who);
}

function showControls(on) {
  $("#filters").hidden = !on;
  if (!on) {
    clear($("#filters"));
    $("#actions").hidden = true;
    $("#import").hidden = true;
  }
}

// The API refused a manager's register: say who may read it and where to go instead, in place
// of the controls that cannot work. `err.detail` names the role and its holders now (孙丽).
function drawRefused(reg, err) {
  showControls(false);
  clear($("#table"));
  clear($("#pager"));
  $("#summary").textContent = "";
  $("#refused-title").textContent = `您无权查看${reg.label}`;
  $("#refused-who").textContent = `${reg.label}（${reg.about}）由科室负责人（本单位或上级单位）` +
    "和系统管理员查看、导出。";
  $("#refused-reason").textContent = `${chinese(err.detail)}。如需查阅，请联系上述人员。`;
  $("#refused").hidden = false;
}

// The filters of one register carried to another: every one the target has, by name (unit,
// text, grade, month ...); the names of the others that were set, to say they were dropped.
function carryFilters(from, to, filters) {
  const names = new Set(to.filters.map((f) => f.name));
  const carried = Object.fromEntries(to.filters.map((f) => [f.name, filters[f.name] || ""]));
  const dropped = from.filters.filter((f) => filters[f.name] && !names.has(f.name)).map((f) => f.label);
  return { carried, dropped };
}

// -- import ------------------------------------------------------------------------------------

function resetImportReport() {
  $("#import-result").hidden = true;
  $("#import-problems").hidden = true;
  clear($("#import-errors"));
}

function showProblems(err) {
  const box = $("#import-problems");
  const list = clear($("#import-errors"));
  const body = err.body || {};
  $("#import-problems-line").textContent = err.detail.includes("未导入")
    ? err.detail : `${err.detail}（未导入任何数据 / nothing was imported）`;
  for (const e of body.errors || []) {
    list.append(h("li", { dataset: { row: e.row, column: e.column } }, e.message));
  }
  const more = (body.error_count || 0) - (body.errors || []).length;
  if (more > 0) list.append(h("li", { text: `……另有 ${more} 处错误未列出 / ${more} more not shown` }));
  box.hidden = false;
}

function importedLine(reg, result) {
  const ignored = result.ignored_columns.length
    ? `；未读取的列：${result.ignored_columns.join("、")}` : "";
  // 合计/小计 rows are left out, not imported: say which, so the clerk can check the count.
  const skipped = (result.skipped_rows || []).length
    ? `；已跳过合计行：第 ${result.skipped_rows.join("、")} 行` : "";
  if (reg.importPath === "/api/risks/import") {
    return `已导入 ${result.rows} 个风险点（新增 ${result.inserted}，更新 ${result.updated}）` +
      `，文件 ${result.file}${ignored}${skipped}`;
  }
  return `已导入 ${result.rows} 条隐患，每条已建立整改流程，文件 ${result.file}${ignored}${skipped}`;
}

function drawImport(state, who) {
  const reg = REGISTERS[state.register];
  const panel = $("#import");
  panel.hidden = !mayImport(who);
  $("#import-title").textContent = reg.importTitle;
  $("#import-hint").textContent = reg.importHint;
  // The playbook to import into, when the person may start more than one rectification
  // playbook; otherwise the API's default (hazard-3030).
  const books = who.startable.filter((p) => p.kind === "rectification");
  const select = clear($("#import-playbook"));
  for (const p of books) select.append(h("option", { value: p.id, selected: p.id === "hazard-3030", text: p.title }));
  $("#import-playbook-row").hidden = reg.importPath !== "/api/hazards/import" || books.length < 2;
  for (const link of [$("#import-template-xlsx"), $("#import-template-csv")]) {
    link.href = reg.templatePath + query(templateParams(reg, link.dataset.format));
  }
}

// The playbook picked to import into, when there is a choice (else the API's default).
function importPlaybook(reg) {
  const offered = reg.importPath === "/api/hazards/import" && !$("#import-playbook-row").hidden;
  return offered ? $("#import-playbook").value : "";
}

// The template of the playbook the import will use: its own 隐患来源/隐患等级 values.
const templateParams = (reg, format) => ({ format, playbook: importPlaybook(reg) });

// -- the page ----------------------------------------------------------------------------------

startPage(async (who) => {
  vocabulary = await api("/api/registers/vocabulary");
  let state = readState();
  let asked = 0; // answers to an older request are dropped

  async function load() {
    const mine = ++asked;
    const reg = REGISTERS[state.register];
    const params = { ...apiParams(state, who, { forManager: reg.manager }), limit: LIMIT, offset: state.offset };
    $("#summary").textContent = "加载中…";
    try {
      const page = await api(reg.list + query(params));
      if (mine !== asked) return;
      if ($("#filters").hidden) drawControls(); // the API answered one /api/me said it would not
      markField($("#filters"), null);
      drawTable(reg, page.data);
      drawPager(page, state, (offset) => { state = { ...state, offset }; writeState(state); load(); });
    } catch (err) {
      if (mine !== asked) return;
      // Refused a manager's register for the person's own branch (not for a unit they chose
      // from a link): nothing on the page can change that, so no filters, only who may.
      const own = !state.filters.unit || !controlsAllowed(reg, who);
      if (reg.manager && own && err instanceof ApiError && err.status === 403) {
        drawRefused(reg, err);
        return;
      }
      clear($("#table"));
      clear($("#pager"));
      $("#summary").textContent = "";
      showError(err);
      markField($("#filters"), err);
    }
  }

  function drawControls() {
    showControls(true);
    drawFilters(state, who);
    // Every export is a manager's (the API refuses anyone else).
    $("#actions").hidden = !isManager(who);
    drawImport(state, who);
    resetImportReport();
  }

  function draw() {
    const reg = REGISTERS[state.register];
    document.title = `${reg.label} · 三个清单 · closeloop`;
    $("#heading").textContent = `三个清单 · ${reg.label}`;
    drawTabs(state, who, pick);
    $("#refused").hidden = true;
    // A manager's register for anyone else: no controls until the API has said (a 403, drawn
    // as who may read it; were it to answer, load() draws them).
    if (controlsAllowed(reg, who)) drawControls();
    else showControls(false);
    return load();
  }

  function pick(register) {
    if (register === state.register) return;
    // Every filter the other register has is carried over and shown in its controls; the
    // others are dropped, and the page says which, so no list is filtered unseen.
    const target = REGISTERS[register];
    const { carried, dropped } = carryFilters(REGISTERS[state.register], target, state.filters);
    state = { register, filters: carried, offset: 0 };
    clearFlash();
    if (dropped.length) {
      flash(`${target.label}没有${dropped.map((l) => `“${l}”`).join("")}筛选条件，已去掉；` +
        "其余条件保留。", "notice");
    }
    writeState(state);
    draw();
  }

  function apply() {
    state = { ...state, filters: readFilters(state), offset: 0 };
    clearFlash();
    writeState(state);
    load();
  }

  const form = $("#filters");
  form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
  form.addEventListener("change", (event) => {
    // Picking from a list applies at once; typed text waits for 查询 or Enter.
    if (event.target.tagName === "SELECT" || event.target.type === "month") apply();
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    const filters = {};
    for (const f of REGISTERS[state.register].filters) filters[f.name] = "";
    state = { ...state, filters, offset: 0 };
    clearFlash();
    writeState(state);
    drawFilters(state, who);
    load();
  });

  window.addEventListener("popstate", () => { state = readState(); clearFlash(); draw(); });

  for (const format of ["csv", "xlsx"]) {
    $(`#export-${format}`).addEventListener("click", async (event) => {
      const button = event.currentTarget;
      const reg = REGISTERS[state.register];
      button.disabled = true;
      try {
        const params = { ...apiParams(state, who, { forManager: true }), format };
        const name = await download(reg.exportPath + query(params), `${reg.label}.${format}`);
        flash(`已导出 ${name}`);
      } catch (err) {
        showError(err);
      } finally {
        button.disabled = false;
      }
    });
  }

  // The template is fetched with the person's token (a plain link would carry none).
  for (const link of [$("#import-template-xlsx"), $("#import-template-csv")]) {
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      const reg = REGISTERS[state.register];
      const format = link.dataset.format;
      try {
        const name = await download(reg.templatePath + query(templateParams(reg, format)),
          `${reg.templateName}.${format}`);
        flash(`已下载 ${name}：在第一行表头下逐行填写，填好后在此导入`);
      } catch (err) {
        showError(err);
      }
    });
  }

  $("#import-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const importForm = event.currentTarget;
    const reg = REGISTERS[state.register];
    const file = $("#import-file").files[0];
    resetImportReport();
    clearFlash();
    if (!file) {
      flash("请先选择要导入的文件 / choose a file first", "error");
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    const params = { repeat: $("#import-repeat").checked ? "true" : "", playbook: importPlaybook(reg) };
    const submit = $("#import-submit");
    submit.disabled = true;
    submit.textContent = "导入中…";
    try {
      const result = await api(reg.importPath + query(params), { method: "POST", form });
      const line = importedLine(reg, result);
      $("#import-result").textContent = line;
      $("#import-result").hidden = false;
      flash(line);
      importForm.reset();
      state = { ...state, offset: 0 };
      writeState(state, { push: false });
      await load();
    } catch (err) {
      // A file's mistakes are listed row by row under the form (showProblems); the banner
      // says only how many, not the whole list again run together with the API's field ids
      // (code: …；found_at: …), which on a phone pushed the list off the screen.
      const listed = err instanceof ApiError && err.body && Array.isArray(err.body.errors) &&
        err.body.errors.length > 0;
      if (listed) flash(`${err.detail}（逐行列在下方“导入”处）`, "error");
      else showError(err);
      if (err instanceof ApiError && err.status !== 0) {
        showProblems(err);
        if (!(err.body && err.body.errors)) markField(importForm, err);
      }
    } finally {
      submit.disabled = false;
      submit.textContent = "导入";
    }
  });

  await draw();
});
