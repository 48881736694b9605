// 事件与流程: the runs the person may see, newest first, filtered by playbook, status, unit and
// start date. The filters live in the address (?status=running&offset=20), so a reload, the
// back button or a link sent to a colleague shows the same list.
import {
  $, RUN_STATUS, api, clear, clearFlash, countdown, drillBadge, h, me, query, showError,
  choicesWhileLoading,
  startPage,
  statusBadge,
  unitChoices,
} from "/static/closeloop.js";
import { paramBadge } from "/static/run_signal.js";

const PAGE = 20;
const FILTERS = ["playbook", "status", "unit", "drill", "since", "until"];
// Wide screens get a table; a phone gets one card per run (a table would scroll sideways).
const WIDE = window.matchMedia("(min-width: 48rem)");


let last = null; // the last answer, redrawn when the screen turns from narrow to wide

function state() {
  const params = new URLSearchParams(window.location.search);
  const s = { offset: Math.max(0, Number.parseInt(params.get("offset") || "0", 10) || 0) };
  for (const name of FILTERS) s[name] = params.get(name) || "";
  return s;
}

function remember(s) {
  const shown = { ...s, offset: s.offset || "" };
  window.history.replaceState(null, "", window.location.pathname + query(shown));
}

function option(value, text, selected) {
  return h("option", { value, selected: value === selected }, text);
}

async function fillFilters(who, s) {
  const form = $("#filters");
  for (const [value, name] of Object.entries(RUN_STATUS)) {
    form.status.append(option(value, name, s.status));
  }
  for (const [id, label] of unitChoices(who)) form.unit.append(option(id, label, s.unit));
  form.drill.value = ["true", "false"].includes(s.drill) ? s.drill : "";
  form.since.value = s.since;
  form.until.value = s.until;
  const books = await api("/api/playbooks");
  for (const pb of books.data) form.playbook.append(option(pb.id, pb.title, s.playbook));
  // A playbook no longer loaded (its runs stay listable) still shows as the chosen filter.
  if (s.playbook && form.playbook.value !== s.playbook) {
    form.playbook.append(option(s.playbook, s.playbook, s.playbook));
  }
}

// "2026-03-02" -> "2026-03-03" (calendar arithmetic only: no zone is involved).
function nextDay(day) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

// The API reads a time without zone in the bureau's zone, and `until` is exclusive: a whole
// day is from its 00:00 to the next day's 00:00 (23:59:59 would lose a run started in the
// day's last second).
function apiQuery(s) {
  return query({
    playbook: s.playbook, status: s.status, unit: s.unit, drill: s.drill,
    since: s.since ? `${s.since}T00:00:00` : "", until: s.until ? `${nextDay(s.until)}T00:00:00` : "",
    limit: PAGE, offset: s.offset,
  });
}

function runLink(run) {
  const link = h("a", { href: `/runs/${run.id}`, text: run.title || `#${run.id}` });
  return run.drill ? h("span", {}, drillBadge(run.drill), link) : link;
}

function playbookName(run, names) {
  return names.get(run.playbook) || run.playbook;
}

// A running run's late work, from GET /api/runs: how many of its tasks are past their
// deadline and the worst by days (the run page's 逾期 N 天), so a commander scanning the list
// sees which runs to open first. Nothing for a run with none late.
const isLate = (run) => (run.overdue_tasks || 0) > 0;

function lateMark(run) {
  if (!isLate(run)) return null;
  // Less than a day late (a gas leak's minutes-long steps) is said by the time itself, as the
  // task page and the inbox say it; from a day on, in the registers' days.
  const since = run.earliest_overdue_due_at ? countdown(run.earliest_overdue_due_at) : null;
  const worst = since && since.ms > -86400000 ? `，最长 ${since.text.replace(/^逾期 /, "")}`
    : run.max_overdue_days ? `，最长 ${run.max_overdue_days} 天` : "";
  return h("span", { class: "badge overdue-badge run-overdue",
    text: `${run.overdue_tasks} 项逾期${worst}` });
}

// A typhoon's signal as it stands now (a changeable param), in its colour, beside its stage.
function signals(run) {
  return (run.changeable_params || []).map((p) => paramBadge(p));
}

