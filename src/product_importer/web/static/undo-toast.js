// Undo right after a small change (an edit, a create, a delete, the Active toggle): the toast
// offers Undo for a few seconds; the change stays on the Changes page afterwards.
"use strict";

PI.undoToast = (() => {
  const SHOW_MS = 10000;

  // As PI.api, but also answers the change set the server recorded (X-Change-Id).
  async function call(path, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Accept", "application/json");
    headers.set("X-CSRF-Token", PI.csrf);
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
    const body = type.includes("application/json") ? await response.json() : null;
    if (!response.ok) {
      const error = new Error(PI.describeError(body, response.status));
      error.status = response.status;
      error.body = body;
      throw error;
    }
    const changeId = parseInt(response.headers.get("X-Change-Id") || "", 10);
    return { body, changeId: changeId > 0 ? changeId : null };
  }

  async function undo(changeId, item, onUndone) {
    item.querySelectorAll("button").forEach((button) => (button.disabled = true));
    item.querySelector(".toast-text").textContent = "Undoing…";
    try {
      let change = await PI.api(`/api/changes/${changeId}/undo`, { method: "POST" });
      while (change.status === "queued" || change.status === "running") {
        await new Promise((resolve) => setTimeout(resolve, 300));
        change = await PI.api(`/api/changes/${change.id}`);
      }
      item.remove();
      if (change.status === "failed") throw new Error(change.error || "The undo failed.");
      PI.toast(`Undone: ${change.title.replace(/^Undo of /, "")}.`, "success");
      if (onUndone) onUndone(change);
    } catch (error) {
      item.remove();
      PI.toast(`Could not undo: ${error.message}`, "error");
    }
  }

  // A success toast with Undo (for editors, when the change was recorded) and a link to the
  // Changes page; it stays while the pointer or focus is on it.
  function show(message, changeId, onUndone) {
    if (!changeId || !PI.can("editor")) {
      PI.toast(message, "success");
      return;
    }
    const item = document.createElement("div");
    item.className = "toast toast-success toast-undo";
    const text = document.createElement("span");
    text.className = "toast-text";
    text.textContent = `${message} `;
    const link = document.createElement("a");
    link.href = `/changes?change=${changeId}#change-${changeId}`;
    link.textContent = "On the Changes page";
    link.style.color = "inherit";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-small";
    button.textContent = "Undo";
    button.setAttribute("aria-label", `Undo: ${message}`);
    button.addEventListener("click", () => undo(changeId, item, onUndone));
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => item.remove());
    item.append(text, button, close);
    text.append(link);
    document.getElementById("toasts").appendChild(item);
    let timer = null;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (!item.matches(":hover, :focus-within")) item.remove();
        else arm();
      }, SHOW_MS);
    };
    item.addEventListener("mouseleave", arm);
    item.addEventListener("focusout", arm);
    arm();
  }

  return { call, show };
})();
