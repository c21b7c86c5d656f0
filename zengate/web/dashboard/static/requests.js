// The request log: filters, pages, exporting what matches, one request in full, clearing the log.
// Bodies are whatever clients sent: they are only ever rendered as text.

import { api, confirmAction, setFieldError, toast, toastError } from "./api.js";
import { initCapture, loadCapture } from "./capture.js";
import { $, fmtDateTime, fmtInt, fmtMs, fmtWhen, h, replace, statusBadge, timeEl } from "./dom.js";
import { loadModels } from "./settings.js";

const FILTERS = ["model", "upstream_model", "status", "key", "key_name", "since", "until"];

const state = { offset: 0, filters: {}, seq: 0 };
const seenAnswered = new Set(); // models that answered, as pages show them: suggestions for the filter

function filterInput(name) {
  return $(`#filter-${name}`);
}

function readFilters() {
  const filters = {};
  for (const name of FILTERS) {
    const input = filterInput(name);
    setFieldError(input, $("#filters-error"), "");
    let value = input.value.trim();
    if (value && input.type === "datetime-local") {
      const when = new Date(value);
      if (Number.isNaN(when.getTime())) throw Object.assign(new Error(`${name === "since" ? "From" : "To"}: not a valid date and time`), { input });
      value = when.toISOString();
    }
    if (value) filters[name] = value;
  }
  if (filters.since && filters.until && filters.since > filters.until) {
    throw Object.assign(new Error("“To” must be after “From”."), { input: filterInput("until") });
  }
  return filters;
}

/** The model that answered, and under it the one asked for when that differs (an alias, auto
 *  routing, a fallback); a request nothing answered shows the model asked for. */
function modelCell(r) {
  const answered = r.upstream_model || r.model;
  const asked = r.upstream_model && r.model && r.model !== r.upstream_model ? r.model : null;
  return h("td", { class: "truncate", title: asked ? `asked for ${asked}, answered by ${answered}` : answered || null },
    answered || "–", asked ? h("span", { class: "asked" }, `asked ${asked}`) : null);
}

function row(r) {
  const open = () => openRequest(r.id);
  return h("tr", { onclick: open, dataset: { id: String(r.id) } },
    h("td", { class: "nowrap" }, h("button", {
      type: "button", class: "link-button", "aria-label": `Request ${r.id} at ${fmtDateTime(r.created_at)}`,
      onclick: (event) => { event.stopPropagation(); open(); },
    }, timeEl(r.created_at, fmtWhen(r.created_at)))),
    modelCell(r),
    h("td", {}, statusBadge(r.status, r.error)),
    h("td", { class: "num" }, fmtMs(r.latency_ms)),
    h("td", { class: "num hide-sm" }, `${fmtInt(r.input_tokens)} / ${fmtInt(r.output_tokens)}`),
    h("td", { class: "hide-sm mono" }, r.key_prefix || "–"),
    h("td", { class: "hide-md mono" }, r.path));
}

function showFilterCount() {
  const count = Object.keys(state.filters).length;
  replace($("#filters-count"), count ? h("span", { class: "badge info" }, `${count} active`) : null);
}

/** Open the log filtered to `filters` (e.g. `{upstream_model, since}`, values as the API takes
 *  them) from another page; the other filters are cleared. */
export function showRequestsMatching(filters) {
  for (const name of FILTERS) {
    const input = filterInput(name);
    const value = filters[name] || "";
    input.value = value && input.type === "datetime-local" ? localInputValue(value) : value;
  }
  state.filters = { ...filters };
  state.offset = 0;
  window.location.hash = "#requests";
}

/** An ISO time as a datetime-local input shows it: the browser's local time, to the minute. */
function localInputValue(iso) {
  const when = new Date(iso);
  when.setMinutes(when.getMinutes() - when.getTimezoneOffset());
  return when.toISOString().slice(0, 16);
}

/** The key-name filter's choices: the stored keys' names (once each), keeping the current choice. */
async function loadKeyNames() {
  let keys;
  try {
    ({ keys } = await api("/_admin/api-keys"));
  } catch {
    return; // a convenience: the log works without it
  }
  const select = filterInput("key_name");
  const current = select.value;
  const names = new Map();
  for (const name of [...keys.map((k) => (k.name || "").trim()), current]) {
    if (name && !names.has(name.toLowerCase())) names.set(name.toLowerCase(), name);
  }
  const sorted = [...names.values()].sort((a, b) => a.localeCompare(b));
  replace(select, h("option", { value: "" }, "Any"), sorted.map((name) => h("option", { value: name }, name)));
  select.value = current;
}

async function suggestAnswered(rows) {
  for (const r of rows) if (r.upstream_model) seenAnswered.add(r.upstream_model);
  await loadModels(); // then the gateway's own models after those seen
  const known = [...$("#model-suggestions").options].map((o) => o.value);
  replace($("#answered-suggestions"), [...new Set([...[...seenAnswered].sort(), ...known])].map((id) => h("option", { value: id })));
}

