// Sign in with a token, then the links each role needs.
import { $, ApiError, clear, clearToken, flash, h, linksFor, me, setToken, getToken } from "/static/closeloop.js";

const params = new URLSearchParams(window.location.search);

function safeNext() {
  // Only a page of this server: a crafted link must not send the person elsewhere. Resolved
  // the way the browser will resolve it ("/\\host" is another host to a browser, as "//host").
  const next = params.get("next") || "";
  if (!next.startsWith("/")) return "";
  let url;
  try {
    url = new URL(next, window.location.origin);
  } catch {
    return "";
  }
  return url.origin === window.location.origin ? url.pathname + url.search + url.hash : "";
}

async function welcome() {
  const who = await me();
  $("#signin").hidden = true;
  $("#welcome").hidden = false;
  const roles = who.roles.map((r) => r.name).join("、");
  $("#welcome-line").textContent = `${who.name}（${who.unit_name}${roles ? " · " + roles : ""}），您好。`;
  $("#who").textContent = `${who.name} · ${who.unit_name}`;
  const list = clear($("#links"));
  for (const link of linksFor(who)) list.append(h("li", {}, h("a", { href: link.href, text: link.text })));
}

function showSignIn() {
  $("#welcome").hidden = true;
  $("#signin").hidden = false;
  $("#token").focus();
}

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  setToken($("#token").value);
  try {
    await welcome();
    const next = safeNext();
    if (next) window.location.assign(next);
  } catch (err) {
    clearToken();
    flash(err instanceof ApiError ? `登录失败：${err.detail}` : String(err), "error");
    showSignIn();
  }
});

$("#signout").addEventListener("click", () => {
  clearToken();
  flash("已退出登录 / signed out");
  showSignIn();
});

// A sign-in link (`closeloop token PERSON --link`) carries the token in the fragment, which
// is never sent to the server: keep it, and take it out of the address bar and history.
const fragment = new URLSearchParams(window.location.hash.slice(1));
if (fragment.get("token")) {
  setToken(fragment.get("token"));
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
}

if (params.get("why")) flash(`请重新登录：${params.get("why")}`, "error");
if (getToken()) {
  welcome().catch((err) => {
    clearToken();
    flash(err instanceof ApiError ? `请重新登录：${err.detail}` : String(err), "error");
    showSignIn();
  });
} else {
  showSignIn();
}
