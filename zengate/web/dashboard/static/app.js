// zengate dashboard: signing in and out, moving between views, the account form.
// The session is an HttpOnly SameSite=Strict cookie set by POST /_admin/login {"cookie": true}:
// scripts never see the token, and nothing is kept in web storage.

import { api, ApiError, clearToasts, setFieldError, setUnauthorizedHandler, toast, toastError } from "./api.js";
import { $, $$ } from "./dom.js";
import { initKeys, leaveKeys, loadKeys } from "./keys.js";
import { initModelsView, loadModelsView } from "./models.js";
import { hideOverview, initOverview, showOverview } from "./overview.js";
import { hideProxy, initProxy, showProxy } from "./proxy.js";
import { initRequests, loadRequests } from "./requests.js";
import { initSettings, loadSettings } from "./settings.js";

const proxyApi = document.body.dataset.proxyApi === "true";

const VIEWS = {
  overview: { title: "Overview", show: showOverview, hide: hideOverview },
  requests: { title: "Request log", show: loadRequests },
  models: { title: "Models", show: loadModelsView },
  keys: { title: "API keys", show: loadKeys, hide: leaveKeys },
  settings: { title: "Settings", show: () => loadSettings() },
  proxy: { title: "Proxy pool", show: showProxy, hide: hideProxy, available: () => proxyApi },
  account: { title: "Account", show: () => {} },
};

let currentView = null;
let signedIn = false;

/** On a phone the navigation is one row that scrolls sideways: bring the current tab into it,
 *  and fade the edge that has more tabs beyond it. */
function revealInNav(link) {
  const nav = link.closest(".nav");
  if (!nav || nav.scrollWidth <= nav.clientWidth) return;
  const bar = nav.getBoundingClientRect(), tab = link.getBoundingClientRect();
  if (tab.left < bar.left) nav.scrollLeft -= bar.left - tab.left + 16;
  else if (tab.right > bar.right) nav.scrollLeft += tab.right - bar.right + 16;
  markNavEdges(nav);
}

function markNavEdges(nav) {
  nav.classList.toggle("more-before", nav.scrollLeft > 1);
  nav.classList.toggle("more-after", nav.scrollLeft + nav.clientWidth < nav.scrollWidth - 1);
}

