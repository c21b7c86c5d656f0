// The proxy pool panel, shown when the gateway has the proxy API (GET /_admin/proxy):
// the Off / Auto / On mode, the pool's state and counts, a refresh button, the Geonode filters
// and the other proxy settings (POST /_admin/proxy/settings with short names, all or nothing).

import { api, toast, toastError } from "./api.js";
import { $, $$, fmtAgo, fmtInt, fmtMs, h, replace, timeEl } from "./dom.js";
import { makeField, readable, readChanges } from "./settings.js";

const REFRESH_MS = 5000;
const PREFIX = "proxy_";
const FILTERS = ["geonode", "min_uptime", "protocols", "last_checked_minutes", "speed", "anonymity", "countries"];
const LABELS = {
  geonode: "Use Geonode's public list",
  min_uptime: "Lowest uptime (%)",
  protocols: "Protocols",
  last_checked_minutes: "Checked within (minutes)",
  speed: "Speed",
  anonymity: "Anonymity",
  countries: "Countries",
  static: "Your own proxies",
  page_limit: "Proxies per Geonode page",
  max_pages: "Most pages per refresh",
  refresh_seconds: "Refresh every (seconds)",
  direct_retry_seconds: "Auto: retry direct after (seconds)",
  max_attempts: "Proxies tried per request",
  connect_timeout: "Connect timeout (seconds)",
};

let timer = null;
let current = null;
let fields = [];

const short = (name) => name.slice(PREFIX.length);

function when(iso, none) {
  return iso ? timeEl(iso, fmtAgo(iso)) : none;
}

function badge(text, cls = "") {
  return h("span", { class: `badge ${cls}` }, text);
}

function proxyRow(p) {
  return h("tr", { class: p.alive ? "" : "inactive" },
    h("td", { class: "mono truncate", title: p.url || p.proxy }, p.proxy || p.url || "–"),
    h("td", {}, p.alive ? badge("alive", "ok") : badge("dead", "bad")),
    h("td", { class: "num" }, `${fmtInt(p.successes ?? 0)} / ${fmtInt(p.failures ?? 0)}`),
    h("td", { class: "num hide-sm" }, p.latency === null || p.latency === undefined ? "–" : fmtMs(p.latency)),
    h("td", { class: "hide-sm" }, p.country || "–"),
    h("td", { class: "hide-md truncate", title: p.last_error || "" }, p.last_error || ""));
}

function render(state) {
  current = state;
  for (const radio of $$('input[name="proxy-mode"]')) radio.checked = radio.value === state.mode;
  for (const name of ["total", "alive", "dead"]) $(`[data-proxy="${name}"]`).textContent = fmtInt(state[name] ?? 0);
  $('[data-proxy-sub="total"]').textContent = state.static !== undefined ? `${fmtInt(state.static)} yours · ${fmtInt(state.geonode ?? 0)} Geonode` : "";
  $('[data-proxy-sub="alive"]').textContent = state.successes !== undefined ? `${fmtInt(state.successes)} calls carried` : "";
  $('[data-proxy-sub="dead"]').textContent = state.failures !== undefined ? `${fmtInt(state.failures)} failures` : "";
  replace($('[data-proxy="last_refresh"]'), when(state.last_refresh, "never"));
  $('[data-proxy-sub="last_refresh"]').textContent = state.last_refresh_fetched ? `${fmtInt(state.last_refresh_fetched)} fetched` : "";
  replace($('[data-proxy="next_refresh"]'), when(state.next_refresh, "–"));
  replace($('[data-proxy="next_direct_retry"]'), when(state.next_direct_retry, state.rate_limited_direct ? "due" : "–"));
  $('[data-proxy-sub="next_direct_retry"]').textContent = state.rate_limited_direct ? "direct is rate limited" : "";
  replace($("#proxy-state"),
    state.enabled ? badge("pool in use", "ok") : badge("pool off"),
    state.using_proxy ? badge("upstream calls go through proxies", "info") : badge("upstream calls go direct"),
    state.rate_limited_direct ? badge("direct connection rate limited", "warn") : null,
    state.refreshing ? badge("refreshing…", "info") : null,
    state.last_refresh_ok === false ? badge(`last refresh failed: ${state.last_refresh_error || "unknown error"}`, "bad") : null);
  const proxies = Array.isArray(state.proxies) ? state.proxies : [];
  replace($("#proxy-table tbody"), proxies.map(proxyRow));
  $("#proxy-table").hidden = proxies.length === 0;
  $("#proxy-empty").hidden = proxies.length > 0;
  $("#proxy-worker").textContent = state.worker ? `as seen by worker ${state.worker}` : "";
}

