// 综合评价月排名: the units of a level (streets, or communities) ranked on a month's hazard
// closure, as GET /api/ranking counts it (flows/ranking.py), with the export's Chinese headers
// and the period it covers. The month, level and scope are kept in the address.
import { $, api, clear, clearFlash, download, flash, h, markField, query, showError, startPage,
  choicesWhileLoading } from "/static/closeloop.js";
import { defaultLevel, drawUnits } from "/static/unit_scope.js";

// A rate 0..1 as the export prints it: a percentage to one decimal.
const percent = (rate) => (rate === null || rate === undefined ? "—" : (Math.round(rate * 1000) / 10).toFixed(1));
const days = (value) => (value === null || value === undefined ? "—" : value.toFixed(1));

// [header (the export's, flows/exports.py RANKING_COLUMNS), cell]
const COLUMNS = [
  ["排名", (r) => r.rank], ["单位", (r) => r.unit_name], ["发现隐患数", (r) => r.found],
  ["当月销号数", (r) => r.closed], ["当月发现且销号数", (r) => r.closed_of_found],
  ["销号率(%)", (r) => percent(r.closure_rate)], ["月末逾期未销号数", (r) => r.overdue],
  ["平均销号天数", (r) => days(r.mean_days_to_close)], ["按期销号数", (r) => r.on_time],
  ["按期销号率(%)", (r) => percent(r.on_time_rate)],
];

const ORDER_ZH = {
  "on_time_rate desc": "按期销号率（高者在前）", "closure_rate desc": "销号率（高者在前）",
  "overdue asc": "月末逾期未销号数（少者在前）", "mean_days_to_close asc": "平均销号天数（少者在前）",
};

function readState() {
  const params = new URLSearchParams(window.location.search);
  return {
    month: params.get("month") || "", level: params.get("level") || "", unit: params.get("unit") || "",
    live: params.get("live") === "true" ? "true" : "",
  };
}

function writeState(state, { push = true } = {}) {
  const url = window.location.pathname + query(state);
  if (url === window.location.pathname + window.location.search) return;
  window.history[push ? "pushState" : "replaceState"](null, "", url);
}



// Where a row's figures come from, for "why is this unit last?": the unit's 整改清单 (its open
// hazards, each with 当前环节 and 当前办理人), and its overdue ones: while the month is still
// running, those overdue now (the 整改清单's 是否逾期); for a finished month, the hazards
// overdue at its end, some closed since (the 隐患清单 filtered by 月末逾期未销号).
function registerOf(r, { overdue = "" } = {}) {
  return `/hazards${query({ register: "rectification", unit: r.unit_id, overdue })}`;
}

function overdueAtEnd(r, month) {
  return `/hazards${query({ register: "hazards", unit: r.unit_id, overdue_month: month })}`;
}

function drawTable(answer) {
  const current = answer.as_of !== answer.end;
  const wrap = clear($("#table"));
  if (answer.data.length === 0) {
    wrap.append(h("p", { class: "empty", text: "该范围内没有可排名的单位。" }));
    return;
  }
  // Figures right-aligned; the unit's name (column 2) as text.
  const head = h("tr", {}, COLUMNS.map(([header], i) =>
    h("th", { scope: "col", class: i === 1 ? null : "num", text: header })));
  const rows = answer.data.map((r) => h("tr", { dataset: { unit: r.unit_id } },
    COLUMNS.map(([header, cell], i) => {
      const late = header === "月末逾期未销号数" && r.overdue > 0;
      const cls = [i === 1 ? "" : "num", late ? "overdue" : ""].join(" ").trim();
      let shown = String(cell(r));
      if (i === 1) shown = h("a", { href: registerOf(r), title: "查看该单位的整改清单", text: shown });
      else if (late && current) {
        shown = h("a", { href: registerOf(r, { overdue: "true" }), title: "查看该单位逾期未销号的隐患", text: shown });
      } else if (late) {
        shown = h("a", { href: overdueAtEnd(r, answer.month), title: "查看该单位月末逾期未销号的隐患", text: shown });
      }
      return h("td", { class: cls || null }, shown);
    })));
  wrap.append(h("table", { id: "ranking-table" }, h("thead", {}, head), h("tbody", {}, rows)));
}

