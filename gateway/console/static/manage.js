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

  // deletable lists the rows whose menu offers Delete (keys that no
  // longer work), as the table shows them now: a search narrows it too.
  function deletable() {
    return Array.from(document.querySelectorAll("#keys [data-delete]"), function (b) {
      if (b.closest("tr").hidden) return null;
      return { namespace: b.dataset.namespace, name: b.dataset.delete, label: b.dataset.label };
    }).filter(Boolean);
  }

  // openDelete asks to delete keys (one, or all that no longer work).
  function openDelete(keys, heading, opener) {
    target = { keys: keys, opener: opener };
    title.textContent = heading;
    page.showError(errorBox, "");
    dialog.showModal();
    dialog.querySelector("[data-close]").focus();
  }

  document.addEventListener("click", function (e) {
    if (!dialog) return;
    if (e.target.closest("#clear-dead")) {
      const keys = deletable();
      if (keys.length) openDelete(keys, "Delete " + keys.length + (keys.length === 1 ? " key" : " keys") + " that no longer work?", e.target.closest("#clear-dead"));
      return;
    }
    const item = e.target.closest("[data-delete]");
    if (!item) return;
    const menu = item.closest('[role="menu"]');
    page.closeMenus();
    openDelete([{ namespace: item.dataset.namespace, name: item.dataset.delete, label: item.dataset.label }],
      "Delete " + item.dataset.label + "?", menu ? $(menu.getAttribute("aria-labelledby")) : null);
  });

  if (dialog) {
    // One request per key, one after another: the same API as a single
    // Delete, bounded by the rows the page shows.
    confirm.addEventListener("click", async function () {
      if (!target || busy) return;
      const t = target;
      busy = true;
      page.setBusy(confirm, true, "Deleting…");
      let done = 0;
      try {
        for (const k of t.keys) {
          await page.api("/api/v1/apikeys/" + encodeURIComponent(k.name) + "/delete?namespace=" + encodeURIComponent(k.namespace), {});
          done++;
        }
        target = null; // the rows, and so their menu buttons, are gone
        dialog.close();
        await page.refresh();
        CV.toast(t.keys.length === 1 ? t.keys[0].label + " was deleted." : done + " keys were deleted.");
        const heading = document.querySelector("h1");
        if (heading) {
          heading.tabIndex = -1;
          heading.focus();
        }
      } catch (err) {
        page.showError(errorBox, (done ? done + " of " + t.keys.length + " keys were deleted. " : "") + err.message);
        if (done) page.refresh();
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
  const clearBar = $("clear-bar");
  if (!region) return;

  // The clear button is there while some listed key can be deleted.
  function showClear() {
    if (clearBar) clearBar.hidden = deletable().length === 0;
  }
  showClear();
  new MutationObserver(showClear).observe(region, { childList: true });
  if (!search) return;

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
    showClear();
  }

  search.addEventListener("input", apply);
  // Enter in the search field must not submit the owner filter's form.
  search.addEventListener("keydown", function (e) {
    if (e.key === "Enter") e.preventDefault();
  });
  new MutationObserver(apply).observe(region, { childList: true });
})();
