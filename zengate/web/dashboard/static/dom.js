// Small DOM and formatting helpers. Text always goes in as text (textContent), never as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.setAttribute("class", value);
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h("td", {class: "num"}, "text", otherNode): an HTML element; strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** s("rect", {x: 1}): an SVG element. */
export function s(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

export function replace(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

// --- numbers and times ---------------------------------------------------------------------

const integer = new Intl.NumberFormat();
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

export const fmtInt = (n) => (n === null || n === undefined ? "–" : integer.format(n));
export const fmtCompact = (n) => (n === null || n === undefined ? "–" : n < 1e6 ? integer.format(n) : compact.format(n));

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400), hrs = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${hrs}h`;
  if (hrs) return `${hrs}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const shortTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayTime = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

export const fmtDateTime = (iso) => (iso ? dateTime.format(new Date(iso)) : "–");
export const fmtTime = (iso) => (iso ? timeOnly.format(new Date(iso)) : "–");

/** A time axis label: hours and minutes, with the day when the window spans days. */
export const fmtAxisTime = (iso, spansDays) => (spansDays ? dayTime : shortTime).format(new Date(iso));

/** "today 14:03:12" / "Mar 3, 14:03" — short, for tables. */
export function fmtWhen(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const today = new Date();
  return d.toDateString() === today.toDateString() ? timeOnly.format(d) : dayTime.format(d);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function fmtAgo(iso) {
  if (!iso) return "never";
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 45) return seconds < 0 ? "just now" : "in a moment";
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

/** A <time> element showing `text`, with the full local date as its tooltip. */
export function timeEl(iso, text) {
  return h("time", { datetime: iso || null, title: iso ? fmtDateTime(iso) : null }, text);
}

/** The badge for an HTTP status. */
export function statusBadge(status, error) {
  const cls = status >= 500 || (error && status < 400) ? "bad" : status >= 400 ? "warn" : "ok";
  return h("span", { class: `badge ${cls}`, title: error || null }, String(status));
}

export function humanize(name) {
  const text = name.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}
