// API tokens page (admins): create (shown once), list with last use, revoke.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const when = (value) => (value ? dateFormat.format(new Date(value)) : "–");

  // A token's role is at most the creator's: offer no role above it.
  const RANK = { viewer: 0, editor: 1, admin: 2 };
  for (const option of $("t-role").options) {
    if (RANK[option.value] > RANK[PI.role]) option.remove();
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  async function revoke(token, button) {
    button.disabled = true;
    try {
      await PI.api(`/api/tokens/${token.id}`, { method: "DELETE" });
      PI.toast(`Token "${token.name}" revoked.`, "success");
    } catch (error) {
      PI.toast(error.message, "error");
    }
    load();
  }

  function row(token) {
    const tr = document.createElement("tr");
    tr.dataset.token = token.name;
    tr.append(
      cell(`${token.name} (${token.prefix}…)`),
      cell(token.role),
      cell(token.status, `status-${token.status}`),
      cell(token.created_by || "command line", "col-optional"),
      cell(token.expires_at ? when(token.expires_at) : "never", "col-optional"),
      cell(token.last_used_at ? when(token.last_used_at) : "never", "col-optional"),
    );
    const actions = document.createElement("td");
    if (token.status === "active") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-small btn-danger-quiet";
      button.textContent = "Revoke";
      button.setAttribute("aria-label", `Revoke ${token.name}`);
      button.addEventListener("click", () => revoke(token, button));
      actions.append(button);
    }
    tr.append(actions);
    return tr;
  }

  async function load() {
    try {
      const tokens = await PI.api("/api/tokens");
      $("tokens-body").replaceChildren(...tokens.map(row));
      $("tokens-empty").hidden = tokens.length > 0;
    } catch (error) {
      PI.toast(error.message, "error");
    }
  }

  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("token-error");
    error.hidden = true;
    const name = $("t-name").value.trim();
    if (!name) {
      error.textContent = "Enter a name that says what the token is for.";
      error.hidden = false;
      $("t-name").focus();
      return;
    }
    const days = $("t-expiry").value;
    const body = { name, role: $("t-role").value };
    if (days) body.expires_at = new Date(Date.now() + Number(days) * 86400000).toISOString();
    $("t-create").disabled = true;
    try {
      const token = await PI.api("/api/tokens", { method: "POST", json: body });
      $("t-name").value = "";
      Once.show(token.token);
      load();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      $("t-create").disabled = false;
    }
  });

  load();
})();
