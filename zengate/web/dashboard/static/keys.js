// API keys: the list (with each key's limits and its usage today and this month), creating one (its full value
// shown once), revoking one, and a key's details: its name, note and limits to edit, and its usage.

import { api, confirmAction, copyText, setFieldError, toast, toastError } from "./api.js";
import { dailyRequestsChart } from "./charts.js";
import { $, fmtAgo, fmtCompact, fmtDateTime, fmtInt, fmtWhen, h, replace, timeEl } from "./dom.js";

const USAGE_DAYS = 30;
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

/** The edit form's fields: the API's name for each, its control, and how its text becomes a value. */
const FIELDS = [
  { param: "name", id: "key-edit-name", read: (text) => text.trim() },
  { param: "expires_at", id: "key-edit-expires", read: readExpiry },
  { param: "rpm", id: "key-edit-rpm", read: readLimit },
  { param: "requests_per_day", id: "key-edit-rpd", read: readLimit },
  { param: "tokens_per_day", id: "key-edit-tpd", read: readLimit },
  { param: "models", id: "key-edit-models", read: readModels },
  { param: "note", id: "key-edit-note", read: (text) => text },
];

let shown = null; // the key whose details are open
let usageAsked = 0; // the latest usage request, so an older answer arriving late is dropped

const keyLabel = (key) => key.name || "(unnamed)";

// --- the list ----------------------------------------------------------------------------------

function expired(key) {
  return Boolean(key.expires_at) && new Date(key.expires_at).getTime() <= Date.now();
}

/** "10/min · 1,000/day · 200K tok/day · 2 models · expires 2027-01-31", or "none". */
function limitsCell(key) {
  const parts = [];
  if (key.rpm) parts.push(`${fmtInt(key.rpm)}/min`);
  if (key.requests_per_day) parts.push(`${fmtInt(key.requests_per_day)}/day`);
  if (key.tokens_per_day) parts.push(`${compact.format(key.tokens_per_day)} tok/day`);
  if (key.models.length) parts.push(key.models.length === 1 ? "1 model" : `${key.models.length} models`);
  if (key.expires_at) {
    const past = expired(key);
    parts.push(h("span", { class: past ? "warn-inline" : null },
      timeEl(key.expires_at, `${past ? "expired" : "expires"} ${key.expires_at.slice(0, 10)}`)));
  }
  if (!parts.length) return h("td", { class: "hide-sm muted" }, "none");
  // each limit stays whole; the list wraps between them
  return h("td", { class: "hide-sm limits", title: key.models.length ? `Models: ${key.models.join(", ")}` : null },
    parts.flatMap((part, i) => [i ? " · " : null, h("span", { class: "nowrap" }, part)]));
}

/** One period's line of the usage column: "today 12 req · 3.4K tok · 2 errors", or "today –". */
function usageLine(sums, period) {
  const errors = sums.errors ? [" · ", h("span", { class: "usage-errors nowrap" }, sums.errors === 1 ? "1 error" : `${fmtInt(sums.errors)} errors`)] : null;
  return h("span", {
    class: "usage-line", dataset: { period: period.replace(/ /g, "-") }, // wraps between its parts, not within
    title: `${period[0].toUpperCase()}${period.slice(1)} (UTC): ${fmtInt(sums.requests)} requests, ${fmtInt(sums.errors)} errors, ` +
      `${fmtInt(sums.input_tokens)} tokens in, ${fmtInt(sums.output_tokens)} out`,
  }, h("span", { class: "usage-when" }, period === "today" ? "today " : "month "),
  sums.requests ? [h("span", { class: "nowrap" }, `${fmtInt(sums.requests)} req`), " · ",
    h("span", { class: "nowrap" }, `${fmtCompact(sums.input_tokens + sums.output_tokens)} tok`)] : "–", errors);
}

/** The key's requests and tokens today and this month, each with its errors. */
function usageCell(key) {
  return h("td", { class: "num hide-sm usage" }, usageLine(key.usage.today, "today"), usageLine(key.usage.month, "this month"));
}

/** On a phone the usage column is hidden: one line under the name says today's. */
function usageToday(key) {
  const t = key.usage.today;
  if (!t.requests) return h("span", { class: "only-sm muted prefix-sm" }, "no requests today");
  return h("span", { class: "only-sm muted prefix-sm" }, `today ${fmtInt(t.requests)} req · ${fmtCompact(t.input_tokens + t.output_tokens)} tok` +
    (t.errors ? ` · ${fmtInt(t.errors)} err` : ""));
}

