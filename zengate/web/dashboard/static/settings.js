// Settings, built from GET /_admin/settings's "describe": every setting the gateway has appears,
// including ones added later. Booleans get a switch, the model map a row per Claude family with
// the gateway's models as suggestions, numbers and strings a checked input, other objects JSON.
// An alias (describe's "alias_of", e.g. proxy_enabled for proxy_mode) gets no control of its own:
// the setting it stands for has one, and two controls for one value would contradict each other.
// A setting that holds credentials comes masked ("masked": the marker); posting the marker back
// keeps the stored secret. Fallbacks, model overrides and auto routes get forms with raw JSON a
// click away (settings-editors.js); the sections fold and a filter box narrows them (settings-filter.js).

import { api, setFieldError, toast, toastError } from "./api.js";
import { $, h, humanize, replace } from "./dom.js";
import { formEditor } from "./settings-editors.js";
import { initFilter, refilter, reveal, sectionDetails } from "./settings-filter.js";

const SECTIONS = [
  { title: "Access", names: ["require_auth", "admin_session_hours"] },
  { title: "Model routing", test: (n) => n.startsWith("model_") || n.startsWith("auto_") || n.includes("fallback")
      || ["long_context_tokens", "max_attempts", "stream_upstream"].includes(n) },
  { title: "Identity headers", help: "Sent upstream with every call, as OpenCode's own client sends them.",
    test: (n) => n.startsWith("opencode_") || n === "user_agent" },
  { title: "Agent guards", help: "Checks on what the model answers, before an agent acts on it (docs/guards.md).",
    names: ["guards", "command_rules", "loop_repeats", "loop_message"] },
  { title: "Steering", help: "Change what an agent does without changing the agent (docs/steering.md).",
    names: ["forced_model", "chat_commands", "chat_command_days", "rewrite_rules", "prompt_redaction", "quota_savers",
      "wire_capture", "capture_body_bytes", "capture_max_bytes", "capture_max_files"] },
  { title: "Request log", test: (n) => n.startsWith("log_") },
  { title: "Proxy pool", test: (n) => n.startsWith("proxy_") },
  { title: "Limits and timeouts", test: (n) => /timeout|_budget$|_bytes$|_seconds$|^max_/.test(n) },
  { title: "Other", test: () => true },
];

const LABELS = {
  require_auth: "Require API keys",
  admin_session_hours: "Admin login lasts (hours)",
  model_map: "Claude and Gemini model map",
  model_protocols: "Protocol overrides",
  opencode_project: "Project header",
  opencode_client: "Client header",
  opencode_session: "Session header",
  user_agent: "User-Agent",
  log_bodies: "Store messages and output",
  log_body_max_chars: "Longest stored body (characters)",
  log_retention_days: "Keep requests for (days)",
  log_retention_rows: "Keep at most (requests)",
  max_body_bytes: "Largest request body (bytes)",
  upstream_connect_timeout: "Connect timeout (seconds)",
  upstream_read_timeout: "Read timeout (seconds)",
  first_byte_budget: "First byte within (seconds, all attempts)",
  stages: "Stages (by model and key)",
  guards: "Guards switched on",
  command_rules: "Refused shell commands",
  loop_repeats: "Repeats that make a loop",
  loop_message: "Steering answer",
  quota_savers: "Quota savers (answered locally)",
  forced_model: "Forced model (by key)",
  chat_commands: "In-chat commands (!/model…)",
  chat_command_days: "Keep a chat's model choice (days)",
  rewrite_rules: "Rewriting rules",
  prompt_redaction: "Mask secrets before the upstream",
  wire_capture: "Wire capture",
  capture_body_bytes: "Captured body at most (bytes)",
  capture_max_bytes: "Capture file at most (bytes)",
  capture_max_files: "Capture files kept",
  stream_ping_seconds: "Ping after silence (seconds)",
  models_refresh_seconds: "Model list refresh (seconds)",
};