// The zone the period is counted in, as a manager says it: China's one zone is 北京时间; any
// other a bureau configures is named by its identifier, which is all the API gives.
const zoneName = (tz) => (["Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "PRC"].includes(tz) ? "北京时间" : tz);

function drawPeriod(answer) {
  const current = answer.as_of !== answer.end;
  $("#period").textContent = `${answer.month} 统计期间：${answer.start_local} 至 ${answer.end_local}` +
    (current ? `（本月尚未结束，统计至 ${answer.as_of_local}）` : "") + `（${zoneName(answer.timezone)}）`;
  $("#order").textContent = `排名依据，依次比较：${answer.order.map((o) => ORDER_ZH[o] || o).join("、")}；` +
    "四项相同者并列。";
}

// A finished month is counted live until a district manager publishes it (通报); from then
// on it reads the published figures, and a recount is one click away, said as such.
function drawPublication(answer, who) {
  const p = answer.published;
  const finished = answer.as_of === answer.end;
  let text = finished ? "未发布：以下为按登记台账实时统计的数据。" : "";
  if (p) {
    const by = `已于 ${p.published_at_local} 由 ${p.published_by_name} 发布${p.reason ? `（更正原因：${p.reason}）` : ""}`;
    text = answer.live ? `实时重算：以下为按当前台账重新统计的数据（${by}）。` : `${by}：以下为发布时的数据。`;
  }
  $("#published").textContent = text;
  const toggle = $("#switch-live");
  toggle.hidden = !p;
  toggle.textContent = answer.live ? "查看发布数据" : "按当前台账重算";
  $("#publish-form").hidden = !(finished && who.publisher);
  $("#publish-confirm").hidden = true;
  $("#reason-box").hidden = !p;
  $("#publish").textContent = p ? "更正发布" : "发布排名";
}

const early = choicesWhileLoading($("#ranking-form"));

startPage(async (who) => {
  // A month or level chosen while the page asked who is signed in is kept (and put in the address).
  const chosen = early.taken();
  let state = { ...readState(), ...chosen };
  if (Object.keys(chosen).length) writeState(state, { push: false });
  $("#heading").textContent = "综合评价月排名";
  $("#month").max = who.now_local.slice(0, 7);
  let shown = null; // the answer on the page: its month is what the export asks for

  function fill() {
    const unit = state.unit || who.unit_id;
    drawUnits(who, unit);
    $("#level").value = state.level || defaultLevel(who, unit);
    $("#month").value = state.month;
  }

  async function load() {
    const unit = state.unit || who.unit_id;
    const params = { month: state.month, level: state.level || defaultLevel(who, unit), unit, live: state.live };
    const form = $("#ranking-form");
    try {
      // No month asked: the API's default, the previous month by the server's clock.
      const answer = await api(`/api/ranking${query(params)}`);
      shown = answer;
      markField(form, null);
      if (!state.month) {
        state = { ...state, month: answer.month };
        writeState(state, { push: false });
        $("#month").value = answer.month;
      }
      drawPeriod(answer);
      drawPublication(answer, who);
      drawTable(answer);
    } catch (err) {
      shown = null;
      clear($("#table"));
      $("#period").textContent = "";
      $("#published").textContent = "";
      $("#switch-live").hidden = true;
      $("#publish-form").hidden = true;
      $("#order").textContent = "";
      showError(err);
      markField(form, err);
    }
  }

  $("#ranking-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  $("#ranking-form").addEventListener("change", () => apply());

  function apply() {
    const unit = $("#unit").value;
    let level = $("#level").value;
    // A new scope of another kind takes its own default level (a street has no streets).
    if (unit !== (state.unit || who.unit_id) && level === defaultLevel(who, state.unit || who.unit_id)) {
      level = defaultLevel(who, unit);
    }
    state = { month: $("#month").value, level, unit: unit === who.unit_id ? "" : unit, live: "" };
    clearFlash();
    writeState(state);
    fill();
    load();
  }

  $("#switch-live").addEventListener("click", () => {
    state = { ...state, live: state.live ? "" : "true" };
    clearFlash();
    writeState(state);
    load();
  });

  // Publishing is said before it is done, on the page itself (run.js does the same).
  $("#publish-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearFlash();
    const month = shown ? shown.month : state.month;
    $("#publish-effect").textContent = shown && shown.published
      ? `更正发布 ${month} 的排名：此后以更正后的数据为准，原发布记录保留。`
      : `发布 ${month} 的排名：此后该月排名以发布时的数据为准，之后的撤销、延期不再改变它。`;
    $("#publish-confirm").hidden = false;
    $("#publish-yes").focus();
  });
  $("#publish-no").addEventListener("click", () => { $("#publish-confirm").hidden = true; });
  $("#publish-yes").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const month = shown ? shown.month : state.month;
    const reason = $("#reason").value.trim();
    button.disabled = true;
    try {
      await api("/api/ranking/publish", { method: "POST", json: { month, reason: reason || null } });
      $("#publish-confirm").hidden = true;
      $("#reason").value = "";
      state = { ...state, live: "" };
      writeState(state);
      await load();
      flash(`已发布 ${month} 综合评价月排名`);
    } catch (err) {
      $("#publish-confirm").hidden = true;
      showError(err);
      markField($("#publish-form"), err);
    } finally {
      button.disabled = false;
    }
  });

  window.addEventListener("popstate", () => { state = readState(); clearFlash(); fill(); load(); });

  for (const format of ["csv", "xlsx"]) {
    $(`#export-${format}`).addEventListener("click", async (event) => {
      const button = event.currentTarget;
      const unit = state.unit || who.unit_id;
      const params = {
        month: shown ? shown.month : state.month, level: state.level || defaultLevel(who, unit), unit,
        live: state.live, format,
      };
      button.disabled = true;
      try {
        const name = await download(`/api/ranking/export${query(params)}`, `综合评价月排名.${format}`);
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
