// The API keys page: create (with the key shown once), row menus, revoke,
// and for admins "Edit limits" (a key's models, limits and budget).
// Rows are rendered by the server only: after every change this script
// fetches the page again and swaps the table in. A row is a namespace and a
// name together: keys made with kubectl in other namespaces are listed too,
// and may share a name with a console key.
"use strict";

(function () {
  const CV = window.CodeVector;
  const $ = function (id) { return document.getElementById(id); };

  const createDialog = $("create-dialog");
  const createForm = $("create-form");
  const revealStep = $("reveal-step");
  const revokeDialog = $("revoke-dialog");
  if (!createDialog || !revokeDialog) return;
  // What the page's other dialogs (the console's rotate.js) share with it.
  CV.keysPage = { csrfToken: csrfToken, closeMenus: closeMenus, refresh: refresh, api: api, rowOf: rowOf, showError: showError, setBusy: setBusy };

  // rowOf finds the row of the key namespace/name under root.
  function rowOf(root, namespace, name) {
    return root.querySelector('tr[data-namespace="' + CSS.escape(namespace) + '"][data-name="' + CSS.escape(name) + '"]');
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // api sends a JSON request with the CSRF token and turns an error body
  // into an Error whose message is written for the user.
  async function api(path, body) {
    let resp;
    try {
      resp = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify(body || {}),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (e) {
      throw new Error("The gateway could not be reached. Check your connection and try again.");
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (!resp.ok) {
      const detail = data && data.error ? data.error : {};
      const err = new Error(detail.message || "The request failed (HTTP " + resp.status + "). Try again.");
      err.code = detail.code || "";
      throw err;
    }
    return data;
  }

  // refresh re-renders the table from the server, and picks up a fresh
  // CSRF token on the way. highlight, if given, is a key ({namespace,
  // name}) whose row is marked as new. It answers false when the console
  // no longer knows who this is (the session ended).
  async function refresh(highlight) {
    let doc;
    try {
      const resp = await fetch(location.pathname + location.search, { headers: { Accept: "text/html" }, credentials: "same-origin", cache: "no-store" });
      if (resp.status === 401) return false;
      if (!resp.ok) return true;
      doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    } catch (e) {
      return true;
    }
    const fresh = doc.getElementById("keys");
    if (!fresh) return true;
    closeMenus();
    const region = $("keys");
    // Row details the reader opened stay open.
    const opened = Array.from(region.querySelectorAll("details[open]"), function (d) {
      const tr = d.closest("tr");
      return tr ? { namespace: tr.dataset.namespace, name: tr.dataset.name } : null;
    }).filter(Boolean);
    region.replaceChildren.apply(region, Array.from(fresh.childNodes, function (n) { return document.importNode(n, true); }));
    const freshOwner = doc.getElementById("owner");
    const owner = $("owner");
    if (freshOwner && owner) {
      owner.replaceChildren.apply(owner, Array.from(freshOwner.childNodes, function (n) { return document.importNode(n, true); }));
    }
    const token = doc.querySelector('meta[name="csrf-token"]');
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (token && meta) meta.content = token.content;
    CV.localizeTimes(region);
    opened.forEach(function (k) {
      const row = rowOf(region, k.namespace, k.name);
      const details = row && row.querySelector("details.key-policy");
      if (details) details.open = true;
    });
    if (highlight) {
      const row = rowOf(region, highlight.namespace, highlight.name);
      if (row) row.classList.add("row-new");
    }
    return true;
  }

  function showError(el, message) {
    el.textContent = message;
    el.hidden = !message;
  }

  function setBusy(button, busy, label) {
    if (busy) {
      button.dataset.idle = button.textContent;
      button.textContent = label;
    } else if (button.dataset.idle) {
      button.textContent = button.dataset.idle;
    }
    button.disabled = busy;
  }

  // ---- Create ----

  const nameInput = $("create-name");
  const resourceInput = $("create-resource-name");
  const expirySelect = $("create-expiry");
  const dateField = $("create-date-field");
  const expiresInput = $("create-expires");
  const createError = $("create-error");
  const createSubmit = $("create-submit");
  const revealKey = $("reveal-key");
  const revealCurl = $("reveal-curl");
  // The fields the namespace's guardrails bound, each with its hint
  // (#create-X-rule) and inline error (#create-X-error).
  const fields = {
    expires: expiresInput,
    models: $("create-models"),
    rpm: $("create-rpm"),
    tpm: $("create-tpm"),
    budget: $("create-budget"),
  };
  const noExpiryLabel = expirySelect.options[0].textContent;
  let rails = null; // GET /api/v1/apikeys/guardrails, once the dialog has it
  let creating = false;
  let createOpener = null;
  let revealed = false;

  function isoDate(d) {
    return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
  }

  function openCreate(opener) {
    createOpener = opener;
    resetCreate();
    createDialog.showModal();
    nameInput.focus();
    loadGuardrails();
  }

  // loadGuardrails shows the namespace's maxima and defaults next to the
  // fields. Without them the dialog still works: the API server checks.
  async function loadGuardrails() {
    let g = null;
    let problem = "";
    try {
      const resp = await fetch("/api/v1/apikeys/guardrails", { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" });
      const data = await resp.json();
      if (resp.ok) g = data;
      else if (data && data.error && data.error.code === "guardrails_missing") problem = data.error.message;
    } catch (e) {
      g = null;
    }
    if (!createDialog.open) return;
    rails = g;
    showGuardrails(g, problem);
  }

  function setRule(name, parts) {
    const el = $("create-" + name + "-rule");
    const text = parts.filter(Boolean).join("; ");
    el.textContent = text ? "Guardrail: " + text + "." : "";
    el.hidden = !text;
  }

  function lifetimeWords(text, seconds) {
    const days = seconds / 86400;
    return Number.isInteger(days) && !/d$/.test(text) ? text + " (" + days + " days)" : text;
  }

  function showGuardrails(g, problem) {
    const source = $("create-guardrails");
    g = g || {};
    source.textContent = problem || (g.setBy ? "This namespace has guardrails, shown below each field (set by " + g.setBy + ")." : "");
    source.hidden = !source.textContent;
    source.classList.toggle("field-error", Boolean(problem));
    const most = function (v) { return v !== undefined && v !== null ? "at most " + Number(v).toLocaleString("en-US") : ""; };
    const dflt = function (v) { return v !== undefined && v !== null && v !== "" ? "default " + (Array.isArray(v) ? v.join(", ") : typeof v === "number" ? v.toLocaleString("en-US") : v) : ""; };
    setRule("models", [g.allowedModels ? "within " + g.allowedModels.join(", ") : "", dflt(g.defaultModels)]);
    setRule("rpm", [most(g.maxRequestsPerMinute), dflt(g.defaultRequestsPerMinute)]);
    setRule("tpm", [most(g.maxTokensPerMinute), dflt(g.defaultTokensPerMinute)]);
    setRule("budget", [g.maxBudgetText ? "at most " + g.maxBudgetText : "", dflt(g.defaultBudgetText)]);
    setRule("expiry", [
      g.maxLifetime ? "lives at most " + lifetimeWords(g.maxLifetime, g.maxLifetimeSeconds) : "",
      g.requireExpiry && !g.defaultTTL ? "every key must expire" : "",
      g.defaultTTL ? "default " + g.defaultTTL : "",
    ]);
    // "No expiry" means what the namespace makes of it.
    const none = expirySelect.options[0];
    none.disabled = false;
    if (g.defaultTTL) none.textContent = "Namespace default (" + g.defaultTTL + ")";
    else if (g.requireExpiry) none.textContent = "No expiry (not allowed here)";
    else none.textContent = noExpiryLabel;
    if (g.requireExpiry && !g.defaultTTL) {
      none.disabled = true;
      // Start from the longest preset the guardrails allow.
      if (expirySelect.value === "") {
        const fits = Array.from(expirySelect.options).filter(function (o) {
          return /^[0-9]+$/.test(o.value) && (!g.maxLifetimeSeconds || Number(o.value) * 86400 <= g.maxLifetimeSeconds);
        });
        expirySelect.value = fits.length ? fits[fits.length - 1].value : "custom";
        dateField.hidden = expirySelect.value !== "custom";
      }
    }
    // Empty fields get the namespace's defaults, not "all" or "none".
    $("create-models-empty").textContent = g.defaultModels ? "Empty: the default below." : "Empty: all models.";
    $("create-budget-empty").textContent = g.defaultBudgetText ? "Empty: the default below." : "Empty: no budget.";
    if (g.defaultRequestsPerMinute) fields.rpm.placeholder = String(g.defaultRequestsPerMinute);
    if (g.defaultTokensPerMinute) fields.tpm.placeholder = String(g.defaultTokensPerMinute);
    if (g.defaultBudget) fields.budget.placeholder = g.defaultBudget;
  }

  // resetCreate empties the dialog, the key above all: after this the key
  // exists nowhere in the page, only its prefix in the table.
  function resetCreate() {
    revealKey.value = "";
    revealCurl.textContent = "";
    revealStep.hidden = true;
    createForm.hidden = false;
    createForm.reset();
    createForm.querySelector("details.advanced").open = false;
    dateField.hidden = true;
    resourceInput.removeAttribute("aria-invalid");
    Object.keys(fields).forEach(function (f) {
      fields[f].placeholder = "";
      setFieldError(f, "");
    });
    rails = null;
    showGuardrails(null, "");
    showError(createError, "");
    createDialog.setAttribute("aria-labelledby", "create-title");
  }

  expirySelect.addEventListener("change", function () {
    dateField.hidden = expirySelect.value !== "custom";
    // A preset is checked at once; a custom value once it is written.
    setFieldError("expires", dateField.hidden || expiresInput.value.trim() ? checkExpiry() : "");
    if (!dateField.hidden) expiresInput.focus();
  });

  function setFieldError(name, message) {
    const el = $("create-" + name + "-error");
    const field = name === "expires" && dateField.hidden ? expirySelect : fields[name];
    el.textContent = message;
    el.hidden = !message;
    // The select stands for the expiry while no custom value is open.
    [fields[name], name === "expires" ? expirySelect : null].forEach(function (f) { if (f) f.removeAttribute("aria-invalid"); });
    if (message) field.setAttribute("aria-invalid", "true");
  }

  const second = { ns: 1e-9, us: 1e-6, "µs": 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

  // expiry reads the chosen expiry as the API takes it: {ttl} or
  // {expiresAt}, with seconds (its lifetime from now); {} for none;
  // {error} when it cannot be read.
  function expiry() {
    if (expirySelect.value === "") return {};
    if (expirySelect.value !== "custom") return { ttl: expirySelect.value + "d", seconds: Number(expirySelect.value) * 86400 };
    const text = expiresInput.value.trim();
    if (!text) return { error: "Give a lifetime, like 30d or 12h, or a date, like 2027-01-31." };
    let m = /^([0-9]{1,4})([dw])$/.exec(text);
    if (m) return { ttl: text, seconds: Number(m[1]) * (m[2] === "w" ? 7 : 1) * 86400 };
    if (/^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) {
      let seconds = 0;
      text.replace(/([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g, function (_, n, unit) { seconds += Number(n) * second[unit]; return ""; });
      if (seconds < 60) return { error: "A key must live at least a minute." };
      return { ttl: text, seconds: seconds };
    }
    m = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/.exec(text);
    if (m) {
      const end = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 23, 59, 59);
      if (isNaN(end) || end.getDate() !== Number(m[3])) return { error: text + " is not a date: write it like 2027-01-31." };
      if (end <= new Date()) return { error: "The expiry date must be in the future." };
      return { expiresAt: end.toISOString(), seconds: (end - new Date()) / 1000 };
    }
    return { error: "\"" + text + "\" is not a lifetime or a date: write it like 30d, 2w, 12h or 2027-01-31." };
  }

  function checkExpiry() {
    const e = expiry();
    if (e.error) return e.error;
    const g = rails || {};
    if (e.seconds === undefined) {
      return g.requireExpiry && !g.defaultTTL ? "Keys in this namespace must expire: choose a lifetime" + (g.maxLifetime ? " of at most " + lifetimeWords(g.maxLifetime, g.maxLifetimeSeconds) : "") + "." : "";
    }
    if (g.maxLifetimeSeconds && e.seconds > g.maxLifetimeSeconds) {
      return "Keys in this namespace may live at most " + lifetimeWords(g.maxLifetime, g.maxLifetimeSeconds) + ": choose a shorter lifetime or an earlier date.";
    }
    return "";
  }

  function modelList() {
    return fields.models.value.split(",").map(function (m) { return m.trim(); }).filter(Boolean);
  }

  // A model glob falls within an allowed one as the guardrails' admission
  // policy decides it (config/policies/guardrails.yaml, allowedPatterns).
  function withinAllowed(glob, allowed) {
    return allowed.some(function (a) {
      const pattern = "^" + a.replace(/\./g, "\\.").replace(/\+/g, "\\+").replace(/\*/g, "[^/]*").replace(/\?/g, "[^*?/]") + "$";
      return new RegExp(pattern).test(glob);
    });
  }

  function checkModels() {
    const g = rails || {};
    if (!g.allowedModels) return "";
    const outside = modelList().filter(function (m) { return !withinAllowed(m, g.allowedModels); });
    if (outside.length === 0) return "";
    return outside.join(", ") + (outside.length === 1 ? " is" : " are") + " not within the models this namespace allows: " + g.allowedModels.join(", ") + ".";
  }

  // limitValue reads a per-minute limit: null when empty, NaN when not a
  // whole number above 0.
  function limitValue(field) {
    const text = field.value.trim().replace(/[\s,_]/g, "");
    if (text === "") return null;
    return /^[0-9]+$/.test(text) && Number(text) >= 1 ? Number(text) : NaN;
  }

  function checkLimit(name, label, max) {
    const v = limitValue(fields[name]);
    if (v === null) return "";
    if (isNaN(v)) return label + " must be a whole number, like 600, or empty.";
    if (max && v > max) return "This namespace allows at most " + max.toLocaleString("en-US") + " " + label.toLowerCase() + ".";
    return "";
  }

  // budgetOf reads "50usd/month", "$20", "5Mtokens/day" as ParseBudget
  // does (api/v1alpha1/policy.go), or null.
  function budgetOf(text) {
    const m = /^(\$)?([0-9]+(?:\.[0-9]+)?)([kmb])?(usd|tokens)?(?:\/(day|week|month|total))?$/.exec(text.toLowerCase().replace(/\s+/g, ""));
    if (!m) return null;
    let unit = m[4];
    if (m[1] || unit === "usd") {
      if (m[3] || unit === "tokens") return null;
      unit = "usd";
    } else if (unit !== "tokens") {
      return null;
    }
    const mult = { k: 1e3, m: 1e6, b: 1e9 }[m[3]] || 1;
    return { amount: Number(m[2]) * mult, unit: unit, period: m[5] || "month" };
  }

  function checkBudget() {
    const text = fields.budget.value.trim();
    if (!text) return "";
    const b = budgetOf(text);
    if (!b) return "Write a budget like 50usd/month or 5Mtokens/day, or leave it empty.";
    const g = rails || {};
    if (g.maxBudget && (b.unit !== g.maxBudgetUnit || b.period !== g.maxBudgetPeriod || b.amount > g.maxBudgetAmount)) {
      return "This namespace allows a budget of at most " + g.maxBudgetText + " (in " + g.maxBudgetUnit + " per " + g.maxBudgetPeriod + ").";
    }
    return "";
  }

  const checks = {
    expires: checkExpiry,
    models: checkModels,
    rpm: function () { return checkLimit("rpm", "Requests per minute", (rails || {}).maxRequestsPerMinute); },
    tpm: function () { return checkLimit("tpm", "Tokens per minute", (rails || {}).maxTokensPerMinute); },
    budget: checkBudget,
  };
  // Each field says what is wrong with it as soon as it is left (and,
  // once wrong, while it is corrected). Not when it is left for Create:
  // the message would push the button down under the pointer mid-click,
  // and Create checks every field anyway.
  Object.keys(fields).forEach(function (name) {
    const check = function () { setFieldError(name, checks[name]()); };
    fields[name].addEventListener("focusout", function (e) { if (e.relatedTarget !== createSubmit) check(); });
    fields[name].addEventListener("input", function () { if (fields[name].getAttribute("aria-invalid") === "true") check(); });
  });

  // fieldOfRefusal finds the field the API server's refusal is about.
  function fieldOfRefusal(message) {
    if (/spec\.models|model/.test(message)) return "models";
    if (/requestsPerMinute|Requests per minute/.test(message)) return "rpm";
    if (/tokensPerMinute|Tokens per minute/.test(message)) return "tpm";
    if (/spec\.budget|budget/i.test(message)) return "budget";
    if (/expir|ttl|lifetime/i.test(message)) return "expires";
    return null;
  }

  function curlExample(key) {
    return "curl " + location.origin + "/gateway/openai/v1/chat/completions \\\n" +
      '  -H "Authorization: Bearer ' + key + '" \\\n' +
      '  -H "Content-Type: application/json" \\\n' +
      "  -d '{\"model\": \"claude-sonnet-4-6\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'";
  }

  createForm.addEventListener("submit", async function (e) {
    e.preventDefault();
    if (creating) return;
    showError(createError, "");
    resourceInput.removeAttribute("aria-invalid");
    let first = null;
    Object.keys(fields).forEach(function (name) {
      const message = checks[name]();
      setFieldError(name, message);
      if (message && !first) first = name;
    });
    if (first) {
      (first === "expires" && dateField.hidden ? expirySelect : fields[first]).focus();
      return;
    }
    const body = {};
    if (nameInput.value.trim()) body.displayName = nameInput.value.trim();
    if (resourceInput.value.trim()) body.name = resourceInput.value.trim();
    const exp = expiry();
    if (exp.ttl) body.ttl = exp.ttl;
    if (exp.expiresAt) body.expiresAt = exp.expiresAt;
    const models = modelList();
    if (models.length) body.models = models;
    const rpm = limitValue(fields.rpm);
    const tpm = limitValue(fields.tpm);
    if (rpm !== null) body.requestsPerMinute = rpm;
    if (tpm !== null) body.tokensPerMinute = tpm;
    if (fields.budget.value.trim()) body.budget = fields.budget.value.trim();

    creating = true;
    setBusy(createSubmit, true, "Creating…");
    try {
      const res = await api("/api/v1/apikeys", body);
      createForm.hidden = true;
      revealStep.hidden = false;
      createDialog.setAttribute("aria-labelledby", "reveal-title");
      revealKey.value = res.key;
      revealCurl.textContent = curlExample(res.key);
      revealed = true;
      revealKey.focus();
      revealKey.select();
      refresh(res.apiKey);
    } catch (err) {
      // The server's words, whole: a guardrail refusal names the
      // namespace and the ConfigMap an administrator would change.
      showError(createError, err.message);
      if (err.code === "invalid_name" || err.code === "name_taken") {
        createForm.querySelector("details.advanced").open = true;
        resourceInput.setAttribute("aria-invalid", "true");
        resourceInput.focus();
      } else {
        // A refusal about one field is shown at that field, where the
        // eye goes with the focus; the rest in the dialog's alert.
        const name = fieldOfRefusal(err.message);
        if (name) {
          showError(createError, "");
          setFieldError(name, err.message);
          (name === "expires" && dateField.hidden ? expirySelect : fields[name]).focus();
        }
      }
    } finally {
      creating = false;
      setBusy(createSubmit, false);
    }
  });

  $("reveal-copy").addEventListener("click", async function () {
    CV.flash(this, (await CV.copy(revealKey.value)) ? "Copied" : "Press Ctrl+C");
    if (this.textContent !== "Copied") revealKey.select();
  });
  // The key is wiped before the dialog closes (Done, Esc), not only on the
  // "close" event, which the browser fires a moment later.
  $("reveal-done").addEventListener("click", function () {
    resetCreate();
    createDialog.close();
  });

  // Esc closes the dialog, except while a key is being created: the answer
  // carries the key, and it must land in an open dialog.
  createDialog.addEventListener("cancel", function (e) {
    if (creating) {
      e.preventDefault();
      return;
    }
    resetCreate();
  });
  createDialog.addEventListener("close", function () {
    resetCreate();
    if (revealed) CV.toast("Key created. Only its prefix is kept.");
    revealed = false;
    const opener = createOpener && document.contains(createOpener) ? createOpener : document.querySelector("[data-open-create]");
    if (opener) opener.focus();
  });

  // ---- Row menus ----

  function menuOf(button) { return $(button.getAttribute("aria-controls")); }

  function setMenu(button, open, focus) {
    const menu = menuOf(button);
    if (!menu) return;
    button.setAttribute("aria-expanded", String(open));
    menu.hidden = !open;
    if (open) {
      const items = menu.querySelectorAll('[role="menuitem"]');
      if (items.length) (focus === "last" ? items[items.length - 1] : items[0]).focus();
    }
  }

  function closeMenus(except) {
    document.querySelectorAll('[aria-haspopup="menu"][aria-expanded="true"]').forEach(function (b) {
      if (b !== except) setMenu(b, false);
    });
  }

  document.addEventListener("click", function (e) {
    const opener = e.target.closest("[data-open-create]");
    if (opener) {
      openCreate(opener);
      return;
    }
    const revoke = e.target.closest("[data-revoke]");
    if (revoke) {
      const button = $(revoke.closest('[role="menu"]').getAttribute("aria-labelledby"));
      closeMenus();
      openRevoke(revoke.dataset.namespace, revoke.dataset.revoke, revoke.dataset.label, button);
      return;
    }
    const edit = e.target.closest("[data-edit-policy]");
    if (edit) {
      const button = $(edit.closest('[role="menu"]').getAttribute("aria-labelledby"));
      closeMenus();
      openPolicy(edit, button);
      return;
    }
    const command = e.target.closest("[data-copy-command]");
    if (command) {
      copyCommand(command);
      return;
    }
    const button = e.target.closest('[aria-haspopup="menu"]');
    if (button) {
      const open = button.getAttribute("aria-expanded") !== "true";
      closeMenus(button);
      setMenu(button, open);
      return;
    }
    if (!e.target.closest('[role="menu"]')) closeMenus();
  });

  document.addEventListener("keydown", function (e) {
    if (!(e.target instanceof Element)) return;
    const button = e.target.closest('[aria-haspopup="menu"]');
    if (button && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      closeMenus(button);
      setMenu(button, true, e.key === "ArrowUp" ? "last" : "first");
      return;
    }
    const menu = e.target.closest('[role="menu"]');
    if (!menu) return;
    const items = Array.from(menu.querySelectorAll('[role="menuitem"]'));
    const i = items.indexOf(document.activeElement);
    const owner = $(menu.getAttribute("aria-labelledby"));
    switch (e.key) {
      case "Escape":
        e.preventDefault();
        setMenu(owner, false);
        owner.focus();
        break;
      case "ArrowDown":
        e.preventDefault();
        items[(i + 1) % items.length].focus();
        break;
      case "ArrowUp":
        e.preventDefault();
        items[(i - 1 + items.length) % items.length].focus();
        break;
      case "Home":
        e.preventDefault();
        items[0].focus();
        break;
      case "End":
        e.preventDefault();
        items[items.length - 1].focus();
        break;
      case "Tab":
        setMenu(owner, false);
        break;
    }
  });

  // ---- Revoke ----

  const revokeTitle = $("revoke-title");
  const revokeError = $("revoke-error");
  const revokeConfirm = $("revoke-confirm");
  let revoking = null;
  let revokeBusy = false;

  function openRevoke(namespace, name, label, opener) {
    revoking = { namespace: namespace, name: name, label: label, opener: opener };
    revokeTitle.textContent = "Revoke " + label + "?";
    showError(revokeError, "");
    revokeDialog.showModal();
    revokeDialog.querySelector("[data-close]").focus();
  }

  revokeConfirm.addEventListener("click", async function () {
    if (!revoking || revokeBusy) return;
    const target = revoking;
    revokeBusy = true;
    setBusy(revokeConfirm, true, "Revoking…");
    try {
      const res = await api("/api/v1/apikeys/" + encodeURIComponent(target.name) + "/revoke?namespace=" + encodeURIComponent(target.namespace), {});
      revokeDialog.close();
      await refresh();
      // The answer says whether every gateway replica refuses the key
      // (200), or which has not confirmed it in time (202): say what is true.
      const r = res && res.revocation;
      if (r && r.confirmed && r.replicas > 0) {
        CV.toast(target.label + " was revoked: every gateway replica (" + r.replicas + ") refuses it.");
      } else if (r && r.message) {
        CV.toast(target.label + ": " + r.message);
      } else {
        CV.toast(target.label + " was revoked.");
      }
      const row = rowOf($("keys"), target.namespace, target.name);
      const name = row && row.querySelector(".key-name");
      if (name) {
        name.tabIndex = -1;
        name.focus();
      }
    } catch (err) {
      showError(revokeError, err.message);
    } finally {
      revokeBusy = false;
      setBusy(revokeConfirm, false);
    }
  });

  revokeDialog.addEventListener("cancel", function (e) {
    if (revokeBusy) e.preventDefault();
  });
  revokeDialog.addEventListener("close", function () {
    const opener = revoking && revoking.opener;
    revoking = null;
    if (opener && document.contains(opener)) opener.focus();
  });

  document.querySelectorAll("dialog [data-close]").forEach(function (b) {
    b.addEventListener("click", function () { b.closest("dialog").close(); });
  });

  // ---- Edit limits (admins) ----

  const policyDialog = $("policy-dialog");
  const policyForm = $("policy-form");
  const policyTitle = $("policy-title");
  const policyError = $("policy-error");
  const policySubmit = $("policy-submit");
  const policyFields = {
    models: $("policy-models"),
    requestsPerMinute: $("policy-rpm"),
    tokensPerMinute: $("policy-tpm"),
    concurrentRequests: $("policy-concurrency"),
    budget: $("policy-budget"),
  };
  const limitNames = {
    requestsPerMinute: "Requests per minute",
    tokensPerMinute: "Tokens per minute",
    concurrentRequests: "Concurrent requests",
  };
  let editing = null;
  let policyBusy = false;

  function clearInvalid() {
    Object.values(policyFields).forEach(function (f) { if (f) f.removeAttribute("aria-invalid"); });
  }

  // markInvalid points at the field a refusal is about, when it says.
  function markInvalid(field) {
    if (!field) return;
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }

  // fieldOf finds the field an error from the console or the API server
  // (CRD rules, guardrails) is about.
  function fieldOf(err) {
    if (err.code === "invalid_models" || /spec\.models/.test(err.message)) return policyFields.models;
    if (err.code === "invalid_budget" || /spec\.budget/.test(err.message)) return policyFields.budget;
    for (const name in limitNames) {
      if (err.message.indexOf(name) >= 0 || err.message.indexOf(limitNames[name]) >= 0) return policyFields[name];
    }
    return null;
  }

  // The menu item carries the key's policy as the fields write it.
  function openPolicy(item, opener) {
    editing = { namespace: item.dataset.namespace, name: item.dataset.editPolicy, label: item.dataset.label, opener: opener };
    policyTitle.textContent = "Edit limits for " + item.dataset.label;
    policyFields.models.value = item.dataset.models || "";
    policyFields.requestsPerMinute.value = item.dataset.rpm || "";
    policyFields.tokensPerMinute.value = item.dataset.tpm || "";
    policyFields.concurrentRequests.value = item.dataset.concurrency || "";
    policyFields.budget.value = item.dataset.budget || "";
    clearInvalid();
    showError(policyError, "");
    policyDialog.showModal();
    policyFields.models.focus();
  }

  if (policyDialog) {
    policyForm.addEventListener("submit", async function (e) {
      e.preventDefault();
      if (!editing || policyBusy) return;
      clearInvalid();
      showError(policyError, "");
      const body = {
        models: policyFields.models.value.split(",").map(function (m) { return m.trim(); }).filter(Boolean),
        budget: policyFields.budget.value.trim(),
      };
      for (const name in limitNames) {
        const text = policyFields[name].value.trim().replace(/[\s,_]/g, "");
        if (text === "") {
          body[name] = null;
        } else if (/^[0-9]+$/.test(text)) {
          body[name] = Number(text);
        } else {
          showError(policyError, limitNames[name] + " must be a whole number, like 600, or empty for no limit.");
          markInvalid(policyFields[name]);
          return;
        }
      }
      const target = editing;
      policyBusy = true;
      setBusy(policySubmit, true, "Saving…");
      try {
        await api("/api/v1/apikeys/" + encodeURIComponent(target.name) + "/policy", body);
        editing = null; // focus goes to the row once it is rendered again
        policyDialog.close();
        await refresh();
        CV.toast("The limits of " + target.label + " were saved.");
        const row = rowOf($("keys"), target.namespace, target.name);
        const button = row && row.querySelector('[aria-haspopup="menu"]');
        if (button) button.focus();
      } catch (err) {
        showError(policyError, err.message);
        markInvalid(fieldOf(err));
      } finally {
        policyBusy = false;
        setBusy(policySubmit, false);
      }
    });
    policyDialog.addEventListener("cancel", function (e) {
      if (policyBusy) e.preventDefault();
    });
    policyDialog.addEventListener("close", function () {
      const target = editing;
      editing = null;
      if (target && target.opener && document.contains(target.opener)) target.opener.focus();
    });
  }

  // ---- Keys outside the console namespace ----

  // copyCommand copies the kubectl command that revokes a key the console
  // cannot revoke. Where the clipboard is out of reach, the command is
  // selected in the menu instead, for Ctrl+C.
  async function copyCommand(button) {
    const ok = await CV.copy(button.dataset.copyCommand);
    button.focus(); // the fallback copy borrows the focus; the menu keeps it
    CV.flash(button, ok ? "Copied" : "Press Ctrl+C");
    if (!ok) {
      const code = button.closest('[role="menu"]').querySelector("code");
      if (code) window.getSelection().selectAllChildren(code);
    }
  }

  // ---- Owner filter (admins) ----

  const ownerFilter = $("owner-filter");
  if (ownerFilter) {
    $("owner").addEventListener("change", function () { ownerFilter.requestSubmit(); });
  }

  // Keep "Last used", statuses and the CSRF token current while the page
  // stays open, and catch up at once when the tab comes back into view.
  // When the session has ended, loading the page again goes through
  // sign-in (and comes back here); nothing is lost, since no dialog is open.
  async function quietRefresh() {
    if (document.visibilityState !== "visible" || document.querySelector("dialog[open]")) return;
    if (document.querySelector('[aria-haspopup="menu"][aria-expanded="true"]')) return;
    if (await refresh() === false) location.reload();
  }
  setInterval(quietRefresh, 60000);
  document.addEventListener("visibilitychange", quietRefresh);
})();
