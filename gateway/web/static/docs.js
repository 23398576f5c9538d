// The "Your gateway URL" card of the docs. The pinned URL lives in this
// browser's localStorage only; every [data-gateway-url] element shows it and
// every a[data-gateway-path] links to it, on every docs page and at once
// when it changes (also in other tabs). Unpinned, the page's own origin is
// used.
"use strict";

(function () {
  const STORAGE_KEY = "codevector.gatewayURL";
  const CV = window.CodeVector;
  const form = document.getElementById("gateway-form");
  const input = document.getElementById("gateway-url");
  const reset = document.getElementById("gateway-reset");
  const status = document.getElementById("gateway-status");
  const error = document.getElementById("gateway-error");

  function stored() {
    try {
      return localStorage.getItem(STORAGE_KEY) || "";
    } catch (e) {
      return ""; // storage disabled: behave as if nothing is pinned
    }
  }

  function store(value) {
    try {
      if (value) localStorage.setItem(STORAGE_KEY, value);
      else localStorage.removeItem(STORAGE_KEY);
      return true;
    } catch (e) {
      return false;
    }
  }

  // normalize turns what a reader typed into "https://host[:port][/path]",
  // or null. Only http(s) URLs without credentials, query or fragment pass,
  // so nothing else can end up in a link's href.
  function normalize(raw) {
    let v = (raw || "").trim();
    if (!v) return null;
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) v = "https://" + v;
    let u;
    try {
      u = new URL(v);
    } catch (e) {
      return null;
    }
    if (u.protocol !== "https:" && u.protocol !== "http:") return null;
    // A host name (punycode after parsing) or a bracketed IPv6 address.
    if (!/^([a-z0-9-]+\.)*[a-z0-9-]+$|^\[[0-9a-f:.]+\]$/i.test(u.hostname)) return null;
    if (u.username || u.password || u.search || u.hash) return null;
    return u.origin + u.pathname.replace(/\/+$/, "");
  }

  function pinned() { return normalize(stored()); }
  function current() { return pinned() || location.origin; }

  // apply rewrites the page for url (default: the pinned URL or origin).
  function apply(url) {
    url = url || current();
    const isPinned = url !== location.origin || pinned() !== null;
    document.querySelectorAll("[data-gateway-url]").forEach(function (el) { el.textContent = url; });
    document.querySelectorAll("a[data-gateway-path]").forEach(function (a) { a.href = url + a.dataset.gatewayPath; });
    if (input && document.activeElement !== input) {
      input.value = url;
      input.removeAttribute("aria-invalid");
    }
    if (status) {
      const code = document.createElement("code");
      code.textContent = url;
      status.replaceChildren(
        isPinned ? "Examples use your pinned gateway, " : "Examples use this page's address, ",
        code,
        isPinned ? ", saved in this browser only." : ". Nothing is saved until you press Save."
      );
    }
  }

  function showError(message) {
    if (!error) return;
    error.textContent = message;
    error.hidden = !message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  if (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      const url = normalize(input.value);
      if (!url) {
        showError("Enter your gateway's address, such as https://gateway.example.com.");
        input.focus();
        return;
      }
      showError("");
      input.value = url;
      if (store(url)) {
        apply();
        CV.toast("Gateway URL saved. Every docs page now uses it.");
      } else {
        apply(url);
        showError("This browser does not let this site save settings, so the URL applies to this page only.");
      }
    });
    reset.addEventListener("click", function () {
      store("");
      showError("");
      input.value = location.origin;
      apply();
      CV.toast("Gateway URL reset to this page's address.");
    });
  }

  // Another tab pinned or reset the URL: follow it.
  window.addEventListener("storage", function (e) {
    if (e.key === STORAGE_KEY || e.key === null) apply();
  });

  apply();
})();
