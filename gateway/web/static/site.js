// Shared by the console and the docs: copy to clipboard, copy buttons on
// code blocks, local times, focus kept inside open dialogs, and a toast.
// Loaded with `defer`, so the DOM is parsed when this runs.
"use strict";

(function () {
  // copy puts text on the clipboard. The Clipboard API needs a secure
  // context (https or localhost); elsewhere the old execCommand path works.
  async function copy(text) {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        return true;
      }
    } catch (e) {
      // Permission denied or no user activation: fall through.
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    area.value = "";
    area.remove();
    return ok;
  }

  // flash shows a short confirmation on a button ("Copied"), then restores it.
  function flash(button, label) {
    const original = button.dataset.label || button.textContent;
    button.dataset.label = original;
    button.textContent = label;
    clearTimeout(button._flashTimer);
    button._flashTimer = setTimeout(function () {
      button.textContent = original;
    }, 1600);
  }

  // addCopyButtons gives every code block a Copy button. The button copies
  // the block's text at click time, so rewritten URLs are what gets copied.
  function addCopyButtons(root) {
    root.querySelectorAll("pre.code").forEach(function (pre) {
      if (pre.parentElement.classList.contains("code-block")) return;
      const wrap = document.createElement("div");
      wrap.className = "code-block";
      const bar = document.createElement("div");
      bar.className = "code-toolbar";
      pre.parentNode.insertBefore(wrap, pre);
      wrap.appendChild(bar);
      wrap.appendChild(pre);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn copy-btn";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy code");
      button.addEventListener("click", async function () {
        flash(button, (await copy(pre.textContent)) ? "Copied" : "Press Ctrl+C");
      });
      bar.appendChild(button);
    });
  }

  const dateFormat = { year: "numeric", month: "short", day: "numeric" };
  const dateTimeFormat = { year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit", timeZoneName: "short" };

  // One format for every time, in the page's language as the server
  // writes it ("Dec 9, 2026"), only in the reader's time zone.
  const locale = document.documentElement.lang || "en";
  function exactTime(d) { return d.toLocaleString(locale, dateTimeFormat); }

  // localizeTimes shows server-rendered times in the reader's time zone:
  // dates as dates, and the exact time in the tooltip of every <time>.
  // The "(in 2 days)" next to them is the server's, in the CLI's words.
  function localizeTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      const d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.title = exactTime(d);
      if (el.dataset.format === "date") el.textContent = d.toLocaleDateString(locale, dateFormat);
    });
  }

  // Keep Tab inside an open modal dialog. showModal() already makes the
  // page behind it inert; this also stops Tab from leaving for the browser UI.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Tab") return;
    const dialog = document.querySelector("dialog[open]");
    if (!dialog) return;
    const focusable = Array.from(dialog.querySelectorAll(
      "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), textarea, summary, [tabindex]:not([tabindex='-1'])"
    )).filter(function (el) { return el.offsetParent !== null; });
    if (focusable.length === 0) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (e.shiftKey && (document.activeElement === first || !dialog.contains(document.activeElement))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (document.activeElement === last || !dialog.contains(document.activeElement))) {
      e.preventDefault();
      first.focus();
    }
  });

  let toastTimer;
  function toast(message) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.hidden = true; }, 3500);
  }

  // A toast is about what just happened. Opening a dialog starts
  // something else, so it takes any toast away: "Key created" must not
  // stay on screen while another key is rotated.
  function dismissToast() {
    clearTimeout(toastTimer);
    const el = document.getElementById("toast");
    if (!el) return;
    el.hidden = true;
    el.textContent = "";
  }
  const dialogOpened = new MutationObserver(function (changes) {
    if (changes.some(function (c) { return c.target.open; })) dismissToast();
  });
  document.querySelectorAll("dialog").forEach(function (d) {
    dialogOpened.observe(d, { attributes: true, attributeFilter: ["open"] });
  });

  window.CodeVector = { copy: copy, flash: flash, addCopyButtons: addCopyButtons, localizeTimes: localizeTimes, exactTime: exactTime, toast: toast };

  addCopyButtons(document);
  localizeTimes(document);
})();