function route({ focus = true } = {}) {
  if (!signedIn) return;
  let name = window.location.hash.replace(/^#/, "") || "overview";
  if (!VIEWS[name] || (VIEWS[name].available && !VIEWS[name].available())) name = "overview";
  if (currentView && currentView !== name && VIEWS[currentView].hide) VIEWS[currentView].hide();
  for (const section of $$(".view")) section.hidden = section.id !== `view-${name}`;
  for (const link of $$("[data-nav]")) {
    if (link.dataset.nav === name) {
      link.setAttribute("aria-current", "page");
      revealInNav(link);
    } else link.removeAttribute("aria-current");
  }
  document.title = `${VIEWS[name].title} · zengate`;
  const changed = currentView !== name;
  if (changed) clearToasts();
  currentView = name;
  VIEWS[name].show();
  if (changed && focus) $("#main").focus({ preventScroll: true });
}

// --- signing in and out ---------------------------------------------------------------------------

function showLogin(message = "") {
  signedIn = false;
  if (currentView && VIEWS[currentView].hide) VIEWS[currentView].hide();
  currentView = null;
  for (const dialog of $$("dialog[open]")) dialog.close();
  $("#boot").hidden = true;
  $("#app").hidden = true;
  $("#login-view").hidden = false;
  document.title = "Sign in · zengate";
  $("#login-note").textContent = message;
  setFieldError($("#login-password"), $("#login-error"), "");
  $("#login-password").value = "";
  $("#login-password").focus();
}

function showApp(session) {
  signedIn = true;
  $("#boot").hidden = true;
  $("#login-view").hidden = true;
  $("#app").hidden = false;
  $("#nav-proxy").hidden = !proxyApi;
  $("#default-password-banner").hidden = !session.default_password;
  const open = Boolean(session.access && session.access.open_without_keys);
  $("#open-access-banner").hidden = !open;
  $("#open-access-where").textContent = open ? session.access.listening.join(", ") : "";
  const shared = session.shared_state || {};
  $("#redis-down-banner").hidden = shared.redis !== "unavailable";
  $("#redis-down-error").textContent = shared.redis === "unavailable" ? shared.error || "" : "";
  route({ focus: false });
}

async function login(event) {
  event.preventDefault();
  const input = $("#login-password");
  const error = $("#login-error");
  $("#login-note").textContent = "";
  setFieldError(input, error, "");
  if (!input.value) {
    setFieldError(input, error, "Enter the admin password.");
    input.focus();
    return;
  }
  const button = $("#login-form button[type=submit]");
  button.disabled = true;
  try {
    const session = await api("/_admin/login", { method: "POST", body: { password: input.value, cookie: true }, quiet401: true });
    input.value = "";
    showApp(session);
  } catch (err) {
    const message = err instanceof ApiError && err.status === 401 ? "Wrong password. Try again."
      : err instanceof ApiError && err.status === 400 ? err.message : `Could not sign in: ${err.message}`;
    setFieldError(input, error, message);
    input.select();
  } finally {
    button.disabled = false;
  }
}

async function logout() {
  try {
    await api("/_admin/logout", { method: "POST", quiet401: true });
  } catch {
    // the session is gone either way
  }
  window.location.hash = "";
  showLogin("You are logged out.");
}

// --- account -------------------------------------------------------------------------------------

async function changePassword(event) {
  event.preventDefault();
  const current = $("#pw-current"), next = $("#pw-new"), again = $("#pw-confirm"), error = $("#password-error");
  for (const input of [current, next, again]) setFieldError(input, error, "");
  const problem = !current.value ? [current, "Enter the current password."]
    : next.value.length < 8 ? [next, "The new password needs at least 8 characters."]
      : next.value !== again.value ? [again, "The two new passwords differ."]
        : next.value === current.value ? [next, "The new password is the same as the current one."] : null;
  if (problem) {
    setFieldError(problem[0], error, problem[1]);
    problem[0].focus();
    return;
  }
  try {
    await api("/_admin/change-password", { method: "POST", body: { current_password: current.value, new_password: next.value } });
    event.target.reset();
    $("#default-password-banner").hidden = true;
    toast("Password changed. Other admin sessions were logged out.");
  } catch (err) {
    if (err.param === "current_password") setFieldError(current, error, "The current password is wrong.");
    else if (err.param === "new_password") setFieldError(next, error, err.message.replace(/^new_password: /, "The new password "));
    else toastError(err, "Could not change the password: ");
  }
}

// --- start ---------------------------------------------------------------------------------------

function init() {
  setUnauthorizedHandler(() => {
    if (signedIn) showLogin("Your session has ended: sign in again.");
  });
  $("#login-form").addEventListener("submit", login);
  $("#logout-button").addEventListener("click", logout);
  $("#logout-button-2").addEventListener("click", logout);
  $("#logout-button-side").addEventListener("click", logout);
  $("#password-form").addEventListener("submit", changePassword);
  window.addEventListener("hashchange", () => route());
  for (const nav of $$(".nav")) nav.addEventListener("scroll", () => markNavEdges(nav), { passive: true });
  initOverview();
  initRequests();
  initModelsView();
  initKeys();
  initSettings();
  if (proxyApi) initProxy();
}

async function start() {
  init();
  try {
    const session = await api("/_admin/session", { quiet401: true });
    if (session.authenticated) showApp(session);
    else showLogin();
  } catch (err) {
    $("#boot").textContent = `The gateway did not answer: ${err.message}`;
  }
}

start();
