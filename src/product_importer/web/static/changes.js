// Changes page: every change set newest first, in words, filtered by kind and person (kept in
// the URL as history entries), with Undo (dry-run counts first) for editors and admins.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const PAGE_SIZE = 20;
  const STATUS = { queued: "Waiting", running: "Running", completed: "Done", failed: "Failed" };
  let state = fromUrl();

  function fromUrl() {
    const params = new URLSearchParams(location.search);
    const page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    const one = parseInt(params.get("change") || "", 10);
    return { kind: params.get("kind") || "", actor: params.get("actor") || "", page, change: one > 0 ? one : null };
  }

  function url(next) {
    const params = new URLSearchParams();
    if (next.change) params.set("change", String(next.change));
    else {
      if (next.kind) params.set("kind", next.kind);
      if (next.actor) params.set("actor", next.actor);
      if (next.page > 1) params.set("page", String(next.page));
    }
    const query = params.toString();
    return query ? `/changes?${query}` : "/changes";
  }

  function go(next) {
    state = next;
    history.pushState(null, "", url(next));
    load();
  }

  function el(tag, attrs = {}, text = "") {
    const node = document.createElement(tag);
    Object.entries(attrs).forEach(([key, value]) => node.setAttribute(key, value));
    if (text) node.textContent = text;
    return node;
  }

  function link(id, text) {
    const a = el("a", { href: `/changes?change=${id}#change-${id}` }, text);
    a.addEventListener("click", (event) => {
      event.preventDefault();
      go({ kind: "", actor: "", page: 1, change: id });
    });
    return a;
  }

  function stateLine(item) {
    const line = el("p", { class: "change-state" });
    if (item.undone_by_id) {
      line.classList.add("change-state-undone");
      line.append("Undone by ", link(item.undone_by_id, item.undone_by_title || "an undo"), ".");
      return line;
    }
    if (item.status === "failed") {
      line.classList.add("change-state-failed");
      line.textContent = `Failed, nothing was changed: ${item.error || "unknown error"}`;
      return line;
    }
    if (item.status !== "completed") {
      line.textContent = `${STATUS[item.status] || item.status}… ${Math.round(item.percent)}%`;
      return line;
    }
    const parts = [];
    if (item.kind === "undo" && item.undoes_id) {
      parts.push(link(item.undoes_id, "See the change it undid"), ". ");
      if (item.kept) {
        parts.push(
          `${item.kept} product${item.kept === 1 ? " was" : "s were"} kept as they were (changed again since): `,
          el("a", { href: `/api/changes/${item.id}/kept`, download: "" }, "see which (CSV)"),
          ". ",
        );
      }
    }
    if (item.undoable && item.undoable_until) {
      parts.push(`Can be undone until ${dateFormat.format(new Date(item.undoable_until))}.`);
    } else if (!item.undoable && item.not_undoable_reason && item.kind !== "undo") {
      parts.push(item.not_undoable_reason);
    }
    if (!parts.length) return null;
    line.append(...parts);
    return line;
  }

  function row(item) {
    const li = el("li", { class: "change", id: `change-${item.id}`, "data-kind": item.kind });
    if (state.change === item.id) li.classList.add("is-focus");
    const main = el("div", { class: "change-main" });
    main.append(el("h2", { class: "change-title" }, item.title || item.summary));
    const when = new Date(item.finished_at || item.created_at);
    main.append(el("p", { class: "change-meta" }, `${item.actor || "someone"} · ${dateFormat.format(when)} · ${STATUS[item.status] || item.status} · change ${item.id}`));
    const line = stateLine(item);
    if (line) main.append(line);
    li.append(main);
    if (PI.can("editor") && item.undoable) {
      const actions = el("div", { class: "change-actions" });
      const undo = el("button", { type: "button", class: "btn btn-small", "aria-label": `Undo ${item.title}` }, "Undo");
      undo.addEventListener("click", () => PI.undo.change(item.id, item.title, () => load()));
      actions.append(undo);
      li.append(actions);
    }
    return li;
  }

  async function loadActors() {
    try {
      const actors = await PI.api("/api/changes/actors");
      const select = $("c-actor");
      const known = new Set(actors);
      if (state.actor && !known.has(state.actor)) actors.push(state.actor);
      select.replaceChildren(el("option", { value: "" }, "Everyone"), ...actors.map((name) => el("option", { value: name }, name)));
      select.value = state.actor;
    } catch (_error) {
      // The person filter stays at Everyone; the list still loads.
    }
  }

  async function load() {
    const error = $("changes-error");
    error.hidden = true;
    $("c-kind").value = state.kind;
    $("c-actor").value = state.actor;
    $("changes-one").hidden = !state.change;
    $("changes-filters").hidden = Boolean(state.change);
    try {
      let items, total;
      if (state.change) {
        items = [await PI.api(`/api/changes/${state.change}`)];
        total = 1;
      } else {
        const params = new URLSearchParams({ page: String(state.page), page_size: String(PAGE_SIZE) });
        if (state.kind) params.set("kind", state.kind);
        if (state.actor) params.set("actor", state.actor);
        const result = await PI.api(`/api/changes?${params}`);
        items = result.items;
        total = result.total;
      }
      $("changes-list").replaceChildren(...items.map(row));
      const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
      $("changes-summary").textContent = state.change ? "One change" : total ? `${total} ${total === 1 ? "change" : "changes"}` : "No changes match.";
      $("c-page").textContent = `Page ${state.page} of ${pages}`;
      $("c-prev").disabled = state.change || state.page <= 1;
      $("c-next").disabled = state.change || state.page >= pages;
      $("c-page").parentElement.hidden = Boolean(state.change) || pages <= 1;
      if (state.change) $(`change-${state.change}`)?.scrollIntoView({ block: "center" });
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
      $("changes-summary").textContent = "";
    }
  }

  $("changes-filters").addEventListener("change", () => {
    go({ kind: $("c-kind").value, actor: $("c-actor").value, page: 1, change: null });
  });
  $("changes-filters").addEventListener("submit", (event) => event.preventDefault());
  $("changes-filters").addEventListener("reset", (event) => {
    event.preventDefault();
    go({ kind: "", actor: "", page: 1, change: null });
  });
  $("changes-all").addEventListener("click", (event) => {
    event.preventDefault();
    go({ kind: "", actor: "", page: 1, change: null });
  });
  const turn = (step) => {
    go({ ...state, page: state.page + step });
    $("changes-summary").scrollIntoView({ block: "start" });
  };
  $("c-prev").addEventListener("click", () => turn(-1));
  $("c-next").addEventListener("click", () => turn(1));
  window.addEventListener("popstate", () => {
    state = fromUrl();
    load();
  });
  loadActors().then(load);
})();
