// What every page shares: the token, calls to the JSON API, building elements (always as text,
// never as HTML: a hazard's description is whatever an inspector typed), the flash line for
// errors, countdowns against the server's clock, and the navigation for the person's roles.

const TOKEN_KEY = "closeloop.token";

export function getToken() {
  return window.localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  window.localStorage.setItem(TOKEN_KEY, token.trim());
}

export function clearToken() {
  window.localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && body.detail) || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.error = (body && body.error) || "error";
    this.field = (body && body.field) || null;
    this.detail = detail;
    this.body = body;
  }
}

// Calls the API with the person's token. `json` is sent as the JSON body, `form` as multipart;
// the answer is the parsed JSON, or the Response itself with `raw: true` (downloads).
export async function api(path, { method = "GET", json, form, raw = false } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch (err) {
    throw new ApiError(0, { error: "network", detail: `连不上服务器 / cannot reach the server (${err.message})` });
  }
  if (!response.ok) {
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    throw new ApiError(response.status, parsed);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

// Query string from an object, leaving out empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(key, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

// h("a", {href: "/x", class: "b", onclick: fn}, "text", child): an element, children as text.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function $(selector) {
  return document.querySelector(selector);
}

// One line at the top of the page: what went wrong (the API's own words, Chinese first) or
// what just happened. Errors stay until the next action; notices fade.
let flashTimer = null;

export function flash(message, kind = "ok") {
  const node = $("#flash");
  if (!node) return;
  window.clearTimeout(flashTimer);
  node.textContent = message;
  node.className = `flash ${kind}`;
  node.hidden = false;
  if (kind === "ok") flashTimer = window.setTimeout(() => { node.hidden = true; }, 6000);
}

// With the `form` the request came from, each wrong field is named by the words beside its
// box (整改完成情况), not by its name in the request (outputs.done_measures), which a person
// on site cannot map to anything on the screen.
export function showError(err, form = null) {
  if (err instanceof ApiError) {
    // The status code only where the server failed (a 5xx: worth quoting to whoever runs it);
    // a refusal's own words say what to change, and "422" before them is noise at 3 a.m.
    const code = err.status >= 500 ? `${err.status} ` : "";
    const errors = err.body && Array.isArray(err.body.errors) ? err.body.errors : [];
    const named = (e) => `${(form && fieldLabel(form, e.field)) || e.field}：${e.message}`;
    if (form && errors.length && errors.some((e) => fieldLabel(form, e.field))) {
      flash(`${code}${errors.map(named).join("；")}`, "error");
      return;
    }
    // Every wrong field of the request, not only the first.
    const more = errors.slice(1).map((e) => `${e.field}: ${e.message}`);
    flash(`${code}${err.detail}${more.length ? `；${more.join("；")}` : ""}`, "error");
  } else {
    flash(`页面出错 / page error: ${err && err.message ? err.message : err}`, "error");
  }
}

export function clearFlash() {
  const node = $("#flash");
  if (node) node.hidden = true;
}

// The input of the form for a field the API named: by its full name, else by its last part
// (`outputs.cost` → name="cost", `evidence[1]` → name="evidence").
function fieldInput(form, field) {
  if (!field) return null;
  const name = field.replace(/\[\d+\]$/, "").split(".").pop();
  return form.querySelector(`[name="${CSS.escape(field)}"]`) ||
    form.querySelector(`[name="${CSS.escape(name)}"]`);
}

// The label a person reads for that input, without the （必填） mark; null when it has none.
function fieldLabel(form, field) {
  const input = fieldInput(form, field);
  if (!input) return null;
  const label = input.id ? form.querySelector(`label[for="${CSS.escape(input.id)}"]`) : null;
  // A label with more in it than its words (English, a * for required) says which in data-label.
  const text = label ? label.dataset.label || label.textContent : input.getAttribute("aria-label") || "";
  return text.replace(/（必填）$/, "").trim() || null;
}

// Marks the input of the field the API named (`outputs.reason`, `due_at`, `evidence[1]`: the
// file picker) so the person sees which box to fix.
// Every field the API named is marked (three required answers left empty: three boxes), and
// the first gets the focus.
// A box marked wrong is unmarked as soon as the person changes it: the red border otherwise
// stayed on a corrected count, or on the photo picker once the missing photo was added, until
// the next tap of 提交, and a tired person read it as still wrong. Once per form.
const unmarking = new WeakSet();

function unmarkOnEdit(form) {
  if (unmarking.has(form)) return;
  unmarking.add(form);
  const unmark = (event) => {
    if (event.target instanceof Element) event.target.removeAttribute("aria-invalid");
  };
  form.addEventListener("input", unmark);
  form.addEventListener("change", unmark);
}

export function markField(form, err) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  if (!(err instanceof ApiError) || !err.field) return;
  unmarkOnEdit(form);
  const listed = Array.isArray(err.body && err.body.errors) ? err.body.errors.map((e) => e.field) : [];
  const fields = [err.field, ...listed.filter((f) => f && f !== err.field)];
  let first = null;
  for (const field of fields) {
    const input = fieldInput(form, field);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  if (first) first.focus();
}

// -- the person and the server's clock -------------------------------------------------------

let mePromise = null;
let clockOffset = 0; // server time minus this browser's time, in ms
let zone = "Asia/Shanghai"; // the bureau's, from /api/me: times are shown in it, not the phone's

export function me() {
  if (!mePromise) {
    const asked = Date.now();
    mePromise = api("/api/me").then((who) => {
      const answered = Date.now();
      clockOffset = Date.parse(who.now) - (asked + answered) / 2;
      zone = who.timezone || zone;
      return who;
    }, (err) => {
      mePromise = null; // a refused token is asked again after the next sign-in
      throw err;
    });
  }
  return mePromise;
}

// A param or output as people read it: 是/否, a list joined, a time with its offset in the
// bureau's zone ("2026-11-30T01:15:00Z" → "2026-11-30 09:15"), nothing as "—".
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

export function shownValue(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "是" : "否";
  if (Array.isArray(value)) return value.map(shownValue).join("、");
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "string" && ISO_TIME.test(value)) {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
      minute: "2-digit", hourCycle: "h23",
    }).formatToParts(new Date(value)).map((p) => [p.type, p.value]));
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
  }
  return String(value);
}