function keyRow(key) {
  const label = keyLabel(key);
  return h("tr", { class: key.active ? "" : "inactive", dataset: { prefix: key.prefix } },
    h("td", { class: "truncate", title: label }, label, // the prefix's and last use's columns are hidden there
      h("span", { class: "only-sm mono muted prefix-sm" }, `${key.prefix}…`),
      h("span", { class: "only-sm muted prefix-sm" }, key.last_used_at ? `used ${fmtAgo(key.last_used_at)}` : "never used"),
      usageToday(key)),
    h("td", { class: "mono nowrap hide-sm" }, `${key.prefix}…`),
    h("td", { class: "hide-lg nowrap" }, timeEl(key.created_at, fmtWhen(key.created_at))),
    h("td", { class: "nowrap hide-sm" }, key.last_used_at ? timeEl(key.last_used_at, fmtAgo(key.last_used_at)) : "never"),
    limitsCell(key),
    usageCell(key),
    h("td", { class: "hide-sm" }, h("span", { class: key.active ? "badge ok" : "badge" }, key.active ? "active" : "revoked")),
    h("td", { class: "num" }, key.active
      ? h("span", { class: "row-actions" },
        h("button", {
          type: "button", class: "button small", "aria-label": `Details of ${label} (${key.prefix}…)`,
          "aria-controls": "key-details", onclick: () => openDetails(key),
        }, "Details"),
        h("button", {
          type: "button", class: "button small danger", "aria-label": `Revoke ${label} (${key.prefix}…)`,
          onclick: () => revoke(key, label),
        }, "Revoke"))
      : h("span", { class: "badge only-sm" }, "revoked"))); // the state's column is hidden on a phone
}

export async function loadKeys() {
  try {
    const [{ keys }, session] = await Promise.all([api("/_admin/api-keys"), api("/_admin/session")]);
    keys.sort((a, b) => Number(b.active) - Number(a.active)); // active first, newest first within each
    replace($("#keys-table tbody"), keys.map(keyRow));
    $("#keys-empty").hidden = keys.length > 0;
    $("#keys-table").hidden = keys.length === 0;
    $("#keys-limits-note").hidden = !session.access || session.access.keys_required !== false;
    if (shown) {
      const current = keys.find((k) => k.id === shown.id);
      if (!current || !current.active) hideDetails();
    }
  } catch (err) {
    toastError(err, "Could not load the keys: ");
  }
}

async function revoke(key, label) {
  const ok = await confirmAction({
    title: "Revoke this key?",
    message: `“${label}” (${key.prefix}…) stops working at once: clients using it get 401. This cannot be undone.`,
    confirm: "Revoke key",
  });
  if (!ok) return;
  try {
    await api("/_admin/api-keys/delete", { method: "POST", body: { id: key.id } });
    toast(`Revoked ${key.prefix}…`);
    loadKeys();
  } catch (err) {
    toastError(err, "Could not revoke the key: ");
  }
}

// --- a key's details: the edit form ------------------------------------------------------------

/** A limit's text: empty → null (no limit); a whole number → that number; anything else goes to the
 *  gateway as typed, and its refusal names the field. */
function readLimit(text) {
  const value = text.trim().replace(/[\s,_]/g, "");
  if (value === "") return null;
  return /^\d+$/.test(value) ? Number(value) : text.trim();
}

function readModels(text) {
  return text.split(/[,\n]/).map((m) => m.trim()).filter(Boolean);
}

function readExpiry(text) {
  return text ? new Date(text).toISOString() : null;
}

/** An ISO time as a datetime-local value ("YYYY-MM-DDTHH:MM") in the browser's time zone. */
function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString();
  return d.getUTCSeconds() || d.getUTCMilliseconds() ? local.slice(0, 19) : local.slice(0, 16);
}

function fieldText(key, param) {
  if (param === "expires_at") return localInput(key.expires_at);
  if (param === "models") return key.models.join(", ");
  const value = key[param];
  return value === null || value === undefined ? "" : String(value);
}

const control = (field) => $(`#${field.id}`);
const errorOf = (field) => $(`#${field.id}-error`);

function editStatus(text, bad = false) {
  const el = $("#key-edit-status");
  el.textContent = text;
  el.classList.toggle("bad", bad);
}

/** Fill the form with the key's values; they are also each control's default, which says what changed. */
function fillForm(key) {
  for (const field of FIELDS) {
    const input = control(field);
    const text = fieldText(key, field.param);
    input.defaultValue = text;
    input.value = text;
    setFieldError(input, errorOf(field), "");
  }
  editStatus("");
}

/** "rpm: must be …" from the API → "Must be …" under the field. */
function readable(message, param) {
  const text = message.startsWith(`${param}: `) ? message.slice(param.length + 2) : message;
  return text.charAt(0).toUpperCase() + text.slice(1);
}