const FAMILIES = [
  ["opus", "Opus"],
  ["sonnet", "Sonnet"],
  ["haiku", "Haiku"],
  ["gemini", "Gemini"],
  ["default", "Any other"],
];

/** The agent guards, as zengate/guards names them. */
const GUARDS = [
  ["tool_repair", "Mend broken tool calls"],
  ["dangerous_commands", "Refuse dangerous shell commands"],
  ["context_window", "Refuse prompts over the model's window"],
  ["loop_breaking", "Stop a model that repeats itself"],
];

const proxyApi = document.body.dataset.proxyApi === "true";

let fields = [];
let models = new Set();

/** JSON with every object's keys in order: two values are the same whatever order their keys came in. */
const canonical = (value) => JSON.stringify(value, (_, v) => (v && typeof v === "object" && !Array.isArray(v)
  ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v));
const same = (a, b) => canonical(a) === canonical(b);

function show(value) {
  if (typeof value === "boolean") return value ? "on" : "off";
  if (typeof value === "string") return value === "" ? "(empty)" : value;
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (!entries.length) return "none";
    if (entries.every(([, v]) => typeof v === "string")) return entries.map(([k, v]) => `${k} → ${v}`).join(" · ");
  }
  return JSON.stringify(value);
}

/** Settings whose default is made at start (the reset link would only be refused). */
const NO_RESET = new Set(["opencode_session"]);