/** The export links download what the table's filters (as applied) match, every page of it. */
function updateExportLinks(total) {
  const bodies = $("#requests-export-bodies").checked ? "1" : "0";
  for (const format of ["jsonl", "csv"]) {
    const query = new URLSearchParams({ ...state.filters, format, bodies });
    $(`#requests-export-${format}`).setAttribute("href", `/_stats/requests/export?${query}`);
  }
  if (total !== undefined) {
    $("#requests-export-label").textContent = `Export ${fmtInt(total)} matching ${total === 1 ? "row" : "rows"}`;
  }
}

export async function loadRequests() {
  loadModels();
  loadCapture();
  loadKeyNames();
  showFilterCount();
  updateExportLinks();
  const limit = Number($("#requests-page-size").value);
  const seq = ++state.seq;
  try {
    const page = await api("/_stats/requests", { query: { ...state.filters, limit, offset: state.offset, bodies: 0 } });
    if (seq !== state.seq) return; // a newer load has been asked for
    if (page.total && state.offset >= page.total) { // the log shrank under us: back to the last page
      state.offset = Math.max(0, Math.floor((page.total - 1) / limit) * limit);
      return loadRequests();
    }
    replace($("#requests-table tbody"), page.requests.map(row));
    updateExportLinks(page.total);
    suggestAnswered(page.requests);
    $("#requests-empty").hidden = page.requests.length > 0;
    $("#requests-empty").textContent = Object.keys(state.filters).length ? "No requests match these filters." : "The log is empty.";
    $("#requests-range").textContent = page.total
      ? `${fmtInt(page.offset + 1)}–${fmtInt(page.offset + page.requests.length)} of ${fmtInt(page.total)}`
      : "";
    $("#requests-prev").disabled = page.offset === 0;
    $("#requests-next").disabled = page.offset + page.requests.length >= page.total;
  } catch (err) {
    if (seq !== state.seq) return;
    if (err.param && FILTERS.includes(err.param)) {
      setFieldError(filterInput(err.param), $("#filters-error"), err.message);
    } else {
      toastError(err, "Could not load the log: ");
    }
  }
}

// --- one request ---------------------------------------------------------------------------

function pre(text, cls = "text") {
  return h("pre", { class: cls }, text);
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

function partView(part) {
  if (typeof part === "string") return h("div", { class: "message-part" }, pre(part));
  const type = part && part.type;
  if (type === "text") return h("div", { class: "message-part" }, pre(part.text ?? ""));
  if (type === "image_url" || type === "image" || type === "input_image") {
    return h("div", { class: "message-part" }, h("p", { class: "part-kind" }, `[${type}]`));
  }
  if (type === "tool_use") {
    return h("div", { class: "message-part" }, h("p", { class: "part-kind" }, `tool_use · ${part.name ?? ""}`), pre(json(part.input ?? {})));
  }
  if (type === "tool_result") {
    const content = Array.isArray(part.content) ? part.content.map((c) => (c && c.type === "text" ? c.text : json(c))).join("\n") : part.content;
    return h("div", { class: "message-part" }, h("p", { class: "part-kind" }, `tool_result · ${part.tool_use_id ?? ""}`),
      pre(typeof content === "string" ? content : json(content ?? "")));
  }
  return h("div", { class: "message-part" }, h("p", { class: "part-kind" }, String(type ?? "part")), pre(json(part)));
}

function messageView(message) {
  if (!message || typeof message !== "object") return h("div", { class: "message" }, pre(json(message)));
  const role = typeof message.role === "string" ? message.role : "message";
  const parts = [];
  if (typeof message.content === "string") parts.push(partView(message.content));
  else if (Array.isArray(message.content)) parts.push(...message.content.map(partView));
  else if (message.content !== undefined && message.content !== null) parts.push(partView(message.content));
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls) {
      const fn = call.function || {};
      parts.push(h("div", { class: "message-part" }, h("p", { class: "part-kind" }, `tool call · ${fn.name ?? ""}`), pre(fn.arguments ?? "")));
    }
  }
  if (!parts.length) parts.push(h("div", { class: "message-part" }, h("p", { class: "part-kind" }, "(empty)")));
  return h("div", { class: `message role-${role.replace(/[^a-z]/g, "")}` }, h("div", { class: "message-role" }, role), ...parts);
}

function inputView(messages) {
  if (messages === null || messages === undefined) return [h("p", { class: "muted" }, "Not stored (body logging is off).")];
  if (typeof messages === "string") return [pre(messages)];
  if (Array.isArray(messages)) return messages.map(messageView);
  return [pre(json(messages))];
}

