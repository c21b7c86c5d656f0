// Models: what the gateway serves (tier, protocol, limits, live, fallbacks, aliases), the families
// clients' model names map to, traffic over a window, and a Test button per model.
// Model names and answers come from configuration, upstreams and clients: only ever rendered as text.

import { api, toastError } from "./api.js";
import { $, fmtAgo, fmtInt, fmtMs, h, replace } from "./dom.js";
import { showRequestsMatching } from "./requests.js";

const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const FAMILY_NAMES = { opus: "Claude Opus", sonnet: "Claude Sonnet", haiku: "Claude Haiku", gemini: "Gemini", default: "Other Claude names" };
const SAMPLE_CAP = 20000; // the API's latency sample (P95_SAMPLE): a median over fewer rows than the window holds
const WINDOW_NAMES = { 60: "the last hour", 1440: "the last 24 hours", 10080: "the last 7 days" };

// model id → {busy: true} while its test runs, then {outcome} or {failure}; kept across reloads
const results = new Map();
let seq = 0;

const size = (n) => (n === null || n === undefined ? "–" : compact.format(n));

function tierText(m) {
  if (m.source === "log") return "not in the catalog";
  const tier = m.kind === "backend" ? `backend ${m.tier}` : m.tier === "go" ? "Go" : "Zen";
  return m.free ? `${tier} · free` : tier;
}

function liveBadge(m) {
  if (m.live === true) return h("span", { class: "badge ok", title: "In its tier's live model list now" }, "live");
  if (m.live === false) return h("span", { class: "badge warn", title: "Not in its tier's live model list" }, "not listed");
  const why = m.source === "log" ? "Seen only in the request log"
    : m.kind === "backend" ? "Backends of the models file have no live list" : "The tier's live list has not been fetched";
  return h("span", { class: "badge", title: why }, "unknown");
}

function routing(m) {
  const parts = [];
  if (m.fallbacks.length) parts.push(h("span", { class: "chain" }, `then ${m.fallbacks.join(" → ")}`));
  if (m.aliases.length) parts.push(h("span", { class: "chain" }, `alias ${m.aliases.join(", ")}`));
  if (m.families.length) {
    const names = m.families.map((f) => (f === "default" ? "other Claude" : f));
    parts.push(h("span", { class: "chain", title: "The model_map setting sends these client model names here" }, `for ${names.join(", ")} names`));
  }
  if (m.upstream_model && m.upstream_model !== m.id) parts.push(h("span", { class: "chain" }, `upstream name ${m.upstream_model}`));
  if (m.has_key === false) parts.push(h("span", { class: "chain warn-inline" }, "no key for its tier"));
  return parts;
}

function testButton(m) {
  const state = results.get(m.id);
  const busy = Boolean(state && state.busy);
  return h("button", {
    type: "button", class: "button small", disabled: busy, "aria-label": `Test ${m.id}`,
    "aria-describedby": state ? `test-result-${cssId(m.id)}` : null, onclick: () => testModel(m),
  }, busy ? "Testing…" : "Test");
}

/** A string usable in an id attribute (model names may hold anything). */
function cssId(text) {
  return Array.from(text, (c) => (/[A-Za-z0-9_-]/.test(c) ? c : `_${c.codePointAt(0).toString(16)}`)).join("");
}

function resultContent(m, state) {
  if (state.busy) return h("p", { class: "muted small" }, `Sending “Reply with OK” to ${m.id}…`);
  if (state.failure) return h("p", { class: "form-error" }, `The test could not be run: ${state.failure}`);
  const r = state.outcome;
  const tries = r.attempts && r.attempts.length > 1 ? ` after ${r.attempts.length} attempts` : "";
  if (r.status === 200) {
    return [
      h("p", { class: "small test-meta" }, h("span", { class: "badge ok" }, "200"),
        ` Answered by ${r.answered_by || "the gateway"}${r.backend ? ` on ${r.backend}` : ""} in ${fmtMs(r.latency_ms)}${tries}`),
      h("pre", { class: "text test-text" }, r.text || "(no text in the answer)"),
    ];
  }
  return [
    h("p", { class: "small test-meta" }, h("span", { class: "badge bad" }, String(r.status)),
      ` Failed in ${fmtMs(r.latency_ms)}${tries}`),
    h("pre", { class: "text error-text test-text" }, r.error || `HTTP ${r.status}`),
  ];
}

function resultRow(m) {
  const state = results.get(m.id);
  if (!state) return null;
  return h("tr", { class: "test-row", dataset: { testFor: m.id } },
    h("td", { colspan: "6" }, h("div", {
      class: "test-result", id: `test-result-${cssId(m.id)}`, role: "status", "aria-busy": state.busy ? "true" : "false",
      "aria-label": `Test of ${m.id}`,
    }, resultContent(m, state))));
}

function traffic(m) {
  const errors = h("span", { class: m.errors ? "errors bad-text" : "errors" }, `${fmtInt(m.errors)} ${m.errors === 1 ? "error" : "errors"}`);
  return [
    m.requests && m.source !== "log" ? h("button", {
      type: "button", class: "link-button requests", onclick: () => showLogOf(m),
      title: `Open the request log: requests ${m.upstream_model || m.id} answered in this window`,
      "aria-label": `${fmtInt(m.requests)} requests: show those ${m.id} answered in the request log`,
    }, fmtInt(m.requests)) : h("span", { class: "requests" }, fmtInt(m.requests)),
    h("span", { class: "traffic-sub" }, errors, m.median_latency_ms === null ? null
      : [" ", h("span", { class: "median", title: "Median latency" }, `· ${fmtMs(m.median_latency_ms)}`)]),
  ];
}

