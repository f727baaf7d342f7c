// Undo of a change set, shared by every page: a dry run first (what it would delete, restore
// and keep), a confirmation, then progress and the result with the kept-products download.
"use strict";

PI.undo = (() => {
  const fmt = new Intl.NumberFormat();
  let dialog = null;
  let pollTimer = null;

  function el(tag, attrs = {}, text = "") {
    const node = document.createElement(tag);
    Object.entries(attrs).forEach(([key, value]) => node.setAttribute(key, value));
    if (text) node.textContent = text;
    return node;
  }

  function build() {
    dialog = el("dialog", { class: "dialog", id: "undo-dialog", "aria-labelledby": "undo-title" });
    const form = el("form", { method: "dialog" });
    form.append(
      el("h2", { id: "undo-title" }, "Undo"),
      el("p", { id: "undo-text", role: "status", "aria-live": "polite" }),
      el("progress", { id: "undo-bar", max: "100", hidden: "" }),
      el("p", { id: "undo-kept", hidden: "" }),
    );
    const actions = el("div", { class: "dialog-actions" });
    const close = el("button", { type: "button", class: "btn", id: "undo-close" }, "Cancel");
    const confirm = el("button", { type: "submit", class: "btn btn-danger", id: "undo-confirm" }, "Undo");
    actions.append(close, confirm);
    form.append(actions);
    dialog.append(form);
    document.body.append(dialog);
    close.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => clearTimeout(pollTimer));
  }

  function text(message) {
    dialog.querySelector("#undo-text").textContent = message;
  }

  function plural(n, one, many) {
    return `${fmt.format(n)} ${n === 1 ? one : many}`;
  }

  // base: "/api/changes/7" or "/api/imports/3"; label: what is undone, in words.
  async function open(base, label, onDone) {
    if (!dialog) build();
    clearTimeout(pollTimer);
    const confirm = dialog.querySelector("#undo-confirm");
    const bar = dialog.querySelector("#undo-bar");
    dialog.querySelector("#undo-title").textContent = `Undo ${label}`;
    dialog.querySelector("#undo-kept").hidden = true;
    dialog.querySelector("#undo-close").textContent = "Cancel";
    bar.hidden = true;
    confirm.hidden = false;
    confirm.disabled = true;
    text("Checking what the undo would do…");
    dialog.showModal();
    dialog.querySelector("#undo-close").focus();
    try {
      const dry = await PI.api(`${base}/undo?dry_run=true`, { method: "POST" });
      const parts = [];
      if (dry.would_delete) parts.push(`delete ${plural(dry.would_delete, "product", "products")} it created`);
      if (dry.would_restore) parts.push(`restore ${plural(dry.would_restore, "product", "products")} to their values before it`);
      let message = parts.length ? `This will ${parts.join(" and ")}.` : "There is nothing left to undo.";
      if (dry.would_keep) {
        message += ` ${plural(dry.would_keep, "product was", "products were")} changed again since and will be kept as they are now (the result lists which).`;
      }
      text(message);
      confirm.textContent = "Undo";
      confirm.disabled = false;
      confirm.onclick = (event) => {
        event.preventDefault();
        start(base, onDone);
      };
    } catch (error) {
      text(`This cannot be undone: ${error.message}`);
      confirm.hidden = true;
      dialog.querySelector("#undo-close").textContent = "Close";
    }
  }

  async function start(base, onDone) {
    const confirm = dialog.querySelector("#undo-confirm");
    confirm.disabled = true;
    try {
      const change = await PI.api(`${base}/undo`, { method: "POST" });
      confirm.hidden = true;
      dialog.querySelector("#undo-close").textContent = "Close";
      dialog.querySelector("#undo-bar").hidden = false;
      poll(change.id, onDone);
    } catch (error) {
      text(`The undo could not start: ${error.message}`);
    }
  }

  async function poll(id, onDone) {
    let change;
    try {
      change = await PI.api(`/api/changes/${id}`);
    } catch (error) {
      text(`Could not read the undo's progress: ${error.message}`);
      pollTimer = setTimeout(() => poll(id, onDone), 1000);
      return;
    }
    const bar = dialog.querySelector("#undo-bar");
    if (change.status === "completed") {
      bar.value = 100;
      text(
        `Undone: ${plural(change.deleted, "product", "products")} deleted, ` +
          `${plural(change.restored, "product", "products")} restored, ` +
          `${plural(change.kept, "product", "products")} kept as they were.`,
      );
      const kept = dialog.querySelector("#undo-kept");
      const page = el("a", { href: `/changes?change=${id}#change-${id}` }, "See it on the Changes page");
      kept.replaceChildren(page);
      if (change.kept) {
        const link = el("a", { href: `/api/changes/${id}/kept`, download: "" }, "Download the kept products and why (CSV)");
        kept.append(" · ", link);
      }
      kept.hidden = false;
      PI.toast("Undo finished.", "success");
      if (onDone) onDone(change);
      return;
    }
    if (change.status === "failed") {
      text(`The undo failed: ${change.error || "unknown error"} The catalogue was not changed.`);
      return;
    }
    bar.value = change.percent;
    text(change.status === "queued" ? "Waiting for the catalogue to be free…" : `Undoing… ${change.percent.toFixed(0)}%`);
    pollTimer = setTimeout(() => poll(id, onDone), 500);
  }

  return {
    change: (id, label, onDone) => open(`/api/changes/${id}`, label, onDone),
    importJob: (id, label, onDone) => open(`/api/imports/${id}`, label, onDone),
  };
})();
