// 启动预案: a commander (or an inspector registering a hazard) picks a playbook they may
// start, the unit the event is in, and fills the playbook's typed parameters. The form is
// built from the playbook's own `params`; the API judges every value, and its refusal (which
// parameter, in its own words) is shown on the box to fix.
import {
  $, api, ApiError, clear, clearFlash, h, markField, query, sending, showError, startPage,
  unitChoices,
} from "/static/closeloop.js";

const TYPES_ZH = {
  string: "文本", int: "整数", number: "数字", bool: "是/否", enum: "选择", date: "日期",
  datetime: "日期时间", list: "列表",
};

const cache = new Map(); // playbook id -> compiled playbook (GET /api/playbooks/{id})
let shown = null; // the playbook whose params the form shows now
let zoneOffset = "+08:00"; // the bureau's UTC offset, worked out from /api/me
let unitsOwn = ""; // the person's own unit, preselected for a response
let startable = []; // /api/me's playbooks the person may start (with `broken_file`)


// "+08:00" from the server's own clock (now and now_local), so a time picked in the form means
// the bureau's time whatever zone this phone is set to.
function offsetFrom(who) {
  const local = Date.parse(`${String(who.now_local).replace(" ", "T")}Z`);
  const utc = Date.parse(who.now);
  if (Number.isNaN(local) || Number.isNaN(utc)) return zoneOffset;
  const minutes = Math.round((local - utc) / 900000) * 15;
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  const pad = (n) => String(n).padStart(2, "0");
  return `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function unitOptions(who) {
  return unitChoices(who).map(([id, label]) =>
    h("option", { value: id, selected: id === who.unit_id }, label));
}

// -- one parameter's input ----------------------------------------------------------------------

function textValue(value) {
  return value === null || value === undefined ? "" : String(value);
}

function selectFor(name, spec, choices) {
  const blank = spec.default === null || spec.default === undefined;
  const options = [];
  if (blank) options.push(h("option", { value: "" }, spec.required ? "请选择" : "（不填）"));
  for (const [value, text] of choices) {
    options.push(h("option", { value, selected: textValue(spec.default) === value }, text));
  }
  return h("select", { id: `p-${name}`, name }, options);
}

function inputFor(name, spec) {
  const id = `p-${name}`;
  switch (spec.type) {
    case "enum":
      return selectFor(name, spec, (spec.values || []).map((v) => [v, v]));
    case "bool":
      return selectFor(name, spec, [["true", "是"], ["false", "否"]]);
    case "int":
    case "number": {
      // Text, not type=number: a browser turns "abc" in a number box into "", which would be
      // sent as "not filled" and take the default; the API should say what is wrong.
      return h("input", {
        id, name, type: "text", inputmode: spec.type === "int" ? "numeric" : "decimal",
        value: textValue(spec.default),
      });
    }
    case "date":
      return h("input", { id, name, type: "date", value: textValue(spec.default) });
    case "datetime": {
      const text = textValue(spec.default);
      const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})/.exec(text);
      return h("input", { id, name, type: "datetime-local", value: m ? `${m[1]}T${m[2]}` : "" });
    }
    case "list": {
      const area = h("textarea", { id, name, rows: 3 });
      area.value = Array.isArray(spec.default) ? spec.default.join("\n") : "";
      return area;
    }
    default:
      return h("input", { id, name, type: "text", value: textValue(spec.default) });
  }
}

function hints(spec) {
  const parts = [TYPES_ZH[spec.type] || spec.type];
  if (spec.min !== null && spec.min !== undefined) parts.push(`最小 ${spec.min}`);
  if (spec.max !== null && spec.max !== undefined) parts.push(`最大 ${spec.max}`);
  if (spec.type === "list") parts.push("每行一项");
  if (spec.default !== null && spec.default !== undefined && spec.default !== "") {
    parts.push(`默认 ${Array.isArray(spec.default) ? spec.default.join("、") : textValue(spec.default)}`);
  }
  return parts.join(" · ");
}

function paramField(name, spec) {
  const input = inputFor(name, spec);
  const helpId = `help-${name}`;
  input.setAttribute("aria-describedby", helpId);
  if (spec.required) {
    input.setAttribute("required", "");
    input.setAttribute("aria-required", "true");
  }
  return h("div", { class: "param", dataset: { param: name, type: spec.type } },
    h("label", { for: input.id, dataset: { label: spec.title || name } },
      spec.title || name,
      spec.title_en ? h("span", { class: "en", text: ` ${spec.title_en}` }) : null,
      spec.required ? h("span", { class: "req", title: "必填", text: " *" }) : null),
    input,
    h("p", { id: helpId, class: "help meta" },
      spec.description ? `${spec.description}（${hints(spec)}）` : hints(spec)));
}

// -- the playbook chosen ------------------------------------------------------------------------

function drawStages(pb) {
  const box = clear($("#stages"));
  box.hidden = !pb.stages || !pb.stages.length;
  if (box.hidden) return;
  box.append(
    h("p", { class: "meta" }, "分阶段预案：启动后处于第一个阶段，指挥长在流程页切换阶段，各阶段的任务随之下达。"),
    h("ol", { class: "stage-list" }, pb.stages.map((stage) => {
      const steps = (pb.steps || []).filter((s) => s.stage === stage).map((s) => s.title);
      return h("li", { dataset: { stage } }, h("strong", { text: (pb.stage_titles || {})[stage] || stage }),
        steps.length ? h("span", { class: "meta", text: `：${steps.join("、")}` }) : null);
    })));
}

function drawParams(pb) {
  const fields = clear($("#param-fields"));
  const entries = Object.entries(pb.params || {});
  $("#params").hidden = entries.length === 0;
  for (const [name, spec] of entries) fields.append(paramField(name, spec));
  const about = [pb.description, pb.title_en].filter(Boolean).join(" · ");
  $("#playbook-about").textContent = about;
  // A file broken since its last run: the run starts on the last good version, said plainly.
  const listed = startable.find((p) => p.id === pb.id);
  const broken = $("#playbook-broken");
  broken.hidden = !(listed && listed.broken_file);
  broken.textContent = broken.hidden ? ""
    : `注意：此预案的文件有错误，现沿用上次运行的版本（第 ${pb.version} 版），请联系管理员修正：${listed.broken_file}`;
  drawStages(pb);
  drawNature(pb);
}

// 真实事件 or 演练: a drill runs the same playbook, marked 【演练】 everywhere. A playbook that
// keeps or counts the hazard register is never a drill (the API refuses it), so it is not
// offered there.
function mayDrill(pb) {
  return !pb.register && pb.kind !== "campaign";
}

function drawNature(pb) {
  const box = $("#nature");
  box.hidden = !mayDrill(pb);
  if (box.hidden) box.querySelector("input[value=real]").checked = true;
  const drill = isDrill();
  $("#drill-fields").hidden = !drill;
  $("#start-submit").textContent = drill ? "启动演练" : "启动";
}

function isDrill() {
  const chosen = $("#nature").querySelector("input[name=nature]:checked");
  return !$("#nature").hidden && chosen !== null && chosen.value === "drill";
}

async function choose(id) {
  clearFlash();
  const url = window.location.pathname + query({ playbook: id });
  window.history.replaceState(null, "", url);
  shown = null;
  if (!cache.has(id)) cache.set(id, await api(`/api/playbooks/${encodeURIComponent(id)}`));
  // Another playbook may have been chosen while this one loaded: draw only the current one.
  if ($("#playbook").value !== id) return;
  shown = cache.get(id);
  drawParams(shown);
  pickUnitFor(shown);
}

// A hazard (a register playbook) belongs to the community or enterprise responsible for it,
// never to a street or the district as a whole (nobody there rectifies): a person whose own
// unit has units below it chooses one, rather than sending their own and being refused.
function pickUnitFor(pb) {
  const select = $("#unit");
  const blank = select.querySelector("option[value='']");
  const below = select.options.length - (blank ? 1 : 0) > 1;
  if (pb && pb.register && below) {
    if (!blank) select.prepend(h("option", { value: "" }, "请选择责任单位（社区/企业）"));
    if (select.value === unitsOwn) select.value = "";
  } else if (blank) {
    blank.remove();
    if (!select.value) select.value = unitsOwn;
  }
}

// -- sending --------------------------------------------------------------------------------

// The value of one parameter as the API takes it; undefined when left empty (the playbook's
// default then applies, and a missing required one is the API's to name).
function valueOf(input, spec) {
  const raw = input.value;
  if (spec.type === "list") {
    const items = raw.split("\n").map((line) => line.trim()).filter(Boolean);
    return items.length ? items : undefined;
  }
  if (raw.trim() === "") return undefined;
  switch (spec.type) {
    case "bool":
      return raw === "true";
    case "int":
    case "number":
      return raw.trim();
    case "datetime":
      return `${raw}${zoneOffset}`;
    default:
      return raw;
  }
}

function collect() {
  const params = {};
  for (const [name, spec] of Object.entries(shown ? shown.params || {} : {})) {
    const input = $("#param-fields").querySelector(`[name="${CSS.escape(name)}"]`);
    if (!input) continue;
    const value = valueOf(input, spec);
    if (value !== undefined) params[name] = value;
  }
  // By id: a playbook may well have a parameter called "unit".
  const body = { playbook: $("#playbook").value, unit: $("#unit").value, params };
  if (isDrill()) {
    const title = $("#drill-title").value.trim();
    body.drill = { kind: $("#drill-kind").value, ...(title ? { title } : {}) };
  }
  return body;
}

// The same response already running here (this unit, above or below it): a second tap, or a
// retry after an answer lost on a weak signal, must not page everyone twice. The first send
// asks the API to refuse in that case; the commander then opens the running one, or confirms
// that this is another event and the start is sent again without asking.
// A drill is held up only by drills (a real start only by real runs): the box says which, so
// a drill running is never read as a real event, nor the other way round.
function showConcurrent(runs) {
  const list = clear($("#concurrent-runs"));
  const drill = isDrill();
  $("#concurrent-same").textContent = drill
    ? "是同一场演练的，请打开上面的演练继续，不要重复启动。"
    : "是同一起事件的，请打开上面的流程继续处置，不要重复启动。";
  $("#concurrent-yes").textContent = drill ? "确属另一场演练，仍然启动" : "确属另一起事件，仍然启动";
  for (const run of runs) {
    const stage = run.stage_title ? `，${run.stage_title}` : "";
    list.append(h("li", {},
      h("a", { href: `/runs/${run.id}`, text: `#${run.id} ${run.drill ? "【演练】" : ""}${run.title}` }),
      h("span", { class: "meta",
        text: `（${run.unit_name}，${run.started_by_name} ${run.started_at_local} 启动${stage}）` })));
  }
  $("#concurrent").hidden = false;
  $("#concurrent-yes").focus();
}

