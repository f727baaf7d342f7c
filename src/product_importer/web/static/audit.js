// Audit page (admins): newest first, filtered by who, what and when, a page at a time.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const PAGE_SIZE = 50;
  let page = 1;
  let timer = null;

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function details(value) {
    return Object.entries(value || {})
      .map(([key, v]) => `${key}: ${typeof v === "object" && v !== null ? JSON.stringify(v) : v}`)
      .join("; ");
  }

  function query() {
    const params = new URLSearchParams({ page: String(page), page_size: String(PAGE_SIZE) });
    const actor = $("a-actor").value.trim();
    if (actor) params.set("actor", actor);
    if ($("a-action").value) params.set("action", $("a-action").value);
    // Dates are the browser's local days.
    if ($("a-since").value) params.set("since", new Date(`${$("a-since").value}T00:00:00`).toISOString());
    if ($("a-until").value) {
      const end = new Date(`${$("a-until").value}T00:00:00`);
      end.setDate(end.getDate() + 1);
      params.set("until", end.toISOString());
    }
    return params;
  }

  async function load() {
    const error = $("audit-error");
    error.hidden = true;
    try {
      const result = await PI.api(`/api/audit?${query()}`);
      $("audit-body").replaceChildren(
        ...result.items.map((item) => {
          const tr = document.createElement("tr");
          tr.dataset.action = item.action;
          tr.append(
            cell(dateFormat.format(new Date(item.occurred_at))),
            cell(item.actor),
            cell(item.action),
            cell(item.target || "–"),
            cell(item.ip || "–", "col-optional"),
            cell(details(item.details), "col-optional details"),
          );
          return tr;
        }),
      );
      const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
      $("audit-summary").textContent = `${result.total} ${result.total === 1 ? "entry" : "entries"}`;
      $("a-page").textContent = `Page ${page} of ${pages}`;
      $("a-prev").disabled = page <= 1;
      $("a-next").disabled = page >= pages;
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  }

  function reload() {
    page = 1;
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  }

  $("audit-filters").addEventListener("input", reload);
  $("audit-filters").addEventListener("change", reload);
  $("audit-filters").addEventListener("submit", (event) => event.preventDefault());
  $("audit-filters").addEventListener("reset", () => setTimeout(reload, 0));
  $("a-prev").addEventListener("click", () => { page -= 1; load(); });
  $("a-next").addEventListener("click", () => { page += 1; load(); });
  load();
})();