// The person's units (/api/me, in tree order) as [id, label] for a select: each indented under
// the unit above it, so the org chart reads as a tree.
export function unitChoices(who) {
  const parent = new Map(who.units.map((u) => [u.id, u.parent_id]));
  const depth = (id) => {
    let d = 0;
    for (let p = parent.get(id); p && parent.has(p); p = parent.get(p)) d += 1;
    return d;
  };
  return who.units.map((u) => [u.id, `${"\u3000".repeat(depth(u.id))}${u.name}`]);
}

export function serverNow() {
  return Date.now() + clockOffset;
}

// "剩余 2天3小时" / "逾期 5小时12分": how long until (or since) a deadline, by the server's clock.
export function countdown(dueIso) {
  if (!dueIso) return { text: "无时限", overdue: false, ms: null };
  const ms = Date.parse(dueIso) - serverNow();
  const overdue = ms < 0;
  // Whole minutes as a person counts them: time left rounded up ("30天0小时" for a task due in
  // exactly 30 days, not 29天23小时 a millisecond later), time overdue rounded down.
  let left = (overdue ? Math.floor(-ms / 60000) : Math.ceil(ms / 60000)) * 60000;
  const days = Math.floor(left / 86400000);
  left -= days * 86400000;
  const hours = Math.floor(left / 3600000);
  left -= hours * 3600000;
  const minutes = Math.floor(left / 60000);
  let span;
  if (days > 0) span = `${days}天${hours}小时`;
  else if (hours > 0) span = `${hours}小时${minutes}分`;
  else span = `${Math.max(minutes, overdue ? 1 : 0)}分钟`;
  return { text: overdue ? `逾期 ${span}` : `剩余 ${span}`, overdue, ms };
}

// Countdowns on the page re-drawn every 30 s: each element with data-due gets its text.
export function liveCountdowns(root = document) {
  const draw = () => {
    for (const node of root.querySelectorAll("[data-due]")) {
      const left = countdown(node.dataset.due);
      node.textContent = left.text;
      node.classList.toggle("overdue", left.overdue || node.dataset.overdue === "true");
    }
  };
  draw();
  if (!liveCountdowns.timer) liveCountdowns.timer = window.setInterval(draw, 30000);
  return draw;
}

