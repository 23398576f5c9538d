// The API keys page: rotate a key you own. The new key is shown once, in
// its own dialog, and wiped from the DOM when the dialog closes. Served by
// the console itself (/api-keys/rotate.js); it works next to console.js,
// which owns the row menus.
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

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  function closeMenus() {
    document.querySelectorAll('[aria-haspopup="menu"][aria-expanded="true"]').forEach(function (b) {
      b.setAttribute("aria-expanded", "false");
      const menu = $(b.getAttribute("aria-controls"));
      if (menu) menu.hidden = true;
    });
  }

  function reset() {
    keyField.value = "";
    oldLine.textContent = "";
    step.hidden = true;
    form.hidden = false;
    dialog.setAttribute("aria-labelledby", "rotate-title");
    showError("");
  }

  // refresh re-renders the table from the server, as console.js does.
  async function refresh() {
    try {
      const resp = await fetch(location.pathname + location.search, { headers: { Accept: "text/html" }, credentials: "same-origin", cache: "no-store" });
      if (!resp.ok) return;
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      const fresh = doc.getElementById("keys");
      const region = $("keys");
      if (!fresh || !region) return;
      closeMenus();
      region.replaceChildren.apply(region, Array.from(fresh.childNodes, function (n) { return document.importNode(n, true); }));
      const token = doc.querySelector('meta[name="csrf-token"]');
      const meta = document.querySelector('meta[name="csrf-token"]');
      if (token && meta) meta.content = token.content;
      CV.localizeTimes(region);
    } catch (e) {
      // The table stays as it was; the next change refreshes it.
    }
  }

  document.addEventListener("click", function (e) {
    const item = e.target.closest("[data-rotate]");
    if (!item) return;
    const menu = item.closest('[role="menu"]');
    opener = menu ? $(menu.getAttribute("aria-labelledby")) : null;
    closeMenus();
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
        resp = await fetch("/api/v1/apikeys/" + encodeURIComponent(target.name) + "/rotate", {
          method: "POST",
          headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrfToken() },
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
        oldLine.textContent = "The old key " + data.previousPrefix + "… keeps working until " + new Date(data.previousExpiresAt).toLocaleString() + ".";
      } else {
        oldLine.textContent = "The old key " + (data.previousPrefix || "") + "… no longer works.";
      }
      shown = true;
      keyField.focus();
      keyField.select();
      refresh();
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