async function send(form, refuseConcurrent) {
  const button = $("#start-submit");
  clearFlash();
  markField(form, null);
  $("#concurrent").hidden = true;
  const sent = sending(button, "正在启动…");
  try {
    const run = await api("/api/runs", {
      method: "POST", json: { ...collect(), refuse_concurrent: refuseConcurrent } });
    window.location.assign(`/runs/${run.id}`);
  } catch (err) {
    sent();
    if (err instanceof ApiError && err.error === "concurrent_runs") {
      showConcurrent(err.body.runs || []);
      return;
    }
    showError(err, form);
    markField(form, err);
  }
}

function submit(event) {
  event.preventDefault();
  return send(event.currentTarget, true);
}

// Who the duty rooms' alerts wake now (the org file's rosters): a commander starting a
// response knows whom the phone will ring. 今日值班：坪山区值班员 黄磊（至 12-04 08:30）
function drawOnDuty(who) {
  const shifts = who.on_duty || [];
  if (!shifts.length) return;
  const line = $("#on-duty");
  line.textContent = `今日值班：${shifts.map((s) =>
    `${s.unit_name}${s.role_name} ${s.person_name}（至 ${s.until_local}）`).join("；")}`;
  line.hidden = false;
}

startPage(async (who) => {
  drawOnDuty(who);
  if (!who.startable.length) {
    $("#nothing").hidden = false;
    return;
  }
  zoneOffset = offsetFrom(who);
  startable = who.startable;
  const form = $("#start-form");
  const wanted = new URLSearchParams(window.location.search).get("playbook");
  const first = who.startable.some((pb) => pb.id === wanted) ? wanted : who.startable[0].id;
  for (const pb of who.startable) {
    $("#playbook").append(h("option", { value: pb.id, selected: pb.id === first }, pb.title));
  }
  $("#unit").append(...unitOptions(who));
  unitsOwn = who.unit_id;
  form.hidden = false;
  $("#playbook").addEventListener("change", () => choose($("#playbook").value).catch(showError));
  form.addEventListener("submit", submit);
  $("#concurrent-yes").addEventListener("click", () => send(form, false));
  $("#concurrent-no").addEventListener("click", () => { $("#concurrent").hidden = true; });
  for (const radio of document.querySelectorAll("input[name=nature]")) {
    radio.addEventListener("change", () => { if (shown) drawNature(shown); });
  }
  await choose(first);
});
