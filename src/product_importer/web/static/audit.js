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

  // The filters and page live in the URL, each new view a history entry: Back steps to the
  // earlier results, a reload shows the same ones.
  const FIELDS = { actor: "a-actor", action: "a-action", since: "a-since", until: "a-until" };

  function readUrl() {
    const params = new URLSearchParams(location.search);
    for (const [name, id] of Object.entries(FIELDS)) $(id).value = params.get(name) || "";
    if ($("a-action").selectedIndex < 0) $("a-action").value = "";
    const asked = parseInt(params.get("page") || "1", 10);
    page = Number.isFinite(asked) && asked > 0 ? asked : 1;
  }

  function writeUrl(how) {
    const params = new URLSearchParams();
    for (const [name, id] of Object.entries(FIELDS)) {
      const value = $(id).value.trim();
      if (value) params.set(name, value);
    }
    if (page !== 1) params.set("page", String(page));
    const search = params.toString() ? `?${params}` : "";
    if (search === location.search) return;
    const url = search || location.pathname;
    if (how === "push") history.pushState(null, "", url);
    else if (how === "replace") history.replaceState(null, "", url);
  }

  async function load(how = "push", after = null) {
    writeUrl(how);
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
      if (after) after();
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
  // Newer and Older show the new page from its top.
  const toTop = () => $("audit-card").scrollIntoView({ block: "start" });
  $("a-prev").addEventListener("click", () => { page -= 1; load("push", toTop); });
  $("a-next").addEventListener("click", () => { page += 1; load("push", toTop); });
  window.addEventListener("popstate", () => {
    clearTimeout(timer);
    readUrl();
    load("none");
  });
  readUrl();
  load("replace");
})();
