// One task on a phone: what it is and how long is left, then what the person may do now —
// sign for it, hand in the work with photos, verify someone else's, ask for more time. Which
// buttons show is a guess from the person's roles; whether they may is the API's call, and its
// refusal is shown in its own words.
import {
  $, ApiError, STEP_STATUS, api, clear, clearFlash, countdown, download, drillBanner, flash, h,
  liveCountdowns, markField,
  sending, showError, shownValue, signInAgain, startPage, statusBadge,
} from "/static/closeloop.js";

const taskId = Number(document.body.dataset.taskId);
const OPEN = ["ready", "acked", "submitted", "rejected"];
const ACTIONABLE = ["ready", "acked", "rejected"];
// The words the timeline and the messages use too (api/event_names.py, flows/extensions.py).
const REQUEST_STATUS = { pending: "待审批", approved: "同意延期", refused: "不同意延期", lapsed: "已失效" };

const state = {
  who: null,
  task: null,
  run: null, // null when the caller may not read the run (a task handed to them from above)
  playbook: null,
  spec: null, // the playbook's step: outputs, evidence, verify, extension
  requests: null,
  requestsError: null,
  askedTooLate: false, // the API said the deadline passed while the page was open
  candidates: null, // whom the caller may hand the task to (改派); null: they may not

  files: null, // evidence chosen for the next submission: [{id, name, sha256, warning}]
  uploading: 0,
  form: null, // the completion form while it is drawn (its draft is kept on the phone)
};

// -- small helpers -----------------------------------------------------------------------------

function section(id, title, ...children) {
  return h("section", { id, class: "card" }, title ? h("h2", { text: title }) : null, ...children);
}

function row(label, ...value) {
  return h("tr", {}, h("th", { scope: "row", text: label }), h("td", {}, ...value));
}

function dueSpan(iso, overdue = false) {
  return h("span", { class: "due", dataset: { due: iso, overdue: overdue ? "true" : "false" } });
}

function mayAct() {
  const { task, who } = state;
  return task.assignees.some((a) => a.id === who.id) ||
    (task.role && who.roles.some((r) => r.role === task.role));
}

function mayVerify() {
  const { task, who, spec } = state;
  if (task.status !== "submitted") return false;
  if (!spec) return task.submitted_by !== who.id; // playbook unknown: let the API decide
  // 四眼 (distinct): the one who handed the work in is not offered 通过/退回 on it, buttons
  // the API can only refuse; they see it waiting for another verifier instead.
  if (spec.verify && spec.verify.distinct && task.submitted_by === who.id) return false;
  return Boolean(spec.verify) && who.roles.some((r) => r.role === spec.verify.role);
}

// The submitter who holds the verifier's role themselves (an inspector who did the work when
// it was handed to them) is told why the verdict is someone else's.
function ownWorkToVerify() {
  const { task, who, spec } = state;
  return Boolean(spec && spec.verify && spec.verify.distinct) && task.submitted_by === who.id &&
    who.roles.some((r) => r.role === spec.verify.role);
}

// Who handed the work in or decided on it, by name (the API gives both); "我" for the caller.
function personName(id, name) {
  if (!id) return "";
  if (id === state.who.id) return `${state.who.name}（我）`;
  return name || id;
}

// A button that does one call at a time: a second tap while the first is on its way is ignored.
function action(button, run) {
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    const done = sending(button, "正在处理…");
    try {
      await run();
    } catch (err) {
      showError(err);
    } finally {
      done();
    }
  });
  return button;
}

// -- evidence: thumbnails fetched with the token (an <img src> would go without it) -----------

// A photo is drawn from its preview (GET …/preview: at most 800 px, tens of KB), not from the
// original of several MB: a verifier on a slow link sees 整改前/整改后 in seconds, and opens an
// original with 原图. A file with no preview (HEIC, PDF, video: 404) is a button opening it.
const blobs = new Map(); // evidence id -> Promise<{url, type}> ({type} alone: no preview)

function evidenceBlob(id) {
  if (!blobs.has(id)) {
    const loading = api(`/api/evidence/${encodeURIComponent(id)}/preview`, { raw: true })
      .then((response) => response.blob())
      .then((blob) => ({ url: URL.createObjectURL(blob), type: blob.type }))
      .catch((err) => {
        if (err.error === "no_preview") return { url: null, type: err.body.content_type || "" };
        throw err;
      });
    loading.catch(() => blobs.delete(id)); // a failed fetch is tried again on the next draw
    blobs.set(id, loading);
  }
  return blobs.get(id);
}

// `extra` (a 类别 menu) is drawn under the picture, above 移除.
function thumb(id, name, onRemove, warning = null, extra = null) {
  const figure = h("figure", { class: "thumb", dataset: { evidenceId: id } },
    h("span", { class: "meta", text: "读取中…" }));
  evidenceBlob(id).then(({ url, type }) => {
    clear(figure);
    // Said on the photo itself until it is removed: handing it in here would be refused.
    if (warning) figure.append(h("span", { class: "reused", role: "note", title: warning,
      text: "已用于其他任务，请重新拍照" }));
    const save = (text) => action(h("button", { type: "button", class: "file", text }),
      () => download(`/api/evidence/${encodeURIComponent(id)}`, name || id));
    if (url && type.startsWith("image/")) {
      const img = h("img", { src: url, alt: name || "现场照片" });
      // A photo this browser cannot draw (an iPhone's HEIC, on Android or a PC): a button to
      // open it elsewhere, not a broken picture the verifier cannot judge.
      img.addEventListener("error", () => img.replaceWith(save("无法预览，点此下载")));
      figure.append(img);
      // Named, so a refusal that names a file ("「现场1.jpg」已用于另一流程") says which to remove.
      if (name) figure.append(h("figcaption", { class: "meta", text: name }));
      // The original, as it was handed in, for a closer look (and to keep).
      figure.append(action(h("button", { type: "button", class: "original", text: "原图" }),
        () => download(`/api/evidence/${encodeURIComponent(id)}`, name || id)));
    } else if (type.startsWith("image/")) {
      figure.append(save("无法预览，点此下载")); // a photo with no preview: a HEIC
    } else {
      figure.append(save(name || "下载文件"));
    }
    if (extra) figure.append(extra);
    if (onRemove) {
      figure.append(h("button", { type: "button", class: "remove", "aria-label": "移除",
        text: "移除", onclick: onRemove }));
    }
  }, (err) => {
    clear(figure);
    figure.append(h("span", { class: "meta", text: `无法显示：${err.detail || err.message}` }));
    if (extra) figure.append(extra);
    if (onRemove) {
      figure.append(h("button", { type: "button", class: "remove", text: "移除", onclick: onRemove }));
    }
  });
  return figure;
}

