// One run as its commander watches it: who has which step, how long each has left (counted
// down against the server's clock), which deadlines were missed and who was chased for them,
// the documents it filed, and everything that happened, in order. A commander moves a staged
// run (typhoon 633) to its next stage, ends a drill (结束演练) or cancels a run, each after a
// second, explicit click on the page itself (a browser's confirm dialog is easy to click away,
// and tests cannot see it).
import {
  $, ApiError, RUN_STATUS, STEP_STATUS, api, clear, clearFlash, drillBanner, flash, h,
  liveCountdowns, query,
  sending, serverNow, showError, shownValue, startPage, statusBadge,
} from "/static/closeloop.js";
import { docBody, docPage, docSource, docTitle } from "/static/docview.js";
import { changeLine, drawSignal, paramBadge, stageParams, wireSignal } from "/static/run_signal.js";

const RUN_ID = document.body.dataset.runId;
const REFRESH_MS = 60000;

const ACTION_NAMES = { notify: "自动通知", document: "自动生成文书", wait: "等待", playbook: "子流程" };

// flows/sweeper.KIND_TITLES
const KIND_NAMES = { remind: "到期提醒", ack: "未签收", escalate: "督办提醒", verify: "核验超时" };
// A reminder (or an unacknowledged alert) is no rung of the ladder: no level for those.
const NO_LEVEL = new Set(["run_started", "remind", "ack"]);

const EVENT_NAMES = {
  run_started: "启动流程", run_completed: "流程完成", run_cancelled: "取消流程",
  stage_changed: "切换阶段", param_changed: "变更参数", alerted: "即时通知", called_off: "撤销任务", rehanded: "重新下达", ready: "任务下达", acked: "签收", submitted: "提交核验", done: "完成",
  verified: "核验通过", rejected: "退回", skipped: "跳过", overdue: "逾期", remind: "到期提醒",
  ack: "未签收提醒", escalate: "督办", verify: "核验超时督办", extended: "延期",
  deadline_recounted: "期限重算", delivery_resent: "重新发送通知",
  extension_requested: "申请延期", extension_decision_overdue: "延期审批超时",
  extension_chase_failed: "延期督办失败", reassigned: "改派", child_started: "启动子流程",
  delivery_failed: "通知发送失败", render_failed: "文书生成出错", expression_failed: "条件计算出错",
  segment_failed: "自动步骤执行出错（重试中）",
  hazards_imported: "导入隐患", hazards_import_stopped: "隐患导入中止", risks_imported: "导入风险",
};

const NOTE_STATUS = { pending: "待发送", delivered: "已送达", dead: "发送失败" };

// Every message goes to the person's in-app inbox (models/outbox.py INBOX_URL) and, where the
// org chart gives one, to their own channel too: two rows, one person.
const INBOX_URL = "inbox://";
function channelName(url) {
  return url === INBOX_URL ? "站内通知" : (url || "—");
}

// 贾丽萍（站内：已送达；外部渠道：发送失败）: each person once, with how each channel fared, so
// a manager reads who was told and whether it arrived rather than one name twice.
function servedLine(group) {
  const byPerson = new Map();
  for (const n of group) {
    const who = n.recipient_name || n.recipient;
    if (!byPerson.has(who)) byPerson.set(who, []);
    byPerson.get(who).push(n);
  }
  const parts = [];
  for (const [who, rows] of byPerson) {
    const status = (n) => NOTE_STATUS[n.status] || n.status;
    const text = rows.length === 1 ? status(rows[0])
      : rows.map((n) => `${n.url === INBOX_URL ? "站内" : "外部渠道"}：${status(n)}`).join("；");
    parts.push(`${who}（${text}）`);
  }
  return { people: byPerson.size, text: parts.join("、") };
}

const state = { who: null, run: null, playbook: null, timer: null };

// A stage as the playbook titles it (stage_titles), else its id.
function stageName(stage) {
  if (!stage) return "—";
  const titles = (state.playbook && state.playbook.stage_titles) || {};
  return titles[stage] || stage;
}

function stateName(value, action) {
  if (value === null || value === undefined) return "";
  if (action === "stage_changed") return stageName(value);
  return STEP_STATUS[value] || RUN_STATUS[value] || value;
}

function names(people) {
  return people && people.length ? people.map((p) => p.name).join("、") : "—";
}

// Whoever holds a task, with how to reach them (post, unit, phone) as the org chart has them:
// "who has it now?" is answered with a number to call, not only a name.
function contacts(people) {
  if (!people || !people.length) return "—";
  return people.map((p) => {
    const about = [p.title, p.unit_name, p.phone ? `电话 ${p.phone}` : null].filter(Boolean);
    return about.length ? `${p.name}（${about.join("，")}）` : p.name;
  }).join("、");
}

// -- the run's head ---------------------------------------------------------------------------

function fact(term, ...value) {
  return [h("dt", { text: term }), h("dd", {}, ...value)];
}

function drawSummary(run, entry) {
  const mark = run.drill ? "【演练】" : "";
  $("#heading").textContent = `${mark}${run.title}`;
  document.title = `${mark}${run.title} · closeloop`;
  clear($("#drill-band")).append(...[drillBanner(run.drill)].filter(Boolean));
  $("#evaluation-link").firstChild.textContent = run.drill ? "演练评估 " : "复盘 ";
  const stage = run.stage ? h("span", { class: "badge stage-badge", text: `阶段：${stageName(run.stage)}` }) : "";
  // The typhoon's signal as it stands now, in its colour (a changeable param, run_signal.js).
  const now = (run.changeable_params || []).map((p) => paramBadge(p));
  clear($("#run-status")).append(statusBadge(run.status, RUN_STATUS), stage, ...now);
  const pb = state.playbook;
  clear($("#run-facts")).append(
    ...fact("预案", pb ? pb.title : run.playbook, h("span", { class: "en", text: ` ${run.playbook} v${run.playbook_version}` })),
    ...fact("单位", run.unit_name),
    ...fact("启动", `${run.started_at_local} · ${run.started_by_name || run.started_by}`),
    ...(run.finished_at_local ? fact("结束", run.finished_at_local) : []),
    ...(run.stage ? fact("当前阶段", stageName(run.stage)) : []),
  );
  drawParams(run, pb, entry);
}

// A hazard registered without 发现时间, 发现人 or 隐患编号 is entered in the register with the
// registration's time, the person who registered it and a number of the system's own
// (flows/registers.py entry_row); the page says those, as the registers and exports do, and
// says where they came from, instead of a dash beside a register that names them.
const FROM_REGISTER = {
  found_at: [(e) => e.found_at_local, "未填写，台账按登记时间记"],
  found_by: [(e) => e.found_by_name || e.found_by, "未填写，台账按登记人记"],
  code: [(e) => e.code, "未填写，台账自动编号"],
};

function paramText(name, value, entry) {
  const filled = !(value === null || value === undefined || value === "");
  const fill = FROM_REGISTER[name];
  if (filled || !entry || !fill || !fill[0](entry)) return shownValue(value);
  return `${fill[0](entry)}（${fill[1]}）`;
}

function drawParams(run, pb, entry) {
  const box = clear($("#run-params"));
  const entries = Object.entries(run.params || {});
  if (!entries.length) return;
  const specs = (pb && pb.params) || {};
  box.append(h("div", { class: "table-wrap" }, h("table", { id: "params-table", class: "compact" },
    h("caption", { text: "预案参数" }),
    h("tbody", {}, entries.map(([name, value]) => h("tr", { dataset: { param: name } },
      h("th", { scope: "row", text: (specs[name] && specs[name].title) || name }),
      h("td", { text: paramText(name, value, entry) })))))));
}

