// Charts drawn as inline SVG, sized to their container in real pixels (so text stays readable on
// a phone), redrawn when the container's width changes. Every mark has a <title> tooltip and every
// chart an aria-label that says what it shows.

import { fmtAxisTime, fmtInt, fmtMs, fmtTime, h, replace, s } from "./dom.js";

const HEIGHT = 200;
const M = { top: 10, right: 12, bottom: 24, left: 48 };

const drawn = new Map(); // container -> () => redraw
const observer = typeof ResizeObserver === "function"
  ? new ResizeObserver((entries) => {
    for (const entry of entries) {
      const el = entry.target;
      const width = Math.round(entry.contentRect.width);
      if (width && width !== Number(el.dataset.width || 0) && drawn.has(el)) drawn.get(el)();
    }
  })
  : null;

function mount(el, draw) {
  drawn.set(el, draw);
  if (observer) observer.observe(el);
  draw();
}

function widthOf(el) {
  const width = Math.max(240, Math.floor(el.clientWidth || 480));
  el.dataset.width = String(width);
  return width;
}

function niceStep(max, count = 4) {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((v) => v >= raw) || raw;
  return step;
}

function yAxis(max, width, height, format) {
  const step = niceStep(max);
  const top = Math.max(step, Math.ceil(max / step) * step);
  const grid = s("g", { class: "grid" });
  const labels = s("g", { class: "axis" });
  for (let v = 0; v <= top + step / 2; v += step) {
    const y = M.top + (height - M.top - M.bottom) * (1 - v / top);
    grid.append(s("line", { x1: M.left, x2: width - M.right, y1: y, y2: y }));
    labels.append(s("text", { x: M.left - 6, y: y + 4, "text-anchor": "end" }, format(v)));
  }
  return { top, grid, labels };
}

/** Labels under the bars: `label(bucket)`, by default the bucket's start time. */
function xLabels(buckets, width, slot, label) {
  const g = s("g", { class: "axis" });
  if (!buckets.length) return g;
  if (!label) {
    const first = new Date(buckets[0].start), last = new Date(buckets[buckets.length - 1].start);
    const spansDays = last - first > 20 * 3600 * 1000;
    label = (b) => fmtAxisTime(b.start, spansDays);
  }
  const count = Math.max(2, Math.min(6, Math.floor((width - M.left - M.right) / 90)));
  const every = Math.max(1, Math.round((buckets.length - 1) / (count - 1)));
  for (let i = 0; i < buckets.length; i += every) {
    const x = M.left + slot * (i + 0.5);
    const anchor = i === 0 ? "start" : x > width - 40 ? "end" : "middle";
    g.append(s("text", { x: i === 0 ? M.left : x, y: HEIGHT - 6, "text-anchor": anchor }, label(buckets[i])));
  }
  return g;
}

function empty(el, message) {
  drawn.delete(el);
  replace(el, h("div", { class: "chart-empty" }, message));
}

/**
 * Stacked bars, one slot per item ({requests, errors, …}): successful requests and errors.
 * `o`: emptyText, title(item) for each slot's tooltip, slotData(item) for its data-* attributes,
 * ariaLabel(total, errors), and xLabel(item) (time buckets' own labels when left out).
 */
function stackedRequests(el, items, o) {
  const total = items.reduce((n, b) => n + b.requests, 0);
  if (!total) return empty(el, o.emptyText);
  mount(el, () => {
    const width = widthOf(el);
    const plotH = HEIGHT - M.top - M.bottom;
    const max = Math.max(1, ...items.map((b) => b.requests));
    const axis = yAxis(max, width, HEIGHT, (v) => (Number.isInteger(v) ? fmtInt(v) : ""));
    const slot = (width - M.left - M.right) / items.length;
    const barW = Math.max(1, slot * 0.72);
    const base = M.top + plotH;
    const bars = s("g");
    items.forEach((b, i) => {
      const x = M.left + slot * i + (slot - barW) / 2;
      const hOk = (plotH * (b.requests - b.errors)) / axis.top;
      const hErr = (plotH * b.errors) / axis.top;
      bars.append(s("g", { class: "slot", dataset: o.slotData ? o.slotData(b) : {} },
        s("title", {}, o.title(b)),
        s("rect", { class: "bar-track", x: M.left + slot * i, y: M.top, width: slot, height: plotH }),
        hOk > 0 ? s("rect", { class: "bar-ok", x, y: base - hOk, width: barW, height: hOk, rx: Math.min(2, barW / 3) }) : null,
        hErr > 0 ? s("rect", { class: "bar-err", x, y: base - hOk - hErr, width: barW, height: hErr, rx: Math.min(2, barW / 3) }) : null));
    });
    const errors = items.reduce((n, b) => n + b.errors, 0);
    replace(el, s("svg", {
      viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: "img", dataset: { bars: items.length },
      "aria-label": o.ariaLabel(total, errors),
    }, axis.grid, axis.labels, bars, xLabels(items, width, slot, o.xLabel)));
  });
}

