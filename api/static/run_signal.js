// A run's changeable params on its page (flows/param_changes.py): typhoon-633's 台风预警信号,
// raised within a stage (橙色 → 红色) while the stage stays. The page shows it at its current
// value in its colour, at the top and in its own box with every change (when, by whom, in
// which stage), and lets a commander of the run record a change after a second, explicit
// click that says who will be called; the stage form takes one along with a stage change.
import { $, api, clear, h } from "/static/closeloop.js";

// A signal named by its colour is shown in it (the meteorological ladder's four).
const COLOURS = { 蓝色: "blue", 黄色: "yellow", 橙色: "orange", 红色: "red" };
const DIRECTIONS = { start: "启动时", raised: "升级", lowered: "降级", changed: "变更" };
const SAID = { raised: "升为", lowered: "降为", changed: "改为" };

export function shownParam(value) {
  return value === null || value === undefined || value === "" ? "未填写" : String(value);
}

// 台风预警信号：红色, in red: the run's status line and the runs list both use it.
export function paramBadge(p, { withTitle = true } = {}) {
  const colour = COLOURS[p.value];
  return h("span", {
    class: `badge param-badge${colour ? ` signal-${colour}` : ""}`,
    dataset: { param: p.name, value: p.value ?? "" },
    text: withTitle ? `${p.title}：${shownParam(p.value)}` : shownParam(p.value),
  });
}

// Which way a value goes, as the API counts it: an enum's values are listed lowest first.
function direction(p, to) {
  const values = p.values || [];
  const [i, j] = [values.indexOf(p.value), values.indexOf(to)];
  if (i < 0 || j < 0) return "changed";
  return j > i ? "raised" : "lowered";
}

// The timeline's line for a `param_changed` event: 台风预警信号 橙色 → 红色（升级），通知 12 人.
export function changeLine(d) {
  const parts = [`${d.title || d.param} ${shownParam(d.value_from)} → ${shownParam(d.value_to)}`
    + `（${DIRECTIONS[d.direction] || "变更"}）`];
  if (d.told > 0) parts.push(`通知本阶段未完成任务负责人 ${d.told} 人`);
  return parts;
}

const picked = { param: null };

function chosen(run) {
  const params = run.changeable_params || [];
  return params.find((p) => p.name === picked.param) || params[0] || null;
}

// The open tasks of the run's current stage: whose holders a change calls.
function stageOpen(run, pb) {
  const stageOf = new Map(((pb && pb.steps) || []).map((s) => [s.id, s.stage || null]));
  const open = new Set(["ready", "acked", "submitted", "rejected"]);
  return ((run && run.steps) || []).filter((s) => s.id !== null && s.action === "task"
    && open.has(s.status) && (!run.stage || stageOf.get(s.step) === run.stage));
}

function historyItem(entry) {
  const how = entry.direction === "start" ? "启动时"
    : `由${shownParam(entry.previous)}${SAID[entry.direction] || "改为"}${shownParam(entry.value)}`;
  const where = entry.stage_title ? `，阶段：${entry.stage_title}` : "";
  return h("li", { dataset: { direction: entry.direction, value: entry.value ?? "" } },
    h("span", { class: "meta", text: entry.at_local }), " ",
    paramBadge({ name: entry.param, title: entry.title, value: entry.value }, { withTitle: false }),
    ` ${how}（${entry.by_name}记录${where}）`,
    entry.note ? h("span", { class: "meta", text: ` · 说明：${entry.note}` }) : null);
}

// One person called at the latest raise (叫应): answered when, or when it was due and, once
// missed, that their superiors were told.
function answerItem(a) {
  const said = a.acked_at_local
    ? `已回复 ${a.acked_at_local}${a.late ? "（逾时）" : ""}`
    : `未回复（应于 ${a.due_at_local} 前）${a.escalated_at ? `，已报告${a.escalated_to_names.join("、")}` : ""}`;
  return h("li", { class: a.acked_at ? "answered" : "unanswered", dataset: { person: a.person, ackId: a.id } },
    h("strong", { text: a.person_name }), ` ${a.unit_name} · `,
    h("span", { class: a.acked_at ? "meta" : "late", text: said }));
}

// The latest raise's 叫应: who has answered and who has not (the unanswered first, to ring),
// and for the person signed in who owes an answer, the 收到 button.
function drawAnswers(run, me) {
  const answers = run.signal_answers || [];
  $("#signal-answers").hidden = answers.length === 0;
  if (!answers.length) return;
  const done = answers.filter((a) => a.acked_at).length;
  $("#signal-answers-count").textContent = `${answers[0].value} · 已回复 ${done}/${answers.length} 人，`
    + `叫应于 ${answers[0].told_at_local}`;
  clear($("#signal-answers-list")).append(...answers.map(answerItem));
  const mine = answers.find((a) => a.person === me && !a.acked_at);
  $("#signal-mine").hidden = !mine || run.status !== "running";
  if (mine) {
    $("#signal-ack").dataset.ackId = mine.id;
    $("#signal-mine-text").textContent = `${answers[0].value}预警叫应：请于 ${mine.due_at_local} 前回复`;
  }
}

