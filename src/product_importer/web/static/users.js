// Users page (admins): add, change role, deactivate/reactivate, reset password.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const ROLES = ["viewer", "editor", "admin"];

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

  async function change(user, body, done) {
    try {
      await PI.api(`/api/users/${user.id}`, { method: "PATCH", json: body });
      PI.toast(done, "success");
    } catch (error) {
      PI.toast(error.message, "error", 10000);
    }
    load();
  }

  async function reset(user) {
    try {
      const answer = await PI.api(`/api/users/${user.id}/reset-password`, { method: "POST" });
      Once.show(answer.password, `New password for ${user.username}; their sessions have ended.`);
    } catch (error) {
      PI.toast(error.message, "error");
    }
  }

  function row(user) {
    const role = el("select", { "aria-label": `Role of ${user.username}` });
    for (const name of ROLES) {
      const option = el("option", { value: name }, name);
      option.selected = name === user.role;
      role.append(option);
    }
    role.addEventListener("change", () => change(user, { role: role.value }, `${user.username} is now ${role.value}.`));
    const toggle = user.active
      ? el("button", { type: "button", class: "btn btn-small btn-danger-quiet", onclick: () => change(user, { active: false }, `${user.username} deactivated.`) }, "Deactivate")
      : el("button", { type: "button", class: "btn btn-small", onclick: () => change(user, { active: true }, `${user.username} reactivated.`) }, "Reactivate");
    toggle.setAttribute("aria-label", `${user.active ? "Deactivate" : "Reactivate"} ${user.username}`);
    const resetButton = el("button", { type: "button", class: "btn btn-small", onclick: () => reset(user), "aria-label": `Reset password of ${user.username}` }, "Reset password");
    const last = user.last_sign_in_at ? dateFormat.format(new Date(user.last_sign_in_at)) : "never";
    return el(
      "tr",
      { "data-user": user.username },
      el("td", {}, user.username),
      el("td", {}, role),
      el("td", { class: user.active ? "col-optional" : "col-optional status-inactive" }, user.active ? "Active" : "Deactivated"),
      el("td", { class: "col-optional" }, last),
      el("td", {}, el("div", { class: "row-actions" }, resetButton, toggle)),
    );
  }

  async function load() {
    try {
      const users = await PI.api("/api/users");
      $("users-body").replaceChildren(...users.map(row));
    } catch (error) {
      PI.toast(error.message, "error");
    }
  }

  $("user-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("user-error");
    error.hidden = true;
    const username = $("u-name").value.trim();
    if (!username) {
      error.textContent = "Enter a user name.";
      error.hidden = false;
      $("u-name").focus();
      return;
    }
    $("u-create").disabled = true;
    try {
      const user = await PI.api("/api/users", { method: "POST", json: { username, role: $("u-role").value } });
      $("u-name").value = "";
      Once.show(user.password, `${user.username} (${user.role}) can sign in with this password.`);
      load();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      $("u-create").disabled = false;
    }
  });

  load();
})();
