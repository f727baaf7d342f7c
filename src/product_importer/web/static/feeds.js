// The Feeds page: scheduled imports from a URL or an SFTP server, their form (with a connection
// test that previews the file and maps its columns) and each feed's run history.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const list = $("fd-list");
  const formCard = $("fd-form-card"); // only on the page for editors and admins
  const form = $("fd-form");
  const confirmDialog = $("fd-confirm-dialog");
  const canEdit = PI.can("editor") && Boolean(form);
  const RUNNING = new Set(["queued", "fetching", "importing"]);
  const STATUS_WORDS = {
    queued: "Queued",
    fetching: "Fetching…",
    importing: "Importing…",
    imported: "Imported",
    unchanged: "Unchanged",
    failed: "Failed",
    refused: "Refused",
  };
  const MISSING_WORDS = {
    keep: "Kept",
    deactivate: "Deactivated",
    delete: "Deleted",
  };
  const BUILT_IN = [
    ["sku", "SKU", true],
    ["name", "Name", true],
    ["description", "Description", false],
    ["active", "Active", false],
  ];
  const POLL_MS = 2000;
  const IDLE_POLL_MS = 30000;
  const RUNS_SHOWN = 20;
  const numberFormat = new Intl.NumberFormat();

  let feeds = [];
  const openHistory = new Set(); // feed ids whose run history is shown
  const runsOf = new Map(); // feed id -> its runs, newest first
  const notes = new Map(); // feed id -> {kind, text}: the outcome of the last button pressed
  let pollTimer = null;
  let lastTrigger = null; // where focus returns when the form or the dialog closes

  // Small helpers ---------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  const fmt = (n) => (n === null || n === undefined ? "–" : numberFormat.format(n));

  function bytes(size) {
    if (size === null || size === undefined) return "";
    if (size < 1024) return `${size} bytes`;
    let value = size;
    for (const unit of ["KB", "MB", "GB"]) {
      value /= 1024;
      if (value < 1024 || unit === "GB") return `${value.toFixed(value < 10 ? 1 : 0)} ${unit}`;
    }
    return "";
  }

  function localTime(iso) {
    return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function relative(iso) {
    const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    const size = Math.abs(seconds);
    const [value, unit] =
      size < 60 ? [seconds, "second"]
      : size < 3600 ? [Math.round(seconds / 60), "minute"]
      : size < 86400 ? [Math.round(seconds / 3600), "hour"]
      : [Math.round(seconds / 86400), "day"];
    if (size < 5) return "just now";
    return new Intl.RelativeTimeFormat([], { numeric: "auto" }).format(value, unit);
  }

  // A time as local date and time, with how far it is from now.
  function when(iso) {
    if (!iso) return "–";
    return el("time", { datetime: iso }, `${localTime(iso)} (${relative(iso)})`);
  }

  function took(run) {
    if (!run.started_at || !run.finished_at) return "–";
    const seconds = (new Date(run.finished_at) - new Date(run.started_at)) / 1000;
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
    const minutes = Math.floor(seconds / 60);
    return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
  }

  // Host and path of a feed's address: never the user name in it, nor its query string.
  function source(url) {
    const match = /^([a-z][a-z0-9+.-]*):\/\/(?:[^@/?#]*@)?([^/?#]*)([^?#]*)/i.exec(url || "");
    if (!match) return { kind: "", text: url };
    return { kind: match[1].toUpperCase(), text: `${match[2]}${match[3]}` };
  }

  function badge(run) {
    const label = STATUS_WORDS[run.status] || run.status;
    return el("span", { class: `badge fd-status-${run.status}` }, run.dry_run ? `Dry run: ${label}` : label);
  }

  // What a finished run did, in words.
  function outcome(feed, run) {
    if (run.status === "imported") {
      const would = run.dry_run ? "would be " : "";
      const parts = [`${fmt(run.rows_created)} ${would}created`, `${fmt(run.rows_updated)} ${would}updated`];
      if (run.rows_missing) {
        const missing = (MISSING_WORDS[feed.missing] || "Left").toLowerCase();
        parts.push(`${fmt(run.rows_missing)} not in the file ${would}${missing}`);
      }
      return parts.join(", ");
    }
    if (RUNNING.has(run.status)) {
      if (run.status === "queued") return "Waiting to start.";
      if (run.status === "fetching") return "Fetching the file…";
      return "The file is being imported…";
    }
    return sentence(run.reason);
  }

  // Reasons are written to be composed ("the server answered 404"): shown alone, as a sentence.
  function sentence(text) {
    if (!text) return "";
    const capital = text[0].toUpperCase() + text.slice(1);
    return /[.!?]$/.test(capital) ? capital : `${capital}.`;
  }

  function openDialog(dialog, trigger) {
    lastTrigger = trigger || document.activeElement;
    dialog.showModal();
  }

  confirmDialog.addEventListener("click", (event) => {
    if (event.target.closest("[data-close]")) confirmDialog.close();
  });
  confirmDialog.addEventListener("close", () => {
    if (lastTrigger && document.contains(lastTrigger)) lastTrigger.focus();
  });

  // The list --------------------------------------------------------------------------------

  async function load() {
    try {
      feeds = await PI.api("/api/feeds");
      render();
      schedulePoll();
    } catch (error) {
      list.replaceChildren(el("div", { class: "alert alert-error", role: "alert" }, error.message));
    } finally {
      list.setAttribute("aria-busy", "false");
    }
  }

  // Rebuild the cards, keeping a keyboard user's place: the focused control, or its card's
  // first button when that control is gone.
  function render(focusId) {
    const active = document.activeElement;
    const wanted = focusId || (list.contains(active) ? active.id : "");
    const cardOf = list.contains(active) ? active.closest("[data-feed]") : null;
    if (!feeds.length) {
      list.replaceChildren($("fd-empty-template").content.cloneNode(true));
    } else {
      list.replaceChildren(...feeds.map(card));
    }
    const target =
      (wanted && document.getElementById(wanted)) ||
      (cardOf && list.querySelector(`[data-feed="${cardOf.dataset.feed}"] .fd-actions .btn`));
    if (target && (focusId || list.contains(active) || document.activeElement === document.body)) {
      target.focus({ preventScroll: !focusId });
    }
  }

  function card(feed) {
    const id = feed.id;
    const where = source(feed.url);
    const last = feed.last_run;
    const note = notes.get(id);
    const facts = [
      ["Source", [el("span", { class: "fd-source" }, where.text), where.kind ? el("span", { class: "fd-kind" }, where.kind) : null]],
      ["Schedule", feed.schedule_text],
      ["Next run", feed.enabled ? when(feed.next_run_at) : "None: the feed is disabled"],
      ["Products not in the file", missingWords(feed)],
      ["Last run", last ? [badge(last), " ", el("span", { class: "fd-when" }, when(last.finished_at || last.started_at || last.created_at))] : "Not run yet"],
    ];
    const lastText = last ? outcome(feed, last) : "";
    return el(
      "article",
      { class: "card fd-card", "data-feed": id, "aria-labelledby": `fd-name-${id}` },
      el(
        "div",
        { class: "fd-card-top" },
        el("h2", { class: "fd-name", id: `fd-name-${id}` }, feed.name),
        el("span", { class: `fd-state ${feed.enabled ? "fd-state-on" : "fd-state-off"}` }, feed.enabled ? "Enabled" : "Disabled"),
      ),
      feed.alerting
        ? el(
            "p",
            { class: "alert alert-warning fd-alerting" },
            el("strong", {}, `Failing: the last ${feed.consecutive_failures} runs failed.`),
            last && last.reason ? ` ${sentence(last.reason)}` : "",
          )
        : null,
      el(
        "dl",
        { class: "fd-facts" },
        facts.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value))),
      ),
      lastText && !feed.alerting
        ? el("p", { class: `fd-last fd-last-${last.status}` }, lastText)
        : null,
      el(
        "div",
        { class: "fd-actions" },
        canEdit ? el("button", { type: "button", class: "btn", id: `fd-edit-${id}`, onclick: (e) => openForm(feed, e.currentTarget) }, "Edit") : null,
        canEdit ? el("button", { type: "button", class: "btn", id: `fd-run-${id}`, onclick: (e) => runFeed(feed, { dryRun: false }, e.currentTarget) }, "Run now") : null,
        canEdit ? el("button", { type: "button", class: "btn", id: `fd-dry-${id}`, onclick: (e) => runFeed(feed, { dryRun: true }, e.currentTarget) }, "Dry run") : null,
        el(
          "button",
          {
            type: "button",
            class: "btn",
            id: `fd-history-btn-${id}`,
            "aria-expanded": openHistory.has(id) ? "true" : "false",
            "aria-controls": `fd-history-${id}`,
            onclick: () => toggleHistory(id),
          },
          "History",
        ),
        canEdit ? el("button", { type: "button", class: "btn fd-delete", id: `fd-delete-${id}`, onclick: (e) => confirmDelete(feed, e.currentTarget) }, "Delete") : null,
      ),
      note ? el("p", { class: `fd-note fd-note-${note.kind}`, id: `fd-note-${id}` }, note.text) : null,
      el(
        "section",
        { class: "fd-history", id: `fd-history-${id}`, hidden: !openHistory.has(id), "aria-labelledby": `fd-history-title-${id}` },
        openHistory.has(id) ? historyView(feed) : null,
      ),
    );
  }

  function missingWords(feed) {
    if (feed.missing === "keep") return "Kept";
    const verb = feed.missing === "delete" ? "Deleted" : "Deactivated";
    return `${verb}; a run that would remove more than ${feed.max_missing_percent} % of the catalogue is refused`;
  }

  // Run history -----------------------------------------------------------------------------

  function historyView(feed) {
    const runs = runsOf.get(feed.id);
    const title = el("h3", { id: `fd-history-title-${feed.id}` }, `Run history of ${feed.name}`);
    if (runs === undefined) return [title, el("p", { class: "field-hint" }, "Loading runs…")];
    if (!runs.length) return [title, el("p", { class: "field-hint" }, "No runs yet.")];
    const head = ["Status", "Started", "Took", "File", "Result", "Import", "Actions"];
    return [
      title,
      el(
        "div",
        { class: "table-wrap", "data-label": `Run history of ${feed.name}` },
        el(
          "table",
          { class: "data-table fd-runs" },
          el("thead", {}, el("tr", {}, head.map((text, i) =>
            el("th", { scope: "col" }, i === head.length - 1 ? el("span", { class: "visually-hidden" }, text) : text)))),
          el("tbody", {}, runs.map((run, index) => runRow(feed, run, index === 0))),
        ),
      ),
    ];
  }

  // Only the newest run, when refused, offers to run again through the guard: an older
  // refusal was about another file.
  function runRow(feed, run, newest) {
    const fileBits = [run.filename, bytes(run.bytes), run.http_status ? `HTTP ${run.http_status}` : ""].filter(Boolean);
    const trigger = run.trigger === "schedule" ? "scheduled" : run.trigger;
    const confirmable = canEdit && newest && run.status === "refused";
    return el(
      "tr",
      { class: `fd-run fd-run-${run.status}`, "data-run": run.id },
      el("td", { "data-label": "Status" }, badge(run), el("span", { class: "fd-trigger" }, ` ${trigger}`)),
      el("td", { "data-label": "Started" }, run.started_at || run.created_at ? el("time", { datetime: run.started_at || run.created_at }, localTime(run.started_at || run.created_at)) : "–"),
      el("td", { "data-label": "Took" }, took(run)),
      el("td", { "data-label": "File", class: "fd-file" }, fileBits.join(" · ") || "–"),
      el("td", { "data-label": "Result", class: "fd-result" }, outcome(feed, run) || "–"),
      el(
        "td",
        { "data-label": "Import" },
        run.import_job_id
          ? el("a", { href: `/import?job=${run.import_job_id}`, "aria-label": `Import ${run.import_job_id} of run ${run.id}` }, `Import #${run.import_job_id}`)
          : "–",
      ),
      el(
        "td",
        { class: "fd-run-actions" },
        confirmable
          ? el(
              "button",
              {
                type: "button",
                class: "btn btn-small",
                id: `fd-confirm-run-${run.id}`,
                onclick: (e) => runFeed(feed, { dryRun: run.dry_run, confirm: true }, e.currentTarget),
              },
              "Run with confirmation",
            )
          : null,
      ),
    );
  }

  async function loadRuns(feedId) {
    try {
      runsOf.set(feedId, await PI.api(`/api/feeds/${feedId}/runs?limit=${RUNS_SHOWN}`));
    } catch (error) {
      if (!runsOf.has(feedId)) runsOf.set(feedId, []);
      notes.set(feedId, { kind: "error", text: `The run history could not be loaded: ${error.message}` });
    }
  }

  async function toggleHistory(feedId) {
    if (openHistory.has(feedId)) {
      openHistory.delete(feedId);
      render(`fd-history-btn-${feedId}`);
      return;
    }
    openHistory.add(feedId);
    render(`fd-history-btn-${feedId}`);
    await loadRuns(feedId);
    render();
    schedulePoll();
  }

  // While a run is on its way, read the feeds (and the open histories) every 2 s.
  function running() {
    return (
      feeds.some((feed) => feed.last_run && RUNNING.has(feed.last_run.status)) ||
      [...openHistory].some((id) => (runsOf.get(id) || []).some((run) => RUNNING.has(run.status)))
    );
  }

  // Otherwise every 30 s, for the runs the schedule starts and the times shown.
  let pollDelay = 0;
  function schedulePoll() {
    const delay = running() ? POLL_MS : IDLE_POLL_MS;
    if (pollTimer && pollDelay <= delay) return;
    clearTimeout(pollTimer);
    pollDelay = delay;
    pollTimer = setTimeout(async () => {
      pollTimer = null;
      await refresh();
      schedulePoll();
    }, delay);
  }

  async function refresh() {
    const before = new Map(feeds.map((feed) => [feed.id, feed.last_run]));
    try {
      feeds = await PI.api("/api/feeds");
    } catch (_error) {
      return; // a failed poll changes nothing shown; the next one tries again
    }
    await Promise.all([...openHistory].filter((id) => feeds.some((feed) => feed.id === id)).map(loadRuns));
    for (const feed of feeds) {
      const was = before.get(feed.id);
      const now = feed.last_run;
      if (was && now && was.id === now.id && RUNNING.has(was.status) && !RUNNING.has(now.status)) {
        if (notes.get(feed.id)?.kind === "info") notes.delete(feed.id);
        const what = `${now.dry_run ? "Dry run" : "Run"} ${(STATUS_WORDS[now.status] || now.status).toLowerCase()}`;
        PI.announce(`${feed.name}: ${what}. ${outcome(feed, now)}`);
      }
    }
    render();
  }

  // Actions ---------------------------------------------------------------------------------

  async function runFeed(feed, { dryRun, confirm = false }, button) {
    const focusId = button.id;
    button.disabled = true;
    const params = new URLSearchParams({ dry_run: String(dryRun), confirm_missing: String(confirm) });
    try {
      const run = await PI.api(`/api/feeds/${feed.id}/run?${params}`, { method: "POST" });
      const what = `${dryRun ? "Dry run" : "Run"} ${run.id} of ${feed.name} queued.`;
      notes.set(feed.id, { kind: "info", text: what });
      PI.announce(what);
      openHistory.add(feed.id);
      const current = feeds.find((item) => item.id === feed.id);
      if (current) current.last_run = run;
      await loadRuns(feed.id);
    } catch (error) {
      notes.set(feed.id, { kind: "error", text: error.message });
      PI.announce(error.message);
    }
    render(focusId);
    if (!document.getElementById(focusId)) $(`fd-history-btn-${feed.id}`)?.focus();
    schedulePoll();
  }

  function confirmDelete(feed, trigger) {
    $("fd-confirm-text").textContent =
      `Delete the feed “${feed.name}”? It stops running and its run history is deleted; the ` +
      "products it imported stay in the catalogue. This cannot be undone.";
    $("fd-confirm-error").textContent = "";
    const button = $("fd-confirm");
    button.onclick = async () => {
      button.disabled = true;
      try {
        await PI.api(`/api/feeds/${feed.id}`, { method: "DELETE" });
        feeds = feeds.filter((item) => item.id !== feed.id);
        openHistory.delete(feed.id);
        runsOf.delete(feed.id);
        notes.delete(feed.id);
        if (form && !formCard.hidden && editing && editing.id === feed.id) closeForm(null);
        lastTrigger = $("fd-add");
        confirmDialog.close();
        render();
        PI.toast(`Feed “${feed.name}” deleted.`, "success");
      } catch (error) {
        $("fd-confirm-error").textContent = error.message;
      } finally {
        button.disabled = false;
      }
    };
    openDialog(confirmDialog, trigger);
    confirmDialog.querySelector("[data-close]").focus();
  }

  // The form: add and edit ------------------------------------------------------------------

  let editing = null; // the feed being edited, or null when adding
  let headersTouched = false;
  let headerCount = 0;
  let preview = null; // the last test's preview
  let mappingTouched = false;
  let testToken = 0;
  let retestTimer = null;

  const COMMON_ZONES = [
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin",
    "Europe/Amsterdam", "Europe/Brussels", "Europe/Madrid", "Europe/Rome", "Europe/Vienna",
    "Europe/Zurich", "Europe/Stockholm", "Europe/Oslo", "Europe/Copenhagen", "Europe/Helsinki",
    "Europe/Warsaw", "Europe/Prague", "Europe/Budapest", "Europe/Athens", "Europe/Bucharest",
    "Europe/Istanbul", "Europe/Kyiv", "Europe/Moscow", "Africa/Cairo", "Africa/Johannesburg",
    "Africa/Lagos", "Africa/Nairobi", "Asia/Dubai", "Asia/Karachi", "Asia/Kolkata",
    "Asia/Dhaka", "Asia/Bangkok", "Asia/Jakarta", "Asia/Singapore", "Asia/Shanghai",
    "Asia/Hong_Kong", "Asia/Taipei", "Asia/Seoul", "Asia/Tokyo", "Australia/Perth",
    "Australia/Adelaide", "Australia/Sydney", "Australia/Brisbane", "Pacific/Auckland",
    "America/St_Johns", "America/Halifax", "America/New_York", "America/Toronto",
    "America/Chicago", "America/Mexico_City", "America/Denver", "America/Phoenix",
    "America/Los_Angeles", "America/Vancouver", "America/Anchorage", "Pacific/Honolulu",
    "America/Bogota", "America/Lima", "America/Santiago", "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
  ];
  const browserZone = (() => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    } catch (_error) {
      return "UTC";
    }
  })();

  // Field name in the API -> the control an error about it belongs next to.
  const CONTROLS = {
    name: "fd-name",
    url: "fd-url",
    schedule: "fd-schedule",
    timezone: "fd-timezone",
    headers: "fd-add-header",
    username: "fd-username",
    password: "fd-password",
    private_key: "fd-private-key",
    host_key: "fd-host-key",
    max_missing_percent: "fd-max-missing",
    failure_alert_after: "fd-alert-after",
    mapping: "fd-test",
    mapping_id: "fd-test",
    sheet: "fd-test",
    encoding: "fd-test",
    decimal_separator: "fd-test",
    empty_cells: "fd-test",
    group_by: "fd-test",
    variant_names: "fd-test",
    missing: "fd-max-missing",
    enabled: "fd-enabled",
  };
  const LABELS = {
    name: "Feed name",
    url: "File address",
    schedule: "Schedule",
    timezone: "Time zone",
    headers: "HTTP request headers",
    username: "User name",
    password: "Password",
    private_key: "SFTP private key",
    host_key: "SFTP server key fingerprint",
    max_missing_percent: "Share of the catalogue",
    failure_alert_after: "Failed runs before a warning",
    mapping: "Mapping",
  };

  function fieldError(field, message) {
    const box = form.querySelector(`[data-error-for="${field}"]`);
    const control = $(CONTROLS[field] || "");
    if (field === "mapping") {
      box.replaceChildren(message ? el("div", { class: "alert alert-error" }, message) : "");
    } else if (box) {
      box.textContent = message || "";
    }
    if (control && control.tagName !== "BUTTON") {
      if (message) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    }
  }

  function clearErrors() {
    for (const box of form.querySelectorAll("[data-error-for]")) {
      if (box.dataset.errorFor === "mapping") box.replaceChildren();
      else box.textContent = "";
    }
    for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
    const top = $("fd-form-error");
    top.hidden = true;
    top.replaceChildren();
  }

  // An API error as [field or null, sentence] pairs: FastAPI's list for a schema failure, or
  // the service's "field: reason" sentence.
  function problems(error) {
    const detail = error.body && error.body.detail;
    if (error.status === 409) return [["name", error.message]];
    if (Array.isArray(detail)) {
      return detail.map((item) => {
        const loc = item.loc || [];
        const field = loc[0] === "body" && typeof loc[1] === "string" ? loc[1] : null;
        const message = String(item.msg || "is invalid").replace(/^Value error, /, "");
        const where = field ? LABELS[field] || field : "";
        const rest = loc.slice(2).join(".");
        return [field, where ? `${where}${rest ? ` (${rest})` : ""}: ${message}` : message];
      });
    }
    if (typeof detail === "string") {
      const match = /^([a-z_]+): /.exec(detail);
      const field = match && match[1] in CONTROLS ? match[1] : null;
      return [[field, field && LABELS[field] ? `${LABELS[field]}: ${detail.slice(match[0].length)}` : detail]];
    }
    return [[null, error.message]];
  }

  // Say what is wrong at the top of the form and next to each field, and move focus to the
  // first field at fault (or to the message).
  function showProblems(found, lead) {
    const top = $("fd-form-error");
    top.replaceChildren(
      el("strong", {}, lead),
      el("ul", {}, found.map(([, message]) => el("li", {}, message))),
    );
    top.hidden = false;
    for (const [field, message] of found) if (field) fieldError(field, message);
    const first = found.find(([field]) => field && $(CONTROLS[field]));
    const target = first ? $(CONTROLS[first[0]]) : top;
    target.scrollIntoView({ block: "center" });
    target.focus({ preventScroll: true });
  }

  function fillZones() {
    const zones = [...new Set([browserZone, ...COMMON_ZONES])];
    $("fd-timezones").replaceChildren(...zones.map((zone) => el("option", { value: zone })));
  }

  function headerRow(name = "", saved = false) {
    const index = ++headerCount;
    const remove = el("button", { type: "button", class: "btn btn-small fd-header-remove", "aria-label": `Remove header ${index}` }, "Remove");
    const nameInput = el("input", {
      id: `fd-header-name-${index}`,
      class: "fd-header-name",
      maxlength: "100",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "Authorization",
    });
    nameInput.value = name;
    const valueInput = el("input", {
      id: `fd-header-value-${index}`,
      class: "fd-header-value",
      maxlength: "4000",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: saved ? "Saved: type it again to change the headers" : "Bearer …",
    });
    const row = el(
      "li",
      { class: "fd-header-row", "data-saved": saved ? name : null },
      el("div", { class: "field" }, el("label", { for: nameInput.id }, `Header ${index} name`), nameInput),
      el("div", { class: "field" }, el("label", { for: valueInput.id }, `Header ${index} value`), valueInput),
      remove,
    );
    const touched = () => {
      headersTouched = true;
      fieldError("headers", "");
    };
    nameInput.addEventListener("input", touched);
    valueInput.addEventListener("input", touched);
    remove.addEventListener("click", () => {
      touched();
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      (next ? next.querySelector("input") : $("fd-add-header")).focus();
    });
    return row;
  }

  function headerRows() {
    return [...$("fd-header-rows").querySelectorAll(".fd-header-row")].map((row) => ({
      name: row.querySelector(".fd-header-name").value.trim(),
      value: row.querySelector(".fd-header-value").value,
      saved: row.dataset.saved !== undefined,
      input: row.querySelector(".fd-header-value"),
    }));
  }

  function savedCredential(name, isSaved) {
    $(`fd-${name}-saved`).hidden = !isSaved;
    $(`fd-${name}-forget-label`).hidden = !isSaved;
    $(`fd-${name}-forget`).checked = false;
    $(`fd-${name}`).disabled = false;
  }

  function credentialsTouched() {
    return (
      headersTouched ||
      Boolean($("fd-password").value) ||
      Boolean($("fd-private-key").value.trim()) ||
      $("fd-password-forget").checked ||
      $("fd-private-key-forget").checked
    );
  }

  function missingChoice() {
    return form.querySelector('input[name="missing"]:checked').value;
  }

  function updateGuard() {
    $("fd-max-missing").disabled = missingChoice() === "keep";
  }

  function describeMapping(feed) {
    if (!feed) return "Test the connection to see the file and choose which column feeds each field.";
    if (feed.mapping) {
      const pairs = Object.entries(feed.mapping).map(([field, column]) => `${field} ← ${column}`);
      return `Saved mapping: ${pairs.join(", ")}. Test the connection to check it or change it.`;
    }
    if (feed.mapping_id) {
      return `The feed uses saved mapping ${feed.mapping_id}. Test the connection to check it or to map the columns here.`;
    }
    return "No mapping saved: the file's columns must be named sku, name, … Test the connection to map them.";
  }

  function openForm(feed, trigger) {
    editing = feed;
    lastTrigger = trigger || document.activeElement;
    clearErrors();
    resetTest();
    $("fd-form-title").textContent = feed ? `Edit feed: ${feed.name}` : "Add feed";
    $("fd-save").textContent = feed ? "Save changes" : "Save feed";
    $("fd-name").value = feed ? feed.name : "";
    $("fd-url").value = feed ? feed.url : "";
    $("fd-schedule").value = feed ? feed.schedule : "0 2 * * *";
    $("fd-timezone").value = feed ? feed.timezone : browserZone;
    $("fd-username").value = feed && feed.username ? feed.username : "";
    $("fd-password").value = "";
    $("fd-private-key").value = "";
    $("fd-host-key").value = feed && feed.host_key ? feed.host_key : "";
    const credentials = feed ? feed.credentials : [];
    savedCredential("password", credentials.includes("password"));
    savedCredential("private-key", credentials.includes("private_key"));
    headersTouched = false;
    headerCount = 0;
    const savedHeaders = credentials.filter((item) => item.startsWith("header:")).map((item) => item.slice(7));
    $("fd-header-rows").replaceChildren(...savedHeaders.map((name) => headerRow(name, true)));
    $("fd-headers-hint").textContent = savedHeaders.length
      ? "Saved headers keep their values while you leave them alone. To change any of them, type the values of all of them again."
      : "For example Authorization with Bearer ….";
    const missing = feed ? feed.missing : "keep";
    for (const radio of form.querySelectorAll('input[name="missing"]')) radio.checked = radio.value === missing;
    $("fd-max-missing").value = feed ? String(feed.max_missing_percent) : "10";
    $("fd-alert-after").value = feed ? String(feed.failure_alert_after) : "3";
    $("fd-enabled").checked = feed ? feed.enabled : true;
    const options = (feed && feed.options) || {};
    $("fd-encoding").value = (feed && feed.encoding) || "";
    $("fd-decimal").value = options.decimal_separator || ".";
    $("fd-empty-clear").checked = options.empty_cells === "clear";
    $("fd-sheet").replaceChildren(...(feed && feed.sheet ? [el("option", { value: feed.sheet }, feed.sheet)] : []));
    $("fd-mapping-saved").textContent = describeMapping(feed);
    updateGuard();
    formCard.hidden = false;
    formCard.scrollIntoView({ block: "start" });
    $("fd-name").focus({ preventScroll: true });
  }

  function closeForm(focusTarget) {
    testToken++;
    clearTimeout(retestTimer);
    formCard.hidden = true;
    editing = null;
    const target = focusTarget || lastTrigger;
    if (target && document.contains(target)) target.focus();
  }

  function resetTest() {
    testToken++;
    preview = null;
    mappingTouched = false;
    $("fd-test-status").textContent = "";
    $("fd-test-result").replaceChildren();
    $("fd-mapping").hidden = true;
    $("fd-mapping-grid").replaceChildren();
    $("fd-warnings").hidden = true;
    $("fd-mapping-error").replaceChildren();
    $("fd-preview-table").querySelector("tbody").replaceChildren();
    $("fd-test").disabled = false;
  }

  // The mapping as the selects hold it: our field -> the file's column.
  function currentMapping() {
    const mapping = {};
    for (const select of $("fd-mapping-grid").querySelectorAll("select[data-field]")) {
      if (select.value) mapping[select.dataset.field] = select.value;
    }
    return mapping;
  }

  // How to read the file, once the test showed it (else nothing: the saved ones stay).
  function readingFields(withMapping = true) {
    if (!preview) return {};
    const fields = {
      encoding: $("fd-encoding").value || null,
      sheet: preview.kind === "workbook" ? $("fd-sheet").value || null : null,
      decimal_separator: $("fd-decimal").value,
      empty_cells: $("fd-empty-clear").checked ? "clear" : "keep",
    };
    if (withMapping) {
      fields.mapping = currentMapping();
      fields.mapping_id = null;
    }
    return fields;
  }

  // Source and credentials for a test of what the form holds (write-only values as typed).
  function sourceFields() {
    const fields = { url: $("fd-url").value.trim() };
    const headers = {};
    for (const row of headerRows()) if (row.name && row.value) headers[row.name] = row.value;
    if (Object.keys(headers).length) fields.headers = headers;
    const username = $("fd-username").value.trim();
    if (username) fields.username = username;
    if ($("fd-password").value) fields.password = $("fd-password").value;
    if ($("fd-private-key").value.trim()) fields.private_key = $("fd-private-key").value.trim() + "\n";
    const hostKey = $("fd-host-key").value.trim();
    if (hostKey) fields.host_key = hostKey;
    return fields;
  }

  function headersProblem() {
    const rows = headerRows();
    const names = new Set();
    for (const row of rows) {
      if (!row.name && !row.value) continue;
      if (!row.name) return [row.input, "Give every header a name, or remove its row."];
      const key = row.name.toLowerCase();
      if (names.has(key)) return [row.input, `The header ${row.name} is there twice.`];
      names.add(key);
      if (!row.value) {
        return [
          row.input,
          row.saved
            ? `Type the value of ${row.name} again: saved values cannot be shown, and changed headers replace all saved ones.`
            : `Give the header ${row.name} a value.`,
        ];
      }
    }
    return null;
  }

  // What the form checks before it asks the server (which checks everything again).
  function formProblems() {
    const found = [];
    if (!$("fd-name").value.trim()) found.push(["name", "Feed name: enter a name."]);
    if (!$("fd-url").value.trim()) found.push(["url", "File address: enter the file's URL."]);
    if ($("fd-schedule").value.trim().split(/\s+/).filter(Boolean).length !== 5) {
      found.push(["schedule", "Schedule: give five fields, e.g. 0 2 * * * for every day at 02:00."]);
    }
    if (!$("fd-timezone").value.trim()) found.push(["timezone", "Time zone: enter one, e.g. Europe/Berlin."]);
    const percent = Number($("fd-max-missing").value);
    if ($("fd-max-missing").value === "" || !(percent >= 0 && percent <= 100)) {
      found.push(["max_missing_percent", "Share of the catalogue: a number from 0 to 100."]);
    }
    const after = Number($("fd-alert-after").value);
    if (!Number.isInteger(after) || after < 1 || after > 1000) {
      found.push(["failure_alert_after", "Failed runs before a warning: a whole number from 1 to 1000."]);
    }
    if (headersTouched) {
      const problem = headersProblem();
      if (problem) found.push(["headers", `HTTP request headers: ${problem[1]}`]);
    }
    return found;
  }

  // The form's own settings, as the API names them.
  function settingFields() {
    return {
      name: $("fd-name").value.trim(),
      schedule: $("fd-schedule").value.trim().replace(/\s+/g, " "),
      timezone: $("fd-timezone").value.trim(),
      missing: missingChoice(),
      max_missing_percent: Number($("fd-max-missing").value),
      failure_alert_after: Number($("fd-alert-after").value),
      enabled: $("fd-enabled").checked,
    };
  }

  function createBody() {
    const body = { ...settingFields(), ...sourceFields(), ...readingFields() };
    if (body.mapping && !Object.keys(body.mapping).length) delete body.mapping;
    if (body.mapping_id === null) delete body.mapping_id;
    return body;
  }

  function sameMapping(a, b) {
    const keys = (mapping) => Object.keys(mapping || {}).sort();
    return JSON.stringify(keys(a).map((k) => [k, a[k]])) === JSON.stringify(keys(b).map((k) => [k, b[k]]));
  }

  // Only what changed: the server takes a field given as a field changed (a URL given again
  // forgets the trusted server key, and the next file is imported even if it is the same).
  // A write-only credential left empty keeps the saved one.
  function updateBody(feed) {
    const body = {};
    const wanted = { ...settingFields(), url: $("fd-url").value.trim() };
    for (const [key, value] of Object.entries(wanted)) if (value !== feed[key]) body[key] = value;
    if (preview) {
      const reading = readingFields();
      const mapping = Object.keys(reading.mapping).length ? reading.mapping : null;
      if (feed.mapping_id || !sameMapping(mapping, feed.mapping)) {
        body.mapping = mapping;
        if (feed.mapping_id) body.mapping_id = null;
      }
      const options = feed.options || {};
      const saved = {
        encoding: feed.encoding,
        sheet: feed.sheet,
        decimal_separator: options.decimal_separator || ".",
        empty_cells: options.empty_cells || "keep",
      };
      for (const [key, value] of Object.entries(saved)) {
        if (reading[key] !== (value ?? null)) body[key] = reading[key];
      }
    }
    if (headersTouched) {
      const headers = {};
      for (const row of headerRows()) if (row.name) headers[row.name] = row.value;
      body.headers = Object.keys(headers).length ? headers : null;
    }
    const username = $("fd-username").value.trim();
    if (username !== (feed.username || "")) body.username = username || null;
    if ($("fd-password").value) body.password = $("fd-password").value;
    else if ($("fd-password-forget").checked) body.password = null;
    if ($("fd-private-key").value.trim()) body.private_key = $("fd-private-key").value.trim() + "\n";
    else if ($("fd-private-key-forget").checked) body.private_key = null;
    const hostKey = $("fd-host-key").value.trim();
    if (hostKey !== (feed.host_key || "")) body.host_key = hostKey || null;
    return body;
  }

  // Test connection ------------------------------------------------------------------------

  // A saved feed's own credentials can only be used by testing the saved feed; the form's are
  // used whenever it holds all it needs (no saved secret, or new ones typed).
  function testsSavedFeed() {
    return Boolean(
      editing &&
        editing.credentials.length &&
        !credentialsTouched() &&
        $("fd-url").value.trim() === editing.url,
    );
  }

  async function testConnection({ withMapping = true } = {}) {
    clearTimeout(retestTimer);
    fieldError("url", "");
    if (!$("fd-url").value.trim()) {
      fieldError("url", "Enter the file's URL to test it.");
      $("fd-url").focus();
      return;
    }
    if (headersTouched) {
      const problem = headersProblem();
      if (problem) {
        fieldError("headers", problem[1]);
        problem[0].focus();
        return;
      }
    }
    const token = ++testToken;
    const saved = testsSavedFeed();
    const button = $("fd-test");
    button.disabled = true;
    $("fd-test-status").textContent = "Fetching the file…";
    $("fd-test-result").setAttribute("aria-busy", "true");
    let answer;
    try {
      if (saved) {
        answer = await PI.api(`/api/feeds/${editing.id}/test`, { method: "POST" });
      } else {
        const body = {
          name: $("fd-name").value.trim() || "Connection test",
          schedule: "0 0 * * *",
          timezone: "UTC",
          ...sourceFields(),
          ...readingFields(withMapping),
        };
        if (!preview && editing) {
          if (editing.mapping) body.mapping = editing.mapping;
          else if (editing.mapping_id) body.mapping_id = editing.mapping_id;
          if (editing.sheet) body.sheet = editing.sheet;
          if (editing.encoding) body.encoding = editing.encoding;
        }
        if (body.mapping && !Object.keys(body.mapping).length) delete body.mapping;
        if (body.mapping_id === null) delete body.mapping_id;
        answer = await PI.api("/api/feeds/test", { method: "POST", json: body });
      }
    } catch (error) {
      if (token !== testToken) return;
      $("fd-test-status").textContent = "";
      const found = problems(error);
      const said = `The test could not run: ${found.map(([, message]) => message).join(" ")}`;
      $("fd-test-result").replaceChildren(el("div", { class: "alert alert-error" }, said));
      PI.announce(said);
      for (const [field, message] of found) if (field) fieldError(field, message);
      return;
    } finally {
      if (token === testToken) {
        button.disabled = false;
        $("fd-test-result").removeAttribute("aria-busy");
      }
    }
    if (token !== testToken) return;
    showTest(answer, saved);
  }

  function showTest(answer, saved) {
    const box = $("fd-test-result");
    $("fd-test-status").textContent = "";
    const parts = [];
    const unknownKey = Boolean(answer.host_key && answer.host_key_known === false);
    const trusted = saved ? editing.host_key : $("fd-host-key").value.trim();
    // Another key than the one trusted may mean another server in the way: say so plainly.
    const changedKey = unknownKey && Boolean(trusted) && trusted !== answer.host_key;
    if (answer.ok) {
      const got = [answer.filename, bytes(answer.bytes_read), answer.http_status ? `HTTP ${answer.http_status}` : ""].filter(Boolean);
      parts.push(el("p", { class: "fd-test-ok" }, el("strong", {}, "Connected."), ` Fetched ${got.join(", ")}.`));
      PI.announce(`Connected: fetched ${got.join(", ")}.${answer.preview ? " The columns and a preview follow." : ""}`);
    } else if (!unknownKey || changedKey) {
      const status = answer.http_status ? ` (HTTP ${answer.http_status})` : "";
      const reason = sentence(answer.reason) || "No reason was given.";
      parts.push(el("div", { class: "alert alert-error fd-test-bad" }, el("strong", {}, "The file could not be read. "), `${reason}${status}`));
      PI.announce(`The file could not be read. ${reason}${status}`);
    }
    if (unknownKey) {
      const title = changedKey
        ? "The SFTP server presented another key than the trusted one."
        : "The SFTP server's key is not trusted yet.";
      const advice = changedKey
        ? ". Trust it only if the server's administrator confirms that the key was changed."
        : ". Compare it with the one the server's administrator gives you (ssh-keygen -l -f on the server's public key) before you trust it.";
      parts.push(
        el(
          "div",
          { class: "fd-host-key-box", role: "group", "aria-labelledby": "fd-host-key-title" },
          el("p", { id: "fd-host-key-title" }, el("strong", {}, title)),
          el("p", {}, "Its fingerprint is ", el("code", { class: "fd-fingerprint" }, answer.host_key), advice),
          el("button", { type: "button", class: "btn", id: "fd-trust", onclick: () => trust(answer.host_key) }, "Trust this key"),
        ),
      );
      if (!changedKey) PI.announce(`${title} Its fingerprint is ${answer.host_key}.`);
    } else if (answer.host_key && answer.host_key_known) {
      parts.push(el("p", { class: "field-hint" }, "The server's key matches the trusted fingerprint ", el("code", {}, answer.host_key), "."));
    }
    box.replaceChildren(...parts);
    // A failed test leaves the columns as they were chosen.
    if (answer.preview) showPreview(answer.preview, saved);
  }

  function trust(hostKey) {
    $("fd-host-key").value = hostKey;
    fieldError("host_key", "");
    $("fd-host-key").focus();
    if (testsSavedFeed()) {
      // The saved feed is tested with its saved key: the new one counts once saved.
      const said = "Fingerprint filled in. Save the feed to trust it, then test again.";
      $("fd-test-result").replaceChildren(el("p", { class: "fd-test-ok" }, said));
      PI.announce(said);
      return;
    }
    PI.announce("Key trusted; testing the connection again.");
    testConnection();
  }

  function fillSelect(select, columns, value) {
    const options = [el("option", { value: "" }, "(not imported)")];
    for (const column of columns) if (column) options.push(el("option", { value: column }, column));
    select.replaceChildren(...options);
    select.value = columns.includes(value) ? value : "";
  }

  function showPreview(answer, saved) {
    const keep = mappingTouched && preview ? currentMapping() : null;
    preview = answer;
    const columns = answer.columns || [];
    const mapping = keep || answer.mapping || {};
    const fields = [
      ...BUILT_IN.map(([key, label, required]) => ({ key, label, required })),
      ...(answer.fields || []).map((field) => ({ key: field.key, label: field.label, type: field.type })),
    ];
    $("fd-mapping-grid").replaceChildren(
      ...fields.map((field) => {
        const id = `fd-map-${field.key}`;
        const select = el("select", { id, "data-field": field.key });
        fillSelect(select, columns, mapping[field.key]);
        select.addEventListener("change", () => {
          mappingTouched = true;
          retest();
        });
        const extra = field.required ? " (required)" : field.type ? ` (${field.key}, custom field)` : "";
        return el(
          "div",
          { class: "field" },
          el("label", { for: id }, field.label, extra ? el("span", { class: "required" }, extra) : null),
          select,
        );
      }),
    );
    const intro = {
      header: "The file names our columns. Check the rows below.",
      saved: `Filled in from the saved mapping “${answer.saved_mapping}”. Check it and the rows below.`,
      suggested: "The file has its own column names. Choose which column feeds each field; we suggested a match.",
      given: "Check the rows below; change a column to see its effect.",
    };
    $("fd-mapping-intro").textContent = saved
      ? "The preview reads the file with the saved settings. Changes to the columns take effect when you save the feed."
      : intro[answer.mapping_source] || "";
    $("fd-encoding-field").hidden = answer.kind !== "csv";
    $("fd-encoding").options[0].textContent = answer.encoding ? `Detected (${answer.encoding})` : "Detected";
    $("fd-sheet-field").hidden = answer.kind !== "workbook";
    if (answer.kind === "workbook") {
      const sheets = answer.sheets || [];
      $("fd-sheet").replaceChildren(...sheets.map((name) => el("option", { value: name }, name)));
      $("fd-sheet").value = answer.sheet || sheets[0] || "";
    }
    if (answer.decimal_separator) $("fd-decimal").value = answer.decimal_separator;
    if (answer.empty_cells) $("fd-empty-clear").checked = answer.empty_cells === "clear";
    fieldError("mapping", answer.mapping_error || "");
    const warnings = answer.warnings || [];
    $("fd-warnings").replaceChildren(...warnings.map((text) => el("li", {}, text)));
    $("fd-warnings").hidden = !warnings.length;
    renderRows(answer, fields.slice(BUILT_IN.length));
    $("fd-mapping").hidden = false;
  }

  function format(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (Array.isArray(value)) return value.join(", ");
    return String(value);
  }

  function renderRows(answer, custom) {
    const table = $("fd-preview-table");
    const mapping = answer.mapping || {};
    const shown = custom.filter((field) => mapping[field.key]);
    for (const th of table.querySelectorAll("th.preview-field")) th.remove();
    for (const field of shown) $("fd-preview-check").before(el("th", { scope: "col", class: "preview-field" }, field.label));
    const active = (value) => (value === null ? "(unchanged)" : value ? "yes" : "no");
    table.querySelector("tbody").replaceChildren(
      ...(answer.rows || []).map((row) => {
        const values = row.field_values || {};
        const cells = [String(row.line), row.sku, row.name, row.description, row.rejected ? "" : active(row.active)];
        for (const field of shown) {
          cells.push(field.key in values ? (values[field.key] === null ? "(cleared)" : format(values[field.key])) : row.rejected ? "" : "(unchanged)");
        }
        return el(
          "tr",
          { class: row.rejected ? "rejected" : null },
          cells.map((text) => el("td", { title: text }, text)),
          el("td", { class: "check" }, row.rejected ? `Rejected: ${row.rejected}` : "OK"),
        );
      }),
    );
  }

  // A changed column or reading option: preview again (the form's own source only; a saved
  // feed's secrets cannot be sent with other settings).
  function retest(withMapping = true) {
    if (testsSavedFeed()) return;
    clearTimeout(retestTimer);
    retestTimer = setTimeout(() => testConnection({ withMapping }), 250);
  }

  async function save(event) {
    event.preventDefault();
    clearErrors();
    const found = formProblems();
    if (found.length) {
      showProblems(found, "The feed was not saved:");
      return;
    }
    const feed = editing;
    const button = $("fd-save");
    button.disabled = true;
    try {
      const saved = feed
        ? await PI.api(`/api/feeds/${feed.id}`, { method: "PATCH", json: updateBody(feed) })
        : await PI.api("/api/feeds", { method: "POST", json: createBody() });
      if (feed) feeds = feeds.map((item) => (item.id === saved.id ? saved : item));
      else feeds = [...feeds, saved].sort((a, b) => a.name.localeCompare(b.name));
      render();
      closeForm($(`fd-edit-${saved.id}`));
      PI.toast(feed ? `Feed “${saved.name}” saved.` : `Feed “${saved.name}” added.`, "success");
      schedulePoll();
    } catch (error) {
      showProblems(problems(error), "The feed was not saved:");
    } finally {
      button.disabled = false;
    }
  }

  if (canEdit) {
    fillZones();
    $("fd-add").addEventListener("click", (event) => openForm(null, event.currentTarget));
    $("fd-cancel").addEventListener("click", () => closeForm(null));
    $("fd-add-header").addEventListener("click", () => {
      headersTouched = true;
      const row = headerRow();
      $("fd-header-rows").append(row);
      row.querySelector("input").focus();
    });
    $("fd-test").addEventListener("click", () => testConnection());
    for (const radio of form.querySelectorAll('input[name="missing"]')) radio.addEventListener("change", updateGuard);
    for (const id of ["fd-encoding", "fd-decimal", "fd-empty-clear"]) $(id).addEventListener("change", () => retest());
    $("fd-sheet").addEventListener("change", () => {
      // Another sheet has other columns: start again from a suggestion for it.
      mappingTouched = false;
      retest(false);
    });
    for (const id of ["fd-password-forget", "fd-private-key-forget"]) {
      $(id).addEventListener("change", () => {
        const input = $(id.replace("-forget", ""));
        input.disabled = $(id).checked;
        if ($(id).checked) input.value = "";
      });
    }
    // A field's error goes once the field is changed.
    for (const [field, id] of Object.entries(CONTROLS)) {
      const control = $(id);
      if (control && control.tagName !== "BUTTON") {
        control.addEventListener("input", () => {
          if (control.getAttribute("aria-invalid")) fieldError(field, "");
        });
      }
    }
    form.addEventListener("submit", save);
  }

  load();
})();