function labelsOf(need) {
  return (need && Array.isArray(need.labels)) ? need.labels : [];
}

function requirementText(need) {
  if (!need) return "";
  const parts = [];
  const labels = labelsOf(need);
  if (labels.length) {
    parts.push(`${labels.join("、")}照片各至少 1 张`);
    if (need.photos > labels.length) parts.push(`共至少 ${need.photos} 张`);
  } else if (need.photos) parts.push(`至少 ${need.photos} 张照片`);
  if (need.files) parts.push(`另附至少 ${need.files} 个文件`);
  if (need.note) parts.push("须填写说明");
  return parts.join("，");
}

// -- the draft: what was typed and chosen, kept on the phone until it is handed in ------------

// A sign-in that lapsed mid-form, a reload or a page closed by mistake loses nothing: the
// values and the photos already uploaded (by id: they are the person's own on the server) come
// back when the form is drawn again. Per person, so a shared phone shows nobody else's.
function draftKey() {
  return `closeloop.draft.${state.who.id}.${taskId}`;
}

function readDraft() {
  try {
    return JSON.parse(window.localStorage.getItem(draftKey()) || "null");
  } catch {
    return null;
  }
}

function saveDraft() {
  if (!state.form) return;
  const values = {};
  for (const el of state.form.elements) if (el.name && el.type !== "file") values[el.name] = el.value;
  try {
    window.localStorage.setItem(draftKey(), JSON.stringify({ values, files: state.files }));
  } catch {
    // Storage full or turned off: the form works as before, only without the copy.
  }
}

function dropDraft() {
  try {
    window.localStorage.removeItem(draftKey());
  } catch {
    // nothing kept, nothing to drop
  }
}

// Signed out under the form (the token is no longer taken): the draft holds what was done, so
// signing in again comes back here with it.
function signedOut(err) {
  if (!(err instanceof ApiError) || err.status !== 401) return false;
  saveDraft();
  signInAgain(`${err.detail}。已填写的内容和已上传的照片保存在本机，重新登录后回到本任务即可继续提交`);
  return true;
}

// -- the page ----------------------------------------------------------------------------------

function drawSummary() {
  const { task, run } = state;
  const badges = h("p", { class: "badges" }, statusBadge(task.status, STEP_STATUS));
  if (task.overdue) badges.append(" ", h("span", { class: "badge overdue-badge", text: "逾期" }));
  if (task.escalation_level > 0) {
    badges.append(" ", h("span", { class: "badge escalated", text: `已升级 ${task.escalation_level} 级` }));
  }
  const rows = [
    row("所属流程", h("a", { href: `/runs/${task.run_id}`, text: run ? run.title : task.run_title || `流程 #${task.run_id}` })),
    row("责任单位", run && run.unit_name !== task.unit_name
      ? `${task.unit_name}（${run.unit_name}）` : task.unit_name),
    row("办理人", task.assignees.map((a) => a.name).join("、") || "—"),
  ];
  if (task.ack_due_at) {
    // 叫应: answer within minutes that the order arrived, long before the work is due.
    rows.push(row("签收期限", h("span", { id: "ack-due-local", text: task.ack_due_at_local || "" }),
      " · ", h("span", { class: "ack-clock", dataset: { due: task.ack_due_at, overdue: "false" } })));
  }
  if (task.due_at) {
    // Counting down only while the work is the assignee's to do: handed in, done or called
    // off, the date stays and the clock stops (else a finished task would turn red 逾期).
    const counting = ["ready", "acked", "rejected"].includes(task.status);
    rows.push(row("期限", h("span", { id: "due-local", text: task.due_at_local || "" }),
      counting ? " · " : null, counting ? dueSpan(task.due_at, task.overdue) : null));
    if (task.due_estimated) rows.push(row("期限说明", h("span", { id: "due-estimated", class: "meta", text: task.due_estimated })));
    // A deadline counted from the alert (the 30-minute verbal report), not from the hand-out:
    // said plainly, and so is a hand-out already past it, with the step that held it up.
    const basis = task.deadline_basis;
    if (basis) {
      rows.push(row("时限起算", h("span", { id: "deadline-basis", text: basis.text }),
        basis.late_text ? h("span", { id: "handed-out-late", class: "overdue", text: `；${basis.late_text}` }) : null));
    }
  } else if (task.scheduled_at) {
    // A round written ahead (recur): handed out at its time, due counted from then.
    rows.push(row("下达时间", h("span", { id: "scheduled-local", text: task.scheduled_at_local || "" })));
    rows.push(row("期限", task.due_rule ? `下达后${task.due_rule.replace(/（自任务下达起）$/, "")}` : "无时限"));
  } else {
    rows.push(row("期限", "无时限"));
  }
  if (task.original_due_at_local) {
    rows.push(row("原期限", h("span", { id: "original-due", text: task.original_due_at_local })));
  }
  if (task.status === "submitted" && task.verify_due_at) {
    rows.push(row("核验期限", task.verify_due_at_local || "", " · ", dueSpan(task.verify_due_at)));
    if (task.verify_due_estimated) rows.push(row("核验期限说明", h("span", { class: "meta", text: task.verify_due_estimated })));
  }
  if (task.acked_at_local) rows.push(row("签收时间", task.acked_at_local));
  if (task.done_at_local) rows.push(row("完成时间", task.done_at_local));
  if (task.verified_by && task.status === "done") rows.push(row("核验人", personName(task.verified_by, task.verified_by_name)));
  return section("summary", null, badges,
    h("div", { class: "table-wrap" }, h("table", { class: "kv" }, h("tbody", {}, rows))));
}

function drawRejected() {
  const { task } = state;
  if (task.status !== "rejected") return null;
  return h("section", { id: "reject", class: "card reject-box", role: "note" },
    h("strong", { text: "已退回，请重新整改后再提交" }),
    h("p", { id: "reject-reason", text: `退回原因：${task.reject_reason || "（未说明）"}` }),
    task.verified_by ? h("p", { class: "meta", text: `退回人：${personName(task.verified_by, task.verified_by_name)}` }) : null);
}

