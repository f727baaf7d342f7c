// A secret shown once (a new password or token): the box, Copy and Done.
"use strict";

const Once = (() => {
  const box = document.getElementById("once");
  const value = document.getElementById("once-value");

  function show(secret, text) {
    value.value = secret;
    const note = document.getElementById("once-text");
    if (note) note.textContent = text || "";
    box.hidden = false;
    box.focus();
    value.select();
  }

  document.getElementById("once-copy").addEventListener("click", async () => {
    value.select();
    try {
      await navigator.clipboard.writeText(value.value);
      PI.toast("Copied.", "success", 2500);
    } catch {
      PI.toast("Select the text and copy it with your keyboard.", "info");
    }
  });
  document.getElementById("once-done").addEventListener("click", () => {
    value.value = "";
    box.hidden = true;
  });
  return { show };
})();
