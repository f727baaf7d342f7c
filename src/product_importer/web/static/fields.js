// Fields page: every role reads the custom fields; admins add, edit (label, type, choices) and
// remove them. A removal is one change set, undone like any other.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const numberFormat = new Intl.NumberFormat();
  const retentionDays = $("fields-card").dataset.retentionDays;
  const admin = PI.can("admin") && !!$("field-form");
  let fields = [];
  let editing = null;
  let removing = null;
  let keyTouched = false;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function typeOptions(select) {
    select.replaceChildren(...Object.entries(PI.fields.TYPES).map(([value, words]) => el("option", { value }, `${words} (${value})`)));
  }

  function choicesOf(textarea) {
    return textarea.value.split("\n").map((line) => line.trim()).filter((line) => line);
  }

  // --- the table ------------------------------------------------------------------------------

  async function load() {
    try {
      fields = await PI.fields.list(true);
    } catch (error) {
      $("fields-summary").textContent = `Could not load the fields: ${error.message}`;
      return;
    }
    render();
  }

  function render() {
    const body = $("fields-body");
    body.replaceChildren();
    for (const field of fields) {
      const choices = (field.choices || []).join(", ");
      const row = el(
        "tr",
        { "data-key": field.key },
        el("td", { class: "col-key" }, el("code", {}, field.key)),
        el("td", {}, field.label),
        el("td", {}, PI.fields.TYPES[field.type] || field.type),
        el("td", { class: "col-choices", title: choices }, choices || "–"),
      );
      if (admin) {
        row.append(
          el(
            "td",
            { class: "col-actions" },
            el("button", { type: "button", class: "btn btn-small", "aria-label": `Edit field ${field.key}`, onclick: () => openEdit(field) }, "Edit"),
            el("button", { type: "button", class: "btn btn-small btn-danger-quiet", "aria-label": `Remove field ${field.key}`, onclick: () => openRemove(field) }, "Remove"),
          ),
        );
      }
      body.append(row);
    }
    $("fields-table").hidden = fields.length === 0;
    $("fields-empty").hidden = fields.length > 0;
    $("fields-summary").textContent = `${numberFormat.format(fields.length)} ${fields.length === 1 ? "field" : "fields"} defined.`;
  }

  // --- errors next to the input they are about ----------------------------------------------

  function clearErrors(prefix, names, box) {
    for (const name of names) {
      const error = $(`${prefix}-${name}-error`);
      if (error) error.textContent = "";
      $(`${prefix}-${name}`).removeAttribute("aria-invalid");
    }
    $(box).hidden = true;
  }

  function showError(prefix, names, box, error) {
    // 422 from validation names the input in `loc`; a plain sentence goes above the form.
    const detail = error.body && error.body.detail;
    let placed = false;
    if (Array.isArray(detail)) {
      for (const item of detail) {
        const name = (item.loc || []).slice(1).find((part) => names.includes(part));
        if (name && $(`${prefix}-${name}-error`)) {
          $(`${prefix}-${name}-error`).textContent = String(item.msg).replace(/^Value error, /, "");
          $(`${prefix}-${name}`).setAttribute("aria-invalid", "true");
          placed = true;
        }
      }
    } else if (error.status === 409 && prefix === "nf") {
      $("nf-key-error").textContent = error.message;
      $("nf-key").setAttribute("aria-invalid", "true");
      placed = true;
    }
    if (!placed) {
      $(box).textContent = error.message;
      $(box).hidden = false;
    }
    const invalid = document.querySelector(`[id^="${prefix}-"][aria-invalid="true"]`);
    if (invalid) invalid.focus();
  }

  // --- add ----------------------------------------------------------------------------------

  function suggestKey(label) {
    let key = label
      .normalize("NFKD")
      .replace(/[^\x00-\x7f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "_")
      .replace(/^_+|_+$/g, "")
      .slice(0, 63);
    if (key && !/^[a-z]/.test(key)) key = `field_${key}`.slice(0, 63);
    return key;
  }

  async function create(event) {
    event.preventDefault();
    const names = ["label", "key", "choices"];
    clearErrors("nf", names, "field-form-error");
    const body = { key: $("nf-key").value.trim(), label: $("nf-label").value.trim(), type: $("nf-type").value };
    if (body.type === "choice") body.choices = choicesOf($("nf-choices"));
    const missing = [];
    if (!body.label) missing.push(["label", "Enter a label."]);
    if (!body.key) missing.push(["key", "Enter a key."]);
    else if (!/^[a-z][a-z0-9_]{0,62}$/.test(body.key)) missing.push(["key", "Use lower-case letters, digits and _, starting with a letter."]);
    if (body.type === "choice" && !body.choices.length) missing.push(["choices", "Enter at least one choice."]);
    if (missing.length) {
      for (const [name, message] of missing) {
        $(`nf-${name}-error`).textContent = message;
        $(`nf-${name}`).setAttribute("aria-invalid", "true");
      }
      $(`nf-${missing[0][0]}`).focus();
      return;
    }
    $("nf-create").disabled = true;
    try {
      const field = await PI.api("/api/fields", { method: "POST", json: body });
      PI.toast(`Field ${field.key} added.`, "success");
      $("field-form").reset();
      keyTouched = false;
      $("nf-choices-field").hidden = true;
      $("nf-label").focus();
      load();
    } catch (error) {
      showError("nf", names, "field-form-error", error);
    } finally {
      $("nf-create").disabled = false;
    }
  }

  // --- edit ---------------------------------------------------------------------------------

  function openEdit(field) {
    editing = field;
    clearErrors("ef", ["label", "choices"], "edit-field-error");
    $("edit-field-title").textContent = `Edit field ${field.key}`;
    $("ef-label").value = field.label;
    $("ef-type").value = field.type;
    $("ef-choices").value = (field.choices || []).join("\n");
    $("ef-choices-field").hidden = field.type !== "choice";
    $("edit-field-dialog").showModal();
    $("ef-label").focus();
  }

  async function saveEdit(event) {
    event.preventDefault();
    const field = editing;
    clearErrors("ef", ["label", "choices"], "edit-field-error");
    const body = {};
    const label = $("ef-label").value.trim();
    if (!label) {
      $("ef-label-error").textContent = "Enter a label.";
      $("ef-label").setAttribute("aria-invalid", "true");
      $("ef-label").focus();
      return;
    }
    if (label !== field.label) body.label = label;
    const type = $("ef-type").value;
    if (type !== field.type) body.type = type;
    if (type === "choice") {
      const choices = choicesOf($("ef-choices"));
      if (!choices.length) {
        $("ef-choices-error").textContent = "Enter at least one choice.";
        $("ef-choices").setAttribute("aria-invalid", "true");
        $("ef-choices").focus();
        return;
      }
      if (JSON.stringify(choices) !== JSON.stringify(field.choices || [])) body.choices = choices;
    }
    if (!Object.keys(body).length) {
      $("edit-field-dialog").close();
      return;
    }
    $("ef-save").disabled = true;
    try {
      await PI.api(`/api/fields/${field.id}`, { method: "PATCH", json: body });
      PI.toast(`Field ${field.key} saved.`, "success");
      $("edit-field-dialog").close();
      load();
    } catch (error) {
      // 409: some stored values do not convert to the new type; the server says how many.
      showError("ef", ["label", "choices"], "edit-field-error", error);
    } finally {
      $("ef-save").disabled = false;
    }
  }

  // --- remove -------------------------------------------------------------------------------

  function openRemove(field) {
    removing = field;
    $("remove-field-title").textContent = `Remove field ${field.key}`;
    $("remove-field-text").textContent = `Remove “${field.label}” (${field.key})? Every product loses its ${field.key} value, and the field leaves the product list, the import mapping and the export.`;
    $("remove-field-error").hidden = true;
    $("remove-field-confirm").disabled = false;
    $("remove-field-dialog").showModal();
    $("remove-field-dialog").querySelector("[data-close]").focus();
  }

  async function confirmRemove(event) {
    event.preventDefault();
    const field = removing;
    $("remove-field-confirm").disabled = true;
    try {
      const answer = await PI.api(`/api/fields/${field.id}`, { method: "DELETE" });
      $("remove-field-dialog").close();
      const count = answer.products || 0;
      $("removed-text").textContent =
        `Removed field ${field.key}: ${numberFormat.format(count)} ${count === 1 ? "product lost its" : "products lost their"} value. ` +
        `It can be undone for ${retentionDays} days, here or later on the `;
      if (answer.change_id) {
        const onPage = document.createElement("a");
        onPage.href = `/changes?change=${answer.change_id}#change-${answer.change_id}`;
        onPage.textContent = "Changes page";
        $("removed-text").append(onPage, ".");
      } else {
        $("removed-text").append("Changes page.");
      }
      const undo = $("removed-undo");
      undo.hidden = !answer.change_id;
      undo.onclick = () => PI.undo.change(answer.change_id, `the removal of field ${field.key}`, () => {
        $("removed-banner").hidden = true;
        load();
      });
      $("removed-banner").hidden = false;
      load();
    } catch (error) {
      $("remove-field-error").textContent = error.message;
      $("remove-field-error").hidden = false;
      $("remove-field-confirm").disabled = false;
    }
  }

  // --- wiring -------------------------------------------------------------------------------

  if (admin) {
    typeOptions($("nf-type"));
    typeOptions($("ef-type"));
    $("nf-type").addEventListener("change", () => {
      $("nf-choices-field").hidden = $("nf-type").value !== "choice";
    });
    $("ef-type").addEventListener("change", () => {
      $("ef-choices-field").hidden = $("ef-type").value !== "choice";
    });
    $("nf-key").addEventListener("input", () => (keyTouched = $("nf-key").value !== ""));
    $("nf-label").addEventListener("input", () => {
      if (!keyTouched) $("nf-key").value = suggestKey($("nf-label").value);
    });
    $("field-form").addEventListener("submit", create);
    $("edit-field-form").addEventListener("submit", saveEdit);
    $("remove-field-form").addEventListener("submit", confirmRemove);
    for (const close of document.querySelectorAll("dialog [data-close]")) {
      close.addEventListener("click", () => close.closest("dialog").close());
    }
  }
  load();
})();