function drawAbout() {
  const { spec, run, playbook } = state;
  const parts = [];
  if (spec && spec.description) parts.push(h("p", { class: "description", text: spec.description }));
  if (run && run.params) {
    const titles = (playbook && playbook.params) || {};
    const rows = Object.entries(run.params)
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([name, value]) => row((titles[name] && titles[name].title) || name, shownValue(value)));
    if (rows.length) {
      parts.push(h("div", { class: "table-wrap" },
        h("table", { id: "params", class: "kv" }, h("tbody", {}, rows))));
    }
  }
  return parts.length ? section("about", "任务说明", ...parts) : null;
}

// The photos handed in, under what each shows where the step marks them: 整改前 beside 整改后,
// the comparison a verifier decides on. Unmarked files (a step without labels, or a hand-in
// from before they were asked for) are listed as they came.
function submittedEvidence() {
  const { task, spec } = state;
  const marks = task.evidence_labels || {};
  const order = [...labelsOf(spec && spec.evidence)];
  for (const label of Object.values(marks)) if (!order.includes(label)) order.push(label);
  const unmarked = task.evidence.filter((id) => !marks[id]);
  if (!order.length) {
    return h("div", { id: "submitted-evidence", class: "thumbs" }, unmarked.map((id) => thumb(id, "")));
  }
  const groups = order.map((label) => {
    const ids = task.evidence.filter((id) => marks[id] === label);
    return h("div", { class: "evidence-group", dataset: { label } },
      h("h3", { text: label }),
      ids.length ? h("div", { class: "thumbs" }, ids.map((id) => thumb(id, "")))
        : h("p", { class: "meta", text: "无" }));
  });
  if (unmarked.length) {
    groups.push(h("div", { class: "evidence-group", dataset: { label: "" } },
      h("h3", { text: "未分类" }), h("div", { class: "thumbs" }, unmarked.map((id) => thumb(id, "")))));
  }
  return h("div", { id: "submitted-evidence", class: "evidence-groups" }, groups);
}

function drawSubmitted() {
  const { task, spec } = state;
  const outputs = Object.entries(task.outputs || {}).filter(([, v]) => v !== null && v !== undefined);
  if (!task.note && outputs.length === 0 && task.evidence.length === 0) return null;
  const titles = (spec && spec.outputs) || {};
  const parts = [];
  if (task.submitted_by) {
    parts.push(h("p", { class: "meta", text: `提交人：${personName(task.submitted_by, task.submitted_by_name)}` }));
  }
  if (task.note) parts.push(h("p", { id: "submitted-note", class: "doc-body", text: task.note }));
  if (outputs.length) {
    parts.push(h("div", { class: "table-wrap" }, h("table", { id: "submitted-outputs", class: "kv" },
      h("tbody", {}, outputs.map(([name, value]) =>
        row((titles[name] && titles[name].title) || name, shownValue(value)))))));
  }
  if (task.evidence.length) parts.push(submittedEvidence());
  const title = task.status === "rejected" ? "上次提交的内容" : "提交的内容";
  return section("submitted", title, ...parts);
}

// What this item's earlier step recorded (item_needs): a community's return is filled in
// against its own transfer, so the people it moved are on the page, not in another task.
function drawPaired() {
  const { task, playbook } = state;
  const records = Object.entries(task.paired || {}).filter(([, r]) => r && r.status);
  if (!records.length) return null;
  const parts = records.map(([key, record]) => {
    const step = playbook ? playbook.steps.find((s) => s.id === key) : null;
    const titles = (step && step.outputs) || {};
    const outputs = Object.entries(record.outputs || {}).filter(([, v]) => v !== null && v !== undefined);
    // A need followed up round by round (the 应转未转 rounds): its sums over every round handed
    // in come first, e.g. 累计 本轮转移人数 3, what the return adds up against.
    const totals = Object.entries(record.totals || {}).map(([name, v]) =>
      [`累计 ${(titles[name] && titles[name].title) || name}`, v]);
    const heading = record.totals ? `（本单位已跟踪 ${record.rounds} 次，以下为累计和最近一次）` : "（本单位已填报）";
    outputs.unshift(...totals);
    return h("div", { class: "paired", dataset: { step: key } },
      h("h3", { text: `${step ? step.title : key}${heading}` }),
      outputs.length ? h("div", { class: "table-wrap" }, h("table", { class: "kv" },
        h("tbody", {}, outputs.map(([name, value]) =>
          row((titles[name] && titles[name].title) || name, shownValue(value))))))
        : h("p", { class: "meta", text: "尚未填报。" }));
  });
  return section("paired", "前序填报", ...parts);
}

// What the tasks this one waits on recorded (`earlier`): the grid worker's finding and photos
// above the 核查反馈 the duty officer signs, so the signing is done on what it signs.
function drawEarlier() {
  const { task, playbook } = state;
  const groups = Object.entries(task.earlier || {}).filter(([, records]) => records.length);
  if (!groups.length) return null;
  const parts = [];
  for (const [key, records] of groups) {
    const step = playbook ? playbook.steps.find((s) => s.id === key) : null;
    const titles = (step && step.outputs) || {};
    for (const record of records) {
      const who = [record.unit_name, record.by_name, record.at_local].filter(Boolean).join("，");
      const outputs = Object.entries(record.outputs || {}).filter(([, v]) => v !== null && v !== undefined);
      parts.push(h("div", { class: "earlier", dataset: { step: key, task: String(record.task) } },
        h("h3", {}, h("a", { href: `/tasks/${record.task}`, text: record.title }),
          who ? ` （${who}）` : ""),
        record.note ? h("p", { class: "doc-body", text: record.note }) : null,
        outputs.length ? h("div", { class: "table-wrap" }, h("table", { class: "kv" },
          h("tbody", {}, outputs.map(([name, value]) =>
            row((titles[name] && titles[name].title) || name, shownValue(value)))))) : null,
        record.evidence.length ? h("div", { class: "thumbs" }, record.evidence.map((id) => thumb(id, "")))
          : null));
    }
  }
  return section("earlier", "前序办理结果", ...parts);
}

// -- actions -----------------------------------------------------------------------------------

