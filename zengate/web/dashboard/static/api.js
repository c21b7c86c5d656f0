// Talking to the gateway, and the few shared pieces of UI (toasts, the confirmation dialog).
// The admin session is an HttpOnly cookie: no script here ever sees or stores the token.

import { $, h } from "./dom.js";

export class ApiError extends Error {
  constructor(status, message, param) {
    super(message);
    this.status = status;
    this.param = param || null;
  }
}

let onUnauthorized = () => {};

/** What to do when a call finds the session gone (the app shows the login form). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/**
 * Call the gateway. `body` is sent as JSON; state-changing calls carry X-Zengate-CSRF, which
 * the admin API requires of cookie sessions (a cross-site form cannot send it).
 */
export async function api(path, { method = "GET", body, query, quiet401 = false } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Zengate-CSRF"] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "The gateway cannot be reached. Is it running?");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    const err = new ApiError(response.status, error.message || `HTTP ${response.status}`, error.param);
    if (response.status === 401 && !quiet401) onUnauthorized(err);
    throw err;
  }
  return data;
}

// --- toasts ------------------------------------------------------------------------------

export function toast(message, { bad = false, ms = 3500 } = {}) {
  const el = h("div", { class: bad ? "toast bad" : "toast" }, message);
  $("#toasts").append(el);
  setTimeout(() => el.remove(), bad ? ms * 2 : ms);
}

/** Remove every toast: what a page said does not follow the user to the next one. */
export function clearToasts() {
  $("#toasts").replaceChildren();
}

/** Show an error from a failed call, unless the login form is taking over. */
export function toastError(err, prefix = "") {
  if (err instanceof ApiError && err.status === 401) return;
  toast(prefix + (err && err.message ? err.message : String(err)), { bad: true });
}

// --- confirmation --------------------------------------------------------------------------

/** A modal "are you sure" dialog; resolves true when the person confirms. */
export function confirmAction({ title, message, confirm = "Confirm" }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-message").textContent = message;
  $("#confirm-ok").textContent = confirm;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("#confirm-cancel").focus();
  });
}

// --- forms ---------------------------------------------------------------------------------

/** Mark a control invalid (or valid again) with a message tied to it for screen readers. */
export function setFieldError(input, errorEl, message) {
  errorEl.textContent = message || "";
  if (message) {
    input.setAttribute("aria-invalid", "true");
    if (errorEl.id) input.setAttribute("aria-errormessage", errorEl.id);
  } else {
    input.removeAttribute("aria-invalid");
  }
}

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the selection-based copy
    }
  }
  const area = h("textarea", { class: "sr-only", readonly: true, "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}