/** "model_map: unknown family …" from the API → "Unknown family …" beside the field. */
function readable(message, name) {
  const text = message.startsWith(`${name}: `) ? message.slice(name.length + 2) : message;
  // a sentence starts with a capital; one that starts with a model's name ("big-pickle: …") keeps it
  return /^[a-z]+ /.test(text) ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

class Invalid extends Error {}

// --- editors: each gives {control, focusable, read(), write(value)} --------------------------

function booleanEditor(id) {
  const input = h("input", { id, type: "checkbox", role: "switch" });
  return { control: input, focusable: input, read: () => input.checked, write: (v) => { input.checked = Boolean(v); } };
}

function numberEditor(id, spec) {
  const integer = spec.type === "integer";
  const input = h("input", {
    id, type: "number", inputmode: integer ? "numeric" : "decimal", step: integer ? "1" : "any",
    min: spec.minimum ?? null, max: spec.maximum ?? null,
  });
  return {
    control: input, focusable: input,
    read() {
      const raw = input.value.trim();
      if (raw === "" && input.validity.badInput) throw new Invalid("Enter a number.");
      if (raw === "") throw new Invalid("Enter a number.");
      const value = Number(raw);
      if (!Number.isFinite(value)) throw new Invalid("Enter a number.");
      if (integer && !Number.isInteger(value)) throw new Invalid("Must be a whole number.");
      if (spec.minimum !== null && spec.minimum !== undefined && value < spec.minimum) throw new Invalid(`Must be at least ${spec.minimum}.`);
      if (spec.maximum !== null && spec.maximum !== undefined && value > spec.maximum) throw new Invalid(`Must be at most ${spec.maximum}.`);
      return value;
    },
    write: (v) => { input.value = String(v); },
  };
}

function stringEditor(id) {
  const input = h("input", { id, type: "text", spellcheck: "false", autocomplete: "off" });
  return {
    control: input, focusable: input,
    read() {
      const value = input.value.trim();
      if (/[\u0000-\u001f]/.test(value)) throw new Invalid("Must be one line of plain text.");
      return value;
    },
    write: (v) => { input.value = v ?? ""; },
  };
}

function jsonEditor(id) {
  const area = h("textarea", { id, spellcheck: "false", rows: 4 });
  return {
    control: area, focusable: area,
    read() {
      let value;
      try {
        value = JSON.parse(area.value.trim() || "{}");
      } catch (err) {
        throw new Invalid(`Not valid JSON: ${err.message}`);
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Invalid("Must be a JSON object, like {\"name\": \"value\"}.");
      return value;
    },
    write: (v) => { area.value = JSON.stringify(v ?? {}, null, 2); },
  };
}

function modelMapEditor(id, spec) {
  const inputs = new Map();
  const warn = h("p", { class: "warn-text", "aria-live": "polite" });
  const grid = h("div", { class: "map-editor", role: "group", "aria-label": "Zen model for each Claude family" });
  const families = [...FAMILIES];
  for (const family of Object.keys(spec.value || {})) {
    if (!families.some(([f]) => f === family)) families.push([family, humanize(family)]);
  }
  for (const [family, label] of families) {
    const inputId = family === "opus" ? id : `${id}-${family}`;
    const input = h("input", {
      id: inputId, type: "text", list: "model-suggestions", autocomplete: "off", spellcheck: "false",
      placeholder: family === "default" ? "" : "the default model",
    });
    inputs.set(family, input);
    grid.append(h("label", { for: inputId }, family === "default" ? label : `${label} →`), input);
  }
  const checkKnown = () => {
    const unknown = [...inputs.values()].map((i) => i.value.trim()).filter((v) => v && models.size && !models.has(v));
    warn.textContent = unknown.length ? `Not in the gateway's model list: ${[...new Set(unknown)].join(", ")}. It is sent upstream as written.` : "";
  };
  grid.addEventListener("input", checkKnown);
  return {
    control: h("div", {}, grid, warn), focusable: inputs.get("opus"),
    read() {
      const value = {};
      for (const [family, input] of inputs) {
        const model = input.value.trim();
        if (model) value[family] = model;
      }
      if (!value.default) throw new Invalid("Choose a model for “Any other”: it is used when a family has none.");
      return value;
    },
    write(v) {
      for (const [family, input] of inputs) input.value = (v && v[family]) || "";
      checkKnown();
    },
  };
}

/** The guards: a switch per guard for every request, and the per-model and per-key switches as JSON. */
function guardsEditor(id) {
  const switches = new Map(GUARDS.map(([guard, label]) => [guard, h("input", {
    id: guard === GUARDS[0][0] ? id : `${id}-${guard}`, type: "checkbox", role: "switch",
  })]));
  const scoped = jsonEditor(`${id}-scoped`);
  scoped.control.rows = 3;
  const list = h("div", { class: "guard-switches" }, ...GUARDS.map(([guard, label]) => h("label", {
    for: switches.get(guard).id, class: "switch-row" }, switches.get(guard), ` ${label}`)));
  return {
    control: h("div", {}, list, h("label", { for: scoped.control.id, class: "help" },
      "Per model and per key (they win over the switches above): {\"models\": {model: {guard: true}}, \"keys\": {key prefix: {…}}}"),
    scoped.control),
    focusable: switches.get(GUARDS[0][0]),
    read() {
      const value = {};
      for (const [guard, input] of switches) if (input.checked) value[guard] = true;
      const extra = scoped.read();
      for (const part of ["models", "keys"]) if (extra[part] && Object.keys(extra[part]).length) value[part] = extra[part];
      const unknown = Object.keys(extra).filter((k) => k !== "models" && k !== "keys");
      if (unknown.length) throw new Invalid(`Only "models" and "keys" go here, not ${unknown.join(", ")}.`);
      return value;
    },
    write(v) {
      for (const [guard, input] of switches) input.checked = Boolean(v && v[guard]);
      const extra = {};
      for (const part of ["models", "keys"]) if (v && v[part]) extra[part] = v[part];
      scoped.write(extra);
    },
  };
}

function editorFor(name, spec, id) {
  const form = formEditor(name, id, { knownModels: () => models });
  if (form) return form;
  if (name === "model_map") return modelMapEditor(id, spec);
  if (name === "guards") return guardsEditor(id);
  if (spec.type === "boolean") return booleanEditor(id);
  if (spec.type === "integer" || spec.type === "number") return numberEditor(id, spec);
  if (spec.type === "object") return jsonEditor(id);
  return stringEditor(id);
}

// --- one setting ------------------------------------------------------------------------------

/**
 * One setting's row: label, help, editor, error line, default. `onChange` runs after every edit.
 * Returns {name, row, value, read(), dirty(), showError(), commit(value), focus()}.
 */
export function makeField(name, spec, { onChange = () => {}, label } = {}) {
  const id = `setting-${name}`;
  const editor = editorFor(name, spec, id);
  const error = h("p", { class: "form-error", id: `${id}-error`, role: "alert" });
  const maskNote = spec.masked ? ` Passwords are shown as ${spec.masked}: leave ${spec.masked} to keep a stored one, or type a new one.` : "";
  const help = h("p", { class: "help", id: `${id}-help` }, `${spec.help || ""}${maskNote}`);
  const reset = h("button", { type: "button", class: "link-button small" }, "Use the default");
  const defaultLine = NO_RESET.has(name) ? null
    : h("p", { class: "help default-line" }, h("span", {}, `Default: ${show(spec.default)}`), reset);
  editor.focusable.setAttribute("aria-describedby", `${id}-help`);
  const row = h("div", { class: "setting", dataset: { setting: name } },
    h("div", { class: "setting-label" }, h("label", { for: id }, label || LABELS[name] || humanize(name)), h("code", {}, name), help),
    h("div", { class: "setting-control" },
      spec.type === "boolean" ? h("div", {}, editor.control) : editor.control, error, defaultLine));

  const field = {
    name, spec, row, value: spec.value,
    focus() {
      reveal(row);
      editor.focusable.focus();
    },
    /** Point the next error at the input a message from the gateway is about (form editors). */
    locate: (message) => editor.locate?.(message),
    read: () => editor.read(),
    dirty() {
      try {
        return !same(editor.read(), field.value);
      } catch {
        return true;
      }
    },
    showError(message) {
      setFieldError(editor.focusable, error, message);
    },
    commit(value) {
      field.value = value;
      editor.write(value);
      field.showError("");
      field.update();
    },
    update() {
      row.classList.toggle("dirty", field.dirty());
      let current;
      try {
        current = editor.read();
      } catch {
        current = undefined;
      }
      reset.hidden = same(current, spec.default);
    },
  };
  const edited = () => {
    field.showError("");
    field.update();
    onChange(field);
  };
  reset.addEventListener("click", () => {
    editor.write(spec.default);
    edited();
  });
  row.addEventListener("input", edited);
  row.addEventListener("change", () => { field.update(); onChange(field); });
  editor.write(spec.value);
  field.update();
  return field;
}

/** Check every changed field; returns [[field, value]…] or null after marking the bad ones. */
export function readChanges(list) {
  const changes = [];
  let firstBad = null;
  for (const field of list.filter((f) => f.dirty())) {
    try {
      changes.push([field, field.read()]);
      field.showError("");
    } catch (err) {
      field.showError(err.message);
      firstBad = firstBad || field;
    }
  }
  if (firstBad) {
    firstBad.focus();
    return null;
  }
  return changes;
}

export { readable };

// --- the form ---------------------------------------------------------------------------------

function status(text, bad = false) {
  const el = $("#settings-status");
  el.textContent = text;
  el.classList.toggle("bad", bad);
}

function formChanged() {
  const dirty = fields.filter((f) => f.dirty()).length;
  $("#settings-save").disabled = dirty === 0;
  $("#settings-discard").disabled = dirty === 0;
  status(dirty ? `${dirty} unsaved change${dirty > 1 ? "s" : ""}` : "");
}

export function hasUnsavedSettings() {
  return fields.some((f) => f.dirty());
}

function render(describe) {
  // With the proxy panel present, the proxy settings live there.
  const names = Object.keys(describe).filter((n) => !describe[n].alias_of && !(proxyApi && n.startsWith("proxy_")));
  fields = names.map((name) => makeField(name, describe[name], { onChange: formChanged }));
  const remaining = new Set(fields);
  const sections = [];
  for (const section of SECTIONS) {
    const mine = fields.filter((f) => remaining.has(f) && (section.names ? section.names.includes(f.name) : section.test(f.name)));
    if (!mine.length) continue;
    mine.forEach((f) => remaining.delete(f));
    sections.push(h("section", { class: "card settings-section", "aria-label": section.title },
      sectionDetails(section.title, h("span", { class: "muted small" }, `${mine.length} setting${mine.length > 1 ? "s" : ""}`),
        [section.help ? h("p", { class: "help" }, section.help) : null, ...mine.map((f) => f.row)])));
  }
  if (proxyApi) {
    sections.push(h("p", { class: "muted small" }, "Proxy settings are on the ", h("a", { href: "#proxy" }, "Proxy pool"), " page."));
  }
  replace($("#settings-sections"), sections);
  refilter();
  formChanged();
}

let modelsLoaded = null;

/** Fill the model suggestions (settings, log filters) once: GET /_admin/ui/models. */
export function loadModels() {
  modelsLoaded = modelsLoaded || fetchModels();
  return modelsLoaded;
}

async function fetchModels() {
  try {
    const data = await api("/_admin/ui/models");
    models = new Set(data.models.map((m) => m.id));
    replace($("#model-suggestions"), data.models.map((m) => h("option", { value: m.id }, m.name !== m.id ? m.name : null)));
  } catch {
    models = new Set(); // suggestions only
  }
}

export async function loadSettings({ force = false } = {}) {
  if (!force && hasUnsavedSettings()) return; // keep what is being edited
  try {
    const [data] = await Promise.all([api("/_admin/settings"), loadModels()]);
    if (data.applies) $("#settings-applies").textContent = `A saved change applies ${data.applies}.`;
    render(data.describe);
  } catch (err) {
    toastError(err, "Could not load the settings: ");
  }
}

async function save(event) {
  event.preventDefault();
  const changes = readChanges(fields);
  if (!changes) {
    status("Nothing was saved: correct the marked fields first.", true);
    return;
  }
  $("#settings-save").disabled = true;
  let saved = 0;
  let firstBad = null;
  const applies = new Map(); // when it applies → the settings saved that say so
  for (const [field, value] of changes) {
    try {
      const result = await api("/_admin/settings", { method: "POST", body: { key: field.name, value } });
      field.commit(result.value);
      saved += 1;
      if (result.applies) applies.set(result.applies, [...(applies.get(result.applies) || []), field.name]);
    } catch (err) {
      if (err.status === 401) return;
      field.locate(err.message);
      field.showError(readable(err.message, field.name));
      firstBad = firstBad || field;
    }
  }
  formChanged();
  if (firstBad) {
    status(`${saved ? `Saved ${saved}; ` : ""}${changes.length - saved} not saved: see the message under the field.`, true);
    firstBad.focus();
  } else {
    status(`Saved ${saved} setting${saved > 1 ? "s" : ""}.`);
  }
  if (applies.size) toast(appliesText(saved, applies), { ms: 9000 });
}

/** "Saved 1 setting. It applies at the next request on every worker…", one sentence per timing. */
function appliesText(saved, applies) {
  const head = `Saved ${saved} setting${saved > 1 ? "s" : ""}.`;
  if (applies.size === 1) return `${head} ${saved > 1 ? "They apply" : "It applies"} ${[...applies.keys()][0]}.`;
  return [head, ...[...applies].map(([when, names]) => `${names.join(", ")}: ${when}.`)].join(" ");
}

export function initSettings() {
  initFilter();
  $("#settings-form").addEventListener("submit", save);
  $("#settings-discard").addEventListener("click", () => {
    for (const field of fields) field.commit(field.value);
    formChanged();
  });
}
