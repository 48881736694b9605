// 我的待办: the caller's open tasks (and submitted work awaiting their verdict), one card each
// with its live countdown, newest notifications below. Phone first: one column of cards.
import {
  $, STEP_STATUS, api, clear, drillBadge, h, liveCountdowns, query, showError, startPage,
  statusBadge,
} from "/static/closeloop.js";

const LIMIT = 20;
// 全部: every status a task of one's own can be in once given out (a pending instance, waiting
// for its own earlier step, is not given out yet: it shows on the run's page).
const ALL = ["ready", "acked", "submitted", "rejected", "done", "skipped", "cancelled"].join(",");
// The status menu: "" is the open work; 已退回 is what a verifier sent back to be done again,
// kept apart so it is not lost among hundreds of hazards due the same day.
const STATUS_CHOICES = ["", "rejected", "submitted", "all"];

// The filters live in the address, so a reload or the back button keeps them.
function readFilters() {
  const params = new URLSearchParams(window.location.search);
  const offset = Number.parseInt(params.get("offset") || "0", 10);
  const status = params.get("status") || "";
  return {
    status: STATUS_CHOICES.includes(status) ? status : "",
    q: (params.get("q") || "").trim().slice(0, 100),
    overdue: params.get("overdue") === "true",
    offset: Number.isFinite(offset) && offset > 0 ? offset : 0,
  };
}

function writeFilters(filters) {
  const q = query({
    q: filters.q, status: filters.status, overdue: filters.overdue ? "true" : "",
    offset: filters.offset || "",
  });
  window.history.replaceState(null, "", window.location.pathname + q);
}

// Submitted work is in the inbox for two people: the one who handed it in (waiting) and the
// verifier (who has to decide). Only the second has something to do.
function awaitsMyVerdict(task, who) {
  return task.status === "submitted" && task.submitted_by !== who.id &&
    !task.assignees.some((a) => a.id === who.id);
}

function dueLine(task) {
  if (!task.due_at) return h("p", { class: "meta", text: "无时限" });
  // Counting down only while the work is the holder's to do (as on the task page): handed in,
  // done or called off, the date stays and the clock stops (全部 would otherwise show every
  // task finished in time as 逾期 by the hours since its deadline).
  const counting = ["ready", "acked", "rejected"].includes(task.status);
  return h("p", { class: "meta" },
    "期限 ", task.due_at_local || "", counting ? " · " : null,
    counting ? h("span", {
      class: "due", dataset: { due: task.due_at, overdue: task.overdue ? "true" : "false" },
    }) : null);
}

// 叫应: a task that must be signed for within minutes (a typhoon's transfer, 30 minutes) says
// so on its card, above the work's deadline hours away; the list is ordered by that deadline,
// so without this line the card reads as if there were hours to spare.
function ackLine(task) {
  if (!task.ack_due_at || task.status !== "ready") return null;
  return h("p", { class: "meta ack-due" },
    "签收（叫应）期限 ", task.ack_due_at_local || "", " · ",
    h("span", { class: "ack-clock", dataset: { due: task.ack_due_at, overdue: "false" } }));
}

function card(task, who) {
  const mine = awaitsMyVerdict(task, who);
  const runTitle = task.run_title; // the list names each task's run
  const head = h("h3", {}, drillBadge(task.drill), h("a", { href: `/tasks/${task.id}`, text: task.title }));
  const badges = h("p", { class: "badges" }, statusBadge(task.status, STEP_STATUS));
  if (mine) badges.append(" ", h("span", { class: "badge verify-mine", text: "待我核验" }));
  if (task.overdue) badges.append(" ", h("span", { class: "badge overdue-badge", text: "逾期" }));
  if (task.escalation_level > 0) {
    badges.append(" ", h("span", { class: "badge escalated", text: `已升级 ${task.escalation_level} 级` }));
  }
  const node = h("article", { class: `card task-card${task.overdue ? " is-overdue" : ""}${task.drill ? " is-drill" : ""}`,
    dataset: { taskId: task.id, status: task.status } },
  head,
  h("p", { class: "meta" },
    h("a", { href: `/runs/${task.run_id}`, text: runTitle || `流程 #${task.run_id}` }),
    " · ", task.unit_name),
  badges,
  ackLine(task),
  dueLine(task));
  if (mine && task.verify_due_at) {
    node.append(h("p", { class: "meta verify-due" },
      "核验期限 ", task.verify_due_at_local || "", " · ",
      h("span", { class: "due", dataset: { due: task.verify_due_at } })));
  }
  if (task.status === "rejected" && task.reject_reason) {
    node.append(h("p", { class: "reject-line", text: `退回原因：${task.reject_reason}` }));
  }
  return node;
}