// --- settings ------------------------------------------------------------------------------------

function settingsChanged() {
  const dirty = fields.filter((f) => f.dirty()).length;
  $("#proxy-settings-save").disabled = dirty === 0;
  $("#proxy-settings-status").textContent = dirty ? `${dirty} unsaved change${dirty > 1 ? "s" : ""}` : "";
  $("#proxy-settings-status").classList.remove("bad");
}

async function loadSettingsForm() {
  if (fields.some((f) => f.dirty())) return; // keep what is being edited
  const { describe } = await api("/_admin/settings");
  // the mode has its own switch above; an alias of it (proxy_enabled) gets no control
  const names = Object.keys(describe).filter((n) => n.startsWith(PREFIX) && n !== "proxy_mode" && !describe[n].alias_of);
  fields = names.map((n) => makeField(n, describe[n], { onChange: settingsChanged, label: LABELS[short(n)] }));
  const group = (title, help, list) => (list.length
    ? h("section", { class: "card settings-section", "aria-label": title }, h("h2", {}, title), help ? h("p", { class: "help" }, help) : null, ...list.map((f) => f.row))
    : null);
  replace($("#proxy-settings-sections"),
    group("Geonode filters", "Which public proxies a refresh keeps.", fields.filter((f) => FILTERS.includes(short(f.name)))),
    group("Pool", null, fields.filter((f) => !FILTERS.includes(short(f.name)))));
  settingsChanged();
}

async function saveSettings(event) {
  event.preventDefault();
  const changes = readChanges(fields);
  const status = $("#proxy-settings-status");
  if (!changes) {
    status.textContent = "Nothing was saved: correct the marked fields first.";
    status.classList.add("bad");
    return;
  }
  const body = Object.fromEntries(changes.map(([f, value]) => [short(f.name), value]));
  try {
    const state = await api("/_admin/proxy/settings", { method: "POST", body });
    // the gateway's echo: a proxy list comes back with its passwords masked
    const echoed = state.changed || {};
    for (const [field, value] of changes) field.commit(short(field.name) in echoed ? echoed[short(field.name)] : value);
    render(state);
    settingsChanged();
    status.textContent = `Saved ${changes.length} proxy setting${changes.length > 1 ? "s" : ""}.`;
  } catch (err) {
    if (err.status === 401) return;
    // "min_uptime: must be at most 100; speed: …" → each message under its own field
    let placed = false;
    for (const part of err.message.split("; ")) {
      const name = part.split(":")[0].trim();
      const field = fields.find((f) => short(f.name) === name || f.name === name);
      if (field) {
        field.showError(readable(part, name));
        if (!placed) field.focus();
        placed = true;
      }
    }
    status.textContent = "Nothing was saved: see the marked fields.";
    status.classList.add("bad");
    if (!placed) toastError(err, "Could not save: ");
  }
}

// --- the panel -----------------------------------------------------------------------------------

export async function loadProxy() {
  try {
    render(await api("/_admin/proxy"));
  } catch (err) {
    toastError(err, "Could not load the proxy pool: ");
  }
}

export function initProxy() {
  $("#proxy-mode").addEventListener("change", async (event) => {
    const mode = event.target.value;
    try {
      render(await api("/_admin/proxy/settings", { method: "POST", body: { mode } }));
      toast(`Proxy mode: ${mode === "off" ? "Off" : mode === "auto" ? "Auto" : "On"}.`);
    } catch (err) {
      toastError(err, "Could not change the mode: ");
      if (current) render(current);
    }
  });
  $("#proxy-refresh").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const state = await api("/_admin/proxy/refresh", { method: "POST" });
      render(state);
      const result = state.refresh;
      toast(result && result.ok === false ? `The refresh failed: ${result.error || "unknown error"}` : "The pool was refreshed.",
        { bad: Boolean(result && result.ok === false) });
    } catch (err) {
      toastError(err, "Could not refresh: ");
    } finally {
      button.disabled = false;
    }
  });
  $("#proxy-settings").addEventListener("submit", saveSettings);
}

export function showProxy() {
  loadProxy();
  loadSettingsForm().catch((err) => toastError(err, "Could not load the proxy settings: "));
  clearInterval(timer);
  timer = setInterval(() => {
    if (document.visibilityState === "visible") loadProxy();
  }, REFRESH_MS);
}

export function hideProxy() {
  clearInterval(timer);
  timer = null;
}
