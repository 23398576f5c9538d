// The API keys page: rotate a key you own. The new key is shown once, in
// its own dialog, and wiped from the DOM when the dialog closes. Served by
// the console itself (/api-keys/rotate.js); it works next to console.js,
// which owns the row menus, the CSRF token and the table's refresh
// (CodeVector.keysPage).
(function () {
  "use strict";
  const $ = function (id) { return document.getElementById(id); };
  const CV = window.CodeVector;
  const dialog = $("rotate-dialog");
  if (!dialog || !CV) return;
  const form = $("rotate-form");
  const title = $("rotate-title");
  const grace = $("rotate-grace");
  const errorBox = $("rotate-error");
  const submit = $("rotate-submit");
  const step = $("rotate-reveal-step");
  const keyField = $("rotate-key");
  const oldLine = $("rotate-old");
  let target = null;
  let opener = null;
  let busy = false;
  let shown = false;

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  function reset() {
    keyField.value = "";
    oldLine.textContent = "";
    step.hidden = true;
    form.hidden = false;
    dialog.setAttribute("aria-labelledby", "rotate-title");
    showError("");
  }


  document.addEventListener("click", function (e) {
    const item = e.target.closest("[data-rotate]");
    if (!item) return;
    const menu = item.closest('[role="menu"]');
    opener = menu ? $(menu.getAttribute("aria-labelledby")) : null;
    CV.keysPage.closeMenus();
    target = { namespace: item.dataset.namespace, name: item.dataset.rotate, label: item.dataset.label };
    reset();
    title.textContent = "Rotate " + target.label + "?";
    grace.value = "24h";
    dialog.showModal();
    grace.focus();
  });

  form.addEventListener("submit", async function (e) {
    e.preventDefault();
    if (!target || busy) return;
    busy = true;
    showError("");
    submit.dataset.idle = submit.textContent;
    submit.textContent = "Rotating…";
    submit.disabled = true;
    try {
      let resp;
      try {
        resp = await fetch("/api/v1/apikeys/" + encodeURIComponent(target.name) + "/rotate?namespace=" + encodeURIComponent(target.namespace), {
          method: "POST",
          headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": CV.keysPage.csrfToken() },
          body: JSON.stringify({ gracePeriod: grace.value }),
          credentials: "same-origin",
          cache: "no-store",
        });
      } catch (err) {
        throw new Error("The gateway could not be reached. Check your connection and try again.");
      }
      let data = null;
      try { data = await resp.json(); } catch (err) { data = null; }
      if (!resp.ok) {
        const detail = data && data.error ? data.error : {};
        throw new Error(detail.message || "The request failed (HTTP " + resp.status + "). Try again.");
      }
      form.hidden = true;
      step.hidden = false;
      dialog.setAttribute("aria-labelledby", "rotate-reveal-title");
      keyField.value = data.key;
      if (data.previousExpiresAt) {
        oldLine.textContent = "The old key " + data.previousPrefix + "… keeps working until " + CV.exactTime(new Date(data.previousExpiresAt)) +
          (data.previousExpiresIn ? " (" + data.previousExpiresIn + ")" : "") + ".";
      } else {
        oldLine.textContent = "The old key " + (data.previousPrefix || "") + "… no longer works.";
      }
      shown = true;
      keyField.focus();
      keyField.select();
      CV.keysPage.refresh();
    } catch (err) {
      showError(err.message);
    } finally {
      busy = false;
      submit.textContent = submit.dataset.idle || "Rotate key";
      submit.disabled = false;
    }
  });

  $("rotate-copy").addEventListener("click", async function () {
    CV.flash(this, (await CV.copy(keyField.value)) ? "Copied" : "Press Ctrl+C");
    if (this.textContent !== "Copied") keyField.select();
  });
  $("rotate-done").addEventListener("click", function () {
    reset();
    dialog.close();
  });
  // Esc closes, except while the answer (which carries the key) is on its way.
  dialog.addEventListener("cancel", function (e) {
    if (busy) {
      e.preventDefault();
      return;
    }
    reset();
  });
  dialog.addEventListener("close", function () {
    reset();
    if (shown) CV.toast("Key rotated. Only its prefix is kept.");
    shown = false;
    target = null;
    if (opener && document.contains(opener)) opener.focus();
  });
})();
