// Shared helpers for every page: JSON API calls with the CSRF header, and toasts.
"use strict";

const PI = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Accept", "application/json");
    if (options.method && options.method !== "GET") headers.set("X-CSRF-Token", csrf);
    if (options.json !== undefined) {
      headers.set("Content-Type", "application/json");
      options.body = JSON.stringify(options.json);
    }
    const response = await fetch(path, { credentials: "same-origin", ...options, headers });
    if (response.status === 401) {
      window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("Your session ended; please sign in again.");
    }
    const type = response.headers.get("Content-Type") || "";
    const body = type.includes("application/json") ? await response.json() : await response.text();
    if (!response.ok) {
      const error = new Error(describeError(body, response.status));
      error.status = response.status;
      error.body = body;
      throw error;
    }
    return body;
  }

  function describeError(body, status) {
    const detail = body && body.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => `${(d.loc || []).slice(1).join(".") || "input"}: ${d.msg}`).join("; ");
    }
    return `The server answered ${status}.`;
  }

  // The two toast stacks are live regions (polite and assertive): what is added to them is
  // announced, so the toast itself carries no role.
  function toast(message, kind = "info", timeoutMs = 6000) {
    const box = document.getElementById(kind === "error" ? "toast-alerts" : "toasts");
    const item = document.createElement("div");
    item.className = `toast toast-${kind}`;
    const text = document.createElement("span");
    text.textContent = message;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => item.remove());
    item.append(text, close);
    box.appendChild(item);
    if (timeoutMs) setTimeout(() => item.remove(), timeoutMs);
  }

  // Say something to screen reader users without moving focus (the page's polite live region).
  // The same message twice in a row is said twice: the region is emptied first.
  let announceTimer = null;
  function announce(message) {
    const region = document.getElementById("announcer");
    if (!region) return;
    clearTimeout(announceTimer);
    if (region.textContent === message) {
      region.textContent = "";
      announceTimer = setTimeout(() => (region.textContent = message), 100);
    } else {
      region.textContent = message;
    }
  }

  // The signed-in role, so pages show only what it can do (the server enforces it anyway).
  const RANK = { viewer: 0, editor: 1, admin: 2 };
  const role = document.body.dataset.role || "";
  const can = (needed) => role in RANK && RANK[role] >= RANK[needed];

  return { api, toast, announce, csrf, role, can, describeError };
})();

// On every signed-in page: warn when, in distributed mode, no alive worker takes imports or
// webhook deliveries, since that work would wait without any other sign.
(() => {
  const banner = document.getElementById("worker-banner");
  if (!banner) return;
  const WATCHED = { imports: "imports", webhooks: "webhook deliveries" };

  function show(lead, what, command) {
    // Rewriting an alert makes screen readers announce it again: only do so when it changes.
    const key = `${lead}|${command}`;
    if (!banner.hidden && banner.dataset.key === key) return;
    banner.dataset.key = key;
    const code = document.createElement("code");
    code.textContent = command;
    const link = document.createElement("a");
    link.href = "/system";
    link.textContent = "System page";
    banner.replaceChildren(
      `${lead}: ${what} wait until one starts. Start one with `, code, ". See the ", link, ".",
    );
    banner.hidden = false;
  }

  async function check() {
    try {
      const system = await PI.api("/api/system");
      if (system.mode !== "distributed") {
        banner.hidden = true;
        return;
      }
      if (system.workers_alive === 0) {
        show("No worker is running", "imports and webhook deliveries", "product-importer worker");
        return;
      }
      const missing = system.queues.filter((q) => q.queue in WATCHED && q.alive_consumers === 0);
      if (missing.length) {
        const names = missing.map((q) => q.queue);
        show(
          `No running worker takes the ${names.join(" and ")} queue${names.length > 1 ? "s" : ""}`,
          missing.map((q) => WATCHED[q.queue]).join(" and "),
          `product-importer worker --queues ${names.join(",")}`,
        );
        return;
      }
      banner.hidden = true;
    } catch (_error) {
      // A failed poll says nothing about the workers; keep what is shown until the next one.
    }
  }

  check();
  setInterval(check, 15000);
})();

// A table wider than the screen scrolls inside its .table-wrap; keyboard users can only scroll
// it if it takes focus, so while it overflows it becomes a focusable, named region.
(() => {
  function update(wrap) {
    const scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
    if (scrolls && !wrap.hasAttribute("tabindex")) {
      wrap.setAttribute("tabindex", "0");
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", wrap.dataset.label || "Table");
    } else if (!scrolls && wrap.hasAttribute("tabindex")) {
      ["tabindex", "role", "aria-label"].forEach((name) => wrap.removeAttribute(name));
    }
  }
  const observer = new ResizeObserver((entries) => entries.forEach((entry) => update(entry.target)));
  for (const wrap of document.querySelectorAll(".table-wrap")) {
    observer.observe(wrap);
    const table = wrap.querySelector("table");
    if (table) observer.observe(table);
  }
})();