async function saveKey(event) {
  event.preventDefault();
  if (!shown) return;
  const key = shown;
  const body = {};
  let bad = null;
  for (const field of FIELDS) {
    const input = control(field);
    setFieldError(input, errorOf(field), "");
    if (field.param === "expires_at" && input.validity.badInput) {
      setFieldError(input, errorOf(field), "Enter a whole date and time, or clear the field for never.");
      bad = bad || input;
      continue;
    }
    if (input.value !== input.defaultValue) body[field.param] = field.read(input.value);
  }
  if (bad) {
    editStatus("Nothing was saved: correct the marked field first.", true);
    bad.focus();
    return;
  }
  if (!Object.keys(body).length) {
    editStatus("Nothing has changed.");
    return;
  }
  const button = $("#key-edit-form button[type=submit]");
  button.disabled = true;
  try {
    const updated = await api(`/_admin/api-keys/${key.id}`, { method: "PATCH", body });
    if (shown && shown.id === key.id) {
      shown = { ...shown, ...updated };
      showHeading(shown);
      fillForm(shown);
      editStatus(`Saved ${Object.keys(body).length === 1 ? "1 change" : `${Object.keys(body).length} changes`}.`);
    }
    toast(`Saved ${keyLabel(updated)} (${updated.prefix}…).`);
    loadKeys();
  } catch (err) {
    const field = FIELDS.find((f) => f.param === err.param);
    if (field && err.status === 400) {
      setFieldError(control(field), errorOf(field), readable(err.message, field.param));
      editStatus("Nothing was saved: see the message under the field.", true);
      control(field).focus();
    } else {
      editStatus("");
      toastError(err, "Could not save the key: ");
    }
  } finally {
    button.disabled = false;
  }
}

// --- a key's details: its usage ----------------------------------------------------------------

const fmtCost = (cost) => `$${cost.toFixed(cost >= 1 ? 2 : 4)}`;

function renderUsage(usage) {
  const { today, month } = usage;
  const rows = [
    ["Requests", fmtInt(today.requests), fmtInt(month.requests)],
    ["Errors", fmtInt(today.errors), fmtInt(month.errors)],
    ["Tokens in", fmtInt(today.input_tokens), fmtInt(month.input_tokens)],
    ["Tokens out", fmtInt(today.output_tokens), fmtInt(month.output_tokens)],
  ];
  if (today.cost > 0 || month.cost > 0) rows.push(["Cost", fmtCost(today.cost), fmtCost(month.cost)]);
  replace($("#key-usage-table tbody"), rows.map(([name, day, total]) => h("tr", { dataset: { usage: name.toLowerCase() } },
    h("th", { scope: "row" }, name), h("td", { class: "num" }, day), h("td", { class: "num" }, total))));
  dailyRequestsChart($("#key-usage-chart"), usage.days, `Requests per day with ${keyLabel(usage.key)}`);
}

async function loadUsage() {
  if (!shown) return;
  const id = shown.id;
  const asked = ++usageAsked;
  try {
    const usage = await api(`/_admin/api-keys/${id}/usage`, { query: { days: USAGE_DAYS } });
    if (asked !== usageAsked || !shown || shown.id !== id) return; // another key, or a newer answer
    renderUsage(usage);
  } catch (err) {
    toastError(err, "Could not load the key's usage: ");
  }
}

// --- a key's details: the panel ------------------------------------------------------------------

function showHeading(key) {
  replace($("#key-details-title"), `Details of ${keyLabel(key)} `, h("span", { class: "muted mono" }, `${key.prefix}…`));
  replace($("#key-details-meta"), "Created ", timeEl(key.created_at, fmtDateTime(key.created_at)), " · last used ",
    key.last_used_at ? timeEl(key.last_used_at, fmtAgo(key.last_used_at)) : "never");
}

function openDetails(key) {
  shown = key;
  showHeading(key);
  fillForm(key);
  replace($("#key-usage-table tbody"));
  replace($("#key-usage-chart"));
  const panel = $("#key-details");
  panel.hidden = false;
  panel.scrollIntoView({ block: "start" });
  panel.focus({ preventScroll: true });
  loadUsage();
}

function hideDetails() {
  shown = null;
  usageAsked += 1;
  $("#key-details").hidden = true;
}

// --- start -----------------------------------------------------------------------------------

function hideNewKey() {
  $("#new-key-value").textContent = "";
  $("#new-key-copied").textContent = "";
  $("#new-key").hidden = true;
}

export function initKeys() {
  const form = $("#key-form");
  const name = $("#key-name");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(name, $("#key-form-error"), "");
    if (name.value.trim().length > 200) {
      setFieldError(name, $("#key-form-error"), "The name can be at most 200 characters.");
      return;
    }
    try {
      const created = await api("/_admin/api-keys", { method: "POST", body: { name: name.value.trim() } });
      name.value = "";
      $("#new-key-value").textContent = created.key;
      $("#new-key-copied").textContent = "";
      $("#new-key").hidden = false;
      $("#new-key").focus();
      loadKeys();
    } catch (err) {
      if (err.param === "name") setFieldError(name, $("#key-form-error"), err.message);
      else toastError(err, "Could not create the key: ");
    }
  });
  $("#new-key-copy").addEventListener("click", async () => {
    const ok = await copyText($("#new-key-value").textContent);
    $("#new-key-copied").textContent = ok ? "Copied to the clipboard." : "Copying was refused: select the key and copy it by hand.";
  });
  $("#new-key-done").addEventListener("click", hideNewKey);
  $("#key-edit-form").addEventListener("submit", saveKey);
  $("#key-edit-discard").addEventListener("click", () => {
    if (shown) fillForm(shown);
  });
  $("#key-details-close").addEventListener("click", hideDetails);
  $("#key-usage-refresh").addEventListener("click", loadUsage);
}

export function leaveKeys() {
  hideNewKey(); // the full key is never left on screen once you move on
  hideDetails();
}