/** Stacked bars per time bucket: successful requests and errors. */
export function requestsChart(el, buckets) {
  stackedRequests(el, buckets, {
    emptyText: "No requests in this window.",
    title: (b) => `${fmtTime(b.start)} · ${fmtInt(b.requests)} requests, ${fmtInt(b.errors)} errors`,
    ariaLabel: (total, errors) =>
      `Requests over time: ${fmtInt(total)} requests and ${fmtInt(errors)} errors from ${fmtTime(buckets[0].start)}.`,
  });
}

// Days are UTC days ("YYYY-MM-DD"), shown as such whatever the browser's time zone.
const dayShort = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
const dayLong = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric", timeZone: "UTC" });
const utcDay = (day) => new Date(`${day}T00:00:00Z`);

/** Stacked bars per UTC day ({day, requests, errors, input_tokens, output_tokens}, oldest first). */
export function dailyRequestsChart(el, days, what = "Requests per day") {
  const short = (d) => dayShort.format(utcDay(d.day));
  stackedRequests(el, days, {
    emptyText: `No requests in the last ${days.length} days.`,
    title: (d) => `${dayLong.format(utcDay(d.day))} · ${fmtInt(d.requests)} requests, ${fmtInt(d.errors)} errors, `
      + `${fmtInt((d.input_tokens || 0) + (d.output_tokens || 0))} tokens`,
    slotData: (d) => ({ day: d.day }),
    ariaLabel: (total, errors) => `${what}: ${fmtInt(total)} requests and ${fmtInt(errors)} errors from `
      + `${short(days[0])} to ${short(days[days.length - 1])} (UTC).`,
    xLabel: short,
  });
}