function redraw(message) {
  draw();
  if (message) flash(message, "ok");
}

function drawAck() {
  const { ack_due_at: due, ack_due_at_local: by } = state.task;
  // Past its time the button says so (the sign-for is late and has been chased), not a "before"
  // that has already gone by.
  const late = Boolean(due) && countdown(due).overdue;
  const button = h("button", { id: "ack", type: "button", class: "primary",
    text: by ? `签收（${late ? `已超过签收时限 ${by.slice(11)}` : `${by.slice(11)} 前`}）` : "签收" });
  action(button, async () => {
    state.task = await api(`/api/tasks/${taskId}/ack`, { method: "POST" });
    redraw("已签收");
  });
  return h("p", {}, button, h("span", { class: "meta", text: " 签收表示已收到、正在办理。" }));
}

// One input per declared output, named as the output so the API's `outputs.<name>` marks it.
function outputInput(name, out, value) {
  const title = `${out.title || name}${out.required ? "（必填）" : ""}`;
  const id = `out-${name}`;
  const type = out.type || "string";
  let input;
  if (type === "bool") {
    // 是/否 chosen, not a box left unticked: a measure not taken is said, never assumed.
    input = h("select", { id, name },
      h("option", { value: "", text: "请选择" }),
      h("option", { value: "true", text: "是", selected: value === true }),
      h("option", { value: "false", text: "否", selected: value === false }));
  } else if (type === "enum") {
    input = h("select", { id, name },
      h("option", { value: "", text: "请选择" }),
      (out.values || []).map((v) => h("option", { value: v, text: v, selected: v === value })));
  } else if (type === "list") {
    input = h("textarea", { id, name, rows: 3, placeholder: "每行一项" });
    input.value = Array.isArray(value) ? value.join("\n") : "";
  } else {
    // Numbers in a text box: a number box turns "abc" into nothing, and the API never sees it.
    const kinds = { date: "date", datetime: "datetime-local" };
    const modes = { int: "numeric", number: "decimal" };
    input = h("input", { id, name, type: kinds[type] || "text", inputmode: modes[type] || null });
    if (value !== null && value !== undefined) {
      input.value = type === "datetime" ? String(value).slice(0, 16) : String(value);
    }
  }
  return h("div", { class: "field" }, h("label", { for: id, text: title }), input);
}

// "+08:00" for the bureau's zone at that wall time: a datetime-local value has no zone, and the
// API would otherwise store it without one.
function zoneOffset(localText) {
  try {
    const at = new Date(`${localText}:00Z`);
    const format = new Intl.DateTimeFormat("en-US",
      { timeZone: state.who.timezone, timeZoneName: "longOffset" });
    const parts = format.formatToParts(at);
    const name = (parts.find((p) => p.type === "timeZoneName") || {}).value || "";
    const m = /GMT([+-]\d{2}:\d{2})/.exec(name);
    return m ? m[1] : "+00:00";
  } catch {
    return "+08:00";
  }
}

function readOutputs(form) {
  const outputs = {};
  const specs = (state.spec && state.spec.outputs) || {};
  for (const [name, out] of Object.entries(specs)) {
    const input = form.elements.namedItem(name);
    if (!input) continue;
    const type = out.type || "string";
    const text = input.value.trim();
    if (!text) continue; // left empty: a required one is the API's to refuse, by name
    if (type === "bool") outputs[name] = text === "true";
    else if (type === "int" || type === "number") {
      // Not a number: sent as typed, for the API to refuse by name.
      outputs[name] = /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
    }
    else if (type === "datetime") outputs[name] = `${text}${zoneOffset(text)}`;
    else if (type === "list") outputs[name] = text.split("\n").map((s) => s.trim()).filter(Boolean);
    else outputs[name] = input.value;
  }
  return outputs;
}


// The chosen files, each in the box of what it shows (整改前, 整改后) where the step marks its
// photos; `boxes` maps a label ("" unmarked) to its box. A photo put under the wrong one is
// moved with its 类别 menu, not removed and sent again over a phone's network.
function drawFiles(boxes) {
  for (const box of boxes.values()) clear(box);
  const labels = labelsOf(state.spec && state.spec.evidence);
  for (const file of state.files) {
    const box = boxes.get(file.label || "") || boxes.get("") || [...boxes.values()][0];
    let menu = null;
    if (labels.length) {
      menu = h("select", { class: "label-of", "aria-label": "照片类别" },
        h("option", { value: "", text: "请选择类别", selected: !file.label }),
        labels.map((l) => h("option", { value: l, text: l, selected: l === file.label })));
      menu.addEventListener("change", (event) => {
        event.stopPropagation(); // the form's own change handler would save before the move
        file.label = menu.value || null;
        drawFiles(boxes);
        saveDraft();
      });
    }
    box.append(thumb(file.id, file.name, () => {
      state.files = state.files.filter((f) => f.id !== file.id);
      drawFiles(boxes);
      saveDraft();
    }, file.warning, menu));
  }
  // Looked up in the form, not the document: the first draw (a draft brought back after a
  // reload) runs before the form is on the page, and the count stayed blank beside its photos.
  const count = (state.form && state.form.querySelector("#evidence-count")) || $("#evidence-count");
  if (count) count.textContent = state.files.length ? `已选 ${state.files.length} 个` : "";
}

// "20 MB", "4.5 MB": a size as the phone's gallery shows it.
function sizeText(bytes) {
  const [value, unit] = bytes >= 1048576 ? [bytes / 1048576, "MB"] : [bytes / 1024, "KB"];
  return `${value.toFixed(1).replace(/\.0$/, "")} ${unit}`;
}