/** The request log, filtered to what this model answered over the page's window. */
function showLogOf(m) {
  const since = new Date(Date.now() - Number($("#models-window").value) * 60_000);
  since.setSeconds(0, 0); // the log's filter shows minutes: the rows from the window's first minute on
  showRequestsMatching({ upstream_model: m.upstream_model || m.id, since: since.toISOString() });
}

function rows(m) {
  const row = h("tr", { dataset: { model: m.id } },
    h("td", { class: "model-cell" },
      h("span", { class: "model-id" }, m.id),
      m.name && m.name !== m.id ? h("span", { class: "model-name" }, m.name) : null,
      h("span", { class: "model-tier" }, tierText(m), m.protocol ? ` · ${m.protocol}` : null),
      h("span", { class: "model-live" }, liveBadge(m)), // on a phone, in place of its column
      h("span", { class: "routing" }, routing(m))),
    h("td", { class: "hide-md nowrap" }, m.source === "log"
      ? h("span", { class: "badge", title: "Seen in the request log; the catalog does not know it" }, "log only")
      : [h("span", { class: "tier" }, tierText(m)), h("span", { class: "protocol", title: "Upstream protocol" }, m.protocol)]),
    h("td", { class: "num hide-md", title: m.context ? `${fmtInt(m.context)} tokens of context, ${fmtInt(m.max_output)} of output` : null },
      m.context || m.max_output ? `${size(m.context)} / ${size(m.max_output)}` : "–"),
    h("td", { class: "live hide-sm" }, liveBadge(m)),
    h("td", { class: "num traffic" }, traffic(m)),
    h("td", { class: "actions" }, testButton(m)));
  return [row, resultRow(m)];
}

/** Redraw one model's button and result in place (the rest of the table stays, and so does focus). */
function redraw(m) {
  const row = $(`#models-table tbody tr[data-model="${CSS.escape(m.id)}"]`);
  if (!row) return;
  const focused = row.contains(document.activeElement);
  replace(row.lastElementChild, testButton(m));
  const old = $(`#models-table tbody tr[data-test-for="${CSS.escape(m.id)}"]`);
  const fresh = resultRow(m);
  if (old) old.replaceWith(fresh);
  else row.after(fresh);
  if (focused) row.lastElementChild.querySelector("button").focus();
}

async function testModel(m) {
  if (results.get(m.id)?.busy) return;
  results.set(m.id, { busy: true });
  redraw(m);
  try {
    results.set(m.id, { outcome: await api("/_admin/models/test", { method: "POST", body: { model: m.id } }) });
  } catch (err) {
    results.set(m.id, { failure: err.message });
    toastError(err, `Could not test ${m.id}: `);
  }
  redraw(m);
}

function renderFamilies(body) {
  replace($("#families-table tbody"), body.families.map((f) => h("tr", {},
    h("th", { scope: "row" }, FAMILY_NAMES[f.family] || f.family),
    h("td", { class: "mono" }, f.model || "–", f.own || !f.model ? null : h("span", { class: "muted" }, " (default)")))));
  const aliases = Object.entries(body.aliases);
  $("#aliases-block").hidden = aliases.length === 0;
  replace($("#aliases-table tbody"), aliases.map(([alias, target]) => h("tr", {},
    h("th", { scope: "row", class: "mono" }, alias), h("td", { class: "mono" }, target))));
}

function liveLine(body) {
  const tiers = Object.entries(body.live_lists).map(([tier, fetched]) =>
    `${tier === "go" ? "Go" : "Zen"} ${fetched ? "fetched" : "not fetched"}`);
  const age = body.live_age_seconds === null ? "" : `, ${fmtAgo(new Date(Date.now() - body.live_age_seconds * 1000).toISOString())}`;
  const error = body.live_error ? ` Last refresh failed: ${body.live_error}` : "";
  const sampled = body.latency_sample >= SAMPLE_CAP ? ` (median latency of the ${fmtInt(body.latency_sample)} most recent)` : "";
  return `Live model lists: ${tiers.join(", ")}${age}. Requests over ${WINDOW_NAMES[body.minutes] || `${body.minutes} minutes`}, ` +
    `counted for the model that answered${sampled}.${error}`;
}

export async function loadModelsView() {
  const mine = ++seq;
  $("#models-table").setAttribute("aria-busy", "true");
  try {
    const body = await api("/_admin/models", { query: { minutes: $("#models-window").value } });
    if (mine !== seq) return; // a newer load was asked for
    replace($("#models-table tbody"), body.models.flatMap(rows));
    $("#models-empty").hidden = body.models.length > 0;
    $("#models-live").textContent = liveLine(body);
    renderFamilies(body);
  } catch (err) {
    if (mine === seq) toastError(err, "Could not load the models: ");
  } finally {
    if (mine === seq) $("#models-table").removeAttribute("aria-busy");
  }
}

export function initModelsView() {
  $("#models-window").addEventListener("change", loadModelsView);
  $("#models-refresh").addEventListener("click", loadModelsView);
}
