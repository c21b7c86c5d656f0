// The settings page's sections, each a <details> the person can fold (remembered while the page
// is open, across reloads of the list), and the filter box: only the settings whose name, label or
// description holds every word typed stay shown, the sections holding them open, the others hidden;
// "No setting matches" when none does. Clearing the filter puts the sections back as they were.

import { $, $$, h } from "./dom.js";

const folded = new Set(); // titles of the sections the person closed
let before = null; // while a filter is on: which sections were open before it

/** A section's <details>: open unless the person closed it. */
export function sectionDetails(title, summaryExtra, children) {
  const details = h("details", { class: "settings-fold", open: !folded.has(title) },
    h("summary", {}, h("h2", {}, title), summaryExtra), ...children);
  details.addEventListener("toggle", () => {
    if (before) return; // opened by the filter: not the person's choice
    if (details.open) folded.delete(title);
    else folded.add(title);
  });
  return details;
}

const sections = () => $$("#settings-sections .settings-section");

/** Show only the settings matching `query` (every word, in any order, case ignored). */
export function applyFilter(query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length && !before) before = new Map(sections().map((s) => [s, s.querySelector("details").open]));
  let shown = 0;
  for (const section of sections()) {
    const details = section.querySelector("details");
    const title = section.getAttribute("aria-label") || "";
    let mine = 0;
    for (const row of section.querySelectorAll(".setting")) {
      const text = `${title} ${row.dataset.setting} ${row.querySelector(".setting-label").textContent}`.toLowerCase();
      row.hidden = !words.every((w) => text.includes(w));
      if (!row.hidden) mine += 1;
    }
    section.hidden = mine === 0;
    if (words.length && mine) details.open = true;
    shown += mine;
  }
  if (!words.length && before) {
    for (const [section, open] of before) section.querySelector("details").open = open;
    before = null;
  }
  const status = $("#settings-filter-status");
  const typed = query.trim();
  status.textContent = !words.length ? "" : shown
    ? `${shown} setting${shown > 1 ? "s" : ""} match “${typed}”.` : `No setting matches “${typed}”.`;
  status.classList.toggle("bad", words.length > 0 && !shown);
}

/** Open every section, or close every one. */
function foldAll(open) {
  for (const section of sections()) {
    const details = section.querySelector("details");
    if (!section.hidden) details.open = open;
  }
}

/** Bring a setting's row into view: its section opened, the filter cleared if it hides the row. */
export function reveal(row) {
  const details = row.closest("details.settings-fold");
  if (!details) return;
  if (row.hidden || row.closest(".settings-section")?.hidden) {
    $("#settings-filter").value = "";
    applyFilter("");
  }
  details.open = true;
}

export function initFilter() {
  const box = $("#settings-filter");
  box.addEventListener("input", () => applyFilter(box.value));
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && box.value) {
      event.preventDefault();
      box.value = "";
      applyFilter("");
    }
  });
  $("#settings-expand").addEventListener("click", () => foldAll(true));
  $("#settings-collapse").addEventListener("click", () => foldAll(false));
}

/** Filter again after the list was drawn anew (a reload keeps what is typed). */
export function refilter() {
  before = null;
  applyFilter($("#settings-filter").value);
}