export const STEP_STATUS = {
  pending: "待开始", ready: "待办", acked: "已签收", submitted: "待核验", done: "已完成",
  rejected: "已退回", skipped: "已跳过", cancelled: "已取消",
};

export const RUN_STATUS = {
  running: "进行中", completed: "已完成", cancelled: "已取消", failed: "失败",
};

export function statusBadge(status, names = STEP_STATUS) {
  return h("span", { class: `badge status-${status}`, text: names[status] || status });
}

// A drill (演练) never reads as a real event: every place a run or its task is shown puts this
// before it (`drill` of a run or a task in the API; null for a real event, which gets nothing).
export function drillBadge(drill) {
  if (!drill) return null;
  return h("span", { class: "badge drill-badge", title: drill.title || drill.kind,
    text: `${drill.mark || "【演练】"}${drill.kind}` });
}

// The band across the top of a drill's run or task page: what it is, in words.
export function drillBanner(drill) {
  if (!drill) return null;
  const name = drill.title ? `「${drill.title}」` : "";
  return h("p", { class: "drill-banner", role: "note" },
    h("strong", { text: "【演练】" }), `${name}${drill.kind}，非真实事件。`,
    drill.kind === "盲演" ? "（盲演：参演人员事先未获通知）" : "");
}

// An authenticated download (an export): fetched with the token, handed to the browser as a
// file with the name the server gave it.
export async function download(path, fallbackName) {
  const response = await api(path, { raw: true });
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  const plain = /filename="?([^";]+)"?/i.exec(disposition);
  const name = star ? decodeURIComponent(star[1]) : plain ? plain[1] : fallbackName;
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 60000);
  return name;
}

// -- page start -------------------------------------------------------------------------------

const LINKS = [
  { href: "/inbox", text: "我的待办", show: () => true },
  { href: "/runs", text: "事件与流程", show: () => true },
  { href: "/runs/new", text: "启动预案", show: (who) => who.startable.length > 0 },
  { href: "/hazards", text: "三个清单", show: () => true },
  { href: "/ranking", text: "月度排名", show: (who) => who.manager }, // the API's manager right
  { href: "/reporting", text: "报送考核", show: (who) => who.manager },
];

export function linksFor(who) {
  return LINKS.filter((link) => link.show(who));
}

function drawNav(who) {
  const nav = $("#nav");
  if (nav) {
    clear(nav);
    for (const link of linksFor(who)) {
      const here = window.location.pathname === link.href;
      nav.append(h("a", { href: link.href, "aria-current": here ? "page" : null, text: link.text }));
    }
  }
  const line = $("#who");
  if (line) line.textContent = `${who.name} · ${who.unit_name}`;
}

export function signInAgain(reason) {
  clearToken();
  const next = window.location.pathname + window.location.search;
  const target = `/${query({ next: next === "/" ? "" : next, why: reason || "" })}`;
  window.location.assign(target);
}

// Boots a page that needs a person: no token → the sign-in page; a refused token → sign in
// again, saying why; otherwise the navigation is drawn and `render(who)` fills the page.
// A button whose call is on its way: disabled (a second tap does nothing) and saying so, since
// a greyed button alone reads as broken on a slow phone network and invites a reload that
// loses the form. Answers the function that puts it back as it was.
export function sending(button, text = "正在提交…") {
  const kept = [...button.childNodes];
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = text;
  return () => {
    button.replaceChildren(...kept);
    button.removeAttribute("aria-busy");
    button.disabled = false;
  };
}

// A filter form the page shows before it knows who is signed in (a phone on a slow network
// shows it first): what the person chose there meanwhile, by field name, so the page fills the
// form with it rather than resetting it to the address's. `taken()` stops recording and
// answers the choices; the page's own listeners take over from there.
export function choicesWhileLoading(form) {
  const chosen = {};
  const record = (event) => {
    if (event.target.name) chosen[event.target.name] = event.target.value;
  };
  form.addEventListener("change", record);
  return {
    chosen,
    taken: () => {
      form.removeEventListener("change", record);
      return { ...chosen };
    },
  };
}

export async function startPage(render) {
  if (!getToken()) {
    signInAgain("");
    return;
  }
  let who;
  try {
    who = await me();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signInAgain(err.detail);
      return;
    }
    showError(err);
    return;
  }
  drawNav(who);
  try {
    await render(who);
  } catch (err) {
    showError(err);
  }
}