// Several photos are chosen at once: each one refused is named, all of them in one line (one
// flash each would leave only the last on the screen).
async function upload(files, boxes, status, label = null) {
  const told = [];
  const limit = state.who.max_evidence_bytes;
  for (const file of files) {
    if (limit && file.size > limit) {
      // Refused here, before minutes of sending it over a phone's network to be refused there.
      told.push(`「${file.name}」超过上限 ${sizeText(limit)}（本文件 ${sizeText(file.size)}），` +
        "未上传，请压缩后重新上传");
      continue;
    }
    state.uploading += 1;
    status.textContent = `正在上传 ${file.name}…`;
    try {
      const form = new FormData();
      form.append("file", file, file.name);
      form.append("task", String(taskId)); // so the answer says at once if it was used before
      const stored = await api("/api/evidence", { method: "POST", form });
      // The same picture chosen twice is one photo (the API refuses it on handing in): kept once.
      const twin = state.files.find((f) => f.sha256 && f.sha256 === stored.sha256);
      if (twin) {
        told.push(`「${stored.filename}」与已选的「${twin.name}」是同一张照片，未重复添加`);
        continue;
      }
      // The thumbnail from the photo on the phone: fetching back the megabytes just sent
      // would double what a site visit costs on a phone's network.
      blobs.set(stored.id, Promise.resolve({ url: URL.createObjectURL(file), type: stored.content_type }));
      state.files.push({ id: stored.id, name: stored.filename, sha256: stored.sha256,
        warning: stored.warning, label });
      if (stored.warning) told.push(stored.warning);
      drawFiles(boxes);
      saveDraft();
    } catch (err) {
      if (signedOut(err)) return;
      // The API's reason without its field name ("file"): the file is named instead.
      const first = err instanceof ApiError && err.body && Array.isArray(err.body.errors)
        ? err.body.errors[0] : null;
      told.push(`「${file.name}」未上传：${first ? first.message : err.detail || err.message}`);
    } finally {
      state.uploading -= 1;
      status.textContent = state.uploading ? status.textContent : "";
    }
  }
  if (told.length) flash(told.join("；"), "error");
  else clearFlash(); // an earlier file's refusal no longer stands once these went up
}

function drawCompletion() {
  const { task, spec } = state;
  const draft = readDraft();
  if (state.files === null) {
    // Sent back: the photos already handed in count again unless removed.
    const marks = task.evidence_labels || {};
    state.files = draft && Array.isArray(draft.files) ? draft.files
      : task.status === "rejected"
        ? task.evidence.map((id) => ({ id, name: "", label: marks[id] || null })) : [];
  }
  const outputs = (spec && spec.outputs) || {};
  const need = spec && spec.evidence;
  const note = h("textarea", { id: "note", name: "note", rows: 4, placeholder: "写明办理情况：做了什么，结果如何" });
  if (task.status === "rejected" && task.note) note.value = task.note;
  const status = h("span", { id: "upload-status", class: "meta", "aria-live": "polite" });
  const boxes = new Map();
  // No `capture`: with it a phone opens the camera and nothing else, and the 整改前 photo was
  // taken days before, so it is in the gallery. Without it the phone offers camera and gallery.
  const picker = (id, name, label) => {
    const input = h("input", { id, name, type: "file", multiple: true,
      accept: "image/*,application/pdf" });
    input.addEventListener("change", async () => {
      const chosen = [...input.files];
      input.value = ""; // the same photo may be chosen again after removing it
      await upload(chosen, boxes, status, label);
    });
    return input;
  };
  const labels = labelsOf(need);
  let evidenceFields;
  if (labels.length) {
    // One picker per kind of photo (整改前, 整改后), each with its own thumbnails: what a photo
    // shows is said where it is chosen. Named `evidence_labels.整改前`, the field the API names
    // when that kind is missing. Files the step does not mark (sent back from before photos
    // were marked) wait in a box of their own for their 类别 to be chosen.
    evidenceFields = [
      need ? h("p", { id: "evidence-need", class: "meta", text: requirementText(need) }) : null,
      ...labels.map((label, i) => {
        const box = h("div", { class: "thumbs evidence-box", dataset: { label } });
        boxes.set(label, box);
        return h("div", { class: "field evidence-kind", dataset: { label } },
          h("label", { for: `evidence-${i}`, text: `${label}照片（必填）` }),
          picker(`evidence-${i}`, `evidence_labels.${label}`, label), box);
      }),
      h("div", { class: "field" }, h("span", { id: "evidence-count", class: "meta" }), status,
        (() => {
          const box = h("div", { id: "evidence-thumbs", class: "thumbs evidence-box" });
          boxes.set("", box);
          return box;
        })()),
    ];
  } else {
    const box = h("div", { id: "evidence-thumbs", class: "thumbs" });
    boxes.set("", box);
    evidenceFields = h("div", { class: "field" },
      h("label", { for: "evidence", text: "现场照片 / 附件" }),
      need ? h("p", { id: "evidence-need", class: "meta", text: requirementText(need) }) : null,
      picker("evidence", "evidence", null), h("span", { id: "evidence-count", class: "meta" }),
      status, box);
  }
  const submit = h("button", { id: "submit", type: "submit", class: "primary", text: "提交" });
  const form = h("form", { id: "complete-form", novalidate: true, autocomplete: "off" },
    h("h2", { text: task.status === "rejected" ? "重新提交" : "办结提交" }),
    Object.entries(outputs).map(([name, out]) => outputInput(name, out, task.outputs[name])),
    h("div", { class: "field" },
      h("label", { for: "note", text: `说明${need && need.note ? "（必填）" : ""}` }), note),
    evidenceFields,
    submit);
  if (draft && draft.values) {
    for (const [name, value] of Object.entries(draft.values)) {
      const input = form.elements.namedItem(name);
      if (input && input.type !== "file" && typeof value === "string") input.value = value;
    }
  }
  state.form = form;
  form.addEventListener("input", saveDraft);
  form.addEventListener("change", saveDraft);
  drawFiles(boxes);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (state.uploading) {
      flash("照片还在上传，请稍候", "error");
      return;
    }
    const sent = sending(submit);
    try {
      state.task = await api(`/api/tasks/${taskId}/complete`, { method: "POST", json: {
        note: note.value.trim() ? note.value : null,
        outputs: readOutputs(form),
        evidence: state.files.map((f) => f.id),
        evidence_labels: Object.fromEntries(
          state.files.filter((f) => f.label).map((f) => [f.id, f.label])),
      } });
      state.files = null;
      state.form = null;
      dropDraft();
      await loadRequests();
      redraw(state.task.status === "submitted" ? "已提交，等待核验" : "已办结");
    } catch (err) {
      if (signedOut(err)) return;
      if (err instanceof ApiError && err.error === "network") {
        // The request may have been lost on the way or only its answer on the way back: the
        // person cannot know which, so they are told what is safe (a second hand-in of the
        // same work is answered as the first, never counted twice) and nothing is thrown away.
        saveDraft();
        flash("网络中断，未能确认是否已提交。已填写的内容和照片仍保存在本机，" +
          "网络恢复后再点一次「提交」即可（服务器已收到的不会重复提交）", "error");
        return;
      }
      showError(err, form);
      markField(form, err);
    } finally {
      sent();
    }
  });
  return h("section", { id: "work", class: "card" }, form);
}

