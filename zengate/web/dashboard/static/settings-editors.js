// Form editors for the routing settings held as JSON objects: fallbacks (model → the models tried
// next, in order), model_overrides (model → what the gateway knows of it) and auto_routes
// (free-auto / go-auto → a preference list per situation). Rows of inputs with the gateway's models
// as suggestions (#model-suggestions); a "raw JSON" switch, one click, shows the textarea instead,
// the two kept in sync both ways. The form builds exactly the shapes the gateway checks
// (zengate/exchange/catalog.py: check_model_entry, check_auto; settings.py: _check_fallbacks);
// raw JSON is sent as written and the gateway judges it, its message shown under the field.
//
// Each editor gives what settings.js expects of one: {control, focusable, read(), write(value)},
// plus locate(message): the input an error message from the gateway is about.

import { h, replace } from "./dom.js";

const PROTOCOLS = ["openai", "anthropic", "responses"];
const SITUATIONS = [
  ["default", "Default"],
  ["tools", "With tools"],
  ["long_context", "Long context"],
  ["reasoning", "Reasoning"],
  ["images", "With images"],
];
const AUTO_TIERS = [["free", "free-auto"], ["go", "go-auto"]];

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isNameList = (v) => Array.isArray(v) && v.every((m) => typeof m === "string" && m.trim() !== "");

/** An error that names the input it is about (focused and marked by the field). */
class FormProblem extends Error {
  constructor(message, input) {
    super(message);
    this.input = input;
  }
}

/** Tell the field an edit happened (buttons change the rows without an input event of their own). */
function edited(el) {
  el.dispatchEvent(new Event("input", { bubbles: true }));
}

function modelInput(attrs = {}) {
  return h("input", { type: "text", list: "model-suggestions", autocomplete: "off", spellcheck: "false", ...attrs });
}

function iconButton(text, label, onclick) {
  return h("button", { type: "button", class: "icon-button", "aria-label": label, title: label, onclick }, text);
}

// --- an ordered list of models -------------------------------------------------------------------

/**
 * Inputs for an ordered list of model names, each with move up / down / remove buttons, and a
 * button to add one. `label()` names the list for screen readers ("Fallbacks of big-pickle").
 */
function modelList(label, addText) {
  const items = h("ol", { class: "model-list" });
  const add = h("button", { type: "button", class: "button small" }, addText);
  const el = h("div", { class: "model-list-box" }, items, add);

  const inputs = () => [...items.querySelectorAll("input")];
  function relabel() {
    const all = [...items.children];
    all.forEach((li, i) => {
      const what = `${label()}, ${i + 1} of ${all.length}`;
      li.querySelector("input").setAttribute("aria-label", what);
      const [up, down, remove] = li.querySelectorAll("button");
      up.setAttribute("aria-label", `Move up: ${what}`);
      up.disabled = i === 0;
      down.setAttribute("aria-label", `Move down: ${what}`);
      down.disabled = i === all.length - 1;
      remove.setAttribute("aria-label", `Remove: ${what}`);
      for (const b of [up, down, remove]) b.title = b.getAttribute("aria-label");
    });
  }
  function item(value) {
    const input = modelInput();
    input.value = value;
    const li = h("li", {}, input);
    li.append(
      iconButton("↑", "Move up", () => { li.previousElementSibling?.before(li); relabel(); li.querySelector("button").focus(); edited(el); }),
      iconButton("↓", "Move down", () => { li.nextElementSibling?.after(li); relabel(); li.querySelectorAll("button")[1].focus(); edited(el); }),
      iconButton("✕", "Remove", () => {
        const next = li.nextElementSibling || li.previousElementSibling;
        li.remove();
        relabel();
        (next ? next.querySelector("input") : add).focus();
        edited(el);
      }),
    );
    return li;
  }
  add.addEventListener("click", () => {
    const li = item("");
    items.append(li);
    relabel();
    li.querySelector("input").focus();
    edited(el);
  });
  return {
    el, relabel, inputs,
    /** The names entered, in order (empty inputs left out). */
    read: () => inputs().map((i) => i.value.trim()).filter(Boolean),
    write(list) {
      replace(items, (list || []).map(item));
      relabel();
    },
  };
}

// --- the switch between the form and raw JSON -----------------------------------------------------

/**
 * Wrap a form (`form`: {el, focusable(), read(), write(value), fits(value) → why not or null,
 * names(), locate(message)}) with a raw JSON textarea one click away. `id` goes on the textarea
 * (the setting's label points at it); `describedBy` is the setting's help.
 */