// The register entry of a run whose playbook keeps one (隐患清单), or null: another playbook,
// or a person who may open the run but not the register.
async function entryOf(pb) {
  if (!pb || !pb.register) return null;
  try {
    return await api(`/api/hazards/${RUN_ID}`);
  } catch {
    return null;
  }
}

// -- a 3030 campaign's progress --------------------------------------------------------------

// A campaign (playbook kind: campaign) is watched by its figures, counted live from the hazard
// register; null for any other run.
async function campaignOf(pb) {
  if (!pb || pb.kind !== "campaign") return null;
  try {
    return await api(`/api/campaigns/${RUN_ID}/progress`);
  } catch (err) {
    // The run's pinned version is no campaign (the playbook file changed kind since).
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

// The hazard register filtered to this campaign (hazards.js reads its filters from the
// address: ?campaign=<run id>, and the grade the campaign counts, so the list and the figure
// hold the same hazards).
function registerOf(progress, { register = "", status = "", overdue = "" } = {}) {
  const grade = progress.grade === "全部" ? "" : progress.grade;
  return `/hazards${query({ register, campaign: progress.run_id, grade, status, overdue })}`;
}

function figure(key, term, value, { href = null, alarm = false } = {}) {
  return h("div", { class: alarm ? "figure alarm" : "figure", dataset: { figure: key } },
    h("dt", { text: term }),
    h("dd", {}, href ? h("a", { href, text: value }) : value));
}

function drawCampaign(progress) {
  $("#campaign-box").hidden = !progress;
  if (!progress) return;
  const ended = progress.window_end && Date.parse(progress.as_of) >= Date.parse(progress.window_end);
  const counted = progress.grade === "全部" ? "隐患" : `${progress.grade}隐患`;
  const short = progress.met ? "已达标" : `${progress.remaining} 个`;
  clear($("#campaign-figures")).append(
    figure("target", `目标（销号${counted}）`, `${progress.target} 个`),
    figure("found", "已发现", String(progress.found), { href: registerOf(progress) }),
    figure("rectifying", "整改中", String(progress.rectifying),
      { href: registerOf(progress, { status: "open" }) }),
    figure("overdue", "逾期", String(progress.overdue),
      { href: registerOf(progress, { overdue: "true" }), alarm: progress.overdue > 0 }),
    figure("closed", "已销号", String(progress.closed),
      { href: registerOf(progress, { status: "closed" }) }),
    figure("remaining", progress.met ? "完成情况" : "尚差销号", short,
      { alarm: ended && !progress.met }),
    figure("days-left", "剩余天数",
      progress.window_days_left === null ? "—" : (ended ? "已结束" : `${progress.window_days_left} 天`)));
  $("#campaign-window").textContent = [
    progress.window_end_local
      ? `整治窗口${ended ? "已于" : "至"} ${progress.window_end_local}${ended ? " 结束" : ""}` : null,
    progress.closed_after_window > 0
      ? `窗口结束后销号 ${progress.closed_after_window} 个，不计入目标` : null,
    `统计于 ${progress.as_of_local}`,
  ].filter(Boolean).join("；");
  // The 整改清单 is a manager's register (the API asks for manager rights over the unit).
  clear($("#campaign-links")).append(
    h("a", { class: "button", href: registerOf(progress), text: "隐患清单（本行动）" }),
    state.who && state.who.manager
      ? h("a", { class: "button", href: registerOf(progress, { register: "rectification" }),
        text: "整改清单（本行动）" }) : null);
}

// -- what holds it up ------------------------------------------------------------------------

// The director's "why is it late, and who has it now?" answered at the top: each open task
// (the overdue first) with whose move it is since when, how many days late, the deadline and
// how it was counted, and what was done about it (the ladder, rejections, requests for time).
// A typhoon stage at the district leaves 200 tasks open: all of them here would put the stage
// and cancel controls 50 phone screens down. The most pressing few are shown (the overdue come
// first), and the rest on a tap; the steps list below still lists every one.
const HOLDUP_SHOWN = 5;
let holdupAll = false; // kept across the page's refreshes once asked for

function drawHoldup(run) {
  const rows = run.holdup || [];
  $("#holdup-box").hidden = rows.length === 0;
  const list = clear($("#holdup"));
  const shown = holdupAll ? rows : rows.slice(0, HOLDUP_SHOWN);
  const rest = rows.length - shown.length;
  const more = $("#holdup-more");
  more.hidden = rest === 0;
  if (rest > 0) {
    const late = rows.slice(HOLDUP_SHOWN).filter((x) => x.overdue).length;
    more.textContent = `显示其余 ${rest} 项${late ? `（其中逾期 ${late} 项）` : ""}，共 ${rows.length} 项未完成`;
    more.onclick = () => { holdupAll = true; drawHoldup(run); };
  }
  for (const x of shown) {
    const head = [x.title, x.phase, x.status_name].filter(Boolean).join(" · ");
    const extended = x.original_due_at_local ? `，原时限 ${x.original_due_at_local}` : "";
    const rule = x.due_rule ? `；期限按${x.due_rule}计` : "";
    const done = [];
    if (x.escalation_level > 0) {
      done.push(`已督办 ${x.escalation_level} 级${x.last_rung ? `（最近：${x.last_rung}）` : ""}`
        + (x.letters_sent ? `，发出督办文书 ${x.letters_sent} 份` : ""));
    }
    if (x.rejections) {
      done.push(`复查退回 ${x.rejections} 次${x.last_reject_reason ? `（最近原因：${x.last_reject_reason}）` : ""}`);
    }
    if (x.extensions_asked) {
      done.push(`申请延期 ${x.extensions_asked} 次（同意 ${x.extensions_granted}，不同意 ${x.extensions_refused}）`);
    }
    // Who handed it to whoever has it now: "who is responsible" is also who put them there.
    const moved = x.last_reassignment;
    if (x.reassignments && moved) {
      const from = moved.from_names.length ? `${moved.from_names.join("、")} → ` : "";
      done.push(`改派 ${x.reassignments} 次（最近：${moved.at_local} ${moved.by_name} 改派，${from}${moved.to_name}）`);
    }
    list.append(h("li", { class: x.overdue ? "holdup is-overdue" : "holdup", dataset: { step: x.step, taskId: x.task_id } },
      h("p", { class: "holdup-head" }, h("a", { href: `/tasks/${x.task_id}`, text: head }),
        x.overdue_minutes > 0 ? [" ", lateness(x)] : null),
      h("p", { class: "holdup-who", text: `现由：${contacts(x.holders)}` }),
      h("p", { class: "meta", text: `${x.waiting_on}${x.since_local ? `，自 ${x.since_local}` : ""}` }),
      x.due_at_local ? h("p", { class: "meta", text: `时限 ${x.due_at_local}${extended}${rule}` }) : null,
      done.length ? h("p", { class: "holdup-done", text: done.join("；") }) : null));
  }
}

// -- steps ----------------------------------------------------------------------------------

const OPEN = new Set(["ready", "acked", "rejected"]);

function stepOrder(run, pb) {
  if (!pb || !pb.steps) return run.steps || [];
  const index = new Map(pb.steps.map((s, i) => [s.id, i]));
  const at = (s) => (index.has(s.step) ? index.get(s.step) : Number.MAX_SAFE_INTEGER);
  return [...(run.steps || [])].map((s, i) => [s, i])
    .sort((a, b) => at(a[0]) - at(b[0]) || a[1] - b[1]).map(([s]) => s);
}

function clock(iso, overdue) {
  return h("span", { class: "due", dataset: { due: iso, overdue: overdue ? "true" : "false" } });
}

// How late a task is, said once: while less than a day late by the live countdown the task
// page and the inbox show ("逾期 1分钟", "逾期 5小时12分"); from a full day on in days as the
// 整改清单 counts them ("逾期 13 天": the day the deadline passed is day 1), the API giving
// overdue_days only from then (flows/lateness.py). Never a day count beside a minute count.
function lateness(task) {
  if (task.overdue_days > 0) {
    return h("strong", { class: "due overdue overdue-days", text: `逾期 ${task.overdue_days} 天` });
  }
  return clock(task.due_at, true);
}

function deadline(step, live) {
  if (live && step.status === "submitted" && step.verify_due_at) {
    return h("p", {}, "核验时限 ", clock(step.verify_due_at, false), ` （${step.verify_due_at_local}）`);
  }
  if (!step.due_at) return null;
  // A run that ended counts nothing down: its open steps were called off with it.
  const running = live && (OPEN.has(step.status) || (step.id === null && step.status === "pending"));
  if (!running) return h("p", { class: "meta", text: `时限 ${step.due_at_local}` });
  const extended = step.original_due_at_local && step.original_due_at_local !== step.due_at_local
    ? `，原时限 ${step.original_due_at_local}` : "";
  const estimated = step.due_estimated ? `；${step.due_estimated}` : "";
  const rule = step.due_rule ? `；期限按${step.due_rule}计` : "";
  const late = step.overdue_minutes > 0 ? lateness(step) : clock(step.due_at, step.overdue);
  return h("p", {}, late, ` （时限 ${step.due_at_local}${extended}${rule}${estimated}）`);
}

function stepTitle(step) {
  const label = step.title || step.step;
  if (step.id !== null && step.action === "task") {
    return h("a", { href: `/tasks/${step.id}`, text: label });
  }
  return h("span", { text: label });
}

// A called-off task its stage, entered again, answered: handed out again, or passed over.
function againBadge(step, byId) {
  if (step.rehanded_from) return h("span", { class: "badge again-badge", text: "重新下达" });
  if (!step.rehanded_as) return null;
  const next = byId.get(step.rehanded_as);
  return h("span", { class: "badge again-badge",
    text: next && next.status === "skipped" ? "再次进入阶段时不再下达" : "已重新下达" });
}

function badges(step, stage, byId) {
  return [
    statusBadge(step.status, STEP_STATUS),
    againBadge(step, byId),
    step.overdue ? h("span", { class: "badge overdue-badge", text: "逾期" }) : null,
    step.escalation_level > 0
      ? h("span", { class: "badge level-badge", text: `已督办 ${step.escalation_level} 级` }) : null,
    stage ? h("span", { class: "badge stage-badge", text: stageName(stage) }) : null,
  ];
}

// Role, unit and people: for a step not reached yet, whom it will go to as far as known now.
function whoLine(step) {
  const place = [step.role_name, step.unit_name].filter(Boolean).join(" · ");
  if (step.action !== "task") {
    return h("p", { class: "meta", text: [ACTION_NAMES[step.action] || step.action, place].filter(Boolean).join(" · ") });
  }
  let people = contacts(step.assignees);
  // Not reached, or (an item waiting for its partner) reached but not yet given out.
  if (step.id === null || step.status === "pending") people = step.assignees.length ? `预计 ${people}` : "到达时确定";
  // A task handed out to nobody (no one holds the role at its unit or above: a gas leak
  // started for a street has no grid worker): said in red, with what to do, not as "—".
  else if (!step.assignees.length && OPEN.has(step.status)) {
    return h("p", { class: "unmet nobody" },
      `${place} · 负责人：无人——本单位及上级单位均无“${step.role_name || step.role}”，`,
      h("a", { class: "reassign-link", href: `/tasks/${step.id}#reassign`, text: "请改派给具体人员" }));
  }
  return h("p", { class: "meta", text: `${place} · 负责人：${people}` });
}

// Who did the work and who checked it (names where the API gives them).
function doneLine(step) {
  const parts = [];
  if (step.submitted_by) parts.push(`提交：${step.submitted_by_name || step.submitted_by}`);
  if (step.verified_by) parts.push(`核验：${step.verified_by_name || step.verified_by}`);
  const ended = { cancelled: "撤销于", skipped: "跳过于" }[step.status] || "完成于";
  if (step.done_at_local) parts.unshift(`${ended} ${step.done_at_local}`);
  else if (step.status !== "submitted") return null;
  return parts.length ? h("p", { class: "meta", text: parts.join(" · ") }) : null;
}

// The yes/no answers of a finished step that say "not done" (②危险区排查：否): a measure
// reported as not taken must not read as plain 已完成.
function unmet(step) {
  const outputs = (state.playbook && specOf(step.step) && specOf(step.step).outputs) || {};
  return Object.entries(step.outputs || {})
    .filter(([name, value]) => value === false && outputs[name] && outputs[name].type === "bool")
    .map(([name]) => outputs[name].title || name);
}

function specOf(key) {
  return ((state.playbook && state.playbook.steps) || []).find((s) => s.id === key) || null;
}

function stepItem(step, stageOf, live, byId) {
  const classes = ["step", `step-${step.status}`];
  if (step.id === null) classes.push("not-reached");
  if (step.overdue) classes.push("is-overdue");
  const notDone = unmet(step);
  return h("li", {
    class: classes.join(" "),
    dataset: { step: step.step, stepId: step.id === null ? "" : step.id, status: step.status,
      overdue: step.overdue ? "true" : "false", unmet: notDone.length ? "true" : "false" },
  },
  notDone.length ? h("p", { class: "unmet", text: `未落实：${notDone.join("、")}` }) : null,
  h("div", { class: "step-head" }, stepTitle(step), " ", badges(step, stageOf.get(step.step), byId)),
  whoLine(step),
  live && step.ack_due_at
    ? h("p", { class: "ack-due" }, "叫应时限 ",
      // Its own class: `.due` is the work's deadline (data-due drives every countdown).
      h("span", { class: "ack-clock", dataset: { due: step.ack_due_at, overdue: "false" } }),
      ` （${step.ack_due_at_local} 前签收）`) : null,
  deadline(step, live),
  step.scheduled_at && live
    ? h("p", { class: "meta scheduled", text: `将于 ${step.scheduled_at_local} 下达` }) : null,
  doneLine(step),
  step.status === "rejected" && step.reject_reason
    ? h("p", { class: "meta", text: `退回原因：${step.reject_reason}` }) : null);
}

const STEP_FILTERS = {
  all: () => true,
  open: (s) => OPEN.has(s.status) || s.status === "submitted" || s.status === "pending",
  overdue: (s) => s.overdue,
  unmet: (s) => unmet(s).length > 0,
};

function drawSteps(run, pb) {
  const stageOf = new Map(((pb && pb.steps) || []).filter((s) => s.stage).map((s) => [s.id, s.stage]));
  const steps = stepOrder(run, pb);
  const reached = steps.filter((s) => s.id !== null).length;
  const picked = document.querySelector("input[name=step-filter]:checked");
  const keep = STEP_FILTERS[picked ? picked.value : "all"] || STEP_FILTERS.all;
  const shown = steps.filter(keep);
  $("#step-count").textContent = `已下达 ${reached} 项，共 ${steps.length} 项`
    + (shown.length !== steps.length ? `；显示 ${shown.length} 项` : "");
  const list = clear($("#steps"));
  const live = run.status === "running";
  const byId = new Map(steps.filter((s) => s.id !== null).map((s) => [s.id, s]));
  for (const step of shown) list.append(stepItem(step, stageOf, live, byId));
  if (!shown.length) list.append(h("li", { class: "empty", text: steps.length ? "没有符合筛选的步骤。" : "没有步骤。" }));
}

// A step handed to many units (a typhoon's measures to every community): one row each, so a
// commander sees at a glance how many answered (叫应), finished, are late or reported a
// measure not taken, and the sums of what they counted (people moved, returned).
function drawOverview(run, pb) {
  const groups = new Map();
  for (const step of stepOrder(run, pb)) {
    // A called-off task handed out again (or passed over) is history: its unit counts once,
    // by the task that replaced it.
    if (step.id === null || step.rehanded_as) continue;
    // Rounds of a recurring step (recur) and their sendings are one unit's, again and again:
    // the rounds box and the step list tell them, not a count of units.
    const spec = specOf(step.step);
    if (spec && (spec.recur || ((spec.item_needs || []).length && !spec.for_each))) continue;
    if (!groups.has(step.step)) groups.set(step.step, []);
    groups.get(step.step).push(step);
  }
  const fanned = [...groups.entries()].filter(([, items]) => items.length > 1);
  $("#overview-box").hidden = fanned.length === 0;
  const box = clear($("#overview"));
  if (!fanned.length) return;
  const answered = new Set(["acked", "submitted", "done", "rejected"]);
  const heads = ["阶段", "步骤", "单位数", "已叫应", "已完成", "已撤销", "逾期", "有未落实项", "合计"];
  // Each cell carries its column's name: on a phone the rows read as cards (commander.css),
  // "已叫应 23", where nine columns squeezed the step's title to one character a line and
  // pushed 合计 (the people moved) off the screen.
  const cell = (i, attrs) => h("td", { ...attrs, dataset: { label: heads[i] } });
  box.append(h("div", { class: "table-wrap" }, h("table", { id: "overview-table" },
    h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, fanned.map(([key, items]) => {
      const spec = specOf(key);
      const outputs = (spec && spec.outputs) || {};
      const sums = overviewSums(spec, outputs, items);
      const count = (test) => items.filter(test).length;
      return h("tr", { dataset: { step: key } },
        cell(0, { class: "stage-name", text: spec && spec.stage ? stageName(spec.stage) : "—" }),
        cell(1, { class: "step-name", text: spec ? spec.title : key }),
        cell(2, { text: String(items.length) }),
        cell(3, { text: String(count((s) => answered.has(s.status) || Boolean(s.acked_at))) }),
        cell(4, { text: String(count((s) => s.status === "done")) }),
        // Called off (a downgrade, or the run ended): stopped, never counted as done.
        cell(5, { class: "called-off", text: String(count((s) => s.status === "cancelled")) }),
        cell(6, { class: count((s) => s.overdue) ? "overdue" : null, text: String(count((s) => s.overdue)) }),
        cell(7, { text: String(count((s) => unmet(s).length > 0)) }),
        cell(8, { class: "sums", text: sums.join("；") || "—" }));
    })))));
}

// 合计 of a fanned-out step's counts. A follow-up's rounds (follow_up: 应转未转人员跟踪,
// 安置人员返回跟踪) restate where each community stands in the fields their `while` reads
// (`state_outputs` from the API: 仍未转移, 仍在安置): those are a state, so each community's
// latest round handed in counts, never the sum of its rounds (3 then 2 still there is 2,
// not 5). Every other count (moved, returned since the last) is an amount and adds up.
function overviewSums(spec, outputs, items) {
  const states = new Set((spec && spec.follow_up && spec.follow_up.state_outputs) || []);
  const total = (name) => {
    if (!states.has(name)) return items.reduce((n, s) => n + (Number((s.outputs || {})[name]) || 0), 0);
    const latest = new Map(); // unit -> its latest value; items come in round order
    for (const s of items) {
      const value = (s.outputs || {})[name];
      if (value !== undefined && value !== null) latest.set(s.unit_id || s.id, Number(value) || 0);
    }
    return [...latest.values()].reduce((n, v) => n + v, 0);
  };
  return Object.entries(outputs).filter(([, o]) => o.type === "int" || o.type === "number")
    .map(([name, o]) => [(o.title || name) + (states.has(name) ? "（各单位最近一次）" : ""), total(name)])
    .filter(([, sum]) => sum > 0).map(([title, sum]) => `${title} ${sum}`);
}

// -- escalations, documents, timeline, notifications -----------------------------------------

// Step titles by instance id (a fan-out's instances share a step key but each names its unit,
// "社区叫应（六和社区）") and, for what names no instance, by step key.
function stepTitles(run) {
  const titles = new Map();
  for (const s of run.steps || []) {
    if (s.id !== null) titles.set(s.id, s.title);
    if (!titles.has(s.step)) titles.set(s.step, s.title);
  }
  return titles;
}

function drawEscalations(run) {
  const box = clear($("#escalations"));
  const rows = run.escalations || [];
  if (!rows.length) {
    box.append(h("p", { class: "empty", text: "暂无督办。" }));
    return;
  }
  const titles = stepTitles(run);
  box.append(h("div", { class: "table-wrap" }, h("table", { id: "escalations-table" },
    h("thead", {}, h("tr", {}, ["步骤", "类型", "级别", "督办措施", "触发时间", "通知对象", "文号"].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, rows.map((e) => h("tr", { dataset: { step: e.step, kind: e.kind } },
      h("td", { text: titles.get(e.step_id) || titles.get(e.step) || e.step }),
      h("td", { text: KIND_NAMES[e.kind] || e.kind }),
      // Counted from the firings sent (after downtime missed repeats collapse into one).
      h("td", { text: NO_LEVEL.has(e.kind) ? "—"
        : (e.ordinal > 1 ? `${e.level}（第 ${e.ordinal} 次）` : String(e.level)) }),
      // The rung as the playbook names it (督办函, 提级督办函, 约谈) and its letter's 文号.
      h("td", { class: "rung", text: e.title || "—" }),
      // Fired late (the server was down): when it was due too, so a 督办函 of 01-08 against a
      // 01-03 deadline does not read as the bureau's own delay.
      h("td", { class: "fired" }, e.fired_at_local, e.fired_late
        ? h("div", { class: "meta scheduled late", text: `应触发 ${e.scheduled_at_local}（补发）` })
        : null),
      h("td", { text: (e.recipient_names && e.recipient_names.length ? e.recipient_names : e.recipients).join("、") }),
      h("td", { class: "doc-number", text: e.number || "—" })))))));
}

// Each document under its own title (its first heading: 重大事故隐患挂牌督办通知书, not the step
// that filed it), its body as formatted, not Markdown, and 打印 opening it alone on its page.
function drawDocuments(docs) {
  const box = $("#documents");
  // Keep the documents the person opened open across a refresh.
  const open = new Set([...box.querySelectorAll("details.doc[open]")].map((d) => d.dataset.docId));
  clear(box);
  if (!docs.length) {
    box.append(h("p", { class: "empty", text: "暂无文书。" }));
    return;
  }
  for (const doc of docs) {
    const served = (doc.recipients || []).map((r) => r.name).join("、");
    // A letter's record names its rung and step (提级督办函（第2次）：隐患整改): said beside it.
    const about = doc.for === "escalation" ? doc.title : "文书";
    const details = h("details", { class: "card doc", dataset: { docId: doc.id } },
      h("summary", {},
        h("strong", { class: "doc-title", text: docTitle(doc) }),
        doc.number ? h("span", { class: "doc-number", text: ` ${doc.number}` }) : null,
        h("span", { class: "meta", text: ` · ${about} · ${doc.created_at_local}` })),
      served ? h("p", { class: "meta", text: `送达：${served}` }) : null,
      h("p", { class: "doc-actions" },
        h("a", { class: "button print", href: docPage(doc, RUN_ID, { print: true }),
          target: "_blank", rel: "noopener", text: "打印" })),
      h("div", { class: "doc-sheet" }, docBody(doc)),
      docSource(doc));
    details.open = open.has(String(doc.id));
    box.append(details);
  }
}

// A line of what an event's detail says, briefly: the step, a reason, a note, how many.
function personNames(value, names) {
  const ids = Array.isArray(value) ? value : (value ? [value] : []);
  return ids.map((id) => names[id] || id).join("、") || "—";
}

function detailLine(event, titles) {
  const d = event.detail || {};
  const parts = [];
  // Every event on a task names it: from the detail, else from the task the event is on.
  const step = d.step ? (titles.get(event.step_id) || titles.get(d.step) || d.step)
    : (event.step_id !== null && event.step_id !== undefined ? titles.get(event.step_id) : null);
  if (step) parts.push(step);
  if (event.action === "param_changed") parts.push(...changeLine(d)); // the signal, then its note
  if (event.action === "reassigned") {
    parts.push(`${personNames(d.from, event.names || {})} → ${personNames(d.to, event.names || {})}`);
  }
  const t = event.times_local || {};
  if (event.action === "extended" || event.action === "deadline_recounted"
    || event.action === "extension_approved") {
    parts.push(`期限 ${t.from || "—"} → ${t.to || "—"}`);
  }
  // A request for more time and its fate, with both deadlines: what was asked, and what held.
  if (event.action === "extension_requested") parts.push(`申请将期限 ${t.from || "—"} 延至 ${t.to || "—"}`);
  if (event.action === "extension_refused") {
    parts.push(`申请延至 ${t.to || "—"}，期限仍为 ${t.from || "—"}`);
  }
  // A run an import started has one event, not one per task handed out (flows/bulk_start.py):
  // the tasks it gave out and passed over are said on it, so the timeline still tells them.
  if (event.action === "imported") {
    if (d.row !== null && d.row !== undefined) parts.push(`文件第 ${d.row} 行`);
    const named = (keys) => keys.map((k) => titles.get(k) || k).join("、");
    if (Array.isArray(d.ready) && d.ready.length) parts.push(`下达任务：${named(d.ready)}`);
    if (Array.isArray(d.skipped) && d.skipped.length) parts.push(`不适用：${named(d.skipped)}`);
  }
  if (d.number) parts.push(`文号 ${d.number}`);
  if (event.action === "delivery_resent") parts.push(`${d.title || ""} → ${personNames(d.recipient, event.names || {})}`);
  if (d.level !== undefined && !NO_LEVEL.has(event.action)) parts.push(`第 ${d.level} 级`);
  // Rounds (recur): a round asked for early, rounds the server was down for (collapsed into
  // this one: the 08:00 report nobody was asked for must not vanish), and why rounds stop.
  if (event.action === "round") {
    if (d.early) parts.push("提前下达（情况发生重大变化）");
    if (d.stands_for_title) parts.push(`即 ${d.stands_for_title}的定时续报，该轮不再另行下达`);
    if (d.missed_rounds > 0) parts.push(`此前 ${d.missed_rounds} 轮因系统停止运行未按时下达，并入本轮`);
  }
  if (event.action === "round_withdrawn" && d.until_title) parts.push(`“${d.until_title}”已完成，不再续报`);
  if (event.action === "round_withdrawn" && d.until_stage_title) parts.push(`已进入“${d.until_stage_title}”阶段，跟踪结束`);
  // 结束演练 (flows/drill_end.py): the drill ended by the commander, not by its last step.
  if (event.action === "run_completed" && d.drill_end) parts.push(d.parent_run ? "随上级演练结束" : "结束演练");
  if (d.reason) parts.push(`原因：${d.reason}`);
  if (d.note) parts.push(`说明：${d.note}`);
  // A step's `alert` (flows/alerts.py): what it was and whom it reached, by name.
  if (event.action === "alerted") parts.push(`【${d.title}】已通知 ${(d.recipient_names || []).join("、")}`);
  else if (Array.isArray(d.recipients)) parts.push(`通知 ${d.recipients.length} 人`);
  if (typeof d.steps_cancelled === "number") parts.push(`撤销 ${d.steps_cancelled} 项任务`);
  // A stage change back (the warning downgraded): what the commander called off and kept.
  if (event.action === "stage_changed") {
    if (d.called_off > 0) parts.push(`撤销 ${d.called_off} 项较高阶段任务`);
    if (d.kept_open > 0) parts.push(`保留 ${d.kept_open} 项较高阶段未完成任务`);
    // Stages jumped over at the commander's word, and ones owed again on the way back down.
    if (Array.isArray(d.passed_over)) parts.push(`跳过 ${d.passed_over.map(stageName).join("、")}（任务未下达）`);
    if (Array.isArray(d.owed_again)) parts.push(`此前跳过的 ${d.owed_again.map(stageName).join("、")} 再次进入时下达`);
  }
  // Up again into a stage whose tasks a downgrade called off: they go out again.
  if (event.action === "ready" && d.rehanded_from) parts.push("重新下达（原任务随预警降级撤销）");
  if (event.action === "rehanded") {
    parts.push(`重新下达 ${d.rehanded || 0} 项此前撤销的任务`);
    if (d.passed_over > 0) parts.push(`${d.passed_over} 项不再下达（条件已不满足或单位已不在列）`);
    if (d.waiting > 0) parts.push(`${d.waiting} 项待前置步骤完成后下达`);
  }
  if (event.action === "skipped" && Array.isArray(d.not_rehanded)) {
    parts.push(`${d.not_rehanded.length} 项此前撤销的任务不再下达`);
  }
  // A response ended with earlier stages' work still owed: how much, and the first of it.
  if (typeof d.steps_called_off === "number" && d.steps_called_off > 0) {
    const owed = Array.isArray(d.unanswered) ? d.unanswered : [];
    parts.push(`停止 ${d.steps_called_off} 项未完成任务${owed.length ? `：${owed.slice(0, 3).join("、")}${owed.length > 3 ? " 等" : ""}` : ""}`);
  }
  // A message or a ladder level whose roles nobody holds here or above: which roles.
  if (["notify_unrouted", "unrouted", "unrouted_partly"].includes(event.action) && Array.isArray(d.targets)) {
    parts.push(`无人担任：${(Array.isArray(d.target_names) ? d.target_names : d.targets).join("、")}`);
  }
  // A roster that could not say who is on duty: every holder was messaged (flows/duty.py).
  if (event.action === "duty_fallback" && d.message) parts.push(d.message);
  if (d.error) parts.push(String(d.error));
  const text = parts.join("；");
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

function drawTimeline(run) {
  const list = clear($("#timeline"));
  const titles = stepTitles(run);
  for (const event of run.timeline || []) {
    const from = stateName(event.from_state, event.action);
    const to = stateName(event.to_state, event.action);
    const change = from || to ? ` ${from || "—"} → ${to || "—"}` : "";
    const detail = detailLine(event, titles);
    list.append(h("li", { dataset: { action: event.action } },
      h("span", { class: "meta", text: event.at_local }), " ",
      h("strong", { text: event.actor_name || event.actor }), " ",
      event.action_name || EVENT_NAMES[event.action] || event.action, change,
      detail ? h("span", { class: "meta", text: ` · ${detail}` }) : null));
  }
  if (!list.children.length) list.append(h("li", { class: "empty", text: "暂无记录。" }));
}

// One card per message sent (a 续报 to three offices is one text): what it said, to whom,
// and whether it arrived, so the reports sent upward can be read back, not only counted.
function drawMessages(box, notes) {
  const groups = new Map();
  for (const n of notes) {
    const key = `${n.title}\u0000${n.body}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(n);
  }
  const list = h("div", { id: "messages" });
  for (const group of groups.values()) {
    const first = group[0];
    const served = servedLine(group);
    list.append(h("details", { class: "card message", dataset: { kind: first.kind } },
      h("summary", {},
        h("strong", { text: first.title }),
        h("span", { class: "meta", text: ` · ${served.people} 人 · ${first.created_at_local}` })),
      h("p", { class: "meta", text: `发送：${served.text}` }),
      // Read as it reads on the phone it went to (headings, bold, lists), with the text as
      // sent folded under 原文; a record from before the API rendered it keeps its text.
      first.html ? [docBody(first), docSource(first)] : h("pre", { class: "doc-body", text: first.body })));
  }
  box.append(list);
}

function drawNotifications(run, notes) {
  $("#note-count").textContent = `（${notes.length}）`;
  const box = clear($("#notes"));
  if (!notes.length) {
    box.append(h("p", { class: "empty", text: "暂无通知。" }));
    return;
  }
  drawMessages(box, notes);
  box.append(h("div", { class: "table-wrap" }, h("table", { id: "notes-table" },
    h("thead", {}, h("tr", {}, ["时间", "接收人", "标题", "渠道", "状态"].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, notes.map((n) => {
      const failed = (n.attempts || []).filter((a) => !a.ok);
      const lastError = failed.length ? failed[failed.length - 1].error : "";
      return h("tr", { class: n.status === "dead" ? "overdue" : null, dataset: { status: n.status } },
        h("td", { text: n.created_at_local }),
        h("td", { text: n.recipient_name || n.recipient }),
        h("td", { text: n.title }),
        h("td", { text: channelName(n.url) }),
        h("td", {}, NOTE_STATUS[n.status] || n.status,
          n.delivered_at_local ? h("span", { class: "meta", text: ` ${n.delivered_at_local}` }) : null,
          n.attempts && n.attempts.length ? h("span", { class: "meta", text: ` · 尝试 ${n.attempts.length} 次` }) : null,
          lastError ? h("span", { class: "meta", text: ` · ${lastError}` }) : null,
          n.status === "dead" && mayCommand(run) ? resendButton(n) : null));
    })))));
}

// A delivery given up (the office's gateway down for the night) is sent again once fixed.
function resendButton(note) {
  const button = h("button", { type: "button", class: "resend", text: "重新发送" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    clearFlash();
    try {
      await api(`/api/notifications/${note.id}/resend`, { method: "POST" });
      flash(`已重新排队发送：${note.title}`);
      await load();
    } catch (err) {
      button.disabled = false;
      showError(err);
    }
  });
  return button;
}

// -- rounds: the next 续报, written ahead -------------------------------------------------------

// A recurring step's next round (`recur`): when it will be handed out, and, for whoever would
// do it or commands the run, handing it out now when the situation changes (立即续报). The
// form stays in place across the minute's refresh (the note being typed is kept); only the
// lines about the rounds are redrawn.
function drawRounds(run) {
  const ahead = (run.steps || []).filter((s) => s.scheduled_at);
  const live = run.status === "running" && ahead.length > 0;
  $("#rounds").hidden = !live;
  if (!live) return;
  clear($("#round-next")).append(...ahead.map((s) => h("li", { dataset: { step: s.step } },
    h("strong", { text: s.title }), ` 将于 ${s.scheduled_at_local} 下达`,
    s.assignees.length ? `，由 ${names(s.assignees)} 办理` : "")));
  // Who may ask (the API judges): the run's commanders, whoever would do the round, and the
  // roles the playbook adds (`recur.early_by`: the duty leader who judges the change).
  const held = (role) => Boolean(state.who && (state.who.roles || []).some((r) => r.role === role));
  const mine = ahead.filter((s) => mayCommand(run)
    || (state.who && s.assignees.some((p) => p.id === state.who.id))
    || (((specOf(s.step) || {}).recur || {}).early_by || []).some(held));
  const step = mine[0];
  $("#round-form").hidden = !step;
  if (!step) return;
  $("#round-form").dataset.step = step.step;
  // The change goes into a round still open; the API refuses a second one beside it.
  const open = (run.steps || []).find((s) => s.step === step.step
    && (OPEN.has(s.status) || s.status === "submitted"));
  $("#round-ask").disabled = Boolean(open);
  $("#round-hint").hidden = !open;
  $("#round-hint").textContent = open ? `“${open.title}”尚未完成：请在该任务中填报最新情况。` : "";
}

function wireRounds() {
  $("#round-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFlash();
    const form = event.currentTarget;
    const note = $("#round-note");
    await act($("#round-ask"), async () => {
      const round = await api(`/api/runs/${RUN_ID}/rounds`, {
        method: "POST", json: { step: form.dataset.step, note: note.value } });
      note.value = "";
      note.removeAttribute("aria-invalid");
      return `已下达：${round.title}，时限 ${round.due_at_local || "—"}`;
    });
    if (state.run) drawRounds(state.run); // act re-enables its button: the open round says no
  });
}

// -- command: stage and cancel ----------------------------------------------------------------

function mayCommand(run) {
  const who = state.who;
  return Boolean(who && who.commander && who.units.some((u) => u.id === run.unit_id));
}

// What a stage change does besides handing out the new stage's tasks, said before it is made:
// stages jumped over hand out theirs too; going back (the warning downgraded) lists the open
// tasks of the stages above and asks whether to call them off or keep them, never deciding
// for the commander.
// Stages whose tasks were handed out already (a stage visited before, then left): entering
// or passing them again hands out again only what a downgrade called off (flows/rehand.py).
function handedOut(pb, run) {
  const stageOf = new Map(((pb && pb.steps) || []).filter((s) => s.stage).map((s) => [s.id, s.stage]));
  const done = new Set();
  for (const step of (run && run.steps) || []) {
    if (step.id !== null && stageOf.has(step.step)) done.add(stageOf.get(step.step));
  }
  return done;
}

// Stages a move forward jumps over whose tasks were never handed out: the ones it may pass
// over (`pass_over`) instead of handing their measures out for a storm that never came.
function freshBetween(pb, run, from, to) {
  const stages = (pb && pb.stages) || [];
  const [i, j] = [stages.indexOf(from), stages.indexOf(to)];
  if (i < 0 || j <= i + 1) return [];
  const given = handedOut(pb, run);
  return stages.slice(i + 1, j).filter((s) => !given.has(s));
}

// The tasks going back to `to` may call off, as the API counts them (flows/call_off.py): the
// tasks of every stage above it, reached and not finished (a pending one too: it would come
// alive later in a stage the run has left).
const CALLABLE = new Set(["pending", "ready", "acked", "submitted", "rejected"]);

function openAbove(pb, run, to) {
  const stages = (pb && pb.stages) || [];
  const above = new Set(stages.slice(stages.indexOf(to) + 1));
  const stageOf = new Map(((pb && pb.steps) || []).filter((s) => s.stage).map((s) => [s.id, s.stage]));
  return ((run && run.steps) || []).filter((s) => s.id !== null && s.action === "task"
    && CALLABLE.has(s.status) && above.has(stageOf.get(s.step)));
}

// Called-off tasks of a stage not yet handed out again: entering it again hands them out.
function calledOffIn(pb, run, stage) {
  const stageOf = new Map(((pb && pb.steps) || []).filter((s) => s.stage).map((s) => [s.id, s.stage]));
  return ((run && run.steps) || []).filter((s) => s.id !== null && s.action === "task"
    && s.status === "cancelled" && !s.rehanded_as && stageOf.get(s.step) === stage).length;
}

// A stage visited before: what entering (or passing) it again does.
function againEffect(pb, run, stage) {
  const owed = calledOffIn(pb, run, stage);
  return owed
    ? `“${stageName(stage)}”此前撤销的 ${owed} 项任务将重新下达（重新计时），已完成和保留的任务不重复下达。`
    : `“${stageName(stage)}”的任务此前已下达，不会重复下达。`;
}

function stageEffect(pb, run, from, to) {
  const stages = (pb && pb.stages) || [];
  const [i, j] = [stages.indexOf(from), stages.indexOf(to)];
  if (i < 0 || j < 0) return "";
  const given = handedOut(pb, run);
  const parts = [];
  if (j < i) {
    const open = openAbove(pb, run, to);
    if (open.length) {
      const stageOf = new Map(pb.steps.filter((s) => s.stage).map((s) => [s.id, s.stage]));
      const where = stages.filter((s) => open.some((t) => stageOf.get(t.step) === s));
      parts.push(`退回到较早阶段：${where.map(stageName).join("、")}尚有 ${open.length} 项任务未完成。`
        + "撤销的任务停止计时和督办，记为已撤销（不算完成），并通知其负责人，再次进入该阶段时重新下达；"
        + "保留的任务继续有效、继续计时。请选择：");
    } else {
      parts.push(`退回到较早阶段：${stages.slice(j + 1, i + 1).map(stageName).join("、")}没有未完成的任务，无需撤销。`);
    }
  }
  if (j > i + 1) {
    const skipped = stages.slice(i + 1, j);
    const fresh = skipped.filter((s) => !given.has(s));
    const again = skipped.filter((s) => given.has(s));
    if (fresh.length) {
      parts.push(`越过 ${fresh.map(stageName).join("、")}：这些阶段的任务默认一并下达；`
        + "如这些阶段已不适用（如台风转向未登陆），可写明原因跳过，其任务不下达（之后退回到该阶段时再下达）。");
    }
    const plain = again.filter((s) => !calledOffIn(pb, run, s));
    if (plain.length) parts.push(`${plain.map(stageName).join("、")}的任务此前已下达，不会重复下达。`);
    for (const s of again.filter((x) => calledOffIn(pb, run, x))) parts.push(againEffect(pb, run, s));
  }
  if (given.has(to)) parts.push(againEffect(pb, run, to));
  return parts.join("");
}

function drawControls(run, pb) {
  const show = run.status === "running" && mayCommand(run);
  $("#controls").hidden = !show;
  if (!show) return;
  const stages = (pb && pb.stages && pb.stages.length) ? pb.stages : (run.stage ? [run.stage] : []);
  $("#stage-form").hidden = stages.length === 0;
  // A staged response ends by the commander's word: in its last stage once that stage's work
  // is in (the API says what is still owed), or earlier with the reason (the warning lifted
  // before landfall), rather than by jumping ahead and handing out every stage in between.
  const staged = Boolean(pb && pb.stages && pb.stages.length);
  // A drill (演练) of any playbook ends at any point by the commander's word (结束演练), so a
  // good exercise reads 已完成, not 已取消; the note is optional.
  const drill = Boolean(run.drill);
  $("#end-form").hidden = !(staged || drill);
  $("#end-label").textContent = drill ? "结束演练" : "结束响应";
  $("#end-label-en").textContent = drill ? "end the drill" : "end the response";
  $("#end-ask").textContent = drill ? "结束演练" : "结束响应";
  $("#end-yes").textContent = drill ? "确认结束演练" : "确认结束响应";
  if (drill) {
    const note = $("#end-note");
    note.setAttribute("aria-required", "false");
    note.placeholder = "选填：例如 演练科目全部完成";
    $("#end-hint").textContent = "（说明选填）";
    $("#end-effect").textContent = "结束后演练记为已完成（不是已取消）。未完成的任务将停止并在时间线中列明："
      + "已过期限的在演练评估中计为未完成，未到期的记为“演练结束时未到期”；任务负责人和此前收到本演练通知的单位"
      + "将收到【演练】演练结束通知。";
  } else if (staged) {
    const last = pb.stages[pb.stages.length - 1];
    const early = run.stage !== last;
    // Marked, not `required`: the API judges, and its refusal shows in the page.
    const note = $("#end-note");
    note.setAttribute("aria-required", String(early));
    note.placeholder = early ? "必填：例如 台风转向，预警解除" : "例如：台风已远离，解除响应";
    $("#end-hint").textContent = early
      ? `（当前为“${stageName(run.stage)}”，提前结束须写原因）` : "（原因选填）";
    $("#end-effect").textContent = early
      ? `当前为“${stageName(run.stage)}”阶段，尚未进入“${stageName(last)}”。结束后流程记为已完成，`
        + "未完成的任务将停止并在时间线中列明，之后各阶段的任务不再下达。"
      : "结束后流程记为已完成；此前各阶段仍未完成的任务将停止，并在时间线中列明。";
  }
  const select = $("#stage");
  // Keep what the person picked (a refresh comes every minute) unless it no longer exists.
  const picked = select.dataset.picked && stages.includes(select.value) ? select.value : run.stage;
  clear(select).append(...stages.map((s) => h("option", { value: s, selected: s === picked },
    s === run.stage ? `${stageName(s)} · 当前` : stageName(s))));
}

// The open tasks going back would leave, one line per step: its title, how many, and where.
function drawOpenAbove(open) {
  const groups = new Map();
  for (const step of open) {
    if (!groups.has(step.step)) groups.set(step.step, []);
    groups.get(step.step).push(step);
  }
  clear($("#stage-open")).append(...[...groups.entries()].map(([key, items]) => {
    const spec = specOf(key);
    const where = items.map((s) => s.unit_name).filter(Boolean);
    const shown = where.length > 8 ? `${where.slice(0, 8).join("、")} 等` : where.join("、");
    return h("li", { dataset: { step: key } },
      `${spec ? spec.title : key}：${items.length} 项`, shown ? `（${shown}）` : "");
  }));
}

function hideConfirms() {
  $("#stage-confirm").hidden = true;
  $("#signal-confirm").hidden = true;
  $("#cancel-confirm").hidden = true;
  $("#end-confirm").hidden = true;
}

function wireControls() {
  const select = $("#stage");
  select.addEventListener("change", () => { select.dataset.picked = "1"; hideConfirms(); });
  $("#stage-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearFlash();
    hideConfirms();
    const yes = $("#stage-yes");
    const to = select.value;
    yes.dataset.stage = to;
    $("#stage-confirm").dataset.stage = to;
    yes.textContent = `确认切换到 ${stageName(to)}`;
    $("#stage-effect").textContent = stageEffect(state.playbook, state.run, state.run.stage, to);
    // Going back with tasks still open: no plain "yes"; the commander calls them all off
    // (with a note for their holders) or keeps them all.
    const stages = (state.playbook && state.playbook.stages) || [];
    const back = stages.indexOf(to) < stages.indexOf(state.run.stage);
    const open = back ? openAbove(state.playbook, state.run, to) : [];
    drawOpenAbove(open);
    $("#stage-back").hidden = open.length === 0;
    $("#stage-note").removeAttribute("aria-invalid");
    yes.hidden = open.length > 0;
    // Jumping forward past stages never handed out: hand them out too (the default button),
    // or pass them over with a note. One box is named `note` at a time, so a refusal names
    // the box shown (跳过说明 or 撤销说明).
    const fresh = back ? [] : freshBetween(state.playbook, state.run, state.run.stage, to);
    const skip = $("#stage-pass-over");
    skip.dataset.stages = fresh.join(",");
    skip.textContent = `跳过 ${fresh.map(stageName).join("、")} 并切换`;
    $("#stage-skip").hidden = fresh.length === 0;
    $("#stage-skip-note").removeAttribute("aria-invalid");
    $("#stage-note").name = open.length ? "note" : "";
    $("#stage-skip-note").name = fresh.length ? "note" : "";
    if (fresh.length) yes.textContent = `一并下达并切换到 ${stageName(to)}`;
    $("#stage-confirm").hidden = false;
    (open.length ? $("#stage-note") : yes).focus();
  });
  $("#stage-no").addEventListener("click", hideConfirms);
  const move = async (body) => {
    const stage = $("#stage-confirm").dataset.stage;
    const along = stageParams(); // the signal recorded in the same act, if chosen
    const moved = await api(`/api/runs/${RUN_ID}/stage`, { method: "POST", json: { stage, ...body, ...along } });
    delete select.dataset.picked;
    $("#stage-signal").value = "";
    const said = [`已切换到阶段 ${stageName(stage)}`];
    for (const p of moved.changeable_params || []) {
      if (along.params && p.name in along.params) said.push(`${p.title}为${p.value}`);
    }
    if (moved.called_off && moved.called_off.length) said.push(`撤销 ${moved.called_off.length} 项任务`);
    if (moved.kept_open && moved.kept_open.length) said.push(`保留 ${moved.kept_open.length} 项未完成任务`);
    if (moved.rehanded && moved.rehanded.length) said.push(`重新下达 ${moved.rehanded.length} 项此前撤销的任务`);
    if (body.pass_over) said.push(`跳过 ${body.pass_over.map(stageName).join("、")}，其任务未下达`);
    return said.join("，");
  };
  $("#stage-yes").addEventListener("click", (event) => act(event.currentTarget, () => move({})));
  $("#stage-keep").addEventListener("click", (event) => act(event.currentTarget, () => move({})));
  $("#stage-pass-over").addEventListener("click", (event) => act(event.currentTarget, () => move({
    pass_over: event.currentTarget.dataset.stages.split(","),
    note: $("#stage-skip-note").value.trim() || null,
  }), { keepOpen: true }));
  // The note is the API's to require (422 on note); the choice stays open to correct it.
  $("#stage-call-off").addEventListener("click", (event) => act(event.currentTarget, () => move({
    call_off_all: true, note: $("#stage-note").value.trim() || null,
  }), { keepOpen: true }));
  // Ending a response and cancelling a run: the form asks, the page confirms, then it acts.
  confirmed("end", async () => {
    const note = $("#end-note").value.trim();
    await api(`/api/runs/${RUN_ID}/complete`, { method: "POST", json: note ? { note } : {} });
    return state.run && state.run.drill ? "演练已结束" : "响应已结束";
  });
  confirmed("cancel", async () => {
    const reason = $("#reason").value.trim();
    await api(`/api/runs/${RUN_ID}/cancel`, { method: "POST", json: reason ? { reason } : {} });
    return "流程已取消";
  });
}

// #<name>-form asks, #<name>-confirm shows, #<name>-yes does `work`, #<name>-no steps back.
function confirmed(name, work) {
  $(`#${name}-form`).addEventListener("submit", (event) => {
    event.preventDefault();
    clearFlash();
    hideConfirms();
    $(`#${name}-confirm`).hidden = false;
    $(`#${name}-yes`).focus();
  });
  $(`#${name}-no`).addEventListener("click", hideConfirms);
  $(`#${name}-yes`).addEventListener("click", (event) => act(event.currentTarget, work));
}

// `keepOpen`: a refusal leaves the confirmation up (a missing note is added, not re-asked).
async function act(button, work, { keepOpen = false } = {}) {
  const sent = sending(button, "正在处理…");
  try {
    const said = await work();
    hideConfirms();
    await load();
    flash(said, "ok");
  } catch (err) {
    if (!keepOpen || !err || !err.field) hideConfirms();
    showError(err, button.closest("form")); // the box named by its words (撤销说明), not "note"
    const reason = $("#reason");
    if (err && err.field === "reason") reason.setAttribute("aria-invalid", "true");
    // The note box of the form the button is in (切换阶段, 结束响应, 立即续报).
    if (err && err.field === "note") button.closest("form")?.querySelector('[name="note"]')?.setAttribute("aria-invalid", "true");
  } finally {
    sent();
  }
}

// -- loading ----------------------------------------------------------------------------------

async function playbookOf(run) {
  if (state.playbook && state.playbook.id === run.playbook) return state.playbook;
  try {
    // The version the run pinned, not the folder's current one (an edit mid-incident).
    return await api(`/api/runs/${run.id}/playbook`);
  } catch {
    return null; // unreadable: the run still shows, without stage names
  }
}

// One read at a time, in order: a refresh that falls during a stage change runs after it.
let chain = Promise.resolve();

function load() {
  const next = chain.then(loadOnce, loadOnce);
  chain = next.catch(() => {});
  return next;
}

async function loadOnce() {
  const run = await api(`/api/runs/${RUN_ID}`);
  const [[pb, campaign, entry], docs, notes] = await Promise.all([
    playbookOf(run).then(async (book) => [book, ...await Promise.all([campaignOf(book), entryOf(book)])]),
    api(`/api/runs/${RUN_ID}/documents`),
    api(`/api/runs/${RUN_ID}/notifications`),
  ]);
  state.run = run;
  state.playbook = pb;
  drawSummary(run, entry);
  drawCampaign(campaign);
  drawHoldup(run);
  drawControls(run, pb);
  drawSignal(run, pb, run.status === "running" && mayCommand(run), state.who && state.who.id);
  drawRounds(run);
  drawOverview(run, pb);
  drawSteps(run, pb);
  drawEscalations(run);
  drawDocuments(docs.data || []);
  drawTimeline(run);
  drawNotifications(run, notes.data || []);
  $("#run").hidden = false;
  liveCountdowns(document);
  $("#refreshed").textContent = `更新于 ${serverTime()}`;
  keepFresh(run);
}

// The server's clock in the bureau's zone (a phone's own clock may be wrong).
function serverTime() {
  try {
    return new Date(serverNow()).toLocaleTimeString("zh-CN", { timeZone: state.who.timezone, hour12: false });
  } catch {
    return new Date(serverNow()).toLocaleTimeString("zh-CN", { hour12: false });
  }
}

// While the run is running, it is read again every minute (steps are done, deadlines pass).
function keepFresh(run) {
  if (run.status === "running" && !state.timer) {
    state.timer = window.setInterval(() => load().catch(showError), REFRESH_MS);
  } else if (run.status !== "running" && state.timer) {
    window.clearInterval(state.timer);
    state.timer = null;
  }
}

startPage(async (who) => {
  state.who = who;
  wireControls();
  wireSignal({ runId: RUN_ID, state, act, hideConfirms, clearFlash });
  wireRounds();
  for (const radio of document.querySelectorAll("input[name=step-filter]")) {
    radio.addEventListener("change", () => {
      if (state.run) {
        drawSteps(state.run, state.playbook);
        liveCountdowns(document);
      }
    });
  }
  $("#refresh").addEventListener("click", () => {
    clearFlash();
    load().catch(showError);
  });
  await load();
});
