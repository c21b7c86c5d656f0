// Wire capture on the request-log page: the wire_capture switch (a setting), the files, their downloads.

import { api, confirmAction, toast, toastError } from "./api.js";
import { $, fmtInt, fmtWhen, h, replace, timeEl } from "./dom.js";

function fmtBytes(n) {
  if (n < 1024) return `${fmtInt(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function row(file) {
  const href = `/_admin/capture/${encodeURIComponent(file.name)}`;
  return h("tr", {},
    h("td", { class: "mono" }, h("a", { href, download: file.name }, file.name)),
    h("td", { class: "num" }, fmtBytes(file.bytes)),
    h("td", { class: "hide-sm nowrap" }, timeEl(file.modified, fmtWhen(file.modified))),
    h("td", {}, h("button", {
      type: "button", class: "button small ghost", "aria-label": `Delete ${file.name}`,
      onclick: () => removeFile(file.name),
    }, "Delete")));
}

export async function loadCapture() {
  try {
    const listed = await api("/_admin/capture");
    $("#capture-enabled").checked = Boolean(listed.enabled);
    replace($("#capture-table tbody"), listed.files.map(row));
    $("#capture-empty").hidden = listed.files.length > 0;
    $("#capture-delete-all").disabled = listed.files.length === 0;
  } catch (err) {
    toastError(err, "Wire capture: ");
  }
}

async function removeFile(name) {
  try {
    await api(`/_admin/capture/${encodeURIComponent(name)}`, { method: "DELETE" });
    toast(`Deleted ${name}`);
  } catch (err) {
    toastError(err);
  }
  loadCapture();
}

export function initCapture() {
  $("#capture-enabled").addEventListener("change", async (event) => {
    const on = event.target.checked;
    try {
      await api("/_admin/settings", { method: "POST", body: { key: "wire_capture", value: on } });
      toast(on ? "Wire capture is on: every worker writes from its next request." : "Wire capture is off.");
    } catch (err) {
      event.target.checked = !on;
      toastError(err);
    }
    loadCapture();
  });
  $("#capture-delete-all").addEventListener("click", async () => {
    const ok = await confirmAction({ title: "Delete every capture file?", message: "The captured exchanges cannot be recovered.", confirm: "Delete all" });
    if (!ok) return;
    try {
      const result = await api("/_admin/capture", { method: "DELETE" });
      toast(`Deleted ${fmtInt(result.deleted)} file(s)`);
    } catch (err) {
      toastError(err);
    }
    loadCapture();
  });
}