// The verifier's opinion is kept on the phone as it is typed, as the hand-in's draft is: a
// reason for sending work back is written while opening the originals (原图) one by one, and a
// reload or a tab the phone dropped must not take it. Per person and task; gone once decided.
function verifyKey() {
  return `closeloop.verify-note.${state.who.id}.${taskId}`;
}

function keepVerifyNote(text) {
  try {
    if (text) window.localStorage.setItem(verifyKey(), text);
    else window.localStorage.removeItem(verifyKey());
  } catch {
    // Storage full or turned off: the opinion is only not kept across a reload.
  }
}

function keptVerifyNote() {
  try {
    return window.localStorage.getItem(verifyKey()) || "";
  } catch {
    return "";
  }
}

function drawVerify() {
  const note = h("textarea", { id: "verify-note", name: "note", rows: 3,
    placeholder: "核验意见；退回时必须写明原因" });
  note.value = keptVerifyNote();
  note.addEventListener("input", () => keepVerifyNote(note.value));
  const form = h("form", { id: "verify-form", novalidate: true, autocomplete: "off" },
    h("h2", { text: "核验" }),
    h("label", { for: "verify-note", text: "意见" }), note);
  const decide = async (approve) => {
    clearFlash();
    if (!approve && !note.value.trim()) {
      // The API says the same; asked here first so nobody waits for a refusal on a phone.
      note.setAttribute("aria-invalid", "true");
      note.focus();
      flash("退回需说明原因", "error");
      return;
    }
    try {
      state.task = await api(`/api/tasks/${taskId}/verify`, { method: "POST",
        // The hand-in judged: one made anew since (the answer to a rejection was lost and
        // the work handed in again) is not judged by this verdict unseen.
        json: { approve, note: note.value.trim() ? note.value : null,
          submitted_at: state.task.submitted_at } });
      keepVerifyNote("");
      redraw(approve ? "已通过核验" : "已退回，已通知整改人");
    } catch (err) {
      if (err instanceof ApiError && err.error === "network") {
        // As for a hand-in: the verdict may have arrived with only its answer lost, and the
        // same verdict sent again is taken once.
        flash("网络中断，未能确认核验结果是否已送达。意见仍保存在本机，" +
          "网络恢复后再点一次即可（已送达的不会重复）", "error");
        return;
      }
      showError(err, form);
      markField(form, err);
    }
  };
  form.append(h("p", {},
    action(h("button", { id: "approve", type: "button", class: "primary", text: "通过" }),
      () => decide(true)),
    action(h("button", { id: "reject", type: "button", class: "danger", text: "退回" }),
      () => decide(false))));
  form.addEventListener("submit", (event) => event.preventDefault());
  return h("section", { id: "verify", class: "card" }, form);
}

function drawWaiting() {
  const text = ownWorkToVerify()
    ? "已提交，等待其他人核验：自己提交的工作不能自己核验（四眼原则）。" : "已提交，等待核验。";
  return h("p", { id: "waiting", class: "card meta", text });
}

// -- requests for more time --------------------------------------------------------------------

async function loadRequests() {
  try {
    const page = await api(`/api/extension-requests?task=${taskId}&limit=50`);
    state.requests = page.data;
    state.requestsError = null;
  } catch (err) {
    state.requests = null;
    state.requestsError = err;
  }
}

function drawRequestForm() {
  const due = h("input", { id: "ext-due", name: "due_at", type: "date" });
  const reason = h("textarea", { id: "ext-reason", name: "reason", rows: 2,
    placeholder: "为什么需要更多时间" });
  const send = h("button", { id: "ext-send", type: "submit", text: "申请延期" });
  const form = h("form", { id: "ext-form", novalidate: true, autocomplete: "off" },
    h("label", { for: "ext-due", text: "新期限（当天 24:00 截止）" }), due,
    h("label", { for: "ext-reason", text: "延期原因" }), reason, send);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFlash();
    if (!due.value) { // said here: the API would only say the empty text is no date
      due.setAttribute("aria-invalid", "true");
      due.focus();
      flash("请选择新期限", "error");
      return;
    }
    const sent = sending(send);
    try {
      // A bare date is the end of that day (24:00) to the API, as deadlines are printed.
      await api(`/api/tasks/${taskId}/extension-requests`, { method: "POST",
        json: { due_at: due.value, reason: reason.value } });
      await loadRequests();
      redraw("已提交延期申请，等待审批");
    } catch (err) {
      if (err instanceof ApiError && err.error === "extension_past_deadline") {
        // The deadline passed while the page was open: no form any more, and why.
        state.askedTooLate = true;
        draw();
        showError(err);
        return;
      }
      if (err instanceof ApiError && err.status === 409) {
        // Already asked (the first tap's answer was lost on the network, or another phone
        // asked): show that request instead of a form that can only be refused again.
        await loadRequests();
        if ((state.requests || []).some((r) => r.status === "pending")) {
          redraw("已有待审批的延期申请（见下方），无需重复申请");
          return;
        }
      }
      showError(err, form);
      markField(form, err);
    } finally {
      sent();
    }
  });
  return form;
}

function drawDecision(req) {
  const note = h("input", { name: "note", type: "text", placeholder: "审批意见；不同意延期须说明理由",
    "aria-label": "审批意见" });
  const form = h("form", { class: "decide", novalidate: true }, note);
  const decide = async (approve) => {
    clearFlash();
    if (!approve && !note.value.trim()) {
      note.setAttribute("aria-invalid", "true");
      note.focus();
      flash("不同意延期需说明理由", "error");
      return;
    }
    try {
      await api(`/api/extension-requests/${req.id}/decide`, { method: "POST",
        json: { approve, note: note.value.trim() ? note.value : null } });
      state.task = await api(`/api/tasks/${taskId}`); // an approval moved the deadline
      await loadRequests();
      redraw(approve ? "已同意延期" : "已不同意延期");
    } catch (err) {
      showError(err);
      markField(form, err);
    }
  };
  form.append(h("p", {},
    action(h("button", { type: "button", class: "primary approve-ext", text: "同意延期" }),
      () => decide(true)),
    action(h("button", { type: "button", class: "danger refuse-ext", text: "不同意延期" }),
      () => decide(false))));
  form.addEventListener("submit", (event) => event.preventDefault());
  return form;
}

