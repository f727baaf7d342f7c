// The System page: workers, their heartbeats and queue depths, from GET /api/system every 5 s.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 5000;
  const numberFormat = new Intl.NumberFormat();
  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  let timer = null;
  let loading = false;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  function count(value) {
    return value === null || value === undefined
      ? el("span", { class: "sys-none", title: "Not known" }, "—")
      : el("span", { class: "sys-num" }, numberFormat.format(value));
  }

  function age(seconds) {
    if (seconds < 90) return `${Math.round(seconds)} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    return `${Math.round(seconds / 3600)} h ago`;
  }

  // Code spans in the server's sentences (`product-importer worker`) become <code>.
  function sentence(text) {
    const item = el("li");
    text.split("`").forEach((part, index) => item.append(index % 2 ? el("code", {}, part) : part));
    return item;
  }

  function renderHealth(system) {
    const box = $("sys-warnings");
    // The box is a live region: rewrite it only when what it says changes.
    const key = JSON.stringify([system.mode, system.workers_alive, system.warnings]);
    if (box.dataset.key !== key) {
      box.dataset.key = key;
      box.replaceChildren(healthMessage(system));
    }
    renderFacts(system);
  }

  function healthMessage(system) {
    if (system.warnings.length) {
      return el("ul", { class: "sys-warnings alert alert-warning" }, ...system.warnings.map(sentence));
    }
    const alive = system.workers_alive;
    const text = system.mode === "embedded"
      ? "Background work runs inside this server process (embedded mode)."
      : `${alive} worker${alive === 1 ? " is" : "s are"} alive and every queue has one.`;
    return el("p", { class: "alert alert-success" }, text);
  }

  function renderFacts(system) {
    const facts = [
      ["Mode", system.mode === "embedded" ? "Embedded" : "Distributed"],
      ["Database", system.database === "postgresql" ? "PostgreSQL" : "SQLite"],
      ["Broker", system.broker || "None"],
      ["Workers alive", numberFormat.format(system.workers_alive)],
      ["Heartbeat", `every ${system.heartbeat_seconds} s`],
      ["Version", system.version],
    ];
    $("sys-facts").replaceChildren(...facts.map(([term, value]) => el(
      "div", {}, el("dt", {}, term), el("dd", term === "Broker" && system.broker ? { class: "sys-broker" } : {}, value),
    )));
  }

  function stateBadge(worker) {
    if (worker.alive) return el("span", { class: "sys-badge sys-badge-ok" }, "Alive");
    if (worker.stopped) return el("span", { class: "sys-badge" }, "Stopped");
    return el("span", { class: "sys-badge sys-badge-bad" }, "Not seen");
  }

  function renderWorkers(system) {
    const table = $("sys-workers");
    const rows = system.workers.map((worker) => el(
      "tr", {},
      el("td", { class: "sys-worker" }, el("span", { class: "sys-name" }, worker.name),
        el("span", { class: "sys-sub" }, `${worker.kind}, pid ${worker.pid}, since ${dateFormat.format(new Date(worker.started_at))}`)),
      el("td", {}, stateBadge(worker)),
      el("td", { title: new Date(worker.last_heartbeat).toLocaleString() }, age(worker.age_seconds)),
      el("td", {}, worker.queues.join(", ")),
      el("td", {}, count(worker.concurrency)),
      el("td", {}, worker.alive ? count(worker.running_tasks) : count(null)),
      el("td", {}, worker.leader ? "Runs it" : "—"),
    ));
    if (!rows.length) {
      const text = system.mode === "distributed"
        ? "No worker has been seen yet. Start one with "
        : "No worker has been seen yet.";
      const cell = el("td", { colspan: "7", class: "empty" }, text);
      if (system.mode === "distributed") cell.append(el("code", {}, "product-importer worker"), ".");
      rows.push(el("tr", {}, cell));
    }
    table.tBodies[0].replaceChildren(...rows);
    table.setAttribute("aria-busy", "false");
  }

  function renderQueues(system) {
    const table = $("sys-queues");
    table.tBodies[0].replaceChildren(...system.queues.map((queue) => el(
      "tr", {},
      el("th", { scope: "row" }, queue.queue,
        queue.broker_queue && queue.broker_queue !== queue.queue ? el("span", { class: "sys-sub" }, queue.broker_queue) : ""),
      el("td", {}, count(queue.broker_messages)),
      el("td", {}, count(queue.waiting)),
      el("td", {}, count(queue.due)),
      el("td", {}, count(queue.running)),
      el("td", {}, queue.alive_consumers
        ? count(queue.alive_consumers)
        : el("span", { class: "sys-badge sys-badge-bad" }, "None")),
    )));
    table.setAttribute("aria-busy", "false");
  }

  function size(bytes) {
    if (bytes === null || bytes === undefined) return "—";
    if (bytes < 1e6) return `${numberFormat.format(Math.max(1, Math.round(bytes / 1e3)))} kB`;
    return `${numberFormat.format(Math.round(bytes / 1e5) / 10)} MB`;
  }

  function since(iso) {
    return age((Date.now() - new Date(iso).getTime()) / 1000);
  }

  // Last backup, schedule and warning for everyone; "Back up now" and the list for admins.
  function renderBackups(backups, mode) {
    const parts = [];
    if (backups.warning) parts.push(el("p", { class: "alert alert-warning" }, backups.warning));
    const done = backups.last_completed;
    parts.push(el("p", {}, done
      ? `Last backup: ${dateFormat.format(new Date(done.created_at))} (${since(done.created_at)}), ` +
        `${size(done.size)}, ${numberFormat.format(done.product_count)} products.`
      : "No backup has been made yet."));
    let schedule;
    if (backups.scheduled) {
      schedule = `A backup is made every day at ${backups.time} (server time), keeping the last ` +
        `${backups.keep}; the next one ${dateFormat.format(new Date(backups.next_at))}.`;
    } else if (mode === "distributed") {
      schedule = "In distributed mode backups are the operator's: run product-importer backup, or pg_dump.";
    } else {
      schedule = "Daily backups are turned off (PRODUCT_IMPORTER_BACKUP_ENABLED).";
    }
    parts.push(el("p", { class: "sys-muted" }, schedule));
    $("sys-backups").replaceChildren(...parts);
  }

  function backupState(backup) {
    if (backup.status === "completed") return el("span", { class: "sys-badge sys-badge-ok" }, "Done");
    if (backup.status === "running") return el("span", { class: "sys-badge" }, "Running");
    return el("span", { class: "sys-badge sys-badge-bad", title: backup.error || "" }, "Failed");
  }

  function renderBackupList(backups) {
    const rows = backups.map((backup) => el(
      "tr", {},
      el("td", {}, dateFormat.format(new Date(backup.created_at))),
      el("td", {}, backupState(backup), backup.error ? el("span", { class: "sys-sub" }, backup.error) : ""),
      el("td", {}, size(backup.size)),
      el("td", {}, count(backup.product_count)),
      el("td", {}, backup.trigger || "—"),
      el("td", {}, backup.status === "completed"
        ? el("a", {
          href: `/api/backups/${encodeURIComponent(backup.id)}/download`,
          download: backup.file_name,
          "aria-label": `Download ${backup.file_name}`,
          title: backup.file_name,
        }, "Download")
        : "—"),
    ));
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6", class: "empty" }, "No backups yet.")));
    $("sys-backup-table").tBodies[0].replaceChildren(...rows);
    $("sys-backup-list").hidden = false;
  }

  async function backUpNow() {
    const button = $("sys-backup-now");
    button.disabled = true;
    try {
      await PI.api("/api/backups", { method: "POST" });
      PI.toast("Backup started; it appears below when it is written.", "success");
    } catch (error) {
      PI.toast(`Could not start a backup: ${error.message}`, "error");
    } finally {
      button.disabled = false;
      load();
    }
  }

  async function load() {
    if (loading) return;
    loading = true;
    clearTimeout(timer);
    try {
      const system = await PI.api("/api/system");
      renderHealth(system);
      renderWorkers(system);
      renderQueues(system);
      renderBackups(system.backups, system.mode);
      if (PI.can("admin")) renderBackupList(await PI.api("/api/backups"));
      $("sys-error").hidden = true;
      $("sys-updated").textContent = `Updated ${timeFormat.format(new Date())}`;
    } catch (error) {
      $("sys-error").textContent = `Could not load the system status: ${error.message}`;
      $("sys-error").hidden = false;
    } finally {
      loading = false;
      timer = setTimeout(load, REFRESH_MS);
    }
  }

  $("sys-refresh").addEventListener("click", load);
  if (PI.can("admin")) {
    $("sys-backup-actions").hidden = false;
    $("sys-backup-now").addEventListener("click", backUpNow);
  }
  load();
})();
