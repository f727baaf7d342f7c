// The Products page: filter, sort and page the catalogue; create, edit, delete; export; delete all.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const FILTERS = ["q", "sku", "name", "description", "active"];
  const SORTS = ["sku", "-sku", "name", "-name", "updated_at", "-updated_at", "created_at", "-created_at"];
  const BUILT_IN = new Set(["sku", "name", "description", "active"]);
  // A custom field filter in the URL: field.<key> or field.<key>.<operator>.
  const FIELD_PARAM = /^field\.([a-z][a-z0-9_]*)(?:\.(contains|gt|gte|lt|lte|set))?$/;
  const COLUMNS_KEY = "products.columns";
  const numberFormat = new Intl.NumberFormat();
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  const state = { page: 1, pageSize: 50, sort: "sku", filters: {}, total: 0, estimate: false, items: [] };
  // Bulk selection: products picked one by one (id -> product), or every product matching the
  // filters (`allMatching`, with the exact count the user confirms, and whether that is every
  // product: deleting every product is the admin's, as Delete all is).
  const selection = { ids: new Map(), allMatching: false, matched: 0, everything: false };
  const retentionDays = document.getElementById("table-card").dataset.retentionDays;
  let loadSeq = 0;
  let debounceTimer = null;
  // The custom fields (GET /api/fields), by key, and those the user shows as columns.
  let fields = [];
  let fieldsByKey = new Map();
  let columns = [];
  let fieldsReady = Promise.resolve();

  // --- URL <-> state ------------------------------------------------------------------------

  // `keepTyped`: on the first load, text typed into a filter while the page was still starting
  // is kept (and searched for) rather than replaced by the URL's empty value.
  function readUrl({ keepTyped = false } = {}) {
    const params = new URLSearchParams(location.search);
    const form = $("filters");
    state.filters = {};
    for (const key of FILTERS) {
      const value = params.get(key) || (keepTyped ? form.elements[key].value.trim() : "");
      if (value) state.filters[key] = value;
    }
    // One custom field filter (the first the URL names, of a defined field).
    let fieldFilter = null;
    for (const [name, value] of params) {
      const match = FIELD_PARAM.exec(name);
      if (match && value && fieldsByKey.has(match[1])) {
        fieldFilter = { key: match[1], op: match[2] === "set" ? `set:${value === "true"}` : match[2] || "", value };
        state.filters[name] = value;
        break;
      }
    }
    const page = parseInt(params.get("page") || "1", 10);
    state.page = Number.isFinite(page) && page > 0 ? page : 1;
    const size = parseInt(params.get("page_size") || "50", 10);
    state.pageSize = [25, 50, 100, 200].includes(size) ? size : 50;
    const sort = params.get("sort");
    state.sort = SORTS.includes(sort) || sortableField(sort) ? sort : "sku";
    for (const key of FILTERS) form.elements[key].value = state.filters[key] || "";
    $("page-size").value = String(state.pageSize);
    showFieldFilter(fieldFilter);
  }

  function query(extra = {}) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(state.filters)) if (value) params.set(key, value);
    Object.entries(extra).forEach(([key, value]) => params.set(key, value));
    return params;
  }

  // Each new view is a history entry (Back steps to the earlier results); the first load and a
  // step through history only read the URL.
  function writeUrl(how) {
    const params = query();
    if (state.sort !== "sku") params.set("sort", state.sort);
    if (state.page !== 1) params.set("page", state.page);
    if (state.pageSize !== 50) params.set("page_size", state.pageSize);
    const search = params.toString();
    const url = search ? `?${search}` : location.pathname;
    if (how === "push" && `?${search}` !== (location.search || "?")) history.pushState(null, "", url);
    else if (how === "replace") history.replaceState(null, "", url);
    $("export-csv").href = "/api/products/export" + (query().toString() ? `?${query()}` : "");
  }

  // --- loading and rendering ----------------------------------------------------------------

  async function load(how = "push", after = null) {
    writeUrl(how);
    const seq = ++loadSeq;
    const params = query({ page: state.page, page_size: state.pageSize, sort: state.sort });
    $("products-table").setAttribute("aria-busy", "true");
    try {
      const data = await PI.api(`/api/products?${params}`);
      if (seq !== loadSeq) return; // a newer request has been sent meanwhile
      Object.assign(state, {
        total: data.total,
        estimate: data.total_is_estimate,
        items: data.items,
      });
      render();
      if (after) after();
    } catch (error) {
      if (seq !== loadSeq) return;
      $("results-summary").textContent = `Could not load products: ${error.message}`;
      PI.toast(error.message, "error");
    } finally {
      if (seq === loadSeq) $("products-table").removeAttribute("aria-busy");
    }
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function button(label, className, onClick, attrs = {}) {
    const el = document.createElement("button");
    el.type = "button";
    el.className = className;
    el.textContent = label;
    Object.entries(attrs).forEach(([key, value]) => el.setAttribute(key, value));
    el.addEventListener("click", onClick);
    return el;
  }

  function totalText() {
    const n = numberFormat.format(state.total);
    return state.estimate ? `about ${n}` : n;
  }

  function render() {
    const body = $("products-body");
    body.replaceChildren();
    for (const product of state.items) {
      const tr = document.createElement("tr");
      tr.dataset.id = product.id;
      // Selecting is for bulk actions, which need the editor role.
      if (PI.can("editor")) {
        const pick = document.createElement("td");
        pick.className = "col-select";
        const box = document.createElement("input");
        box.type = "checkbox";
        box.checked = selection.allMatching || selection.ids.has(product.id);
        box.disabled = selection.allMatching;
        box.setAttribute("aria-label", `Select ${product.sku}`);
        box.addEventListener("change", () => {
          if (box.checked) selection.ids.set(product.id, product);
          else selection.ids.delete(product.id);
          renderSelection();
        });
        pick.appendChild(box);
        tr.appendChild(pick);
      }
      tr.appendChild(cell(product.sku, "col-sku"));
      // The name opens the product (read-only for a viewer); so does a click anywhere on the row.
      const nameCell = cell("", "col-name");
      nameCell.appendChild(button(product.name, "row-open", () => openEdit(product.id)));
      tr.appendChild(nameCell);
      const description = cell(product.description, "col-description");
      description.title = product.description;
      tr.appendChild(description);
      const activeCell = document.createElement("td");
      activeCell.className = "col-active";
      if (PI.can("editor")) {
        const toggle = button(product.active ? "Active" : "Inactive", "switch", () => toggleActive(product, toggle), {
          role: "switch",
          "aria-checked": String(product.active),
          "aria-label": `Active: ${product.sku}`,
        });
        activeCell.appendChild(toggle);
      } else {
        activeCell.textContent = product.active ? "Active" : "Inactive";
      }
      tr.appendChild(activeCell);
      for (const key of columns) tr.appendChild(fieldCell(fieldsByKey.get(key), (product.fields || {})[key]));
      const updated = cell(dateFormat.format(new Date(product.updated_at)), "col-updated");
      updated.title = product.updated_at;
      tr.appendChild(updated);
      const actions = document.createElement("td");
      actions.className = "col-actions";
      if (PI.can("editor")) {
        actions.appendChild(button("Edit", "btn btn-small", () => openEdit(product.id), { "aria-label": `Edit ${product.sku}` }));
        actions.appendChild(button("Delete", "btn btn-small btn-danger-quiet", () => openDelete(product), { "aria-label": `Delete ${product.sku}` }));
      }
      tr.appendChild(actions);
      body.appendChild(tr);
    }
    const filtered = Object.keys(state.filters).length > 0;
    const none = state.items.length === 0;
    // Products an undo restores reach the search index shortly after it: say so while a text
    // filter may miss them.
    $("empty-catalogue").hidden = !(none && !filtered && state.total === 0);
    $("empty-results").hidden = !(none && (filtered || state.total > 0));
    $("products-table").hidden = none;
    const first = (state.page - 1) * state.pageSize + 1;
    const last = first + state.items.length - 1;
    const noun = state.total === 1 ? "product" : "products";
    $("results-summary").textContent = none
      ? `${totalText()} ${noun}`
      : `Showing ${numberFormat.format(first)}–${numberFormat.format(last)} of ${totalText()} ${noun}`;
    const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
    $("page-number").value = state.page;
    $("page-number").max = pages;
    $("page-count").textContent = `of ${state.estimate ? "about " : ""}${numberFormat.format(pages)}`;
    document.querySelector(".pagination").hidden = none && state.page === 1;
    $("results-summary").hidden = none && !filtered && state.total === 0;
    $("prev-page").disabled = state.page <= 1;
    $("next-page").disabled = state.items.length < state.pageSize || state.page >= pages;
    for (const th of document.querySelectorAll("th[data-sort]")) {
      const key = th.dataset.sort;
      if (state.sort === key) th.setAttribute("aria-sort", "ascending");
      else if (state.sort === `-${key}`) th.setAttribute("aria-sort", "descending");
      else th.removeAttribute("aria-sort");
    }
    if ($("delete-all")) $("delete-all").disabled = state.total === 0 && !filtered;
    renderSelection();
  }

  // --- bulk selection and actions -----------------------------------------------------------

  function selectedCount() {
    return selection.allMatching ? selection.matched : selection.ids.size;
  }

  function selectsEverything() {
    if (selection.allMatching) return selection.everything;
    const filtered = Object.keys(state.filters).length > 0;
    return !filtered && !state.estimate && state.total > 0 && selection.ids.size >= state.total;
  }

  function renderSelection() {
    if (!$("select-page")) return; // a viewer selects nothing
    const count = selectedCount();
    const onPage = state.items.length;
    const pickedHere = state.items.filter((p) => selection.ids.has(p.id)).length;
    const header = $("select-page");
    header.checked = selection.allMatching || (onPage > 0 && pickedHere === onPage);
    header.indeterminate = !selection.allMatching && pickedHere > 0 && pickedHere < onPage;
    header.disabled = selection.allMatching || onPage === 0;
    $("bulk-bar").hidden = count === 0 || !PI.can("editor");
    const noun = count === 1 ? "product" : "products";
    $("bulk-count").textContent = selection.allMatching
      ? `All ${numberFormat.format(count)} ${noun} matching these filters are selected.`
      : `${numberFormat.format(count)} ${noun} selected.`;
    const more = $("bulk-all-matching");
    more.hidden = selection.allMatching || !(header.checked && state.total > onPage);
    more.textContent = `Select all ${totalText()} products matching these filters`;
    // The server refuses it anyway (403); an editor is not offered it.
    const adminOnly = selectsEverything() && !PI.can("admin");
    $("bulk-delete").hidden = adminOnly;
    $("bulk-delete-note").hidden = !adminOnly;
  }

  function clearSelection() {
    selection.ids.clear();
    selection.allMatching = false;
    selection.matched = 0;
    selection.everything = false;
  }

  function selectPage(checked) {
    for (const product of state.items) {
      if (checked) selection.ids.set(product.id, product);
      else selection.ids.delete(product.id);
    }
    render();
  }

  function bulkFilter() {
    const filter = {};
    for (const [key, value] of Object.entries(state.filters)) {
      filter[key] = key === "active" ? value === "true" : value;
    }
    return filter;
  }

  async function selectAllMatching() {
    // The list's total may be an estimate: ask for the exact number before offering it.
    try {
      const count = await PI.api("/api/products/bulk?dry_run=true", {
        method: "POST",
        json: { action: "activate", filter: bulkFilter() },
      });
      selection.ids.clear();
      selection.allMatching = true;
      selection.matched = count.matched;
      selection.everything = count.everything;
      render();
    } catch (error) {
      PI.toast(`Could not count the matching products: ${error.message}`, "error");
    }
  }

  const VERBS = { activate: "Activate", deactivate: "Deactivate", delete: "Delete", set_fields: "Set a field on" };
  let bulkAction = null;
  let bulkTimer = null;

  // Set a field: the chosen field's value input, fit for its type (empty unsets it).
  function bulkFieldChosen() {
    const field = fieldsByKey.get($("bulk-field").value);
    const input = PI.fields.input(field, "bulk-value", undefined);
    input.setAttribute("aria-describedby", "bulk-value-hint bulk-value-error");
    $("bulk-value").replaceWith(input);
    $("bulk-value-error").textContent = "";
    const count = selectedCount();
    const noun = count === 1 ? "product" : "products";
    $("bulk-confirm").textContent = `Set ${field.label} on ${numberFormat.format(count)} ${noun}`;
  }

  function openBulk(action) {
    bulkAction = action;
    const count = selectedCount();
    const noun = count === 1 ? "product" : "products";
    $("bulk-title").textContent = `${VERBS[action]} ${numberFormat.format(count)} ${noun}`;
    $("bulk-text").textContent =
      `${VERBS[action]} ${numberFormat.format(count)} ${noun}` +
      (selection.allMatching ? " matching these filters" : "") +
      `? It can be undone for ${retentionDays} days.`;
    $("bulk-set-fields").hidden = action !== "set_fields";
    $("bulk-bar-progress").hidden = true;
    $("bulk-undo").hidden = true;
    $("bulk-confirm").hidden = false;
    $("bulk-confirm").disabled = false;
    $("bulk-confirm").textContent = `${VERBS[action]} ${numberFormat.format(count)} ${noun}`;
    $("bulk-confirm").className = action === "delete" ? "btn btn-danger" : "btn btn-primary";
    $("bulk-cancel").textContent = "Cancel";
    if (action === "set_fields") bulkFieldChosen();
    $("bulk-dialog").showModal();
    (action === "set_fields" ? $("bulk-field") : $("bulk-cancel")).focus();
  }

  async function confirmBulk(event) {
    event.preventDefault();
    const body = selection.allMatching
      ? { action: bulkAction, filter: bulkFilter(), expected_total: selection.matched }
      : { action: bulkAction, ids: [...selection.ids.keys()] };
    if (bulkAction === "set_fields") {
      const field = fieldsByKey.get($("bulk-field").value);
      const read = PI.fields.read(field, $("bulk-value"));
      if (read.error) {
        $("bulk-value-error").textContent = read.error;
        $("bulk-value").setAttribute("aria-invalid", "true");
        $("bulk-value").focus();
        return;
      }
      body.fields = { [field.key]: read.value };
    }
    $("bulk-confirm").disabled = true;
    try {
      const change = await PI.api("/api/products/bulk", {
        method: "POST",
        body: PI.fields.json(body),
        headers: { "Content-Type": "application/json" },
      });
      $("bulk-set-fields").hidden = true;
      $("bulk-confirm").hidden = true;
      $("bulk-cancel").textContent = "Close";
      clearSelection();
      followBulk(change);
    } catch (error) {
      $("bulk-text").textContent = error.message;
      $("bulk-confirm").disabled = false;
    }
  }

  async function followBulk(change) {
    clearTimeout(bulkTimer);
    if (change.status === "completed") {
      const changed = bulkAction === "delete" ? change.deleted : change.updated;
      const done = { activate: "activated", deactivate: "deactivated", delete: "deleted", set_fields: "updated" }[bulkAction];
      $("bulk-text").textContent = `Done: ${numberFormat.format(changed)} ${changed === 1 ? "product" : "products"} ${done}. `;
      const onPage = document.createElement("a");
      onPage.href = `/changes?change=${change.id}#change-${change.id}`;
      onPage.textContent = `It can be undone later from the Changes page (“${change.title}”).`;
      $("bulk-text").append(onPage);
      $("bulk-bar-progress").hidden = true;
      const undo = $("bulk-undo");
      undo.hidden = false;
      undo.onclick = () => {
        $("bulk-dialog").close();
        PI.undo.change(change.id, change.title || `bulk ${bulkAction}`, () => load());
      };
      load();
      return;
    }
    if (change.status === "failed") {
      $("bulk-text").textContent = `The bulk action failed: ${change.error || "unknown error"} Nothing was changed.`;
      load();
      return;
    }
    $("bulk-bar-progress").hidden = false;
    $("bulk-bar-progress").value = change.percent;
    $("bulk-text").textContent = change.status === "queued" ? "Waiting for the catalogue to be free…" : `Working… ${change.percent.toFixed(0)}%`;
    bulkTimer = setTimeout(async () => {
      try {
        followBulk(await PI.api(`/api/changes/${change.id}`));
      } catch (error) {
        $("bulk-text").textContent = `Could not read progress: ${error.message}`;
      }
    }, 500);
  }

  // --- custom fields: columns, a filter, sorting ---------------------------------------------

  function sortableField(sort) {
    const match = /^-?field\.([a-z][a-z0-9_]*)$/.exec(sort || "");
    return !!match && fieldsByKey.has(match[1]);
  }

  function fieldCell(field, value) {
    const td = document.createElement("td");
    td.className = `col-field col-field-${field.type}`;
    td.dataset.label = field.label; // named inside the card on a phone
    const text = PI.fields.format(field, value);
    if (field.type === "url" && text) {
      const link = document.createElement("a");
      link.href = text;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      link.textContent = text;
      td.appendChild(link);
    } else {
      td.textContent = text;
    }
    td.title = text;
    return td;
  }

  function readColumns() {
    let saved = [];
    try {
      saved = JSON.parse(localStorage.getItem(COLUMNS_KEY) || "[]");
    } catch (_error) {
      saved = [];
    }
    return Array.isArray(saved) ? saved.filter((key) => fieldsByKey.has(key)) : [];
  }

  function saveColumns() {
    try {
      localStorage.setItem(COLUMNS_KEY, JSON.stringify(columns));
    } catch (_error) {
      // Storage full or refused (private mode): the choice lasts until the page is left.
    }
  }

  // The chooser: one checkbox per defined field, in their order.
  function renderChooser() {
    $("columns-chooser").hidden = fields.length === 0;
    const list = $("columns-list");
    list.replaceChildren();
    for (const field of fields) {
      const label = document.createElement("label");
      label.className = "checkbox";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = field.key;
      box.checked = columns.includes(field.key);
      box.addEventListener("change", () => {
        const chosen = new Set([...list.querySelectorAll("input:checked")].map((input) => input.value));
        columns = fields.filter((f) => chosen.has(f.key)).map((f) => f.key);
        saveColumns();
        renderHeader();
        render();
      });
      label.append(box, ` ${field.label}`);
      list.appendChild(label);
    }
  }

  // Header cells of the chosen fields, before "Updated"; each sorts by its field.
  function renderHeader() {
    for (const th of document.querySelectorAll("#products-table th.col-field")) th.remove();
    const updated = $("th-updated");
    for (const key of columns) {
      const field = fieldsByKey.get(key);
      const th = document.createElement("th");
      th.scope = "col";
      th.className = "col-field";
      th.dataset.key = key;
      th.dataset.sort = `field.${key}`;
      const sort = document.createElement("button");
      sort.type = "button";
      sort.className = "sort";
      sort.textContent = field.label;
      th.appendChild(sort);
      updated.before(th);
    }
  }

  function fieldOption(value, text) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    return option;
  }

  // The filter row: a field, a condition that fits its type, and a value input of its type.
  function showFieldFilter(filter) {
    const keySelect = $("ff-key");
    keySelect.value = filter ? filter.key : "";
    fieldFilterChosen(filter);
  }

  function fieldFilterChosen(filter) {
    const field = fieldsByKey.get($("ff-key").value);
    const op = $("ff-op");
    op.replaceChildren();
    op.disabled = !field;
    if (field) {
      for (const [value, words] of PI.fields.operators(field.type)) {
        op.appendChild(fieldOption(value.startsWith("set=") ? `set:${value.slice(4)}` : value, words));
      }
      op.value = filter ? filter.op : "";
      if (op.selectedIndex < 0) op.value = "";
    }
    // The value input fits the type: yes/no and choices are picked, numbers and dates typed.
    const old = $("ff-value");
    let input;
    if (field && (field.type === "boolean" || field.type === "choice")) {
      input = document.createElement("select");
      input.appendChild(fieldOption("", "(choose)"));
      const values = field.type === "boolean" ? [["true", "Yes"], ["false", "No"]] : (field.choices || []).map((c) => [c, c]);
      for (const [value, words] of values) input.appendChild(fieldOption(value, words));
    } else {
      input = document.createElement("input");
      input.autocomplete = "off";
      input.maxLength = 200;
      input.type = field ? { integer: "number", decimal: "number", date: "date" }[field.type] || "search" : "search";
      if (field && field.type === "integer") input.step = "1";
      if (field && field.type === "decimal") input.step = "any";
    }
    input.id = "ff-value";
    input.name = "ff-value";
    input.value = filter && !String(filter.op).startsWith("set:") ? filter.value : "";
    old.replaceWith(input);
    fieldOpChosen();
  }

  function fieldOpChosen() {
    const field = fieldsByKey.get($("ff-key").value);
    const presence = $("ff-op").value.startsWith("set:");
    $("ff-value").disabled = !field || presence;
    $("ff-value-field").hidden = presence;
  }

  // The field filter as a query parameter, or null.
  function fieldFilterParam() {
    const key = $("ff-key").value;
    if (!fieldsByKey.has(key)) return null;
    const op = $("ff-op").value;
    if (op.startsWith("set:")) return [`field.${key}.set`, op.slice(4)];
    const value = $("ff-value").value.trim();
    if (!value) return null;
    return [op ? `field.${key}.${op}` : `field.${key}`, value];
  }

  // --- filters, sorting, paging -------------------------------------------------------------

  function filtersChanged(event) {
    const form = $("filters");
    if (event && event.target && event.target.id === "ff-key") fieldFilterChosen(null);
    if (event && event.target && event.target.id === "ff-op") fieldOpChosen();
    state.filters = {};
    for (const key of FILTERS) {
      const value = form.elements[key].value.trim();
      if (value) state.filters[key] = value;
    }
    const param = fieldFilterParam();
    if (param) state.filters[param[0]] = param[1];
    state.page = 1;
    clearSelection();
    clearTimeout(debounceTimer);
    debounceTimer = setTimeout(load, 300);
  }

  function filtersCleared() {
    // Runs after the form's reset has emptied the inputs.
    clearTimeout(debounceTimer);
    showFieldFilter(null);
    state.filters = {};
    state.page = 1;
    clearSelection();
    load();
  }

  // Next and Previous show the new page from its top.
  function goTo(page) {
    state.page = Math.max(1, page);
    load("push", () => $("table-card").scrollIntoView({ block: "start" }));
  }

  // --- create and edit ----------------------------------------------------------------------

  let editing = null; // {id, etag, fields} while editing, null while creating

  function resetFormErrors() {
    $("product-form-error").hidden = true;
    for (const field of ["sku", "name", "description"]) {
      $(`p-${field}-error`).textContent = "";
      $(`p-${field}`).removeAttribute("aria-invalid");
    }
    for (const error of $("p-fields-list").querySelectorAll(".field-error")) error.textContent = "";
    for (const input of $("p-fields-list").querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  }

  // `field` is a built-in name (sku, name, description) or a custom field's key.
  function fieldError(field, message) {
    const id = BUILT_IN.has(field) ? `p-${field}` : `pf-${field}`;
    const input = $(id);
    $(`${id}-error`).textContent = message;
    input.setAttribute("aria-invalid", "true");
    return input;
  }

  // One input per custom field, fit for its type, holding the product's values.
  function renderFieldInputs(values) {
    const list = $("p-fields-list");
    list.replaceChildren();
    $("p-fields").hidden = fields.length === 0;
    for (const field of fields) {
      const id = `pf-${field.key}`;
      const box = document.createElement("div");
      box.className = field.type === "text" || field.type === "list" || field.type === "url" ? "field field-wide" : "field";
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = field.label;
      const input = PI.fields.input(field, id, values[field.key]);
      const error = document.createElement("p");
      error.className = "field-error";
      error.id = `${id}-error`;
      error.setAttribute("role", "alert");
      input.setAttribute("aria-describedby", error.id);
      box.append(label, input, error);
      list.appendChild(box);
    }
  }

  // The custom field values to send: on create every value set, on edit only those changed
  // (null unsets one). Null when an input holds something its type does not take.
  function readFieldInputs() {
    const values = {};
    let first = null;
    for (const field of fields) {
      const input = $(`pf-${field.key}`);
      if (!input) continue;
      const read = PI.fields.read(field, input);
      if (read.error) {
        const bad = fieldError(field.key, read.error);
        first = first || bad;
        continue;
      }
      if (editing) {
        if (!PI.fields.same(read.value, editing.fields[field.key])) values[field.key] = read.value;
      } else if (read.value !== null) {
        values[field.key] = read.value;
      }
    }
    if (first) {
      first.focus();
      return null;
    }
    return values;
  }

  function showTab(name) {
    const history = name === "history";
    $("tab-details").setAttribute("aria-selected", String(!history));
    $("tab-history").setAttribute("aria-selected", String(history));
    $("tab-details").tabIndex = history ? -1 : 0;
    $("tab-history").tabIndex = history ? 0 : -1;
    $("panel-details").hidden = history;
    $("panel-history").hidden = !history;
    $("product-save").hidden = history || !PI.can("editor");
    if (history && editing) loadHistory(editing.id, 1);
  }

  const WHAT = { created: "Created", updated: "Updated", deleted: "Deleted" };

  function shown(value) {
    if (value === null || value === undefined) return "–";
    if (value === true) return "active";
    if (value === false) return "inactive";
    return value === "" ? "(empty)" : String(value);
  }

  // A custom field's change reads "Price (price): 19.99 → 21.5"; its name in the history may
  // be the key, or "fields.<key>" / "field.<key>".
  function historyLine(change) {
    const name = String(change.field);
    if (BUILT_IN.has(name)) return `${name}: ${shown(change.old)} → ${shown(change.new)}`;
    const key = name.replace(/^fields?\./, "");
    const field = fieldsByKey.get(key) || { key, label: key, type: "text" };
    const value = (v) => (v === null || v === undefined || v === "" ? "(not set)" : PI.fields.format(field, v));
    const title = field.label === key ? key : `${field.label} (${key})`;
    return `${title}: ${value(change.old)} → ${value(change.new)}`;
  }

  async function loadHistory(id, page) {
    const list = $("history-list");
    if (page === 1) list.replaceChildren();
    $("history-status").textContent = "Loading history…";
    try {
      const data = await PI.api(`/api/products/${id}/history?page=${page}&page_size=20`);
      for (const entry of data.items) {
        const item = document.createElement("li");
        const head = document.createElement("p");
        head.className = "history-head";
        const when = new Date(entry.at);
        head.textContent = `${WHAT[entry.action] || entry.action} · ${dateFormat.format(when)} · ${entry.who}`;
        item.appendChild(head);
        if (entry.changes.length) {
          const fields = document.createElement("ul");
          fields.className = "history-fields";
          for (const change of entry.changes) {
            const li = document.createElement("li");
            li.textContent = historyLine(change);
            fields.appendChild(li);
          }
          item.appendChild(fields);
        }
        list.appendChild(item);
      }
      const shownCount = list.children.length;
      $("history-status").textContent = data.total
        ? `${numberFormat.format(data.total)} ${data.total === 1 ? "change" : "changes"} recorded (kept ${retentionDays} days).`
        : `No changes recorded in the last ${retentionDays} days.`;
      const more = $("history-more");
      more.hidden = shownCount >= data.total;
      more.onclick = () => loadHistory(id, page + 1);
    } catch (error) {
      $("history-status").textContent = `Could not load the history: ${error.message}`;
    }
  }

  async function openCreate() {
    await fieldsReady;
    $("product-tabs").hidden = true;
    showTab("details");
    editing = null;
    $("product-form").reset();
    renderFieldInputs({});
    resetFormErrors();
    $("product-dialog-title").textContent = "New product";
    $("product-dialog").showModal();
    $("p-sku").focus();
  }

  async function openEdit(id) {
    await fieldsReady;
    // Read the product fresh, with its ETag, so a concurrent change is caught on save (412).
    const response = await fetch(`/api/products/${id}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) {
      PI.toast(response.status === 404 ? "That product no longer exists." : `Could not open the product (${response.status}).`, "error");
      if (response.status === 404) load();
      return;
    }
    const product = await response.json();
    editing = { id, etag: response.headers.get("ETag"), fields: product.fields || {} };
    $("product-tabs").hidden = false;
    showTab("details");
    renderFieldInputs(editing.fields);
    resetFormErrors();
    $("product-dialog-title").textContent = PI.can("editor") ? `Edit ${product.sku}` : product.sku;
    $("p-sku").value = product.sku;
    $("p-name").value = product.name;
    $("p-description").value = product.description;
    $("p-active").checked = product.active;
    readOnly(!PI.can("editor"));
    $("product-dialog").showModal();
    $("p-name").focus();
  }

  // A viewer reads the product (all of its description, its fields, its History), changing nothing.
  function readOnly(on) {
    for (const input of $("panel-details").querySelectorAll("input, textarea, select")) {
      if (input.type === "checkbox" || input.tagName === "SELECT") input.disabled = on;
      else input.readOnly = on;
    }
    $("p-fields").querySelector(".field-hint").hidden = on;
    $("product-save").hidden = on;
    $("product-dialog").querySelector("[data-close]").textContent = on ? "Close" : "Cancel";
  }

  function validate(data) {
    let first = null;
    const need = (field, ok, message) => {
      if (!ok) {
        const input = fieldError(field, message);
        first = first || input;
      }
    };
    need("sku", data.sku.length > 0, "Enter a SKU.");
    need("sku", data.sku.length <= 255, "A SKU can be at most 255 characters.");
    need("name", data.name.length > 0, "Enter a name.");
    need("name", data.name.length <= 500, "A name can be at most 500 characters.");
    need("description", data.description.length <= 10000, "A description can be at most 10,000 characters.");
    if (first) first.focus();
    return first === null;
  }

  function showServerError(error) {
    // 422 naming custom fields ("field 'price' is not a number"): each next to its input.
    if (error.status === 422 && typeof error.body?.detail === "string" && fields.length) {
      const named = PI.fields.named(fields, error);
      if (named.length && named.every((item) => item.key)) {
        named.map((item) => fieldError(item.key, item.message))[0].focus();
        return;
      }
    }
    if (error.status === 409) {
      fieldError("sku", error.message).focus();
    } else if (error.status === 422 && Array.isArray(error.body?.detail)) {
      let shown = false;
      for (const item of error.body.detail) {
        const field = (item.loc || [])[1];
        if (["sku", "name", "description"].includes(field)) {
          fieldError(field, item.msg.replace(/^Value error, /, ""));
          shown = true;
        }
      }
      if (!shown) formError(error.message);
    } else if (error.status === 412) {
      formError("Someone else changed this product while you were editing. Close this form and open the product again to see their change.");
    } else {
      formError(error.message);
    }
  }

  // Seen and read: scrolled into view, with focus on it.
  function formError(message) {
    const box = $("product-form-error");
    box.textContent = message;
    box.hidden = false;
    box.tabIndex = -1;
    box.scrollIntoView({ block: "nearest" });
    box.focus();
  }

  async function saveProduct(event) {
    event.preventDefault();
    resetFormErrors();
    const data = {
      sku: $("p-sku").value.trim(),
      name: $("p-name").value.trim(),
      description: $("p-description").value,
      active: $("p-active").checked,
    };
    if (!validate(data)) return;
    const values = readFieldInputs();
    if (values === null) return;
    if (Object.keys(values).length) data.fields = values;
    const save = $("product-save");
    save.disabled = true;
    // Whole numbers beyond 2^53 travel as BigInt: PI.fields.json writes them as JSON numbers.
    const body = PI.fields.json(data);
    try {
      if (editing) {
        const saved = await PI.undoToast.call(`/api/products/${editing.id}`, {
          method: "PATCH",
          body,
          headers: { "Content-Type": "application/json", "If-Match": editing.etag },
        });
        PI.undoToast.show(`Saved ${data.sku}.`, saved.changeId, () => load());
      } else {
        const made = await PI.undoToast.call("/api/products", { method: "POST", body, headers: { "Content-Type": "application/json" } });
        PI.undoToast.show(`Created ${data.sku}.`, made.changeId, () => load());
      }
      $("product-dialog").close();
      load();
    } catch (error) {
      showServerError(error);
    } finally {
      save.disabled = false;
    }
  }

  async function toggleActive(product, toggle) {
    toggle.disabled = true;
    try {
      const updated = await PI.undoToast.call(`/api/products/${product.id}`, { method: "PATCH", json: { active: !product.active } });
      Object.assign(product, updated.body);
      toggle.textContent = product.active ? "Active" : "Inactive";
      toggle.setAttribute("aria-checked", String(product.active));
      PI.undoToast.show(`${product.sku} is now ${product.active ? "active" : "inactive"}.`, updated.changeId, () => load());
    } catch (error) {
      PI.toast(error.message, "error");
    } finally {
      toggle.disabled = false;
    }
  }

  // --- delete one ---------------------------------------------------------------------------

  let deleting = null;

  function openDelete(product) {
    deleting = product;
    $("delete-dialog-text").textContent = `Delete ${product.sku} (${product.name})? Its history stays for ${retentionDays} days.`;
    $("delete-dialog").showModal();
    $("delete-dialog").querySelector("[data-close]").focus();
  }

  async function confirmDelete(event) {
    event.preventDefault();
    const product = deleting;
    $("delete-dialog").close();
    try {
      const gone = await PI.undoToast.call(`/api/products/${product.id}`, { method: "DELETE" });
      PI.undoToast.show(`Deleted ${product.sku}.`, gone.changeId, () => load());
    } catch (error) {
      PI.toast(error.status === 404 ? `${product.sku} was already deleted.` : error.message, "error");
    }
    if (state.items.length === 1 && state.page > 1) state.page -= 1;
    load();
  }

  // --- delete all ---------------------------------------------------------------------------

  let pollTimer = null;

  async function openDeleteAll() {
    $("delete-all-ask").hidden = false;
    $("delete-all-undo").hidden = true;
    $("delete-all-progress").hidden = true;
    $("delete-all-confirm").hidden = false;
    $("delete-all-cancel").textContent = "Cancel";
    $("delete-all-count").textContent = "Counting products…";
    $("delete-all-confirm").disabled = true;
    $("delete-all-dialog").showModal();
    $("delete-all-cancel").focus();
    try {
      const data = await PI.api("/api/products?page_size=1");
      const n = numberFormat.format(data.total);
      const what = data.total === 1 ? "1 product" : `${data.total_is_estimate ? "about " : ""}${n} products`;
      $("delete-all-count").textContent = `This deletes all ${what} in the catalogue, not only the ones shown.`;
      $("delete-all-confirm").textContent = `Delete all ${what}`;
      $("delete-all-confirm").disabled = data.total === 0;
    } catch (error) {
      $("delete-all-count").textContent = error.message;
    }
  }

  async function confirmDeleteAll(event) {
    event.preventDefault();
    $("delete-all-confirm").disabled = true;
    try {
      const job = await PI.api("/api/products?confirm=true", { method: "DELETE" });
      showProgress(job);
      pollJob(job.id);
    } catch (error) {
      $("delete-all-count").textContent = error.message;
      $("delete-all-confirm").disabled = false;
    }
  }

  function showProgress(job) {
    $("delete-all-ask").hidden = true;
    $("delete-all-progress").hidden = false;
    $("delete-all-confirm").hidden = true;
    $("delete-all-cancel").textContent = "Close";
    const bar = $("delete-all-bar");
    if (job.total) {
      bar.max = job.total;
      bar.value = job.deleted;
      $("delete-all-status").textContent = `Deleting… ${numberFormat.format(job.deleted)} of ${numberFormat.format(job.total)} products deleted.`;
    } else {
      bar.removeAttribute("value");
      $("delete-all-status").textContent = "Deleting… waiting for the job to start.";
    }
    const banner = $("delete-all-banner");
    banner.hidden = false;
    banner.textContent = $("delete-all-status").textContent;
  }

  function finishJob(job) {
    clearTimeout(pollTimer);
    const banner = $("delete-all-banner");
    banner.hidden = true;
    if (job.status === "completed") {
      const message = `Deleted all ${numberFormat.format(job.deleted)} products. This can be undone for ${retentionDays} days.`;
      const undo = $("delete-all-undo");
      undo.hidden = !job.change_id;
      undo.onclick = () => {
        $("delete-all-dialog").close();
        PI.undo.change(job.change_id, "the deletion of all products", () => load());
      };
      $("delete-all-status").textContent = `${message} `;
      if (job.change_id) {
        const onPage = document.createElement("a");
        onPage.href = `/changes?change=${job.change_id}#change-${job.change_id}`;
        onPage.textContent = "See it on the Changes page.";
        $("delete-all-status").append(onPage);
      }
      $("delete-all-bar").max = 1;
      $("delete-all-bar").value = 1;
      PI.toast(message, "success");
    } else {
      const message = `Deleting all products failed: ${job.error || "unknown error"}. Products that were not deleted are still there.`;
      $("delete-all-status").textContent = message;
      PI.toast(message, "error", 0);
    }
    load();
  }

  async function pollJob(id) {
    try {
      const job = await PI.api(`/api/products/delete-jobs/${id}`);
      if (job.status === "completed" || job.status === "failed") return finishJob(job);
      showProgress(job);
    } catch (error) {
      $("delete-all-status").textContent = `Could not read progress: ${error.message}`;
    }
    pollTimer = setTimeout(() => pollJob(id), 700);
  }

  async function resumeRunningJob() {
    try {
      const job = await PI.api("/api/products/delete-jobs/latest");
      if (job.status === "queued" || job.status === "running") {
        showProgress(job);
        pollJob(job.id);
      }
    } catch (error) {
      // 404: no delete-all has ever run.
    }
  }

  // --- wiring -------------------------------------------------------------------------------

  // The custom fields, then what depends on them: the columns, the filter row, the bulk action.
  async function loadFields() {
    try {
      fields = await PI.fields.list();
    } catch (error) {
      fields = [];
      PI.toast(`Could not load the custom fields: ${error.message}`, "error");
    }
    fieldsByKey = new Map(fields.map((field) => [field.key, field]));
    const keySelect = $("ff-key");
    for (const field of fields) keySelect.appendChild(fieldOption(field.key, field.label));
    $("field-filter").hidden = fields.length === 0;
    columns = readColumns();
    renderChooser();
    renderHeader();
    $("bulk-set_fields").hidden = fields.length === 0;
    for (const field of fields) $("bulk-field").appendChild(fieldOption(field.key, field.label));
  }

  function init() {
    // Every control works at once; the list loads once the fields are known (the URL may
    // filter or sort by one).
    fieldsReady = loadFields();
    const form = $("filters");
    form.addEventListener("input", filtersChanged);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(debounceTimer);
      filtersChanged();
    });
    form.addEventListener("reset", () => setTimeout(filtersCleared));
    $("empty-clear").addEventListener("click", () => form.reset());
    // Sort buttons, the custom field columns' too (those are added and removed).
    $("products-table").querySelector("thead").addEventListener("click", (event) => {
      const th = event.target.closest("button.sort") && event.target.closest("th[data-sort]");
      if (!th) return;
      const key = th.dataset.sort;
      state.sort = state.sort === key ? `-${key}` : key;
      state.page = 1;
      load();
    });
    // The columns chooser closes with Escape (focus back on its button) or a click elsewhere.
    const chooser = $("columns-chooser");
    chooser.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && chooser.open) {
        chooser.open = false;
        chooser.querySelector("summary").focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (chooser.open && !chooser.contains(event.target)) chooser.open = false;
    });
    $("prev-page").addEventListener("click", () => goTo(state.page - 1));
    $("next-page").addEventListener("click", () => goTo(state.page + 1));
    $("page-number").addEventListener("change", (event) => {
      const page = parseInt(event.target.value, 10);
      if (Number.isFinite(page) && page >= 1) goTo(page);
    });
    $("page-size").addEventListener("change", (event) => {
      state.pageSize = parseInt(event.target.value, 10);
      state.page = 1;
      load();
    });
    $("new-product")?.addEventListener("click", openCreate);
    $("select-page")?.addEventListener("change", (event) => selectPage(event.target.checked));
    // A click on a row, but on its controls, opens the product (by keyboard: Enter on its name).
    $("products-body").addEventListener("click", (event) => {
      if (event.target.closest("button, a, input, select, label, textarea")) return;
      const row = event.target.closest("tr[data-id]");
      if (row && !String(window.getSelection() || "")) openEdit(Number(row.dataset.id));
    });
    $("bulk-all-matching").addEventListener("click", selectAllMatching);
    $("bulk-clear").addEventListener("click", () => {
      clearSelection();
      render();
    });
    $("bulk-field").addEventListener("change", bulkFieldChosen);
    for (const action of Object.keys(VERBS)) {
      $(`bulk-${action}`).addEventListener("click", () => openBulk(action));
    }
    $("bulk-dialog").querySelector("form").addEventListener("submit", confirmBulk);
    $("bulk-cancel").addEventListener("click", () => $("bulk-dialog").close());
    $("bulk-dialog").addEventListener("close", () => clearTimeout(bulkTimer));
    $("tab-details").addEventListener("click", () => showTab("details"));
    $("tab-history").addEventListener("click", () => showTab("history"));
    $("product-tabs").addEventListener("keydown", (event) => {
      if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
        const toHistory = $("tab-details").getAttribute("aria-selected") === "true";
        showTab(toHistory ? "history" : "details");
        $(toHistory ? "tab-history" : "tab-details").focus();
      }
    });
    $("product-form").addEventListener("submit", saveProduct);
    $("delete-dialog").querySelector("form").addEventListener("submit", confirmDelete);
    $("delete-all")?.addEventListener("click", openDeleteAll);
    $("delete-all-dialog").querySelector("form").addEventListener("submit", confirmDeleteAll);
    for (const close of document.querySelectorAll("dialog [data-close]")) {
      close.addEventListener("click", () => close.closest("dialog").close());
    }
    fieldsReady.then(() => {
      readUrl({ keepTyped: true });
      load("replace");
    });
    window.addEventListener("popstate", () => {
      fieldsReady.then(() => {
        clearTimeout(debounceTimer);
        clearSelection();
        readUrl();
        load("none");
      });
    });
    resumeRunningJob();
  }

  init();
})();