function metaItem(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

function detailView(r) {
  const meta = h("dl", { class: "meta" },
    metaItem("Time", timeEl(r.created_at, fmtDateTime(r.created_at))),
    metaItem("Status", statusBadge(r.status, r.error)),
    metaItem("Call", `${r.method} ${r.path}`),
    metaItem("Model", r.model || "–"),
    metaItem("Upstream model", r.upstream_model || "–"),
    metaItem("Client API", `${r.format}${r.stream ? " · stream" : ""}`),
    metaItem("Latency", fmtMs(r.latency_ms)),
    metaItem("First byte", fmtMs(r.ttfb_ms)),
    metaItem("Tokens in / out", `${fmtInt(r.input_tokens)} / ${fmtInt(r.output_tokens)}`),
    ...(r.trim_tokens_before === null || r.trim_tokens_before === undefined ? [] : [metaItem("Trimmed",
      `${fmtInt(r.trim_tokens_before)} → ${fmtInt(r.trim_tokens_after)} tokens (estimated)`)]),
    metaItem("Key", r.key_prefix || "–"),
    metaItem("Proxy", r.proxy || "direct"),
    metaItem("Request id", h("span", { class: "mono" }, r.request_id)));
  const sections = [meta];
  if (r.error) sections.push(h("section", { class: "detail-section" }, h("h3", {}, "Error"), pre(r.error, "text error-text")));
  if (Array.isArray(r.attempts) && r.attempts.length) {
    sections.push(h("section", { class: "detail-section" }, h("h3", {}, "Upstream attempts"),
      h("div", { class: "table-wrap" }, h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ...["Model", "Backend", "Key", "Status", "Error"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...r.attempts.map((a) => h("tr", {},
          h("td", {}, String(a.model ?? "–")), h("td", {}, String(a.backend ?? "–")), h("td", {}, String(a.key ?? "–")),
          h("td", {}, a.status ? statusBadge(a.status) : "–"), h("td", {}, String(a.error ?? "")))))))));
  }
  if (Array.isArray(r.guards) && r.guards.length) {
    sections.push(h("section", { class: "detail-section" }, h("h3", {}, "Agent guards"),
      h("div", { class: "table-wrap" }, h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ...["Guard", "Action", "Why"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...r.guards.map((n) => h("tr", {},
          h("td", {}, String(n.guard ?? "–")), h("td", {}, String(n.action ?? "–")), h("td", {}, String(n.why ?? "")))))))));
  }
  sections.push(h("section", { class: "detail-section", "aria-label": "Input messages" }, h("h3", {}, "Input messages"), ...inputView(r.input_messages)));
  sections.push(h("section", { class: "detail-section", "aria-label": "Output" }, h("h3", {}, "Output"),
    r.output_content ? h("div", { class: "message role-assistant" }, h("div", { class: "message-role" }, "assistant"), pre(r.output_content))
      : h("p", { class: "muted" }, "No output stored.")));
  return sections;
}

export async function openRequest(id) {
  const dialog = $("#detail-dialog");
  try {
    const r = await api(`/_stats/requests/${encodeURIComponent(id)}`);
    $("#detail-title").textContent = `Request #${r.id}`;
    replace($("#detail-content"), detailView(r));
    if (!dialog.open) dialog.showModal();
    $("#detail-close").focus();
  } catch (err) {
    toastError(err, "Could not open the request: ");
  }
}

export function initRequests() {
  initCapture();
  if (window.matchMedia("(max-width: 760px)").matches) $("#filters-details").open = false; // room for the log
  $("#requests-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      state.filters = readFilters();
    } catch (err) {
      setFieldError(err.input, $("#filters-error"), err.message);
      err.input.focus();
      return;
    }
    state.offset = 0;
    loadRequests();
  });
  $("#requests-filters").addEventListener("reset", () => {
    for (const name of FILTERS) setFieldError(filterInput(name), $("#filters-error"), "");
    state.filters = {};
    state.offset = 0;
    setTimeout(loadRequests); // after the form has cleared its fields
  });
  $("#requests-page-size").addEventListener("change", () => { state.offset = 0; loadRequests(); });
  $("#requests-export-bodies").addEventListener("change", () => updateExportLinks());
  $("#requests-prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - Number($("#requests-page-size").value));
    loadRequests();
  });
  $("#requests-next").addEventListener("click", () => {
    state.offset += Number($("#requests-page-size").value);
    loadRequests();
  });
  $("#requests-refresh").addEventListener("click", loadRequests);
  $("#requests-clear").addEventListener("click", async () => {
    const ok = await confirmAction({
      title: "Clear the request log?",
      message: "Every logged request, with its stored messages and output, is deleted. The overview's numbers start again from zero.",
      confirm: "Clear the log",
    });
    if (!ok) return;
    try {
      const result = await api("/_stats/clear", { method: "POST" });
      toast(`Cleared ${fmtInt(result.cleared)} requests.`);
      state.offset = 0;
      loadRequests();
    } catch (err) {
      toastError(err, "Could not clear the log: ");
    }
  });
  const dialog = $("#detail-dialog");
  $("#detail-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => { // a click on the backdrop closes it
    if (event.target === dialog) dialog.close();
  });
}
