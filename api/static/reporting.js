// 信息报送考核: how timely each unit's reports were in a month (GET /api/reporting, counted in
// flows/reporting.py): due, on time, 迟报 (mean and worst lateness), 漏报 and the on-time rate,
// by kind under each unit, ranked; below, every late or missed report, each linked to its run
// so a manager can see why (one never handed out says which step it still waits on), then the
// 待核实 ones (whether owed depends on a step never done: listed, not counted). The month,
// level and scope are kept in the address.
import { $, api, clear, clearFlash, download, flash, h, markField, query, showError, startPage,
  choicesWhileLoading } from "/static/closeloop.js";
import { defaultLevel, drawUnits } from "/static/unit_scope.js";

const percent = (rate) => (rate === null || rate === undefined ? "—" : (Math.round(rate * 1000) / 10).toFixed(1));
const minutes = (value) => (value === null || value === undefined ? "—" : value.toFixed(1));

// [header (the export's, flows/exports.py REPORTING_COLUMNS), cell]
const COLUMNS = [
  ["排名", (r) => r.rank || ""], ["单位", (r) => r.unit_name], ["报告类别", (r) => r.kind || "全部"],
  ["应报数", (r) => r.due], ["按时报送数", (r) => r.on_time], ["迟报数", (r) => r.late],
  ["平均迟报(分钟)", (r) => minutes(r.mean_late_minutes)], ["最长迟报(分钟)", (r) => minutes(r.max_late_minutes)],
  ["漏报数", (r) => r.missed], ["按时报送率(%)", (r) => percent(r.on_time_rate)],
  // The unit's reports whose being owed is not known (not counted): on its row, not by kind.
  ["待核实", (r) => (r.unsure === undefined ? "" : r.unsure)],
];

const ORDER_ZH = {
  "on_time_rate desc": "按时报送率（高者在前）", "missed asc": "漏报数（少者在前）",
  "late asc": "迟报数（少者在前）", "mean_late_minutes asc": "平均迟报时长（短者在前）",
};

function readState() {
  const params = new URLSearchParams(window.location.search);
  return { month: params.get("month") || "", level: params.get("level") || "", unit: params.get("unit") || "" };
}

function writeState(state, { push = true } = {}) {
  const url = window.location.pathname + query(state);
  if (url === window.location.pathname + window.location.search) return;
  window.history[push ? "pushState" : "replaceState"](null, "", url);
}



// A unit's row (all its reports), then a row per kind it had due; the total last.
function tableRows(answer) {
  const out = [];
  for (const r of answer.data) {
    out.push({ row: r, unit: r, cls: "unit-row" });
    for (const k of r.kinds) out.push({ row: { ...k, unit_name: "", rank: 0 }, unit: r, cls: "kind-row" });
  }
  out.push({ row: { ...answer.total, unit_name: `合计（${answer.total.unit_name}）`, rank: 0 }, unit: null, cls: "total-row" });
  return out;
}

function drawTable(answer) {
  const wrap = clear($("#table"));
  const head = h("tr", {}, COLUMNS.map(([header], i) =>
    h("th", { scope: "col", class: i === 1 || i === 2 ? null : "num", text: header })));
  const rows = tableRows(answer).map(({ row, unit, cls }) => {
    const bad = row.late + row.missed > 0;
    return h("tr", { class: [cls, bad && cls === "unit-row" ? "overdue-row" : ""].join(" ").trim(),
      dataset: unit ? { unit: unit.unit_id, kind: row.kind || "全部" } : { total: "true" } },
    COLUMNS.map(([, cell], i) => h("td", { class: i === 1 || i === 2 ? null : "num", text: String(cell(row)) })));
  });
  wrap.append(h("table", { id: "reporting-table" }, h("thead", {}, head), h("tbody", {}, rows)));
}

// What became of a report: done (when), or not (its task's status; never handed out: the
// step it still waits on, its deadline counted from the alert all the same).
function doneText(r) {
  if (!r.handed_out) {
    const waiting = r.held_up_by ? `，等待“${r.held_up_by}”` : "";
    return r.done_at_local ? `未派发，事件已于${r.done_at_local}结束或撤销${waiting}` : `未派发（时限自接报起算${waiting}）`;
  }
  if (r.done_at_local) return `${r.done_at_local}${r.outcome === "漏报" ? `（${r.status_zh}）` : ""}`;
  return `未报（${r.status_zh}）`;
}

// The report's own task when it was handed out; else its step's title, linking nowhere.
const reportCell = (r) => (r.step_id === null ? h("td", { text: r.title }) : h("td", {}, h("a", { href: `/tasks/${r.step_id}`, text: r.title })));

