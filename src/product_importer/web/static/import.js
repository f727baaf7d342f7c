// Import page: upload with byte progress, then follow the job over Server-Sent Events.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("upload-form");
  const input = $("file-input");
  const dropzone = $("dropzone");
  const startButton = $("start-import");
  const card = $("job-card");
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const numberFormat = new Intl.NumberFormat();
  let stream = null;
  let currentJob = null;
  let historyPage = 1;
  // What screen reader users were last told about the job on show: they hear its milestones
  // (a new phase, each quarter of the file, the end), not every progress tick.
  let spoken = { id: null, status: null, phase: null, quarter: 0 };

  const fmt = (n) => (n === null || n === undefined ? "–" : numberFormat.format(Math.round(n)));
  const mb = (bytes) => (bytes / 1e6).toFixed(1) + " MB";

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    const m = Math.floor(seconds / 60);
    return `${m} min ${Math.round(seconds - m * 60)} s`;
  }

  // --- Mapping step: preview the file (its head, for a big CSV) and map its columns. ---
  const FIELDS = ["sku", "name", "description", "active"];
  const WORKBOOK = /\.(xlsx|xlsm|xlsb|xls|ods)$/i;
  const HEAD_BYTES = 256 * 1024;
  const mappingStep = $("mapping-step");
  let preview = null; // the last preview answer
  // How the file's mapping was first filled in (saved, suggested): still true when the step
  // previews again with that mapping (a grouping column ticked for it, an option changed).
  let firstIntro = "";
  let previewToken = 0;
  // Custom fields: those defined (from the preview), and what the person made of each column
  // proposed as a new field (column -> {keep, key, label, type}), kept across previews.
  let definedFields = [];
  let proposals = [];
  const proposalEdits = new Map();
  // The group column was ticked for this file already (it is ticked once, when suggested).
  let groupOffered = false;
  const NEW_FIELD_KEY = /^[a-z][a-z0-9_]{0,62}$/;

  // What the importer can never read, judged from the name and the first bytes before any
  // upload: the reason in words, or null when the file may be a CSV file or a workbook.
  const READABLE = /\.(csv|csv\.gz|gz|txt|tsv|xlsx|xlsm|xlsb|xls|ods)$/i;
  const MAGIC = [
    [[0x89, 0x50, 0x4e, 0x47], "a PNG image"],
    [[0xff, 0xd8, 0xff], "a JPEG image"],
    [[0x47, 0x49, 0x46, 0x38], "a GIF image"],
    [[0x25, 0x50, 0x44, 0x46], "a PDF document"],
    [[0x52, 0x61, 0x72, 0x21], "a RAR archive"],
    [[0x37, 0x7a, 0xbc, 0xaf], "a 7-Zip archive"],
  ];
  async function unreadable(file) {
    if (file.size === 0) return "it is empty";
    const head = new Uint8Array(await file.slice(0, 4096).arrayBuffer());
    const starts = (bytes) => bytes.every((byte, i) => head[i] === byte);
    for (const [bytes, what] of MAGIC) if (starts(bytes)) return `it is ${what}, not a CSV file or a spreadsheet`;
    if (!READABLE.test(file.name)) {
      return "its name does not end in .csv, .csv.gz, .txt, .tsv, .xlsx, .xls or .ods";
    }
    const zip = starts([0x50, 0x4b, 0x03, 0x04]);
    const ole = starts([0xd0, 0xcf, 0x11, 0xe0]);
    const gzip = starts([0x1f, 0x8b]);
    if (WORKBOOK.test(file.name)) {
      return zip || ole ? null : "it is named as a spreadsheet but is not one";
    }
    if (/\.gz$/i.test(file.name)) return gzip ? null : "it is named .gz but is not compressed with gzip";
    if (zip || ole || gzip) return "it is an archive or a spreadsheet under a text file's name";
    const utf16 = starts([0xff, 0xfe]) || starts([0xfe, 0xff]);
    if (!utf16 && head.includes(0)) return "it holds binary data, not text";
    if (!utf16 && !new TextDecoder("latin1").decode(head).trim()) return "it has no header row (only blank lines)";
    return null;
  }

  function refuse(file, reason) {
    $("file-refusal").textContent = `“${file.name}” cannot be imported: ${reason}. Choose a CSV file or a spreadsheet.`;
    startButton.disabled = true;
    input.setAttribute("aria-invalid", "true");
  }

  let chosenToken = 0;
  async function chosen() {
    const file = input.files && input.files[0];
    const token = ++chosenToken;
    $("file-refusal").textContent = "";
    input.removeAttribute("aria-invalid");
    blockImport(null);
    $("chosen-file").textContent = file ? `${file.name} (${mb(file.size)})` : "";
    startButton.disabled = true;
    if (file) {
      const reason = await unreadable(file).catch(() => null);
      if (token !== chosenToken) return;
      if (reason) {
        refuse(file, reason);
        mappingStep.hidden = true;
        $("review-mapping").hidden = true;
        return;
      }
    }
    startButton.disabled = !file;
    preview = null;
    firstIntro = "";
    mappingStep.hidden = true;
    $("review-mapping").hidden = true;
    $("read-encoding").value = "";
    $("read-sheet").replaceChildren();
    $("save-mapping").checked = false;
    $("mapping-name").disabled = true;
    $("preview-status").textContent = "";
    $("read-decimal").value = ".";
    $("read-empty-clear").checked = false;
    $("read-group-by").checked = false;
    $("read-variant-names").checked = false;
    $("group-options").hidden = true;
    groupOffered = false;
    proposalEdits.clear();
    proposals = [];
    if (file) loadPreview(file, {});
  }

  // Which column feeds each field: the built-ins, the custom fields, and (unless `withNew` is
  // false) the columns kept as new fields, under their new keys.
  function currentMapping(withNew = true) {
    const mapping = {};
    FIELDS.forEach((field) => {
      const value = $("map-" + field).value;
      if (value) mapping[field] = value;
    });
    for (const select of $("custom-mapping-grid").querySelectorAll("select[data-field]")) {
      if (select.value) mapping[select.dataset.field] = select.value;
    }
    if (withNew) for (const field of newFields()) mapping[field.key] = field.column;
    return mapping;
  }

  // The columns kept as new fields (admins only: the server refuses them from others).
  function newFields() {
    if (!PI.can("admin")) return [];
    return proposals
      .map((proposal) => proposalEdits.get(proposal.column))
      .filter((edit) => edit && edit.keep)
      .map((edit) => ({ column: edit.column, key: edit.key.trim(), label: edit.label.trim(), type: edit.type }));
  }

  // How values are read, and how rows group: sent with the preview and the import alike.
  function readingOptions(options) {
    if ($("read-decimal").value !== ".") options.decimal_separator = $("read-decimal").value;
    if ($("read-empty-clear").checked) options.empty_cells = "clear";
    const group = preview && preview.group_by_suggestion;
    if (group && !$("group-options").hidden && $("read-group-by").checked) {
      options.group_by = group;
      if ($("read-variant-names").checked) options.variant_names = "true";
    }
    return options;
  }

  function readOptions() {
    // What the import is sent: the mapping only when the header does not name our fields
    // as it is (or the person changed it), the encoding and sheet when chosen, how values are
    // read, and the new fields to create.
    const options = {};
    if (preview && !mappingStep.hidden) {
      options.mapping = JSON.stringify(currentMapping());
      const created = newFields();
      if (created.length) options.new_fields = JSON.stringify(created);
    }
    if ($("read-encoding").value) options.encoding = $("read-encoding").value;
    if ($("read-sheet").value && preview && preview.kind === "workbook") options.sheet = $("read-sheet").value;
    return readingOptions(options);
  }

  // Why the new fields cannot be sent as they are, with the input to fix; null when they can.
  function newFieldsProblem() {
    const taken = new Set(definedFields.map((field) => field.key));
    const seen = new Set();
    for (const [index, proposal] of proposals.entries()) {
      const edit = proposalEdits.get(proposal.column);
      if (!edit || !edit.keep || !PI.can("admin")) continue;
      const key = edit.key.trim();
      const where = `nf-${index}-key`;
      if (!NEW_FIELD_KEY.test(key)) return [where, `The key for “${proposal.column}” must be lower-case letters, digits and _, starting with a letter.`];
      if (taken.has(key) || FIELDS.includes(key)) return [where, `The key ${key} is taken already: choose another for “${proposal.column}”, or map the column to that field above.`];
      if (seen.has(key)) return [where, `Two new fields have the key ${key}.`];
      if (!edit.label.trim()) return [`nf-${index}-label`, `Give “${proposal.column}” a label.`];
      seen.add(key);
    }
    return null;
  }

  async function loadPreview(file, options) {
    const token = ++previewToken;
    const partial = !WORKBOOK.test(file.name) && file.size > HEAD_BYTES;
    const body = new FormData();
    body.append("file", partial ? file.slice(0, HEAD_BYTES) : file, file.name);
    Object.entries(options).forEach(([key, value]) => body.append(key, value));
    $("preview-status").textContent = "Reading the start of the file…";
    let response;
    let answer = null;
    try {
      response = await fetch("/api/imports/preview" + (partial ? "?partial=true" : ""), {
        method: "POST",
        body,
        headers: { "X-CSRF-Token": PI.csrf, Accept: "application/json" },
      });
      answer = await response.json().catch(() => null);
    } catch (_) {
      if (token === previewToken) $("preview-status").textContent = "The preview could not be loaded (connection lost).";
      return;
    }
    if (token !== previewToken) return; // a newer file or choice is being previewed
    if (!response.ok) {
      const detail = answer && typeof answer.detail === "string" ? answer.detail : `The server answered ${response.status}.`;
      $("preview-status").textContent = "";
      if (answer && Array.isArray(answer.sheets) && answer.sheets.length) fillSheets(answer.sheets, "");
      showUploadError(file.name, detail);
      return;
    }
    preview = answer;
    $("preview-status").textContent = "";
    showPreview(answer, !!options.mapping);
  }

  function fillSelect(select, columns, value) {
    const none = document.createElement("option");
    none.value = "";
    none.textContent = "(not imported)";
    const options = [none];
    columns.forEach((column) => {
      if (!column) return;
      const option = document.createElement("option");
      option.value = column;
      option.textContent = column;
      options.push(option);
    });
    select.replaceChildren(...options);
    select.value = value || "";
  }

  function fillSheets(sheets, value) {
    const select = $("read-sheet");
    select.replaceChildren(...sheets.map((name) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      return option;
    }));
    select.value = value || sheets[0] || "";
  }

  // One select per custom field, as for the built-ins.
  function fillCustomMapping(columns, mapping, keepValues) {
    const grid = $("custom-mapping-grid");
    const previous = new Map([...grid.querySelectorAll("select[data-field]")].map((s) => [s.dataset.field, s.value]));
    grid.replaceChildren();
    for (const field of definedFields) {
      const box = document.createElement("div");
      box.className = "field";
      const label = document.createElement("label");
      label.htmlFor = `map-f-${field.key}`;
      label.textContent = field.label;
      const kind = document.createElement("span");
      kind.className = "required";
      kind.textContent = ` (${field.key}, ${(PI.fields.TYPES[field.type] || field.type).toLowerCase()})`;
      label.appendChild(kind);
      const select = document.createElement("select");
      select.id = `map-f-${field.key}`;
      select.dataset.field = field.key;
      fillSelect(select, columns, keepValues ? previous.get(field.key) : (mapping || {})[field.key]);
      select.addEventListener("change", refreshPreview);
      box.append(label, select);
      grid.appendChild(box);
    }
    $("custom-mapping").hidden = definedFields.length === 0;
  }

  function el(tag, attrs = {}, text = "") {
    const node = document.createElement(tag);
    Object.entries(attrs).forEach(([key, value]) => node.setAttribute(key, value));
    if (text) node.textContent = text;
    return node;
  }

  // A value of the column from the preview's rows, to show what it holds.
  function sampleOf(column, answer) {
    const index = (answer.columns || []).indexOf(column);
    if (index < 0) return "";
    for (const row of answer.rows || []) {
      const value = (row.fields || [])[index];
      if (value && value.trim()) return value.trim();
    }
    return "";
  }

  // The columns no field takes, each with a proposed new field. An admin may keep them (and
  // change key, label and type); anyone else sees what an admin would have to create.
  function showProposals(answer) {
    proposals = Array.isArray(answer.proposed_fields) ? answer.proposed_fields : [];
    const box = $("proposals");
    box.replaceChildren();
    $("new-fields").hidden = proposals.length === 0;
    const admin = PI.can("admin");
    $("new-fields-intro").textContent = admin
      ? "Tick a column to keep it as a new custom field, created with the import. Check the key, label and type we suggest."
      : "An admin must create these fields before they can be imported; ask an admin, or import without them.";
    if (!admin) {
      const list = el("ul", { class: "proposal-list" });
      for (const proposal of proposals) {
        const sample = sampleOf(proposal.column, answer);
        list.appendChild(
          el("li", {}, `${proposal.column} → ${proposal.key} (${(PI.fields.TYPES[proposal.type] || proposal.type).toLowerCase()})${sample ? `, e.g. ${sample}` : ""}`),
        );
      }
      box.appendChild(list);
      return;
    }
    const types = Object.entries(PI.fields.TYPES).filter(([value]) => value !== "choice");
    proposals.forEach((proposal, index) => {
      const edit = proposalEdits.get(proposal.column) || { column: proposal.column, keep: false, key: proposal.key, label: proposal.label, type: proposal.type };
      proposalEdits.set(proposal.column, edit);
      const group = el("fieldset", { class: "proposal" });
      group.dataset.column = proposal.column;
      group.appendChild(el("legend", {}, proposal.column));
      const sample = sampleOf(proposal.column, answer);
      if (sample) group.appendChild(el("p", { class: "proposal-sample" }, `For example: ${sample.length > 80 ? sample.slice(0, 80) + "…" : sample}`));
      const keep = el("input", { type: "checkbox", id: `nf-${index}-keep` });
      keep.checked = edit.keep;
      const keepLabel = el("label", { class: "checkbox", for: `nf-${index}-keep` });
      keepLabel.append(keep, " Keep as a new field");
      group.appendChild(keepLabel);
      const grid = el("div", { class: "proposal-grid" });
      const inputs = [];
      for (const [name, words] of [["key", "Key"], ["label", "Label"], ["type", "Type"]]) {
        const id = `nf-${index}-${name}`;
        const field = el("div", { class: "field" });
        field.appendChild(el("label", { for: id }, words));
        let input;
        if (name === "type") {
          input = el("select", { id });
          for (const [value, text] of types) input.appendChild(el("option", { value }, text));
          if (!types.some(([value]) => value === edit.type)) edit.type = "text";
        } else {
          input = el("input", { id, type: "text", autocomplete: "off", spellcheck: "false", maxlength: name === "key" ? "63" : "100" });
        }
        input.value = edit[name];
        input.disabled = !edit.keep;
        input.addEventListener("input", () => {
          edit[name] = input.value;
          input.removeAttribute("aria-invalid");
        });
        inputs.push(input);
        field.appendChild(input);
        grid.appendChild(field);
      }
      keep.addEventListener("change", () => {
        edit.keep = keep.checked;
        inputs.forEach((input) => (input.disabled = !keep.checked));
      });
      group.appendChild(grid);
      box.appendChild(group);
    });
  }

  // Shopify-like files: rows sharing a group column (Handle) are one product's variants.
  function showGroupOptions(answer) {
    const column = answer.group_by_suggestion;
    $("group-options").hidden = !column;
    if (!column) return false;
    $("group-column").textContent = column;
    if (!groupOffered) {
      groupOffered = true;
      $("read-group-by").checked = true;
      $("read-variant-names").checked = true;
      return true; // ticked now: preview again with it
    }
    $("read-variant-names").disabled = !$("read-group-by").checked;
    return false;
  }

  function showPreview(answer, keepOpen) {
    if (Array.isArray(answer.fields)) definedFields = answer.fields;
    if (!keepOpen) {
      FIELDS.forEach((field) => fillSelect($("map-" + field), answer.columns, answer.mapping[field]));
    }
    fillCustomMapping(answer.columns, answer.mapping, keepOpen);
    showProposals(answer);
    const regroup = showGroupOptions(answer);
    $("encoding-field").hidden = answer.kind !== "csv";
    $("sheet-field").hidden = answer.kind !== "workbook";
    if (answer.kind === "workbook") fillSheets(answer.sheets, answer.sheet);
    if (answer.kind === "csv" && !$("read-encoding").value) {
      $("read-encoding").options[0].textContent = `Detected (${answer.encoding})`;
    }
    const intro = {
      header: "The file names our columns. Check the rows below.",
      saved: `Filled in from the saved mapping “${answer.saved_mapping}”. Check it and the rows below.`,
      suggested: "Your file has its own column names. Choose which column feeds each field; we suggested a match.",
      given: "Check the rows below; change a column to see its effect.",
    };
    const said = intro[answer.mapping_source] || "";
    if (answer.mapping_source !== "given") firstIntro = said;
    $("mapping-intro").textContent = answer.mapping_source === "given" && firstIntro ? firstIntro : said;
    const errorBox = $("mapping-error");
    errorBox.replaceChildren();
    if (answer.mapping_error) {
      const alert = document.createElement("div");
      alert.className = "alert alert-error";
      alert.setAttribute("role", "alert");
      alert.textContent = answer.mapping_error;
      errorBox.appendChild(alert);
    }
    renderPreviewRows(answer.rows, answer.mapping);
    // A header that names our fields needs no mapping, unless columns are left over that
    // could become new fields: then the step opens to show them.
    const matches = answer.header_matches && answer.mapping_source === "header" && !proposals.length;
    if (matches && !keepOpen) {
      mappingStep.hidden = true;
      $("review-mapping").hidden = false;
    } else {
      mappingStep.hidden = false;
      $("review-mapping").hidden = true;
    }
    startButton.disabled = !!answer.mapping_error && !mappingStep.hidden;
    const rows = answer.rows || [];
    if (rows.length && rows.every((row) => row.rejected)) {
      blockImport(`Import is off: every row of the preview is rejected (line ${rows[0].line}: ${rows[0].rejected.replace(/\.$/, "")}). Change the mapping or the file.`);
      if (mappingStep.hidden) {
        mappingStep.hidden = false;
        $("review-mapping").hidden = true;
      }
    } else {
      blockImport(null);
    }
    if (regroup) refreshPreview();
  }

  // Keep Import off while the preview rejects every row, saying why next to the button.
  let blocked = false;
  function blockImport(reason) {
    blocked = Boolean(reason);
    $("import-blocked").textContent = reason || "";
    $("import-blocked").hidden = !reason;
    if (reason) startButton.disabled = true;
  }

  function renderPreviewRows(rows, mapping) {
    const tbody = $("preview-table").querySelector("tbody");
    const active = (value) => (value === null ? "(unchanged)" : value ? "yes" : "no");
    // A column per custom field the mapping feeds, with the values as they would be stored.
    const shown = definedFields.filter((field) => mapping && mapping[field.key]);
    for (const th of $("preview-table").querySelectorAll("th.preview-field")) th.remove();
    for (const field of shown) {
      const th = el("th", { scope: "col", class: "preview-field" }, field.label);
      $("preview-check").before(th);
    }
    const value = (row, field) => {
      const values = row.field_values || {};
      if (!(field.key in values)) return row.rejected ? "" : "(unchanged)";
      return values[field.key] === null ? "(cleared)" : PI.fields.format(field, values[field.key]);
    };
    tbody.replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      if (row.rejected) tr.className = "rejected";
      const cells = [String(row.line), row.sku, row.name, row.description, row.rejected ? "" : active(row.active)];
      for (const field of shown) cells.push(value(row, field));
      cells.forEach((text) => {
        const td = document.createElement("td");
        td.textContent = text;
        td.title = text;
        tr.appendChild(td);
      });
      const check = document.createElement("td");
      check.className = "check";
      check.textContent = row.rejected ? `Rejected: ${row.rejected}` : "OK";
      tr.appendChild(check);
      return tr;
    }));
  }

  function refreshPreview() {
    const file = input.files && input.files[0];
    if (!file) return;
    const options = {};
    // Columns kept as new fields are previewed as not imported yet: their fields do not exist.
    if (!mappingStep.hidden) options.mapping = JSON.stringify(currentMapping(false));
    if ($("read-encoding").value) options.encoding = $("read-encoding").value;
    if ($("read-sheet").value) options.sheet = $("read-sheet").value;
    loadPreview(file, readingOptions(options));
  }

  async function saveMapping() {
    const name = $("mapping-name").value.trim();
    const response = await fetch("/api/import-mappings", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": PI.csrf, Accept: "application/json" },
      body: JSON.stringify({ name, mapping: currentMapping(false), header: preview ? preview.columns : [] }),
    });
    if (!response.ok) {
      const answer = await response.json().catch(() => null);
      const detail = answer && typeof answer.detail === "string" ? answer.detail : "The mapping could not be saved.";
      throw new Error(detail);
    }
    PI.toast(`Mapping “${name}” saved.`, "success");
  }

  // The upload form is only on the page for roles that may import.
  if (form) {
    // The defined fields, until a preview says which (it lists them too).
    PI.fields.list().then((fields) => {
      if (!definedFields.length) definedFields = fields;
    }, () => {});
    FIELDS.forEach((field) => $("map-" + field).addEventListener("change", refreshPreview));
    $("read-encoding").addEventListener("change", refreshPreview);
    $("read-decimal").addEventListener("change", refreshPreview);
    $("read-group-by").addEventListener("change", () => {
      $("read-variant-names").disabled = !$("read-group-by").checked;
      refreshPreview();
    });
    $("read-variant-names").addEventListener("change", refreshPreview);
    $("read-sheet").addEventListener("change", () => {
      // Another sheet has other columns: start again from a suggestion for it.
      const file = input.files && input.files[0];
      if (file) loadPreview(file, { sheet: $("read-sheet").value });
    });
    $("review-mapping").addEventListener("click", () => {
      mappingStep.hidden = false;
      $("review-mapping").hidden = true;
      $("map-sku").focus();
    });
    $("save-mapping").addEventListener("change", () => {
      $("mapping-name").disabled = !$("save-mapping").checked;
      if ($("save-mapping").checked) $("mapping-name").focus();
    });

    input.addEventListener("change", chosen);
    ["dragenter", "dragover"].forEach((type) =>
      dropzone.addEventListener(type, (event) => {
        event.preventDefault();
        dropzone.classList.add("dragging");
      }),
    );
    ["dragleave", "drop"].forEach((type) =>
      dropzone.addEventListener(type, () => dropzone.classList.remove("dragging")),
    );
    dropzone.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        chosen();
      }
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = input.files && input.files[0];
      if (!file || blocked || $("file-refusal").textContent) return;
      const problem = mappingStep.hidden ? null : newFieldsProblem();
      if (problem) {
        PI.toast(problem[1], "error");
        $(problem[0]).setAttribute("aria-invalid", "true");
        $(problem[0]).focus();
        return;
      }
      if (!mappingStep.hidden && $("save-mapping").checked) {
        if (!$("mapping-name").value.trim()) {
          PI.toast("Give the mapping a name to save it, or untick “Save this mapping”.", "error");
          $("mapping-name").focus();
          return;
        }
        try {
          await saveMapping();
        } catch (error) {
          PI.toast(error.message, "error");
          return;
        }
      }
      upload(file, $("dry-run").checked, readOptions());
    });
  }

  function upload(file, dryRun, options) {
    const body = new FormData();
    Object.entries(options || {}).forEach(([key, value]) => body.append(key, value));
    body.append("file", file);
    const request = new XMLHttpRequest();
    request.open("POST", "/api/imports" + (dryRun ? "?dry_run=true" : ""));
    request.setRequestHeader("X-CSRF-Token", PI.csrf);
    request.setRequestHeader("Accept", "application/json");
    startButton.disabled = true;
    showUploading(file.name, 0, file.size);
    PI.announce(`Uploading ${file.name}.`);
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) showUploading(file.name, e.loaded, e.total);
    });
    request.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
      if (request.status === 202 && body) {
        form.reset();
        previewToken++;
        chosen();
        follow(body);
        focusOutcome(card);
        loadHistory();
      } else if (request.status === 401) {
        location.href = "/login?next=/import";
      } else {
        const detail = body && typeof body.detail === "string" ? body.detail : `The server answered ${request.status}.`;
        showUploadError(file.name, detail);
        focusOutcome(card);
        startButton.disabled = false;
        if (body && body.suggested_mapping && preview) {
          // The header did not fit after all: open the mapping step with the suggestion.
          FIELDS.forEach((field) => fillSelect($("map-" + field), body.columns, body.suggested_mapping[field]));
          if (Array.isArray(body.fields)) definedFields = body.fields;
          fillCustomMapping(body.columns, body.suggested_mapping, false);
          if (Array.isArray(body.proposed_fields)) showProposals({ ...preview, ...body });
          mappingStep.hidden = false;
          $("review-mapping").hidden = true;
        }
      }
    });
    request.addEventListener("error", () => {
      showUploadError(file.name, "The upload failed: the connection was lost. Nothing was imported.");
      startButton.disabled = false;
    });
    request.send(body);
  }

  function showUploading(name, loaded, total) {
    card.hidden = false;
    $("job-title").textContent = name;
    setStatus("uploading", "Uploading");
    const percent = total ? (loaded / total) * 100 : 0;
    $("job-phase").textContent = `Uploading: ${mb(loaded)} of ${mb(total)}`;
    setBar(percent, "");
    clearOutcome();
    ["job-cancel", "job-retry", "job-errors"].forEach((id) => ($(id).hidden = true));
  }

  function showUploadError(name, message) {
    card.hidden = false;
    $("job-title").textContent = name;
    setStatus("failed", "Refused");
    $("job-phase").textContent = "The file was not accepted.";
    setBar(0, "failed");
    outcome("error", message);
  }

  function setStatus(status, label) {
    const badge = $("job-status");
    badge.className = `badge badge-${status}`;
    badge.textContent = label || status[0].toUpperCase() + status.slice(1);
  }

  function setBar(percent, state) {
    const bar = $("job-progress");
    bar.setAttribute("aria-valuenow", String(Math.round(percent)));
    bar.className = "progress" + (state ? " " + state : "");
    $("job-bar").style.width = percent + "%";
  }

  // The outcome box is rewritten only when what it says changes. A failure is an alert (read at
  // once); success and warnings are read through the page's announcer instead (see announceJob).
  function outcome(kind, message, items) {
    const box = $("job-outcome");
    const key = JSON.stringify([kind, message, items || []]);
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    const alert = document.createElement("div");
    alert.className = `alert alert-${kind}`;
    if (kind === "error") alert.setAttribute("role", "alert");
    alert.textContent = message;
    if (items && items.length) {
      const list = document.createElement("ul");
      items.forEach((text) => {
        const li = document.createElement("li");
        li.textContent = text;
        list.appendChild(li);
      });
      alert.appendChild(list);
    }
    box.replaceChildren(alert);
  }

  function clearOutcome() {
    const box = $("job-outcome");
    delete box.dataset.key;
    box.replaceChildren();
  }

  function mergedMessage(job) {
    const merged = job.rows_merged || 0;
    if (!merged) return "";
    const rows = merged === 1 ? "1 row" : `${fmt(merged)} rows`;
    const were = merged === 1 ? "was" : "were";
    if (job.group_by) {
      return ` ${rows} repeated an earlier SKU or belonged to an earlier row's product and ${were} merged into it; the last one won.`;
    }
    return ` ${rows} repeated an earlier SKU and ${were} merged; the last one won.`;
  }

  // Mirror mode: the products the file does not list (README "mirror mode").
  function missingMessage(job) {
    if (!job.missing || job.missing === "keep") return "";
    const n = job.rows_missing || 0;
    const done = job.missing === "delete" ? "deleted" : "deactivated";
    const verb = job.dry_run ? "would be" : n === 1 ? "was" : "were";
    return ` ${n === 1 ? "1 product" : `${fmt(n)} products`} not in the file ${verb} ${done}.`;
  }

  function outcomeMessage(job) {
    if (job.status === "completed") {
      const verb = job.dry_run ? "would create" : "created";
      return (
        `${job.dry_run ? "Dry run finished: nothing was changed. It" : "Import finished. It"} ${verb} ` +
        `${fmt(job.rows_created)}, ${job.dry_run ? "would update" : "updated"} ${fmt(job.rows_updated)}, ` +
        `left ${fmt(job.rows_unchanged)} unchanged and rejected ${fmt(job.rows_rejected)} ` +
        `of ${fmt(job.rows_processed)} rows in ${duration(job.duration_seconds)}.` +
        mergedMessage(job) +
        missingMessage(job) +
        (job.undone_by_change_id ? " It was undone since (see the Changes page)." : "")
      );
    }
    if (job.status === "failed") {
      if (job.refused) return job.error; // the mirror guard's own words say nothing changed
      return `Import failed: ${job.error || "unknown reason"} The catalogue was not changed.`;
    }
    if (job.status === "cancelled") return "Import cancelled. The catalogue was not changed.";
    return "";
  }

  function announceJob(job) {
    if (spoken.id !== job.id) {
      spoken = { id: job.id, status: null, phase: null, quarter: Math.floor(job.percent / 25) };
    }
    const quarter = Math.min(3, Math.floor(job.percent / 25));
    const name = job.filename + (job.dry_run ? " (dry run)" : "");
    if (TERMINAL.has(job.status)) {
      // A failure is announced by its alert.
      if (spoken.status !== job.status && job.status !== "failed") {
        PI.announce(`${name}: ${outcomeMessage(job)}`);
      }
    } else if (job.status !== spoken.status || job.phase !== spoken.phase) {
      const done = job.status === "running" ? `, ${Math.floor(job.percent)}% done` : "";
      PI.announce(`${name}: ${job.phase}${done}.`);
    } else if (job.status === "running" && quarter > spoken.quarter) {
      PI.announce(`${name}: ${quarter * 25}% done.`);
    }
    spoken.status = job.status;
    spoken.phase = job.phase;
    spoken.quarter = Math.max(spoken.quarter, quarter);
  }

  function render(job) {
    currentJob = job;
    card.hidden = false;
    $("job-title").textContent = job.filename + (job.dry_run ? " (dry run)" : "");
    setStatus(job.status);
    $("job-phase").textContent = job.phase;
    setBar(job.percent, job.status === "completed" ? "done" : job.status === "failed" ? "failed" : "");
    $("job-percent").textContent = `${job.percent.toFixed(job.percent < 100 ? 1 : 0)}%`;
    $("job-rows").textContent = fmt(job.rows_processed);
    $("job-rate").textContent = fmt(job.rows_per_second);
    $("job-eta").textContent = job.status === "running" ? duration(job.eta_seconds) : "–";
    const ended = TERMINAL.has(job.status);
    const counted = job.status === "completed";
    $("job-created").textContent = counted ? fmt(job.rows_created) : "–";
    $("job-updated").textContent = counted ? fmt(job.rows_updated) : "–";
    $("job-unchanged").textContent = counted ? fmt(job.rows_unchanged) : "–";
    $("job-rejected").textContent = fmt(job.rows_rejected);
    $("job-merged").textContent = counted ? fmt(job.rows_merged || 0) : "–";
    if (job.undone_by_change_id) setStatus("undone", "Undone");
    else if (job.dry_run && counted) setStatus("dry-run", "Dry run");
    $("job-cancel").hidden = ended || !PI.can("editor");
    $("job-retry").hidden = !(job.status === "failed" || job.status === "cancelled") || !PI.can("editor");
    const undo = $("job-undo");
    undo.hidden = !(job.status === "completed" && !job.dry_run && job.change_id && !job.undone_by_change_id) || !PI.can("editor");
    undo.onclick = () => PI.undo.importJob(job.id, `import ${job.id} (${job.filename})`, () => afterUndo(job.id));
    const errors = $("job-errors");
    errors.hidden = !(ended && job.rows_rejected > 0);
    errors.href = `/api/imports/${job.id}/errors`;
    if (ended) {
      const kind = { completed: "success", failed: "error", cancelled: "warning" }[job.status];
      outcome(kind, outcomeMessage(job), job.warnings);
    } else if (job.warnings.length) {
      outcome("warning", "Warnings:", job.warnings);
    } else {
      clearOutcome();
    }
    announceJob(job);
  }

  function connectionLost(lost) {
    $("job-connection").hidden = !lost;
  }

  // EventSource reconnects by itself after a dropped connection (the server resends the state),
  // but gives up for good on an HTTP error such as a proxy's 502 while a web process restarts:
  // then follow the job again from scratch, until it answers.
  function reconnectLater(jobId) {
    setTimeout(async () => {
      if (!currentJob || currentJob.id !== jobId) return;
      try {
        follow(await PI.api(`/api/imports/${jobId}`));
      } catch (error) {
        reconnectLater(jobId);
      }
    }, 3000);
  }

  // After Import the button is off and the form empty: focus goes to the outcome (the job card,
  // then its result once the job ends, if focus is still there), never to the page body.
  function focusOutcome(target) {
    target.tabIndex = -1;
    target.scrollIntoView({ block: "nearest" });
    target.focus({ preventScroll: true });
  }

  function follow(job) {
    if (stream) stream.close();
    stream = null;
    connectionLost(false);
    render(job);
    if (TERMINAL.has(job.status)) return;
    const source = new EventSource(`/api/imports/${job.id}/events`);
    stream = source;
    source.onopen = () => connectionLost(false);
    source.onerror = () => {
      if (stream !== source) return;
      connectionLost(true);
      if (source.readyState === EventSource.CLOSED) {
        stream = null;
        reconnectLater(job.id);
      }
    };
    source.onmessage = (event) => {
      const update = JSON.parse(event.data);
      connectionLost(false);
      render(update);
      if (TERMINAL.has(update.status)) {
        source.close();
        stream = null;
        if (document.activeElement === card || document.activeElement === document.body) focusOutcome($("job-outcome"));
        loadHistory();
        // The card says how it ended; a toast only for someone who scrolled away from it.
        const box = card.getBoundingClientRect();
        if (box.bottom < 0 || box.top > window.innerHeight) {
          const kind = update.status === "completed" ? "success" : update.status === "failed" ? "error" : "info";
          PI.toast(`Import of ${update.filename}: ${update.status}.`, kind);
        }
      }
    };
  }

  $("job-cancel").addEventListener("click", async () => {
    if (!currentJob) return;
    try {
      render(await PI.api(`/api/imports/${currentJob.id}/cancel`, { method: "POST" }));
    } catch (error) {
      PI.toast(error.message, "error");
    }
  });

  $("job-retry").addEventListener("click", async () => {
    if (!currentJob) return;
    try {
      follow(await PI.api(`/api/imports/${currentJob.id}/retry`, { method: "POST" }));
      loadHistory();
    } catch (error) {
      PI.toast(error.message, "error");
    }
  });

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  // After an undo: the history, and the card if it shows that import, say it was undone.
  async function afterUndo(jobId) {
    loadHistory();
    if (!currentJob || currentJob.id !== jobId) return;
    try {
      render(await PI.api(`/api/imports/${jobId}`));
    } catch (_error) {
      // The history shows it; the card keeps what it said.
    }
  }

  async function loadHistory() {
    let page;
    try {
      page = await PI.api(`/api/imports?page=${historyPage}&page_size=10`);
    } catch (error) {
      PI.toast(`Could not load the import history: ${error.message}`, "error");
      return;
    }
    const body = $("history").querySelector("tbody");
    body.replaceChildren();
    page.items.forEach((job) => {
      const row = document.createElement("tr");
      cell(row, job.filename + (job.dry_run ? " (dry run)" : ""), "file");
      const status = cell(row, "");
      const done = job.status === "completed";
      const undone = job.undone_by_change_id;
      const badge = document.createElement(undone ? "a" : "span");
      const shown = undone ? "undone" : done && job.dry_run ? "dry run" : job.status;
      badge.className = `badge badge-${shown.replace(" ", "-")}`;
      badge.textContent = shown;
      badge.title = job.error || job.phase;
      if (undone) {
        badge.href = `/changes?change=${undone}#change-${undone}`;
        badge.title = "Undone: see its undo on the Changes page";
        badge.setAttribute("aria-label", `undone: see the undo of ${job.filename} on the Changes page`);
      }
      status.appendChild(badge);
      const would = (verb, n) => {
        const td = cell(row, "", "num");
        if (!done) td.textContent = "–";
        else if (!job.dry_run) td.textContent = fmt(n);
        else td.append(Object.assign(document.createElement("span"), { className: "history-would", textContent: `would ${verb} ` }), fmt(n));
      };
      would("create", job.rows_created);
      would("update", job.rows_updated);
      cell(row, done ? fmt(job.rows_unchanged) : "–", "num");
      cell(row, fmt(job.rows_rejected), "num");
      cell(row, job.started_at ? new Date(job.started_at).toLocaleString() : "–");
      cell(row, duration(job.duration_seconds));
      const actions = cell(row, "");
      const view = document.createElement("button");
      view.type = "button";
      view.className = "btn btn-quiet";
      view.textContent = "Show";
      view.setAttribute("aria-label", `Show import ${job.id} of ${job.filename}`);
      view.addEventListener("click", () => {
        follow(job);
        card.scrollIntoView({ behavior: "smooth" });
      });
      actions.appendChild(view);
      if (done && !job.dry_run && job.change_id && !undone && PI.can("editor")) {
        const undo = document.createElement("button");
        undo.type = "button";
        undo.className = "btn btn-quiet";
        undo.textContent = "Undo";
        undo.setAttribute("aria-label", `Undo import ${job.id} of ${job.filename}`);
        undo.addEventListener("click", () => PI.undo.importJob(job.id, `import ${job.id} (${job.filename})`, () => afterUndo(job.id)));
        actions.appendChild(undo);
      }
      body.appendChild(row);
    });
    $("history-empty").hidden = page.total > 0;
    const pages = Math.max(1, Math.ceil(page.total / page.page_size));
    $("history-page").textContent = `Page ${historyPage} of ${pages}`;
    $("history-prev").disabled = historyPage <= 1;
    $("history-next").disabled = historyPage >= pages;
    // Coming back to the page while an import runs: show it.
    if (!currentJob) {
      const active = page.items.find((job) => !TERMINAL.has(job.status));
      if (active) follow(active);
    }
  }

  $("history-prev").addEventListener("click", () => { historyPage -= 1; loadHistory(); });
  $("history-next").addEventListener("click", () => { historyPage += 1; loadHistory(); });
  // /import?job=N (a feed run's link): open that import.
  const linked = Number(new URLSearchParams(location.search).get("job"));
  if (Number.isInteger(linked) && linked > 0) {
    PI.api(`/api/imports/${linked}`).then(follow).catch(() => {});
  }
  loadHistory();
})();