export function drawSignal(run, pb, may, me = null) {
  const p = chosen(run);
  $("#signal-box").hidden = !p;
  $("#stage-signal-box").hidden = !(p && may && p.values);
  if (!p) return;
  drawAnswers(run, me);
  const params = run.changeable_params;
  $("#signal-title").textContent = p.title;
  clear($("#signal-now")).append(paramBadge(p, { withTitle: false }));
  const mine = (run.param_history || []).filter((e) => e.param === p.name);
  const last = mine[mine.length - 1];
  $("#signal-since").textContent = last
    ? `自 ${last.at_local} 起（${last.by_name}${last.direction === "start" ? "启动时填写" : "记录"}）` : "";
  clear($("#signal-history")).append(...mine.map(historyItem));
  $("#signal-form").hidden = !may;
  if (!may) return;
  // Several changeable params: choose which; one (the typhoon's signal): no choice shown.
  const which = $("#signal-param");
  which.hidden = params.length < 2;
  $("#signal-param-label").hidden = params.length < 2;
  clear(which).append(...params.map((q) => h("option", { value: q.name, selected: q.name === p.name }, q.title)));
  const select = $("#signal-value");
  select.name = `params.${p.name}`;
  $("#signal-value-label").dataset.label = `新的${p.title}`;
  $("#signal-value-label").firstChild.textContent = `新的${p.title} `;
  const keep = select.dataset.picked && (p.values || []).includes(select.value) ? select.value : null;
  clear(select).append(...(p.values || []).map((v) => h("option", { value: v, selected: v === (keep || p.value) },
    v === p.value ? `${v} · 当前` : v)));
  // The stage form's choice: unchanged by default.
  const along = $("#stage-signal");
  const kept = along.value;
  along.name = `params.${p.name}`;
  $("#stage-signal-label").textContent = `同时记录${p.title}`;
  clear(along).append(h("option", { value: "" }, `不变（当前：${shownParam(p.value)}）`),
    ...(p.values || []).filter((v) => v !== p.value).map((v) => h("option", { value: v, selected: v === kept }, v)));
}

// What the stage form sends along: {signal: 红色}, or nothing.
export function stageParams() {
  const along = $("#stage-signal");
  if ($("#stage-signal-box").hidden || !along.value) return {};
  return { params: { [along.name.replace(/^params\./, "")]: along.value } };
}

export function wireSignal({ runId, state, act, hideConfirms, clearFlash }) {
  $("#signal-param").addEventListener("change", (event) => {
    picked.param = event.target.value;
    delete $("#signal-value").dataset.picked;
    hideConfirms();
    if (state.run) drawSignal(state.run, state.playbook, true);
  });
  $("#signal-value").addEventListener("change", (event) => {
    event.target.dataset.picked = "1";
    hideConfirms();
  });
  $("#signal-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearFlash();
    hideConfirms();
    const p = chosen(state.run);
    const to = $("#signal-value").value;
    const yes = $("#signal-yes");
    yes.dataset.param = p.name;
    yes.dataset.value = to;
    if (to === p.value) {
      $("#signal-effect").textContent = `当前已是${to}，无需记录。`;
      yes.hidden = true;
    } else {
      const way = direction(p, to);
      const open = stageOpen(state.run, state.playbook);
      const people = new Set(open.flatMap((s) => (s.assignees || []).map((a) => a.id)));
      const stage = state.run.stage_title ? `本阶段（${state.run.stage_title}）` : "本流程";
      const told = people.size
        ? `${stage}${open.length} 项未完成任务的 ${people.size} 名负责人将收到`
          + `【${p.title}${DIRECTIONS[way]}】${way === "raised" ? "叫应" : "通知"}`
        : `${stage}暂无未完成任务，无人需要通知`;
      $("#signal-effect").textContent = `将${p.title}由${shownParam(p.value)}${SAID[way]}${to}：`
        + `${told}；不下达新任务，也不撤销任务。`;
      yes.textContent = `确认${SAID[way]}${to}`;
      yes.hidden = false;
    }
    $("#signal-confirm").hidden = false;
    (yes.hidden ? $("#signal-no") : yes).focus();
  });
  $("#signal-no").addEventListener("click", hideConfirms);
  $("#signal-ack").addEventListener("click", (event) => act(event.currentTarget, async () => {
    await api(`/api/runs/${runId}/signal-acks/${event.currentTarget.dataset.ackId}/ack`, { method: "POST" });
    return "已回复收到（叫应）";
  }));
  $("#signal-yes").addEventListener("click", (event) => act(event.currentTarget, async () => {
    const { param, value } = event.currentTarget.dataset;
    const note = $("#signal-note").value.trim();
    const run = await api(`/api/runs/${runId}/params`, {
      method: "POST", json: { params: { [param]: value }, ...(note ? { note } : {}) } });
    $("#signal-note").value = "";
    delete $("#signal-value").dataset.picked;
    const now = (run.changeable_params || []).find((q) => q.name === param);
    return `已记录：${now ? now.title : param} ${shownParam(now ? now.value : value)}`;
  }));
}