function drawRequest(req) {
  const item = h("li", { class: "ext-request", dataset: { requestId: req.id, status: req.status } },
    h("span", { class: `badge ext-${req.status}`, text: REQUEST_STATUS[req.status] || req.status }), " ",
    h("strong", { text: `申请延至 ${req.new_due_at_local}` }),
    h("div", { class: "meta", text: `${req.requested_by.name} · ${req.requested_at_local}` +
      (req.old_due_at_local ? ` · 原期限 ${req.old_due_at_local}` : "") }),
    h("div", { text: `原因：${req.reason}` }));
  if (req.status === "pending" && req.decide_by_local) {
    item.append(h("div", { class: req.decision_overdue ? "meta overdue" : "meta",
      text: `审批期限 ${req.decide_by_local}${req.decision_overdue ? "（已超期）" : ""}` }));
  }
  if (req.decided_by) {
    item.append(h("div", { class: "meta",
      text: `${req.decided_by.name} ${req.decided_at_local || ""}${req.note ? `：${req.note}` : ""}` }));
  }
  if (req.status === "pending" && req.can_decide) item.append(drawDecision(req));
  return item;
}

function drawExtensions() {
  const { task, spec } = state;
  const open = OPEN.includes(task.status);
  const takesRequests = !spec || Boolean(spec.extension);
  const mayAsk = open && takesRequests && mayAct() &&
    !(state.requests || []).some((r) => r.status === "pending");
  // An extension is asked before the deadline (the API refuses one after it): past it, the
  // page says why there is no form instead of offering one the API can only refuse.
  const pastDue = state.askedTooLate || (Boolean(task.due_at) && countdown(task.due_at).overdue);
  const canAsk = mayAsk && !pastDue;
  const requests = state.requests || [];
  if (!mayAsk && requests.length === 0 && !state.requestsError) return null;
  const parts = [];
  if (canAsk) parts.push(drawRequestForm());
  if (mayAsk && pastDue) {
    parts.push(h("p", { id: "ext-too-late", class: "meta",
      text: `期限 ${task.due_at_local} 已过，不能再申请延期：延期须在期限届满前提出，` +
        "逾期任务继续按督办程序处理。" }));
  }
  if (state.requestsError) {
    const why = state.requestsError.detail || state.requestsError.message;
    parts.push(h("p", { class: "meta", text: `延期申请无法读取：${why}` }));
  }
  if (requests.length) parts.push(h("ul", { id: "ext-list", class: "timeline" }, requests.map(drawRequest)));
  return section("extension", "延期申请", ...parts);
}

// -- a commander moves the deadline (调整期限) -------------------------------------------------

// POST /api/tasks/{id}/extend: a commander over the task's unit moves an open task's deadline,
// later (the repair takes another day) or earlier (the danger grew), with the reason; the
// ladder counts again from it. Offered where the API takes it: to a commander whose units
// (their own and below, /api/me) hold the task, while its run is running.
function mayMoveDeadline() {
  const { task, who, run } = state;
  return OPEN.includes(task.status) && task.action === "task" && Boolean(who.commander) &&
    (who.units || []).some((u) => u.id === task.unit_id) && (!run || run.status === "running");
}

