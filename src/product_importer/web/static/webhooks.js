// The Webhooks page: endpoints with health, add/edit, test, delete, secrets and delivery logs.
"use strict";

(() => {
  const list = document.getElementById("wh-list");
  const formDialog = document.getElementById("wh-form-dialog");
  const form = document.getElementById("wh-form");
  const secretDialog = document.getElementById("wh-secret-dialog");
  const confirmDialog = document.getElementById("wh-confirm-dialog");
  const LOG_PAGE_SIZE = 10;

  let catalogue = [];
  let endpoints = [];
  let editing = null; // endpoint being edited, or null when adding
  let lastTrigger = null; // where focus returns when a dialog closes
  const openLogs = new Map(); // endpoint id -> {page, status, event}
  const testResults = new Map(); // endpoint id -> last test result

  // Small helpers ---------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function ago(iso) {
    if (!iso) return "";
    const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (seconds < 5) return "just now";
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  function when(iso) {
    if (!iso) return null;
    return el("time", { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso));
  }

  function ms(value) {
    return value === null || value === undefined ? "" : `${Math.round(value)} ms`;
  }

  function statusText(code) {
    return code === null || code === undefined ? "no response" : `HTTP ${code}`;
  }

  function openDialog(dialog, trigger) {
    lastTrigger = trigger || document.activeElement;
    dialog.showModal();
  }

  for (const dialog of [formDialog, secretDialog, confirmDialog]) {
    dialog.addEventListener("click", (event) => {
      if (event.target.closest("[data-close]")) dialog.close();
    });
    dialog.addEventListener("close", () => {
      if (lastTrigger && document.contains(lastTrigger)) lastTrigger.focus();
    });
  }

  // The list --------------------------------------------------------------------------------

  async function load() {
    try {
      [catalogue, endpoints] = await Promise.all([
        catalogue.length ? catalogue : PI.api("/api/webhooks/events"),
        PI.api("/api/webhooks"),
      ]);
      render();
    } catch (error) {
      list.replaceChildren(el("div", { class: "alert alert-error", role: "alert" }, error.message));
    } finally {
      list.setAttribute("aria-busy", "false");
    }
  }

  function render() {
    if (!endpoints.length) {
      list.replaceChildren(document.getElementById("wh-empty-template").content.cloneNode(true));
      return;
    }
    list.replaceChildren(...endpoints.map(card));
    for (const id of openLogs.keys()) loadLog(id);
  }

  function health(endpoint) {
    if (!endpoint.enabled) {
      return el("span", { class: "wh-badge wh-badge-off" }, "Disabled");
    }
    if (endpoint.consecutive_failures > 0) {
      return el(
        "span",
        { class: "wh-badge wh-badge-bad" },
        `Failing · ${endpoint.consecutive_failures} in a row`,
      );
    }
    // Real failures count above; a failed last contact that did not count was a test.
    if (endpoint.last_error) return el("span", { class: "wh-badge wh-badge-bad" }, "Last test failed");
    if (endpoint.last_delivery_at) return el("span", { class: "wh-badge wh-badge-ok" }, "Healthy");
    return el("span", { class: "wh-badge" }, "Not used yet");
  }

  function card(endpoint) {
    const id = endpoint.id;
    const lastContact = endpoint.last_delivery_at
      ? el(
          "span",
          { class: "wh-last" },
          `Last: ${statusText(endpoint.last_status_code)} · ${ms(endpoint.last_latency_ms)} · `,
          when(endpoint.last_delivery_at),
        )
      : null;
    const toggle = el("input", {
      type: "checkbox",
      role: "switch",
      id: `wh-enabled-${id}`,
      checked: endpoint.enabled,
      onchange: (event) => setEnabled(endpoint, event.target.checked, event.target),
    });
    return el(
      "article",
      { class: "card wh-card", "data-endpoint": id, "aria-labelledby": `wh-url-${id}` },
      el(
        "div",
        { class: "wh-card-top" },
        el(
          "div",
          { class: "wh-card-title" },
          el("h2", { class: "wh-url", id: `wh-url-${id}` }, endpoint.url),
          endpoint.description ? el("p", { class: "wh-desc" }, endpoint.description) : null,
        ),
        el("label", { class: "wh-switch", for: `wh-enabled-${id}` }, toggle, "Enabled"),
      ),
      el(
        "ul",
        { class: "wh-chips", "aria-label": "Events" },
        endpoint.events.map((type) => el("li", {}, type)),
      ),
      el(
        "p",
        { class: "wh-health" },
        health(endpoint),
        lastContact,
        el("span", { class: "wh-hint" }, `Secret …${endpoint.secret_hint}`),
      ),
      endpoint.disabled_reason
        ? el("div", { class: "alert alert-warning wh-reason" }, endpoint.disabled_reason)
        : null,
      !endpoint.disabled_reason && endpoint.last_error && endpoint.consecutive_failures
        ? el("div", { class: "alert alert-error wh-reason" }, `Last error: ${endpoint.last_error}`)
        : null,
      el(
        "div",
        { class: "wh-actions" },
        el("button", { type: "button", class: "btn", onclick: (e) => sendTest(endpoint, e.currentTarget) }, "Send test"),
        el(
          "button",
          {
            type: "button",
            class: "btn",
            "aria-expanded": openLogs.has(id) ? "true" : "false",
            "aria-controls": `wh-log-${id}`,
            onclick: (e) => toggleLog(id, e.currentTarget),
          },
          "Deliveries",
        ),
        el("button", { type: "button", class: "btn", onclick: (e) => openForm(endpoint, e.currentTarget) }, "Edit"),
        el("button", { type: "button", class: "btn", onclick: (e) => rotate(endpoint, e.currentTarget) }, "Rotate secret"),
        el(
          "button",
          { type: "button", class: "btn wh-delete", onclick: (e) => confirmDelete(endpoint, e.currentTarget) },
          "Delete",
        ),
      ),
      el("div", { class: "wh-test", id: `wh-test-${id}` }, testView(id)),
      el("section", { class: "wh-log", id: `wh-log-${id}`, hidden: !openLogs.has(id), "aria-label": "Delivery log" }),
    );
  }

  function replaceEndpoint(updated) {
    endpoints = endpoints.map((item) => (item.id === updated.id ? updated : item));
  }

  function refocus(selector) {
    const target = list.querySelector(selector);
    if (target) target.focus();
  }

  // Actions ---------------------------------------------------------------------------------

  async function setEnabled(endpoint, enabled, input) {
    input.disabled = true;
    try {
      const updated = await PI.api(`/api/webhooks/${endpoint.id}`, { method: "PATCH", json: { enabled } });
      replaceEndpoint(updated);
      render();
      refocus(`#wh-enabled-${endpoint.id}`);
      PI.toast(enabled ? "Endpoint enabled." : "Endpoint disabled.", "success");
    } catch (error) {
      input.checked = !enabled;
      input.disabled = false;
      PI.toast(error.message, "error");
    }
  }

  function testSummary(result) {
    return result.ok
      ? `Test delivered: ${statusText(result.status_code)} in ${ms(result.latency_ms)}`
      : `Test failed: ${result.error || statusText(result.status_code)} (${ms(result.latency_ms)})`;
  }

  // The card is rebuilt when the result comes, so the result is read out through the page's
  // announcer (PI.announce), not by a live region inside the card.
  function testView(id) {
    const result = testResults.get(id);
    if (!result) return [];
    if (result.running) return [el("p", { class: "wh-test-running" }, "Sending a test event…")];
    const summary = testSummary(result);
    return [
      el(
        "div",
        { class: `wh-test-result ${result.ok ? "wh-test-ok" : "wh-test-bad"}` },
        el("strong", {}, summary),
        result.response_excerpt
          ? el("pre", { class: "wh-excerpt", "aria-label": "Response excerpt" }, result.response_excerpt)
          : null,
      ),
    ];
  }

  async function sendTest(endpoint, button) {
    const box = document.getElementById(`wh-test-${endpoint.id}`);
    testResults.set(endpoint.id, { running: true });
    box.replaceChildren(...testView(endpoint.id));
    PI.announce(`Sending a test event to ${endpoint.url}…`);
    button.disabled = true;
    try {
      const result = await PI.api(`/api/webhooks/${endpoint.id}/test`, { method: "POST" });
      testResults.set(endpoint.id, result);
      PI.announce(`${endpoint.url}: ${testSummary(result)}.`);
      replaceEndpoint(await PI.api(`/api/webhooks/${endpoint.id}`));
      render();
      refocus(`[data-endpoint="${endpoint.id}"] .wh-actions .btn`);
    } catch (error) {
      testResults.delete(endpoint.id);
      box.replaceChildren();
      button.disabled = false;
      PI.toast(error.message, "error");
    }
  }

  function showSecret(secret, rotated, trigger) {
    document.getElementById("wh-secret").value = secret;
    document.getElementById("wh-secret-note").hidden = !rotated;
    openDialog(secretDialog, trigger);
    document.getElementById("wh-secret").select();
  }

  document.getElementById("wh-copy").addEventListener("click", async (event) => {
    const input = document.getElementById("wh-secret");
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      document.execCommand("copy"); // plain-http pages have no clipboard API
    }
    event.currentTarget.textContent = "Copied";
    PI.toast("Secret copied to the clipboard.", "success", 3000);
  });

  async function rotate(endpoint, button) {
    button.disabled = true;
    try {
      const updated = await PI.api(`/api/webhooks/${endpoint.id}/rotate-secret`, { method: "POST" });
      replaceEndpoint(updated);
      render();
      document.getElementById("wh-copy").textContent = "Copy";
      showSecret(updated.secret, true, list.querySelector(`[data-endpoint="${endpoint.id}"] .wh-actions .btn`));
    } catch (error) {
      button.disabled = false;
      PI.toast(error.message, "error");
    }
  }

  function confirmDelete(endpoint, trigger) {
    document.getElementById("wh-confirm-text").textContent =
      `Delete ${endpoint.url}? It stops receiving events and its delivery log is deleted. ` +
      "This cannot be undone.";
    const button = document.getElementById("wh-confirm");
    button.onclick = async () => {
      button.disabled = true;
      try {
        await PI.api(`/api/webhooks/${endpoint.id}`, { method: "DELETE" });
        endpoints = endpoints.filter((item) => item.id !== endpoint.id);
        openLogs.delete(endpoint.id);
        lastTrigger = document.getElementById("wh-add");
        confirmDialog.close();
        render();
        PI.toast("Endpoint deleted.", "success");
      } catch (error) {
        PI.toast(error.message, "error");
      } finally {
        button.disabled = false;
      }
    };
    openDialog(confirmDialog, trigger);
    confirmDialog.querySelector("[data-close]").focus();
  }

  // Add / edit ------------------------------------------------------------------------------

  function eventOptions(selected) {
    const box = document.getElementById("wh-event-options");
    box.replaceChildren(
      ...catalogue.map((info) =>
        el(
          "label",
          { class: "wh-check wh-event" },
          el("input", { type: "checkbox", name: "events", value: info.type, checked: selected.includes(info.type) }),
          el("span", {}, el("code", {}, info.type), el("span", { class: "wh-help" }, info.description)),
        ),
      ),
    );
  }

  function fieldError(id, message) {
    const node = document.getElementById(id);
    node.textContent = message || "";
    node.hidden = !message;
  }

  async function openForm(endpoint, trigger) {
    // Opened before the page's first load finished: the form needs the event catalogue.
    if (!catalogue.length) {
      try {
        catalogue = await PI.api("/api/webhooks/events");
      } catch (error) {
        PI.toast(error.message, "error");
        return;
      }
    }
    editing = endpoint;
    document.getElementById("wh-form-title").textContent = endpoint ? "Edit endpoint" : "Add endpoint";
    form.url.value = endpoint ? endpoint.url : "";
    form.description.value = endpoint ? endpoint.description : "";
    form.enabled.checked = endpoint ? endpoint.enabled : true;
    eventOptions(endpoint ? endpoint.events : catalogue.map((info) => info.type));
    fieldError("wh-url-error", "");
    fieldError("wh-events-error", "");
    form.url.removeAttribute("aria-invalid");
    document.getElementById("wh-form-error").hidden = true;
    openDialog(formDialog, trigger);
    form.url.focus();
  }

  function checkUrl(value) {
    if (!value) return "Enter the receiver's URL.";
    if (value.length > 2000) return "The URL is longer than 2,000 characters.";
    let url;
    try {
      url = new URL(value);
    } catch {
      return "This is not a valid URL.";
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return "The URL must start with http:// or https://.";
    if (url.username || url.password) return "Leave the user name and password out of the URL.";
    return "";
  }

  form.url.addEventListener("input", () => {
    if (form.url.getAttribute("aria-invalid")) {
      const problem = checkUrl(form.url.value.trim());
      fieldError("wh-url-error", problem);
      if (!problem) form.url.removeAttribute("aria-invalid");
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const url = form.url.value.trim();
    const events = [...form.querySelectorAll('input[name="events"]:checked')].map((input) => input.value);
    const urlProblem = checkUrl(url);
    fieldError("wh-url-error", urlProblem);
    fieldError("wh-events-error", events.length ? "" : "Choose at least one event.");
    if (urlProblem) form.url.setAttribute("aria-invalid", "true");
    else form.url.removeAttribute("aria-invalid");
    if (urlProblem) return form.url.focus();
    if (!events.length) return form.querySelector('input[name="events"]').focus();

    const body = { url, events, description: form.description.value.trim(), enabled: form.enabled.checked };
    const save = document.getElementById("wh-save");
    save.disabled = true;
    try {
      if (editing) {
        replaceEndpoint(await PI.api(`/api/webhooks/${editing.id}`, { method: "PATCH", json: body }));
        lastTrigger = null;
        formDialog.close();
        render();
        refocus(`[data-endpoint="${editing.id}"] .wh-actions .btn`);
        PI.toast("Endpoint saved.", "success");
      } else {
        const created = await PI.api("/api/webhooks", { method: "POST", json: body });
        endpoints.push(created);
        lastTrigger = null;
        formDialog.close();
        render();
        document.getElementById("wh-copy").textContent = "Copy";
        showSecret(created.secret, false, list.querySelector(`[data-endpoint="${created.id}"] .wh-actions .btn`));
      }
    } catch (error) {
      // The error is at the top of a dialog that may be scrolled down: bring it into view and
      // move focus to it, so it is seen and read.
      const box = document.getElementById("wh-form-error");
      box.textContent = error.message;
      box.hidden = false;
      box.tabIndex = -1;
      box.scrollIntoView({ block: "nearest" });
      box.focus();
    } finally {
      save.disabled = false;
    }
  });

  document.getElementById("wh-add").addEventListener("click", (event) => openForm(null, event.currentTarget));

  // Delivery log ----------------------------------------------------------------------------

  function toggleLog(id, button) {
    const panel = document.getElementById(`wh-log-${id}`);
    if (openLogs.has(id)) {
      openLogs.delete(id);
      panel.hidden = true;
      button.setAttribute("aria-expanded", "false");
      return;
    }
    openLogs.set(id, { page: 1, status: "", event: "" });
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    loadLog(id);
  }

  let pollTimer = null;

  async function loadLog(id, focusSelector) {
    const state = openLogs.get(id);
    const panel = document.getElementById(`wh-log-${id}`);
    if (!state || !panel) return;
    const params = new URLSearchParams({ page: state.page, page_size: LOG_PAGE_SIZE });
    if (state.status) params.set("status", state.status);
    if (state.event) params.set("event", state.event);
    let page;
    try {
      page = await PI.api(`/api/webhooks/${id}/deliveries?${params}`);
    } catch (error) {
      panel.replaceChildren(el("div", { class: "alert alert-error" }, error.message));
      return;
    }
    // Re-rendering must not lose a keyboard user's place: refocus the same control.
    const focusedId = panel.contains(document.activeElement) ? document.activeElement.id : "";
    panel.replaceChildren(logView(id, state, page));
    const target =
      (focusSelector && panel.querySelector(focusSelector)) ||
      (focusedId && (document.getElementById(focusedId) || panel.querySelector("select")));
    if (target) target.focus();
    if (page.items.some((item) => item.status === "pending") && !pollTimer) {
      pollTimer = setTimeout(() => {
        pollTimer = null;
        if (openLogs.has(id)) loadLog(id);
      }, 1500);
    }
  }

  function filterSelect(id, state, key, label, options) {
    const selectId = `wh-log-${key}-${id}`;
    return el(
      "div",
      { class: "wh-filter" },
      el("label", { for: selectId }, label),
      el(
        "select",
        {
          id: selectId,
          onchange: (event) => {
            state[key] = event.target.value;
            state.page = 1;
            loadLog(id, `#${selectId}`);
          },
        },
        el("option", { value: "" }, "All"),
        options.map((value) => el("option", { value, selected: state[key] === value }, value)),
      ),
    );
  }

  function logView(id, state, page) {
    const pages = Math.max(1, Math.ceil(page.total / page.page_size));
    const header = el(
      "div",
      { class: "wh-log-head" },
      el("h3", {}, `Delivery log · ${page.total} ${page.total === 1 ? "delivery" : "deliveries"}`),
      el(
        "div",
        { class: "wh-filters" },
        filterSelect(id, state, "status", "Status", ["pending", "succeeded", "failed"]),
        filterSelect(id, state, "event", "Event", [...catalogue.map((info) => info.type), "webhook.test"]),
        el("button", { type: "button", class: "btn", id: `wh-refresh-${id}`, onclick: () => loadLog(id, `#wh-refresh-${id}`) }, "Refresh"),
      ),
    );
    if (!page.items.length) {
      return el("div", {}, header, el("p", { class: "wh-help" }, "No deliveries yet."));
    }
    const rows = page.items.map((item) => delivery(id, item));
    const pager = el(
      "div",
      { class: "wh-pager" },
      el(
        "button",
        {
          type: "button",
          class: "btn",
          id: `wh-newer-${id}`,
          disabled: state.page <= 1,
          onclick: () => {
            state.page -= 1;
            loadLog(id, `#wh-newer-${id}`);
          },
        },
        "Newer",
      ),
      el("span", {}, `Page ${page.page} of ${pages}`),
      el(
        "button",
        {
          type: "button",
          class: "btn",
          id: `wh-older-${id}`,
          disabled: state.page >= pages,
          onclick: () => {
            state.page += 1;
            loadLog(id, `#wh-older-${id}`);
          },
        },
        "Older",
      ),
    );
    return el("div", {}, header, el("ol", { class: "wh-deliveries" }, rows), pager);
  }

  function delivery(endpointId, item) {
    const attempts = item.attempts.map((attempt) =>
      el(
        "li",
        {},
        el(
          "span",
          { class: attempt.error ? "wh-bad" : "wh-ok" },
          `${statusText(attempt.status_code)} · ${ms(attempt.latency_ms)}`,
        ),
        " · ",
        when(attempt.attempted_at),
        attempt.error ? el("span", { class: "wh-attempt-error" }, ` · ${attempt.error}`) : null,
        attempt.response_excerpt ? el("pre", { class: "wh-excerpt" }, attempt.response_excerpt) : null,
      ),
    );
    const next =
      item.status === "pending" && item.next_attempt_at
        ? el("span", { class: "wh-help" }, " · next attempt ", el("time", { datetime: item.next_attempt_at }, new Date(item.next_attempt_at).toLocaleTimeString()))
        : null;
    return el(
      "li",
      { class: "wh-delivery" },
      el(
        "div",
        { class: "wh-delivery-top" },
        el("span", { class: `wh-status wh-status-${item.status}` }, item.status),
        el("code", {}, item.event_type),
        el("span", { class: "wh-help" }, `${item.attempt_count} ${item.attempt_count === 1 ? "attempt" : "attempts"}`),
        when(item.created_at),
        next,
        item.status === "pending"
          ? null
          : el(
              "button",
              {
                type: "button",
                class: "btn",
                id: `wh-redeliver-${item.id}`,
                onclick: (event) => redeliver(endpointId, item.id, event.currentTarget),
              },
              "Redeliver",
            ),
      ),
      el("p", { class: "wh-help wh-msgid" }, "webhook-id ", el("code", {}, item.webhook_id)),
      item.last_error && !item.attempts.length ? el("p", { class: "wh-help" }, item.last_error) : null,
      attempts.length
        ? el(
            "details",
            {},
            el("summary", {}, `Attempts (${attempts.length})`),
            el("ol", { class: "wh-attempts" }, attempts),
          )
        : null,
    );
  }

  async function redeliver(endpointId, deliveryId, button) {
    button.disabled = true;
    try {
      await PI.api(`/api/webhooks/${endpointId}/deliveries/${deliveryId}/redeliver`, { method: "POST" });
      PI.toast("Queued for redelivery.", "success", 3000);
      await loadLog(endpointId, `#wh-redeliver-${deliveryId}, #wh-log-status-${endpointId}`);
    } catch (error) {
      button.disabled = false;
      PI.toast(error.message, "error");
    }
  }

  load();
})();