function table(runs, names) {
  const head = ["事件/流程", "预案", "单位", "状态", "逾期", "阶段", "启动时间", "启动人"];
  return h("div", { class: "table-wrap" }, h("table", { id: "runs-table" },
    h("thead", {}, h("tr", {}, head.map((text) => h("th", { scope: "col", text })))),
    h("tbody", {}, runs.map((run) => h("tr", {
      class: isLate(run) ? "overdue-row" : null, dataset: { runId: run.id },
    },
    h("td", {}, runLink(run)),
    h("td", { text: playbookName(run, names) }),
    h("td", { text: run.unit_name }),
    h("td", {}, statusBadge(run.status, RUN_STATUS)),
    h("td", {}, lateMark(run) || "—"),
    h("td", {}, run.stage_title || "—", ...signals(run)),
    h("td", { text: run.started_at_local }),
    h("td", { text: run.started_by_name || run.started_by }),
    )))));
}

function cards(runs, names) {
  return h("div", { class: "cards" }, runs.map((run) => h("article", {
    class: `card run-card${isLate(run) ? " is-overdue" : ""}`, dataset: { runId: run.id },
  },
  h("h3", {}, runLink(run), " ", statusBadge(run.status, RUN_STATUS)),
  lateMark(run) ? h("p", {}, lateMark(run)) : null,
  h("p", { class: "meta" }, `${playbookName(run, names)} · ${run.unit_name}`,
    run.stage ? ` · 阶段 ${run.stage_title}` : "", ...signals(run)),
  h("p", { class: "meta" }, `${run.started_at_local} 由 ${run.started_by_name || run.started_by} 启动`),
  )));
}

function draw() {
  if (!last) return;
  const { answer, s, names } = last;
  const box = clear($("#runs"));
  const first = answer.count ? s.offset + 1 : 0;
  const end = s.offset + answer.data.length;
  $("#count").textContent = `共 ${answer.count} 项`;
  $("#page-info").textContent = answer.count ? `第 ${first}–${end} 项，共 ${answer.count} 项` : "";
  $("#prev").disabled = s.offset <= 0;
  $("#next").disabled = end >= answer.count;
  $("#pager").hidden = answer.count <= PAGE;
  if (!answer.data.length) {
    box.append(h("p", { class: "empty", text: "没有符合条件的事件或流程。" }));
    return;
  }
  box.append(WIDE.matches ? table(answer.data, names) : cards(answer.data, names));
}

// Filters changed quickly send several reads; an earlier one answered last must not draw over
// the list the newest filter asked for.
let asked = 0;

async function load(s, names) {
  remember(s);
  const mine = ++asked;
  const answer = await api(`/api/runs${apiQuery(s)}`);
  if (mine !== asked) return;
  last = { answer, s, names };
  draw();
}

// Filters chosen before the page knows who is signed in (a phone on a slow network shows the
// form first: 真实/演练 and the dates are there at once) are kept, not reset to the address's
// when the menus are filled, as they were while the form listened only after sign-in.
const early = choicesWhileLoading($("#filters"));
$("#filters").addEventListener("submit", (event) => event.preventDefault());

startPage(async (who) => {
  const chosen = () => (Object.keys(early.chosen).length ? { ...early.chosen, offset: 0 } : {});
  const s = { ...state(), ...chosen() };
  if (who.startable.length) $("#start-link").hidden = false;
  await fillFilters(who, s);
  Object.assign(s, chosen()); // chosen while the playbooks were asked for (the form shows it)
  const names = new Map([...$("#filters").playbook.options].map((o) => [o.value, o.textContent]));
  const reload = async (next) => {
    clearFlash();
    try {
      await load(next, names);
    } catch (err) {
      showError(err);
    }
  };
  early.taken();
  $("#filters").addEventListener("change", (event) => {
    const form = event.currentTarget;
    const next = { offset: 0 };
    for (const name of FILTERS) next[name] = form[name].value;
    reload(next);
  });
  const page = (step) => {
    const s0 = last ? last.s : s;
    reload({ ...s0, offset: Math.max(0, s0.offset + step) });
  };
  $("#prev").addEventListener("click", () => page(-PAGE));
  $("#next").addEventListener("click", () => page(PAGE));
  WIDE.addEventListener("change", draw);
  await load(s, names);
});