function reportTable(id, list, lastHeader, lastCell) {
  const head = h("tr", {}, ["情况", "报告类别", "报告", "单位", "时限", lastHeader, "迟报(分钟)", "事件"].map(
    (t) => h("th", { scope: "col", text: t })));
  const rows = list.map((r) => h("tr", { class: "overdue-row", dataset: { step: String(r.step_id ?? ""), run: String(r.run_id), kind: r.kind } }, [
    h("td", { text: r.outcome }), h("td", { text: r.kind }), reportCell(r),
    h("td", { text: r.unit_name }), h("td", { text: r.due_at_local }),
    h("td", { text: lastCell(r) }),
    h("td", { class: "num", text: minutes(r.late_minutes) }),
    h("td", {}, h("a", { href: `/runs/${r.run_id}`, title: "查看该事件的流程和时间线", text: r.run_title })),
  ]));
  return h("table", { id }, h("thead", {}, head), h("tbody", {}, rows));
}

function drawReports(answer) {
  const wrap = clear($("#reports"));
  if (answer.reports.length === 0) {
    wrap.append(h("p", { class: "empty", text: "本月该范围内没有迟报、漏报。" }));
  } else {
    wrap.append(reportTable("reports-table", answer.reports, "完成时间", doneText));
  }
  const unsure = clear($("#unsure"));
  $("#unsure-section").hidden = answer.unsure.length === 0;
  if (answer.unsure.length > 0) {
    unsure.append(reportTable("unsure-table", answer.unsure, "待核实原因",
      (r) => `是否应报取决于“${r.depends_on}”，该步骤未完成`));
  }
}

const zoneName = (tz) => (["Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "PRC"].includes(tz) ? "北京时间" : tz);

function drawPeriod(answer) {
  const current = answer.as_of !== answer.end;
  $("#period").textContent = `${answer.month} 统计期间（按报送时限）：${answer.start_local} 至 ${answer.end_local}` +
    (current ? `（本月尚未结束，统计至 ${answer.as_of_local}；未到时限的报告不计）` : "") + `（${zoneName(answer.timezone)}）`;
  $("#order").textContent = `排名依据，依次比较：${answer.order.map((o) => ORDER_ZH[o] || o).join("、")}；` +
    "四项相同者并列。迟报：时限后完成；漏报：时限已过仍未完成，或事件在时限后撤销、结束；" +
    "自接报起算时限的报告，前一环节未办而未派发的，时限一过也计漏报。";
}

const early = choicesWhileLoading($("#reporting-form"));

startPage(async (who) => {
  // A month or level chosen while the page asked who is signed in is kept (and put in the address).
  const chosen = early.taken();
  let state = { ...readState(), ...chosen };
  if (Object.keys(chosen).length) writeState(state, { push: false });
  $("#heading").textContent = "信息报送考核";
  $("#month").max = who.now_local.slice(0, 7);
  let shown = null;

  function fill() {
    const unit = state.unit || who.unit_id;
    drawUnits(who, unit);
    $("#level").value = state.level || defaultLevel(who, unit);
    $("#month").value = state.month;
  }

  async function load() {
    const unit = state.unit || who.unit_id;
    const params = { month: state.month, level: state.level || defaultLevel(who, unit), unit };
    const form = $("#reporting-form");
    try {
      const answer = await api(`/api/reporting${query(params)}`);
      shown = answer;
      markField(form, null);
      if (!state.month) {
        state = { ...state, month: answer.month };
        writeState(state, { push: false });
        $("#month").value = answer.month;
      }
      drawPeriod(answer);
      drawTable(answer);
      drawReports(answer);
    } catch (err) {
      shown = null;
      clear($("#table"));
      clear($("#reports"));
      clear($("#unsure"));
      $("#unsure-section").hidden = true;
      $("#period").textContent = "";
      $("#order").textContent = "";
      showError(err);
      markField(form, err);
    }
  }

  function apply() {
    const unit = $("#unit").value;
    let level = $("#level").value;
    if (unit !== (state.unit || who.unit_id) && level === defaultLevel(who, state.unit || who.unit_id)) {
      level = defaultLevel(who, unit);
    }
    state = { month: $("#month").value, level, unit: unit === who.unit_id ? "" : unit };
    clearFlash();
    writeState(state);
    fill();
    load();
  }

  $("#reporting-form").addEventListener("submit", (event) => { event.preventDefault(); apply(); });
  $("#reporting-form").addEventListener("change", () => apply());
  window.addEventListener("popstate", () => { state = readState(); clearFlash(); fill(); load(); });

  // The Excel file carries the 明细 as its second sheet; 导出明细 gives it alone, as CSV.
  for (const [selector, format, detail] of [["#export-csv", "csv", false], ["#export-xlsx", "xlsx", false], ["#export-detail-csv", "csv", true]]) {
    $(selector).addEventListener("click", async (event) => {
      const button = event.currentTarget;
      const unit = state.unit || who.unit_id;
      const params = { month: shown ? shown.month : state.month, level: state.level || defaultLevel(who, unit), unit, format };
      if (detail) params.detail = "true";
      button.disabled = true;
      try {
        const name = await download(`/api/reporting/export${query(params)}`, `信息报送考核${detail ? "明细" : ""}.${format}`);
        flash(`已导出 ${name}`);
      } catch (err) {
        showError(err);
      } finally {
        button.disabled = false;
      }
    });
  }

  fill();
  await load();
});
