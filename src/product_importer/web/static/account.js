// Account page: change your own password; sign out everywhere.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  if ($("password-form").dataset.required) $("pw-current").focus();

  $("password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("pw-error");
    const done = $("pw-done");
    error.hidden = true;
    done.hidden = true;
    const current = $("pw-current").value;
    const next = $("pw-new").value;
    let problem = "";
    if (!current) problem = "Enter your current password.";
    else if (next.length < 8) problem = "The new password needs at least 8 characters.";
    else if (next !== $("pw-again").value) problem = "The two new passwords differ.";
    if (problem) {
      error.textContent = problem;
      error.hidden = false;
      return;
    }
    $("pw-save").disabled = true;
    try {
      const answer = await PI.api("/api/me/password", {
        method: "POST",
        json: { current_password: current, new_password: next },
      });
      event.target.reset();
      // A one-time password was replaced: every page is open now.
      if (event.target.dataset.required) {
        window.location.href = "/";
        return;
      }
      done.textContent = answer.detail;
      done.hidden = false;
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      $("pw-save").disabled = false;
    }
  });

  $("sign-out-everywhere").addEventListener("click", async () => {
    try {
      await PI.api("/api/me/sign-out-everywhere", { method: "POST" });
      window.location.href = "/login";
    } catch (error) {
      PI.toast(error.message, "error");
    }
  });
})();
