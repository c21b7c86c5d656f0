// API keys: the list, creating one (its full value shown once), revoking one.

import { api, confirmAction, copyText, setFieldError, toast, toastError } from "./api.js";
import { $, fmtAgo, fmtWhen, h, replace, timeEl } from "./dom.js";

function keyRow(key) {
  const label = key.name || "(unnamed)";
  return h("tr", { class: key.active ? "" : "inactive", dataset: { prefix: key.prefix } },
    h("td", { class: "truncate", title: label }, label),
    h("td", { class: "mono nowrap" }, `${key.prefix}…`),
    h("td", { class: "hide-sm nowrap" }, timeEl(key.created_at, fmtWhen(key.created_at))),
    h("td", { class: "nowrap" }, key.last_used_at ? timeEl(key.last_used_at, fmtAgo(key.last_used_at)) : "never"),
    h("td", {}, h("span", { class: key.active ? "badge ok" : "badge" }, key.active ? "active" : "revoked")),
    h("td", { class: "num" }, key.active
      ? h("button", {
        type: "button", class: "button small danger", "aria-label": `Revoke ${label} (${key.prefix}…)`,
        onclick: () => revoke(key, label),
      }, "Revoke")
      : null));
}

export async function loadKeys() {
  try {
    const { keys } = await api("/_admin/api-keys");
    keys.sort((a, b) => Number(b.active) - Number(a.active)); // active first, newest first within each
    replace($("#keys-table tbody"), keys.map(keyRow));
    $("#keys-empty").hidden = keys.length > 0;
    $("#keys-table").hidden = keys.length === 0;
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
}

export function leaveKeys() {
  hideNewKey(); // the full key is never left on screen once you move on
}