function drawMoveDeadline() {
  if (!mayMoveDeadline()) return null;
  const { task } = state;
  // The input shows the bureau's wall clock, as the API reads a time without a zone.
  const current = (task.due_at_local || "").replace(" ", "T");
  const due = h("input", { id: "move-due", name: "due_at", type: "datetime-local", value: current });
  const reason = h("input", { id: "move-reason", name: "reason", type: "text", maxlength: "2000",
    placeholder: "例如：抢修需更换管段，延至明日；险情加重，提前完成" });
  const send = h("button", { id: "move-send", type: "submit", text: "调整期限" });
  const form = h("form", { id: "move-form", novalidate: true, autocomplete: "off" },
    h("label", { for: "move-due", "data-label": "新期限", text: "新期限（可延后，也可提前）" }), due,
    h("label", { for: "move-reason", "data-label": "调整原因", text: "调整原因" }), reason, send,
    h("p", { class: "meta", text: "调整后督办从新期限重新计时；原期限保留在时间线中。" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFlash();
    for (const [box, said] of [[due, "请选择新期限"], [reason, "请写明调整原因"]]) {
      if (!box.value.trim()) { // said here: the API would only say the empty text is no time
        box.setAttribute("aria-invalid", "true");
        box.focus();
        flash(said, "error");
        return;
      }
    }
    const sent = sending(send);
    try {
      state.task = await api(`/api/tasks/${taskId}/extend`, { method: "POST",
        json: { due_at: due.value, reason: reason.value } });
      redraw(`期限已调整为 ${state.task.due_at_local}，督办从新期限重新计时`);
    } catch (err) {
      showError(err, form);
      markField(form, err);
    } finally {
      sent();
    }
  });
  return section("move-deadline", "调整期限", form);
}

// A task called off by a downgrade and handed out again when its stage came back: each names
// the other, so whoever opens the old one (from the call-off message) finds the work owed now.
function drawAgain() {
  const { task } = state;
  if (task.rehanded_as && task.status === "cancelled") {
    return h("p", { id: "rehanded", class: "meta" }, "此任务随预警降级撤销后，再次进入该阶段时已另行处理：",
      h("a", { href: `/tasks/${task.rehanded_as}`, text: "查看现在的任务" }));
  }
  if (task.rehanded_from) {
    return h("p", { id: "rehanded", class: "meta" }, "此任务为重新下达（再次进入该阶段），时限重新计算；",
      h("a", { href: `/tasks/${task.rehanded_from}`, text: "原任务" }), "已随预警降级撤销。");
  }
  return null;
}

// -- handing the task to a named person (改派) ------------------------------------------------

// Asked of the API only by who might reassign (whoever may act on the task, a commander, an
// admin); its answer is the list, its 403 means no 改派 section at all.
async function loadCandidates(q = "") {
  const { task, who } = state;
  const supervises = who.roles.some((r) => r.role === "commander" || r.role === "admin");
  if (!OPEN.includes(task.status) || !(mayAct() || supervises)) {
    state.candidates = null;
    return;
  }
  try {
    const query = new URLSearchParams({ limit: "200" });
    if (q) query.set("q", q);
    state.candidates = await api(`/api/tasks/${taskId}/reassign-candidates?${query}`);
  } catch {
    state.candidates = null;
  }
}

function candidateText(p) {
  const what = p.title || (p.roles || []).join("、");
  const notes = [p.holds_role ? "可直接办理" : "", p.current ? "当前负责人" : ""].filter(Boolean);
  return [p.name, what, p.unit_name].filter(Boolean).join(" · ") +
    (notes.length ? `（${notes.join("，")}）` : "");
}

function drawReassign() {
  const found = state.candidates;
  const { task } = state;
  if (!found || !OPEN.includes(task.status)) return null;
  const search = h("input", { id: "reassign-q", type: "search", placeholder: "按姓名、职务或单位查找",
    "aria-label": "查找人员" });
  const pick = h("select", { id: "reassign-person", name: "person", "aria-label": "改派给" },
    h("option", { value: "", text: found.data.length ? "— 选择人员 —" : "无可选人员" }),
    found.data.map((p) => h("option", { value: p.id, disabled: p.current, text: candidateText(p) })));
  const more = found.count > found.data.length
    ? h("p", { class: "meta", text: `共 ${found.count} 人，仅列出前 ${found.data.length} 人，请输入姓名查找` })
    : null;
  const send = h("button", { id: "reassign-send", type: "submit", class: "primary", text: "改派" });
  const nobody = task.assignees.length ? null
    : h("p", { class: "unmet", text: "此任务当前无人负责：请指定具体人员办理。" });
  const form = h("form", { id: "reassign-form", novalidate: true, autocomplete: "off" },
    nobody, h("label", { for: "reassign-person", text: "改派给" }), search, pick, more, send);
  let searching = 0;
  search.addEventListener("input", () => {
    const mine = ++searching; // the newest search wins over a slower earlier one
    window.setTimeout(async () => {
      if (mine !== searching) return;
      await loadCandidates(search.value.trim());
      if (mine !== searching || !state.candidates) return;
      clear(pick).append(h("option", { value: "", text: state.candidates.data.length ? "— 选择人员 —" : "无匹配人员" }),
        ...state.candidates.data.map((p) => h("option", { value: p.id, disabled: p.current, text: candidateText(p) })));
    }, 250);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFlash();
    if (!pick.value) {
      pick.setAttribute("aria-invalid", "true");
      pick.focus();
      flash("请选择改派给谁", "error");
      return;
    }
    const name = pick.selectedOptions[0].textContent.split(" · ")[0];
    const sent = sending(send);
    try {
      state.task = await api(`/api/tasks/${taskId}/reassign`, { method: "POST",
        json: { person: pick.value } });
      await loadCandidates();
      redraw(`已改派给 ${name}，已通知本人`);
    } catch (err) {
      showError(err, form);
      markField(form, err);
    } finally {
      sent();
    }
  });
  return section("reassign", "改派", form);
}

// -- drawing and loading -----------------------------------------------------------------------

function draw() {
  const { task } = state;
  const mark = task.drill ? "【演练】" : "";
  $("#heading").textContent = `${mark}${task.title}`;
  document.title = `${mark}${task.title} · closeloop`;
  const content = clear($("#content"));
  const parts = [drillBanner(task.drill), drawSummary(), drawAgain(), drawRejected(), drawPaired(),
    drawEarlier()];
  // Nobody holds it (no one has its role here or above): naming someone is the one thing to do.
  const reassign = drawReassign();
  if (reassign && !task.assignees.length) parts.push(reassign);
  // An item waiting on its own earlier step (item_needs): nothing to do yet, and nothing counts.
  // Or a round of a recurring step written ahead (recur): it comes at its time, not after a step.
  if (task.status === "pending") parts.push(h("p", { id: "not-yet", class: "meta", text: task.scheduled_at
    ? `尚未下达：本轮将于 ${task.scheduled_at_local} 下达，届时另行通知。`
    : "尚未开始：前序步骤完成后才能办理，届时另行通知。" }));
  if (task.status === "ready" && mayAct()) parts.push(drawAck());
  if (ACTIONABLE.includes(task.status) && mayAct() && task.action === "task") {
    parts.push(drawCompletion());
  } else {
    // Handed in (from here or another phone), done or called off: a kept draft is stale.
    state.form = null;
    dropDraft();
  }
  if (task.status === "submitted" && mayVerify()) {
    parts.push(drawVerify());
  } else {
    keepVerifyNote(""); // decided (here or by another verifier): a kept opinion is stale
    if (task.status === "submitted" && (mayAct() || ownWorkToVerify())) parts.push(drawWaiting());
  }
  parts.push(drawSubmitted(), drawExtensions(), drawMoveDeadline());
  if (reassign && task.assignees.length) parts.push(reassign);
  parts.push(drawAbout());
  for (const part of parts) if (part) content.append(part);
  liveCountdowns(document);
}

// The run (title, unit, params) and the playbook's step are context: without them the task is
// still shown and worked, only with less said about it.
async function loadContext() {
  try {
    state.run = await api(`/api/runs/${state.task.run_id}`);
  } catch {
    state.run = null;
    return;
  }
  try {
    // The version the run pinned: its form is the one the API checks the answers against.
    state.playbook = await api(`/api/runs/${state.task.run_id}/playbook`);
    state.spec = state.playbook.steps.find((s) => s.id === state.task.step) || null;
  } catch {
    state.playbook = null;
    state.spec = null;
  }
}

startPage(async (who) => {
  state.who = who;
  try {
    state.task = await api(`/api/tasks/${taskId}`);
  } catch (err) {
    // Not a blank page: say why (the API's words) and where to go instead.
    showError(err);
    $("#heading").textContent = `任务 #${taskId}`;
    clear($("#content")).append(h("p", { class: "empty", id: "unavailable" },
      "无法打开该任务。", h("a", { href: "/inbox", text: "返回我的待办" })));
    return;
  }
  await Promise.all([loadContext(), loadRequests(), loadCandidates()]);
  draw();
});
