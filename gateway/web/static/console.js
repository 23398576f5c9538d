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

  // ---- Guardrails (the create and Edit limits dialogs) ----

  // The namespace's guardrails as GET /api/v1/apikeys/guardrails reports
  // them (gateway/console/guardrails.go): both dialogs show them under
  // their fields and check the fields against them before sending, with
  // these same functions. Without them a dialog still works: the API
  // server checks. rails is null when they could not be read; problem is
  // the console's words when the guardrails are broken.
  async function fetchGuardrails() {
    try {
      const resp = await fetch("/api/v1/apikeys/guardrails", { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" });
      const data = await resp.json();
      if (resp.ok) return { rails: data, problem: "" };
      return { rails: null, problem: data && data.error && data.error.code === "guardrails_missing" ? data.error.message : "" };
    } catch (e) {
      return { rails: null, problem: "" };
    }
  }

  // showRule writes "Guardrail: at most 600; default 60." into a field's
  // hint, or hides it.
  function showRule(el, parts) {
    const text = parts.filter(Boolean).join("; ");
    el.textContent = text ? "Guardrail: " + text + "." : "";
    el.hidden = !text;
  }

  // showSource says where the guardrails come from, or what is wrong
  // with them.
  function showSource(el, g, problem) {
    g = g || {};
    el.textContent = problem || (g.setBy ? "This namespace has guardrails, shown below each field (set by " + g.setBy + ")." : "");
    el.hidden = !el.textContent;
    el.classList.toggle("field-error", Boolean(problem));
  }

  // ruleParts: the words of each field's guardrail hint.
  function ruleParts(g) {
    g = g || {};
    const most = function (v) { return v !== undefined && v !== null ? "at most " + Number(v).toLocaleString("en-US") : ""; };
    const dflt = function (v) { return v !== undefined && v !== null && v !== "" ? "default " + (Array.isArray(v) ? v.join(", ") : typeof v === "number" ? v.toLocaleString("en-US") : v) : ""; };
    return {
      models: [g.allowedModels ? "within " + g.allowedModels.join(", ") : "", dflt(g.defaultModels)],
      rpm: [most(g.maxRequestsPerMinute), dflt(g.defaultRequestsPerMinute)],
      tpm: [most(g.maxTokensPerMinute), dflt(g.defaultTokensPerMinute)],
      concurrency: [most(g.maxConcurrentRequests), dflt(g.defaultConcurrentRequests)],
      budget: [g.maxBudgetText ? "at most " + g.maxBudgetText : "", dflt(g.defaultBudgetText)],
    };
  }

  function modelsOf(field) {
    return field.value.split(",").map(function (m) { return m.trim(); }).filter(Boolean);
  }

  // A model glob falls within an allowed one as the guardrails' admission
  // policy decides it (config/policies/guardrails.yaml, allowedPatterns).
  function withinAllowed(glob, allowed) {
    return allowed.some(function (a) {
      const pattern = "^" + a.replace(/\./g, "\\.").replace(/\+/g, "\\+").replace(/\*/g, "[^/]*").replace(/\?/g, "[^*?/]") + "$";
      return new RegExp(pattern).test(glob);
    });
  }

  // The checks below take required: whether an empty field is refused
  // too. On a create an empty field gets the namespace's default; on an
  // edit it removes the limit, which the guardrails refuse where they set
  // a maximum (unlimited is more than any maximum).
  function checkModels(list, g, required) {
    g = g || {};
    if (!g.allowedModels) return "";
    if (list.length === 0) return required ? "This namespace allows only models within " + g.allowedModels.join(", ") + ": name them." : "";
    const outside = list.filter(function (m) { return !withinAllowed(m, g.allowedModels); });
    if (outside.length === 0) return "";
    return outside.join(", ") + (outside.length === 1 ? " is" : " are") + " not within the models this namespace allows: " + g.allowedModels.join(", ") + ".";
  }

  // limitValue reads a limit: null when empty, NaN when not a whole
  // number above 0.
  function limitValue(field) {
    const text = field.value.trim().replace(/[\s,_]/g, "");
    if (text === "") return null;
    return /^[0-9]+$/.test(text) && Number(text) >= 1 ? Number(text) : NaN;
  }

  function checkLimit(field, label, max, required) {
    const v = limitValue(field);
    const most = max ? "This namespace allows at most " + max.toLocaleString("en-US") + " " + label.toLowerCase() : "";
    if (v === null) return required && max ? most + ": give a limit." : "";
    if (isNaN(v)) return label + " must be a whole number, like 600, or empty.";
    if (max && v > max) return most + ".";
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

  function checkBudget(text, g, required) {
    g = g || {};
    text = text.trim();
    const most = g.maxBudget ? "This namespace allows a budget of at most " + g.maxBudgetText + " (in " + g.maxBudgetUnit + " per " + g.maxBudgetPeriod + ")" : "";
    if (!text) return required && most ? most + ": give one." : "";
    const b = budgetOf(text);
    if (!b) return "Write a budget like 50usd/month or 5Mtokens/day, or leave it empty.";
    if (most && (b.unit !== g.maxBudgetUnit || b.period !== g.maxBudgetPeriod || b.amount > g.maxBudgetAmount)) return most + ".";
    return "";
  }

  // fieldOfRefusal finds the field a refusal (the console's or the API
  // server's) is about.
  function fieldOfRefusal(message) {
    if (/spec\.models|model/.test(message)) return "models";
    if (/requestsPerMinute|Requests per minute/.test(message)) return "rpm";
    if (/tokensPerMinute|Tokens per minute/.test(message)) return "tpm";
    if (/concurrentRequests|Concurrent requests/.test(message)) return "concurrency";
    if (/spec\.budget|budget/i.test(message)) return "budget";
    if (/expir|ttl|lifetime/i.test(message)) return "expires";
    return null;
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
    const got = await fetchGuardrails();
    if (!createDialog.open) return;
    rails = got.rails;
    showGuardrails(got.rails, got.problem);
  }

  function setRule(name, parts) {
    showRule($("create-" + name + "-rule"), parts);
  }

  function lifetimeWords(text, seconds) {
    const days = seconds / 86400;
    return Number.isInteger(days) && !/d$/.test(text) ? text + " (" + days + " days)" : text;
  }

  function showGuardrails(g, problem) {
    showSource($("create-guardrails"), g, problem);
    g = g || {};
    const parts = ruleParts(g);
    ["models", "rpm", "tpm", "budget"].forEach(function (name) { setRule(name, parts[name]); });
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
    return modelsOf(fields.models);
  }

  const checks = {
    expires: checkExpiry,
    models: function () { return checkModels(modelList(), rails); },
    rpm: function () { return checkLimit(fields.rpm, "Requests per minute", (rails || {}).maxRequestsPerMinute); },
    tpm: function () { return checkLimit(fields.tpm, "Tokens per minute", (rails || {}).maxTokensPerMinute); },
    budget: function () { return checkBudget(fields.budget.value, rails); },
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
        if (name && fields[name]) {
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
  // The fields by the names the guardrails' helpers use (ruleParts,
  // fieldOfRefusal), each with its hint (#policy-X-rule) and inline error
  // (#policy-X-error).
  const policyFields = {
    models: $("policy-models"),
    rpm: $("policy-rpm"),
    tpm: $("policy-tpm"),
    concurrency: $("policy-concurrency"),
    budget: $("policy-budget"),
  };
  // The per-minute and concurrency limits: the API's name and the label.
  const policyLimits = {
    rpm: ["requestsPerMinute", "Requests per minute", "maxRequestsPerMinute"],
    tpm: ["tokensPerMinute", "Tokens per minute", "maxTokensPerMinute"],
    concurrency: ["concurrentRequests", "Concurrent requests", "maxConcurrentRequests"],
  };
  let editing = null;
  let policyRails = null; // the guardrails, once the dialog has them
  let policyBusy = false;

  function setPolicyError(name, message) {
    const el = $("policy-" + name + "-error");
    el.textContent = message;
    el.hidden = !message;
    if (message) policyFields[name].setAttribute("aria-invalid", "true");
    else policyFields[name].removeAttribute("aria-invalid");
  }

  // changed tells whether any of the named fields differs from what the
  // dialog opened with: the guardrails check only the parts of a policy
  // that change (models; the limits together; the budget), so an
  // untouched key from before the guardrails can still be edited.
  function changed(names) {
    return names.some(function (n) { return policyFields[n].value.trim() !== editing.was[n]; });
  }

  const policyChecks = {
    models: function () { return checkModels(modelsOf(policyFields.models), policyRails, changed(["models"])); },
    budget: function () { return checkBudget(policyFields.budget.value, policyRails, changed(["budget"])); },
  };
  Object.keys(policyLimits).forEach(function (name) {
    const l = policyLimits[name];
    policyChecks[name] = function () {
      return checkLimit(policyFields[name], l[1], (policyRails || {})[l[2]], changed(Object.keys(policyLimits)));
    };
  });

  // The menu item carries the key's policy as the fields write it. Edit
  // limits is offered only for keys in the console's namespace, whose
  // guardrails are the ones GET /api/v1/apikeys/guardrails reports.
  function openPolicy(item, opener) {
    const was = {
      models: item.dataset.models || "",
      rpm: item.dataset.rpm || "",
      tpm: item.dataset.tpm || "",
      concurrency: item.dataset.concurrency || "",
      budget: item.dataset.budget || "",
    };
    editing = { namespace: item.dataset.namespace, name: item.dataset.editPolicy, label: item.dataset.label, opener: opener, was: was };
    policyTitle.textContent = "Edit limits for " + item.dataset.label;
    policyRails = null;
    showSource($("policy-guardrails"), null, "");
    Object.keys(policyFields).forEach(function (name) {
      policyFields[name].value = was[name];
      showRule($("policy-" + name + "-rule"), []);
      setPolicyError(name, "");
    });
    showError(policyError, "");
    policyDialog.showModal();
    policyFields.models.focus();
    loadPolicyGuardrails(editing);
  }

  async function loadPolicyGuardrails(target) {
    const got = await fetchGuardrails();
    if (!policyDialog.open || editing !== target) return;
    policyRails = got.rails;
    // A namespace whose guardrails are broken refuses new keys, not
    // changes: its problem is the create dialog's to tell.
    showSource($("policy-guardrails"), got.rails, "");
    const parts = ruleParts(got.rails);
    Object.keys(policyFields).forEach(function (name) { showRule($("policy-" + name + "-rule"), parts[name]); });
  }

  if (policyDialog) {
    // As in the create dialog: a field says what is wrong with it when it
    // is left (not for Save, which checks them all) and while it is
    // corrected.
    Object.keys(policyFields).forEach(function (name) {
      const check = function () { if (editing) setPolicyError(name, policyChecks[name]()); };
      policyFields[name].addEventListener("focusout", function (e) { if (e.relatedTarget !== policySubmit) check(); });
      policyFields[name].addEventListener("input", function () { if (policyFields[name].getAttribute("aria-invalid") === "true") check(); });
    });

    policyForm.addEventListener("submit", async function (e) {
      e.preventDefault();
      if (!editing || policyBusy) return;
      showError(policyError, "");
      let first = null;
      Object.keys(policyFields).forEach(function (name) {
        const message = policyChecks[name]();
        setPolicyError(name, message);
        if (message && !first) first = name;
      });
      if (first) {
        policyFields[first].focus();
        return;
      }
      const body = { models: modelsOf(policyFields.models), budget: policyFields.budget.value.trim() };
      Object.keys(policyLimits).forEach(function (name) { body[policyLimits[name][0]] = limitValue(policyFields[name]); });
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
        // A refusal about one field (the console's, the CRD's or the
        // guardrails', which may have tightened since the dialog opened)
        // is shown at that field; the rest in the dialog's alert.
        const name = err.code === "invalid_models" ? "models" : err.code === "invalid_budget" ? "budget" : fieldOfRefusal(err.message);
        if (name && policyFields[name]) {
          setPolicyError(name, err.message);
          policyFields[name].focus();
        } else {
          showError(policyError, err.message);
        }
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
