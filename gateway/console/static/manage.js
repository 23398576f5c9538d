// The API keys page: delete a key that no longer works, and (admins)
// search the listed keys. Served by the console itself
// (/api-keys/manage.js); it works next to console.js, which owns the row
// menus, the CSRF token and the table's refresh (CodeVector.keysPage).
(function () {
  "use strict";
  const $ = function (id) { return document.getElementById(id); };
  const CV = window.CodeVector;
  const page = CV && CV.keysPage;
  if (!page) return;

  // ---- Delete ----

  const dialog = $("delete-dialog");
  const title = $("delete-title");
  const errorBox = $("delete-error");
  const confirm = $("delete-confirm");
  let target = null;
  let busy = false;

  document.addEventListener("click", function (e) {
    const item = e.target.closest("[data-delete]");
    if (!item || !dialog) return;
    const menu = item.closest('[role="menu"]');
    target = {
      namespace: item.dataset.namespace, name: item.dataset.delete, label: item.dataset.label,
      opener: menu ? $(menu.getAttribute("aria-labelledby")) : null,
    };
    page.closeMenus();
    title.textContent = "Delete " + target.label + "?";
    page.showError(errorBox, "");
    dialog.showModal();
    dialog.querySelector("[data-close]").focus();
  });

  if (dialog) {
    confirm.addEventListener("click", async function () {
      if (!target || busy) return;
      const t = target;
      busy = true;
      page.setBusy(confirm, true, "Deleting…");
      try {
        const res = await page.api("/api/v1/apikeys/" + encodeURIComponent(t.name) + "/delete?namespace=" + encodeURIComponent(t.namespace), {});
        target = null; // its row, and so its menu button, is gone
        dialog.close();
        await page.refresh();
        CV.toast(t.label + " was " + ((res && res.message) || "deleted."));
        const heading = document.querySelector("main h1");
        if (heading) {
          heading.tabIndex = -1;
          heading.focus();
        }
      } catch (err) {
        page.showError(errorBox, err.message);
      } finally {
        busy = false;
        page.setBusy(confirm, false);
      }
    });
    dialog.addEventListener("cancel", function (e) {
      if (busy) e.preventDefault();
    });
    dialog.addEventListener("close", function () {
      const opener = target && target.opener;
      target = null;
      if (opener && document.contains(opener)) opener.focus();
    });
  }

  // ---- Search (admins) ----

  // Narrows the rows the page holds (every key the admin may see, as the
  // owner filter leaves them) by owner, name, display name, namespace,
  // prefix or status: every word typed must match one of them. It runs
  // again whenever the table is rendered anew.
  const search = $("key-search");
  const count = $("key-search-count");
  const region = $("keys");
  if (!search || !region) return;

  function apply() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const rows = region.querySelectorAll("tbody tr");
    let shown = 0;
    rows.forEach(function (tr) {
      const d = tr.dataset;
      const text = [d.owner, d.name, d.label, d.namespace, d.prefix, d.status].join(" ").toLowerCase();
      const match = words.every(function (w) { return text.indexOf(w) >= 0; });
      tr.hidden = !match;
      if (match) shown++;
    });
    count.textContent = words.length ? shown + " of " + rows.length + " keys match." : "";
  }

  search.addEventListener("input", apply);
  // Enter in the search field must not submit the owner filter's form.
  search.addEventListener("keydown", function (e) {
    if (e.key === "Enter") e.preventDefault();
  });
  new MutationObserver(apply).observe(region, { childList: true });
})();