function withRawJson(id, form, { knownModels, groupLabel }) {
  let raw = false;
  const area = h("textarea", { id, spellcheck: "false", rows: 8, "aria-describedby": `${id}-help` });
  const rawBox = h("div", { class: "raw-json", hidden: true }, area,
    h("p", { class: "help" }, "Sent as written; the gateway checks it."));
  const group = h("div", { class: "form-editor", role: "group", "aria-label": groupLabel }, form.el);
  const toggle = h("button", { type: "button", class: "link-button small raw-toggle", "aria-controls": `${id}-box` }, "Edit as raw JSON");
  const modeError = h("p", { class: "form-error", id: `${id}-mode-error`, role: "alert" });
  const warn = h("p", { class: "warn-text", "aria-live": "polite" });
  const box = h("div", { class: "rows-editor", id: `${id}-box` },
    h("div", { class: "editor-bar" }, toggle), modeError, group, rawBox, warn);

  function checkKnown() {
    const known = knownModels();
    const unknown = raw || !known.size ? []
      : form.names().filter((m) => !known.has(m) && !m.includes(":")); // backend:model is the backend's own
    warn.textContent = unknown.length
      ? `Not in the gateway's model list: ${[...new Set(unknown)].join(", ")}. It is sent upstream as written.` : "";
  }
  function setMode(toRaw, note = "") {
    raw = toRaw;
    rawBox.hidden = !raw;
    group.hidden = raw;
    toggle.textContent = raw ? "Edit as a form" : "Edit as raw JSON";
    modeError.textContent = note;
    checkKnown();
  }
  function parseRaw() {
    let value;
    try {
      value = JSON.parse(area.value.trim() || "{}");
    } catch (err) {
      throw new FormProblem(`Not valid JSON: ${err.message}`, area);
    }
    if (!isObject(value)) throw new FormProblem("Must be a JSON object, like {\"name\": \"value\"}.", area);
    return value;
  }
  toggle.addEventListener("click", () => {
    if (!raw) {
      let value;
      try {
        value = form.read();
      } catch (err) {
        modeError.textContent = `The form cannot become JSON yet: ${err.message}`;
        (err.input || form.focusable()).focus();
        return;
      }
      area.value = JSON.stringify(value, null, 2);
      setMode(true);
      area.focus();
      return;
    }
    let value;
    let why;
    try {
      value = parseRaw();
      why = form.fits(value);
    } catch (err) {
      why = err.message;
    }
    if (why) {
      modeError.textContent = `The form cannot show this JSON: ${why} Correct it here, or save it as it is.`;
      area.focus();
      return;
    }
    form.write(value);
    setMode(false);
    form.focusable().focus();
  });
  let problem = null; // the input the last refusal was about, until the next edit
  box.addEventListener("input", () => {
    problem = null;
    modeError.textContent = "";
    for (const el of box.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute("aria-invalid");
    checkKnown();
  });

  return {
    control: box,
    get focusable() {
      return problem && problem.isConnected && !problem.closest("[hidden]") ? problem : raw ? area : form.focusable();
    },
    read() {
      try {
        return raw ? parseRaw() : form.read();
      } catch (err) {
        problem = err.input || null;
        throw err;
      }
    },
    write(value) {
      problem = null;
      const v = isObject(value) ? value : {};
      area.value = JSON.stringify(v, null, 2);
      const why = form.fits(v);
      if (why) {
        setMode(true, `Shown as JSON: the form cannot show this value (${why})`);
        return;
      }
      form.write(v);
      modeError.textContent = "";
      checkKnown();
    },
    locate(message) {
      problem = raw ? area : form.locate(message);
      return problem;
    },
  };
}

/** The input of the row whose model an error message names ("big-pickle: …", "x.big-pickle.context: …"). */
function rowNamed(rows, message) {
  const found = rows().find((r) => {
    const model = r.model.value.trim();
    return model && (message.includes(`${model}:`) || message.includes(`.${model}.`) || message.includes(`${model}.`));
  });
  return found ? found.model : null;
}

/** Model names typed in rows: the first empty or repeated one is refused. */
function checkModelName(row, seen, what) {
  const model = row.model.value.trim();
  if (!model) throw new FormProblem(`Name the model ${what}.`, row.model);
  if (seen.has(model)) throw new FormProblem(`${model} is listed twice: keep one row for it.`, row.model);
  seen.add(model);
  return model;
}

function rowsHint(text) {
  return h("p", { class: "help rows-empty" }, text);
}

/** The rows of a per-model editor with its "Add" button and each row's removal: what the fallbacks
 *  and overrides forms share. `makeRow(model, value, removeRow)` builds `{model: input, li, …}`. */
function modelRows(emptyText, addText, makeRow, blank) {
  const list = h("ul", { class: "entry-list" });
  const empty = rowsHint(emptyText);
  const add = h("button", { type: "button", class: "button small" }, addText);
  const el = h("div", {}, list, empty, add);
  let rows = [];
  function removeRow(r) {
    rows = rows.filter((x) => x !== r);
    r.li.remove();
    empty.hidden = rows.length > 0;
    add.focus();
    edited(el);
  }
  add.addEventListener("click", () => {
    const r = makeRow("", blank(), removeRow);
    rows.push(r);
    list.append(r.li);
    empty.hidden = true;
    r.model.focus();
    edited(el);
  });
  return {
    el,
    all: () => rows,
    first: () => (rows[0] ? rows[0].model : add),
    write(value) {
      rows = Object.entries(value).map(([model, v]) => makeRow(model, v, removeRow));
      replace(list, rows.map((r) => r.li));
      empty.hidden = rows.length > 0;
    },
  };
}

// --- fallbacks: {model: [models tried next]} -------------------------------------------------------

function fallbacksForm(id) {
  let serial = 0;

  function row(model, chain, removeRow) {
    const input = modelInput({ id: `${id}-model-${serial++}` });
    input.value = model;
    const name = () => input.value.trim() || "the new model";
    const next = modelList(() => `Fallback of ${name()}`, "Add a fallback");
    next.write(chain);
    const r = { model: input, next };
    const remove = h("button", { type: "button", class: "button small ghost danger" }, "Remove");
    const li = h("li", { class: "entry" },
      h("div", { class: "entry-head" },
        h("label", { for: input.id }, "Model"), input, remove),
      h("div", { class: "entry-body" }, h("span", { class: "help" }, "then tries, in order:"), next.el));
    r.li = li;
    input.addEventListener("input", () => next.relabel());
    remove.setAttribute("aria-label", `Remove the chain of ${name()}`);
    input.addEventListener("input", () => remove.setAttribute("aria-label", `Remove the chain of ${name()}`));
    remove.addEventListener("click", () => removeRow(r));
    return r;
  }
  const rows = modelRows("No fallback chains: a model that fails is not replaced.", "Add a fallback chain", row, () => [""]);

  return {
    el: rows.el,
    focusable: rows.first,
    names: () => rows.all().flatMap((r) => [r.model.value.trim(), ...r.next.read()]).filter(Boolean),
    locate: (message) => rowNamed(rows.all, message) || rows.first(),
    fits(value) {
      for (const [model, chain] of Object.entries(value)) {
        if (!isNameList(chain)) return `${model}: must be a list of model names.`;
      }
      return null;
    },
    read() {
      const value = {};
      const seen = new Set();
      for (const r of rows.all()) {
        const chain = r.next.read();
        if (!r.model.value.trim() && !chain.length) continue; // an empty row: nothing to save
        value[checkModelName(r, seen, "this chain is for")] = chain;
      }
      return value;
    },
    write(value) {
      serial = 0;
      rows.write(value);
    },
  };
}

// --- model_overrides: {model: {protocol, context, max_output, tier, …}} -------------------------------

const OVERRIDES = [
  { key: "protocol", label: "Protocol", kind: "choice", options: PROTOCOLS },
  { key: "context", label: "Context (tokens)", kind: "count" },
  { key: "max_output", label: "Most output (tokens)", kind: "count" },
  { key: "tier", label: "Tier or backend", kind: "text", hint: "zen, go or a backend of the models file" },
  { key: "upstream_model", label: "Upstream's name for it", kind: "text" },
  { key: "name", label: "Display name", kind: "text" },
  { key: "free", label: "Free", kind: "flag" },
  { key: "vision", label: "Reads images", kind: "flag" },
];
const OVERRIDE_KEYS = new Set(["fallbacks", "backend", ...OVERRIDES.map((f) => f.key)]);

function overrideControl(field, inputId) {
  if (field.kind === "choice" || field.kind === "flag") {
    const options = field.kind === "flag" ? [["", "as known"], ["true", "yes"], ["false", "no"]]
      : [["", "as known"], ...field.options.map((o) => [o, o])];
    return h("select", { id: inputId }, options.map(([value, text]) => h("option", { value }, text)));
  }
  if (field.kind === "count") return h("input", { id: inputId, type: "number", min: 1, step: 1, inputmode: "numeric", placeholder: "as known" });
  return h("input", { id: inputId, type: "text", autocomplete: "off", spellcheck: "false", placeholder: field.hint || "as known" });
}

function overridesForm(id) {
  let serial = 0;

  function row(model, entry, removeRow) {
    const n = serial++;
    const input = modelInput({ id: `${id}-model-${n}` });
    input.value = model;
    const name = () => input.value.trim() || "the new model";
    const controls = new Map(OVERRIDES.map((f) => [f.key, overrideControl(f, `${id}-${n}-${f.key}`)]));
    const fallbacks = modelList(() => `Fallback of ${name()}`, "Add a fallback");
    const r = { model: input, controls, fallbacks, tierKey: "backend" in entry ? "backend" : "tier" };
    for (const f of OVERRIDES) {
      const c = controls.get(f.key);
      const v = f.key === "tier" ? entry[r.tierKey] : entry[f.key];
      c.value = v === undefined ? "" : String(v);
    }
    r.hasFallbacks = "fallbacks" in entry;
    fallbacks.write(entry.fallbacks || []);
    const remove = h("button", { type: "button", class: "button small ghost danger", "aria-label": `Remove the overrides of ${name()}` }, "Remove");
    input.addEventListener("input", () => {
      remove.setAttribute("aria-label", `Remove the overrides of ${name()}`);
      fallbacks.relabel();
    });
    const li = h("li", { class: "entry" },
      h("div", { class: "entry-head" }, h("label", { for: input.id }, "Model"), input, remove),
      h("div", { class: "override-grid" }, OVERRIDES.map((f) => h("div", { class: "field" },
        h("label", { for: controls.get(f.key).id }, f.label), controls.get(f.key)))),
      h("div", { class: "entry-body" }, h("span", { class: "help" }, "Fallbacks, in order (the fallbacks setting wins):"), fallbacks.el));
    r.li = li;
    remove.addEventListener("click", () => removeRow(r));
    return r;
  }
  const rows = modelRows("No overrides: every model is as the gateway knows it.", "Add a model", row, () => ({}));

  function readEntry(r) {
    const entry = {};
    for (const f of OVERRIDES) {
      const c = r.controls.get(f.key);
      const text = c.value.trim();
      if (!text) {
        if (f.kind === "count" && c.validity.badInput) throw new FormProblem(`${f.label}: enter a whole number.`, c);
        continue;
      }
      const key = f.key === "tier" ? r.tierKey : f.key;
      if (f.kind === "count") {
        const n = Number(text);
        if (!Number.isInteger(n) || n < 1) throw new FormProblem(`${f.label}: must be a whole number of at least 1.`, c);
        entry[key] = n;
      } else if (f.kind === "flag") {
        entry[key] = text === "true";
      } else {
        entry[key] = text;
      }
    }
    const chain = r.fallbacks.read();
    if (chain.length || r.hasFallbacks) entry.fallbacks = chain;
    return entry;
  }

  return {
    el: rows.el,
    focusable: rows.first,
    names: () => rows.all().flatMap((r) => [r.model.value.trim(), ...r.fallbacks.read()]).filter(Boolean),
    locate(message) {
      const input = rowNamed(rows.all, message);
      const r = rows.all().find((x) => x.model === input);
      const key = r && OVERRIDES.find((f) => message.includes(`.${f.key}:`));
      return (key && r.controls.get(key.key)) || input || rows.first();
    },
    fits(value) {
      for (const [model, entry] of Object.entries(value)) {
        if (!isObject(entry)) return `${model}: must be an object.`;
        const unknown = Object.keys(entry).filter((k) => !OVERRIDE_KEYS.has(k));
        if (unknown.length) return `${model}: unknown keys ${unknown.join(", ")}.`;
        if ("tier" in entry && "backend" in entry) return `${model}: has both tier and backend.`;
        if ("protocol" in entry && !PROTOCOLS.includes(entry.protocol)) return `${model}.protocol: must be one of ${PROTOCOLS.join(", ")}.`;
        for (const k of ["context", "max_output"]) {
          if (k in entry && !(Number.isInteger(entry[k]) && entry[k] >= 1)) return `${model}.${k}: must be a positive whole number.`;
        }
        for (const k of ["free", "vision"]) if (k in entry && typeof entry[k] !== "boolean") return `${model}.${k}: must be true or false.`;
        for (const k of ["name", "tier", "backend", "upstream_model"]) {
          if (k in entry && (typeof entry[k] !== "string" || !entry[k].trim())) return `${model}.${k}: must be a non-empty string.`;
        }
        if ("fallbacks" in entry && !isNameList(entry.fallbacks)) return `${model}.fallbacks: must be a list of model names.`;
      }
      return null;
    },
    read() {
      const value = {};
      const seen = new Set();
      for (const r of rows.all()) {
        const entry = readEntry(r);
        if (!r.model.value.trim() && !Object.keys(entry).length) continue;
        value[checkModelName(r, seen, "these overrides are for")] = entry;
      }
      return value;
    },
    write(value) {
      serial = 0;
      rows.write(value);
    },
  };
}

// --- auto_routes: {tier: {situation: [models]}} ---------------------------------------------------------

function autoRoutesForm(id) {
  const el = h("div", { class: "auto-routes" });
  let tiers = []; // [{tier, lists: Map(situation → modelList)}]

  function tierBox(tier, title, lists) {
    const mine = new Map(SITUATIONS.map(([situation, label]) => {
      const ml = modelList(() => `${title}, ${label.toLowerCase()}`, "Add a model");
      ml.write(lists[situation] || []);
      return [situation, { ml, label }];
    }));
    const box = h("fieldset", { class: "auto-tier" },
      h("legend", {}, title),
      h("p", { class: "help" }, "First choice first; an empty list uses the models file's, else the built-in one."),
      SITUATIONS.map(([situation]) => {
        const { ml, label } = mine.get(situation);
        return h("div", { class: "auto-situation", role: "group", "aria-label": `${title}, ${label.toLowerCase()}` },
          h("span", { class: "situation-label" }, label), ml.el);
      }));
    return { tier, title, lists: mine, box };
  }

  return {
    el,
    focusable: () => (tiers.length ? tiers[0].lists.get("default").ml.el.querySelector("input, button") : el),
    names: () => tiers.flatMap((t) => [...t.lists.values()].flatMap(({ ml }) => ml.read())),
    locate(message) {
      for (const t of tiers) {
        for (const [situation, { ml }] of t.lists) {
          if (message.includes(`.${t.tier}.${situation}`)) return ml.el.querySelector("input, button");
        }
      }
      return null;
    },
    fits(value) {
      for (const [tier, lists] of Object.entries(value)) {
        if (!isObject(lists)) return `${tier}: must be an object of lists.`;
        if (!Object.keys(lists).length) return `${tier}: has no lists.`;
        for (const [situation, models] of Object.entries(lists)) {
          if (!SITUATIONS.some(([s]) => s === situation)) return `${tier}.${situation}: unknown; use ${SITUATIONS.map(([s]) => s).join(", ")}.`;
          if (!isNameList(models) || !models.length) return `${tier}.${situation}: must be a non-empty list of model names.`;
        }
      }
      return null;
    },
    read() {
      const value = {};
      for (const t of tiers) {
        const lists = {};
        for (const [situation, { ml }] of t.lists) {
          const models = ml.read();
          if (models.length) lists[situation] = models;
        }
        if (Object.keys(lists).length) value[t.tier] = lists;
      }
      return value;
    },
    write(value) {
      const names = [...AUTO_TIERS, ...Object.keys(value).filter((t) => !AUTO_TIERS.some(([k]) => k === t))
        .map((t) => [t, `${t} (no ${t}-auto model reads it)`])];
      tiers = names.map(([tier, title]) => tierBox(tier, title, value[tier] || {}));
      replace(el, tiers.map((t) => t.box));
    },
  };
}

// --- what settings.js asks for ---------------------------------------------------------------------------

const FORMS = {
  fallbacks: [fallbacksForm, "Fallback chains, one per model"],
  model_overrides: [overridesForm, "Overrides, one per model"],
  auto_routes: [autoRoutesForm, "Preference lists of free-auto and go-auto"],
};

/** A form editor for setting `name`, or null when it has none. `knownModels()`: the gateway's model ids. */
export function formEditor(name, id, { knownModels }) {
  const entry = FORMS[name];
  if (!entry) return null;
  const [make, groupLabel] = entry;
  return withRawJson(id, make(id), { knownModels, groupLabel });
}
