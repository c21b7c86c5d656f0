// Overview: totals, charts over time and by model, recent requests. Refreshes itself.

import { api, toastError } from "./api.js";
import { latencyChart, modelLatencyChart, modelRequestsChart, requestsChart } from "./charts.js";
import { $, fmtCompact, fmtDuration, fmtInt, fmtMs, fmtWhen, h, replace, statusBadge, timeEl } from "./dom.js";
import { openRequest } from "./requests.js";

const REFRESH_MS = 5000;
const WINDOW_NAMES = { 15: "last 15 min", 60: "last hour", 360: "last 6 h", 1440: "last 24 h", 10080: "last 7 days" };

let timer = null;
let active = false;
let inFlight = false;
let again = false; // asked for while a load was under way: load once more after it

function setStat(name, value, sub, exact) {
  const el = $(`[data-stat="${name}"]`);
  el.textContent = value;
  if (exact !== undefined) el.title = fmtInt(exact);
  if (sub !== undefined) $(`[data-sub="${name}"]`).textContent = sub;
}

function renderRecent(rows) {
  const body = $("#recent-table tbody");
  replace(body, rows.map((r) => h("tr", {},
    h("td", { class: "nowrap" }, h("button", {
      type: "button", class: "link-button", onclick: () => openRequest(r.id),
      "aria-label": `Request ${r.id} at ${fmtWhen(r.created_at)}`,
    }, timeEl(r.created_at, fmtWhen(r.created_at)))),
    h("td", { class: "truncate", title: r.model || "" }, r.model || "–"),
    h("td", {}, statusBadge(r.status, r.error)),
    h("td", { class: "num" }, fmtMs(r.latency_ms)),
    h("td", { class: "num hide-sm" }, `${fmtInt(r.input_tokens)} / ${fmtInt(r.output_tokens)}`))));
  $("#recent-empty").hidden = rows.length > 0;
  $("#recent-table").hidden = rows.length === 0;
}

async function load() {
  if (inFlight) {
    again = true;
    return;
  }
  inFlight = true;
  const minutes = $("#overview-window").value;
  try {
    const [summary, series] = await Promise.all([
      api("/_stats"),
      api("/_stats/timeseries", { query: { minutes } }),
    ]);
    const w = series.totals;
    const name = WINDOW_NAMES[minutes] || `last ${minutes} min`;
    const rate = summary.total_requests ? (100 * summary.errors) / summary.total_requests : 0;
    setStat("requests", fmtInt(summary.total_requests), `${fmtInt(w.requests)} in the ${name}`);
    setStat("errors", fmtInt(summary.errors), summary.total_requests
      ? `${rate.toFixed(rate < 10 ? 1 : 0)}% · ${fmtInt(w.errors)} in the ${name}` : "");
    $('[data-stat="errors"]').classList.toggle("bad", summary.errors > 0);
    setStat("avg", fmtMs(summary.average_latency_ms), `${fmtMs(w.avg_latency_ms)} in the ${name}`);
    setStat("p95", fmtMs(summary.p95_latency_ms), `${fmtMs(w.p95_latency_ms)} in the ${name}`);
    setStat("tokens-in", fmtCompact(summary.input_tokens), `${fmtCompact(w.input_tokens)} in the ${name}`, summary.input_tokens);
    setStat("tokens-out", fmtCompact(summary.output_tokens), `${fmtCompact(w.output_tokens)} in the ${name}`, summary.output_tokens);
    setStat("saved", fmtInt(summary.saved_calls), `${fmtInt(w.saved_calls)} in the ${name}`);
    setStat("trimmed", fmtCompact(summary.tokens_saved), `${fmtCompact(w.tokens_saved)} in the ${name}`, summary.tokens_saved);
    setStat("uptime", fmtDuration(summary.uptime_seconds));
    requestsChart($("#chart-requests"), series.buckets);
    latencyChart($("#chart-latency"), series.buckets);
    modelRequestsChart($("#chart-models-requests"), series.models);
    modelLatencyChart($("#chart-models-latency"), series.models);
    renderRecent(summary.recent_requests);
    $("#overview-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    toastError(err, "Could not load the stats: ");
  } finally {
    inFlight = false;
    if (again) {
      again = false;
      load();
    }
  }
}

function schedule() {
  clearInterval(timer);
  timer = null;
  if (active && $("#overview-auto").checked) {
    timer = setInterval(() => {
      if (document.visibilityState === "visible") load();
    }, REFRESH_MS);
  }
}

export function initOverview() {
  $("#base-url").textContent = `${window.location.origin}/v1`;
  $("#overview-window").addEventListener("change", load);
  $("#overview-refresh").addEventListener("click", load);
  $("#overview-auto").addEventListener("change", schedule);
  document.addEventListener("visibilitychange", () => {
    if (active && document.visibilityState === "visible") load();
  });
}

export function showOverview() {
  active = true;
  load();
  schedule();
}

export function hideOverview() {
  active = false;
  schedule();
}