function linePath(points) {
  let d = "", pen = false;
  for (const p of points) {
    if (p === null) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`;
    pen = true;
  }
  return d;
}

/** Average and p95 latency per time bucket (gaps where a bucket had no requests). */
export function latencyChart(el, buckets) {
  const values = buckets.flatMap((b) => [b.avg_latency_ms, b.p95_latency_ms]).filter((v) => v !== null);
  if (!values.length) return empty(el, "No latency to show yet.");
  mount(el, () => {
    const width = widthOf(el);
    const plotH = HEIGHT - M.top - M.bottom;
    const axis = yAxis(Math.max(1, ...values), width, HEIGHT, (v) => fmtMs(v));
    const slot = (width - M.left - M.right) / buckets.length;
    const xy = (i, v) => (v === null ? null : [M.left + slot * (i + 0.5), M.top + plotH * (1 - v / axis.top)]);
    const avg = buckets.map((b, i) => xy(i, b.avg_latency_ms));
    const p95 = buckets.map((b, i) => xy(i, b.p95_latency_ms));
    const marks = s("g");
    const fewPoints = values.length <= 60;
    buckets.forEach((b, i) => {
      if (b.requests === 0) return;
      marks.append(s("g", { class: "slot" },
        s("title", {}, `${fmtTime(b.start)} · average ${fmtMs(b.avg_latency_ms)}, p95 ${fmtMs(b.p95_latency_ms)} (${fmtInt(b.requests)} requests)`),
        s("rect", { class: "bar-track", x: M.left + slot * i, y: M.top, width: slot, height: plotH }),
        fewPoints && avg[i] ? s("circle", { class: "dot avg", cx: avg[i][0], cy: avg[i][1], r: 2.5 }) : null,
        fewPoints && p95[i] ? s("circle", { class: "dot p95", cx: p95[i][0], cy: p95[i][1], r: 2.5 }) : null));
    });
    const highest = Math.max(...buckets.map((b) => b.p95_latency_ms || 0));
    replace(el, s("svg", {
      viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: "img",
      "aria-label": `Latency over time: the highest p95 in this window is ${fmtMs(highest)}.`,
    }, axis.grid, axis.labels,
    s("path", { class: "line p95", d: linePath(p95) }),
    s("path", { class: "line avg", d: linePath(avg) }),
    marks, xLabels(buckets, width, slot)));
  });
}

const ROW = 30;
const LABEL_W = 0.34;

function modelRows(el, models, draw) {
  if (!models.length) return empty(el, "No requests in this window.");
  mount(el, () => {
    const width = widthOf(el);
    const labelW = Math.min(220, Math.round(width * LABEL_W));
    const shown = models.slice(0, 8);
    const height = shown.length * ROW + 8;
    const g = s("g");
    shown.forEach((m, i) => {
      const y = 4 + i * ROW;
      const name = m.model || "(none)";
      const clipped = name.length > Math.floor(labelW / 7) ? `${name.slice(0, Math.floor(labelW / 7) - 1)}…` : name;
      g.append(s("text", { class: "hbar-label", x: 0, y: y + ROW / 2 + 4 }, s("title", {}, name), clipped));
      draw(g, m, { x: labelW + 8, y, w: width - labelW - 8 - 80 });
    });
    replace(el, s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": el.dataset.label || "" }, g));
  });
}

/** Requests per model (errors in their own colour). */
export function modelRequestsChart(el, models) {
  const max = Math.max(1, ...models.map((m) => m.requests));
  el.dataset.label = `Requests by model: ${models.slice(0, 8).map((m) => `${m.model || "(none)"} ${m.requests}`).join(", ")}.`;
  modelRows(el, models, (g, m, box) => {
    const wOk = (box.w * (m.requests - m.errors)) / max, wErr = (box.w * m.errors) / max;
    g.append(s("g", {},
      s("title", {}, `${m.model || "(none)"}: ${fmtInt(m.requests)} requests, ${fmtInt(m.errors)} errors`),
      s("rect", { class: "bar-ok", x: box.x, y: box.y + 7, width: Math.max(wOk, 0), height: ROW - 14, rx: 3 }),
      wErr > 0 ? s("rect", { class: "bar-err", x: box.x + wOk, y: box.y + 7, width: wErr, height: ROW - 14, rx: 3 }) : null,
      s("text", { class: "hbar-value", x: box.x + wOk + wErr + 6, y: box.y + ROW / 2 + 4 },
        m.errors ? `${fmtInt(m.requests)} (${fmtInt(m.errors)} err)` : fmtInt(m.requests))));
  });
}

/** Average and p95 latency per model. */
export function modelLatencyChart(el, models) {
  const max = Math.max(1, ...models.map((m) => Math.max(m.p95_latency_ms || 0, m.avg_latency_ms || 0)));
  el.dataset.label = `Latency by model: ${models.slice(0, 8).map((m) => `${m.model || "(none)"} average ${fmtMs(m.avg_latency_ms)}, p95 ${fmtMs(m.p95_latency_ms)}`).join("; ")}.`;
  modelRows(el, models, (g, m, box) => {
    const wAvg = (box.w * (m.avg_latency_ms || 0)) / max, wP95 = (box.w * (m.p95_latency_ms || 0)) / max;
    g.append(s("g", {},
      s("title", {}, `${m.model || "(none)"}: average ${fmtMs(m.avg_latency_ms)}, p95 ${fmtMs(m.p95_latency_ms)}`),
      s("rect", { class: "hbar avg", x: box.x, y: box.y + 6, width: wAvg, height: 8, rx: 2 }),
      s("rect", { class: "hbar p95", x: box.x, y: box.y + 16, width: wP95, height: 8, rx: 2 }),
      s("text", { class: "hbar-value", x: box.x + Math.max(wAvg, wP95) + 6, y: box.y + ROW / 2 + 4 },
        `${fmtMs(m.avg_latency_ms)} / ${fmtMs(m.p95_latency_ms)}`)));
  });
}