function drawPager(page, filters, reload) {
  const last = Math.min(page.offset + page.data.length, page.count);
  $("#count").textContent = page.count ? `共 ${page.count} 项` : "";
  $("#page-info").textContent = page.count ? `第 ${page.offset + 1}–${last} 项 / 共 ${page.count} 项` : "";
  $("#pager").hidden = page.count <= LIMIT && page.offset === 0;
  $("#prev").disabled = page.offset <= 0;
  $("#next").disabled = page.offset + LIMIT >= page.count;
  // Assigned, not added: each redraw replaces the handlers of the page before.
  $("#prev").onclick = () => reload({ ...filters, offset: Math.max(0, filters.offset - LIMIT) })
    .catch(showError);
  $("#next").onclick = () => reload({ ...filters, offset: filters.offset + LIMIT }).catch(showError);
}

function emptyText(filters) {
  if (filters.q) return `没有与「${filters.q}」相符的任务。`;
  if (filters.overdue) return "没有逾期的任务。";
  if (filters.status === "rejected") return "没有被退回的任务。";
  if (filters.status === "submitted") return "没有待核验的任务。";
  return filters.status === "all" ? "没有任务。" : "没有待办任务，干得好。";
}

// Each list asked for gets a number: an answer that comes back after a later question's
// (the first page still loading over a phone's network when 全部 is picked) is dropped, so
// the list always shows what the menus say.
let asked = 0;

async function drawTasks(who, filters, reload) {
  const mine = ++asked;
  const page = await api(`/api/tasks${query({
    mine: "true", status: filters.status === "all" ? ALL : filters.status,
    overdue: filters.overdue ? "true" : "", q: filters.q,
    limit: LIMIT, offset: filters.offset,
  })}`);
  if (mine !== asked) return page;
  if (page.count > 0 && page.data.length === 0 && filters.offset > 0) {
    // Past the end (tasks were done meanwhile): back to the first page.
    return reload({ ...filters, offset: 0 });
  }
  const list = clear($("#tasks"));
  if (page.data.length === 0) list.append(h("p", { class: "empty", text: emptyText(filters) }));
  for (const task of page.data) list.append(card(task, who));
  drawPager(page, filters, reload);
  liveCountdowns(document);
  return page;
}

// Requests for more time the caller decides (the supervising office): work like a task, so
// they are listed here, above the notifications that would scroll them away.
async function drawRequests() {
  const asked = await api(`/api/extension-requests${query({ mine: "true", status: "pending", limit: 50 })}`);
  const section = $("#requests");
  section.hidden = asked.count === 0;
  const list = clear($("#request-list"));
  $("#request-count").textContent = asked.count ? `（${asked.count}）` : "";
  for (const req of asked.data) {
    list.append(h("li", { class: "card request", dataset: { requestId: req.id, taskId: req.task_id } },
      h("h3", {}, h("a", { href: `/tasks/${req.task_id}`, text: req.task_title })),
      h("p", { class: "meta", text: `${req.unit_name} · ${req.requested_by.name} 申请延期至 ${req.new_due_at_local}` }),
      h("p", { text: `理由：${req.reason}` }),
      req.decide_by ? h("p", {}, "审批时限 ",
        h("span", { class: "due", dataset: { due: req.decide_by } }), ` （${req.decide_by_local}）`) : null));
  }
}

async function drawNotes() {
  const list = clear($("#notes"));
  const notes = await api(`/api/inbox${query({ limit: 5 })}`);
  if (notes.data.length === 0) {
    list.append(h("li", { class: "empty", text: "暂无通知。" }));
    return;
  }
  for (const note of notes.data) {
    const title = note.step_id
      ? h("a", { href: `/tasks/${note.step_id}`, text: note.title })
      : h("strong", { text: note.title });
    list.append(h("li", { class: "note" },
      h("span", { class: "meta", text: note.at_local }), " ", title,
      h("div", { class: "note-body", text: note.body })));
  }
}

const fromForm = () => ({ status: $("#f-status").value, overdue: $("#f-overdue").checked,
  q: $("#f-q").value.trim(), offset: 0 });
// The list's reload once the page knows who is signed in. A filter chosen before that (a phone
// on a slow network shows the form first) is kept for the first list, not reset to the stored
// filters when the list arrives, as it was while the menus listened only after sign-in.
let reloadTasks = null;
let chosenEarly = null;
const apply = (filters) => {
  if (reloadTasks) reloadTasks(filters).catch(showError);
  else chosenEarly = filters;
};
// The menus apply at once; the search box on 搜索 (Enter) or when it is cleared (its ×),
// not at every character typed over a phone's network.
$("#filters").addEventListener("change", (event) => {
  if (event.target.id === "f-q") return;
  apply(fromForm());
});
$("#f-q").addEventListener("search", () => {
  if (!$("#f-q").value) apply(fromForm());
});
$("#filters").addEventListener("submit", (event) => {
  event.preventDefault();
  apply(fromForm());
});

startPage(async (who) => {
  const reload = async (filters) => {
    writeFilters(filters);
    $("#f-status").value = filters.status;
    $("#f-overdue").checked = filters.overdue;
    $("#f-q").value = filters.q;
    await drawTasks(who, filters, reload);
  };
  reloadTasks = reload;
  await Promise.all([reload(chosenEarly || readFilters()), drawRequests(), drawNotes()]);
  liveCountdowns(document);
});
