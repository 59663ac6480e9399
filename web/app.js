// Rio dashboard: one page, hash-routed, talking only to rio-server's JSON API
// (POST /api/v1/<Service>/<Method>). Every piece of data reaches the page
// through textContent, never as HTML. The token (the bootstrap admin token
// or a scoped access token) lives in this tab's sessionStorage and travels
// as a header; the page offers only what its scope allows, and the server
// checks every call all the same.
"use strict";

const TOKEN_KEY = "rio.adminToken";
const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");
const flash = document.getElementById("flash");
const signOutButton = document.getElementById("sign-out");
const callerLabel = document.getElementById("caller");
const accessLink = document.getElementById("access-link");

// Timers and loops of the current page; cleared when the page changes.
let pageTimers = [];
let pageGeneration = 0;

// ---------------------------------------------------------------- helpers

// el("div", {class: "x", onclick: f}, "text", child, ...): strings become
// text nodes, so data can never turn into markup.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "value") node.value = value;
    // CSSOM, not the style attribute, which the CSP forbids.
    else if (key === "style") node.style.cssText = value;
    else if (key === "checked") node.checked = !!value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function say(message, bad) {
  const msg = el("div", { class: bad ? "msg bad" : "msg", role: bad ? "alert" : "status" }, message);
  flash.append(msg);
  setTimeout(() => msg.remove(), bad ? 8000 : 4000);
}

function later(fn, ms) {
  const id = setTimeout(fn, ms);
  pageTimers.push(id);
  return id;
}

function every(fn, ms) {
  const id = setInterval(fn, ms);
  pageTimers.push(id);
  return id;
}

function fmtTime(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return isNaN(d) ? String(ts) : d.toLocaleString();
}

function fmtUs(us) {
  const n = Number(us || 0);
  if (n >= 1e6) return (n / 1e6).toFixed(2) + " s";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + " ms";
  return n + " µs";
}

function enc(s) { return encodeURIComponent(s); }

// "2024-05-01T10:00" (datetime-local, local time) -> RFC 3339 UTC, or "".
function localToRfc3339(value) {
  if (!value) return "";
  const d = new Date(value);
  return isNaN(d) ? "" : d.toISOString();
}

function rfc3339ToLocal(value) {
  if (!value) return "";
  const d = new Date(value);
  if (isNaN(d)) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function prettyJson(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
}

function statusBadge(status) { return el("span", { class: "badge " + status }, status); }

function codeText(code) {
  const n = Number(code || 0);
  if (!n) return el("span", { class: "muted" }, "—");
  return el("span", { class: n >= 200 && n < 300 ? "code-ok" : "code-bad" }, String(n));
}

function isFailing(d) {
  return d.status === "FAILED" || (d.status !== "SUCCEEDED" && !!d.last_error_class);
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, body) {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  return rawApi(method, body, token);
}

async function rawApi(method, body, token) {
  let response;
  try {
    response = await fetch("api/v1/" + method, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token },
      body: JSON.stringify(body || {}),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "UNAVAILABLE", "rio-server cannot be reached");
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const err = new ApiError(response.status, data && data.code || "HTTP_" + response.status,
      data && data.message || response.statusText);
    if (response.status === 401 && token === (sessionStorage.getItem(TOKEN_KEY) || "")) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn("Your session ended: " + err.message);
    }
    throw err;
  }
  return data;
}

// Runs an action from a button: disables it meanwhile and reports errors.
async function act(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) say(e.message, true);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------------------------------------------------------------- caller

// Who is signed in: GetCaller's reply {name, scope, project}, fetched at
// sign-in (and again when the page is reloaded), dropped at sign-out.
let caller = null;

const SCOPES = ["ADMIN", "PROJECT_ADMIN", "READ_ONLY"];

function callerText(c) {
  const parts = [c.name, c.scope];
  if (c.project) parts.push(c.project);
  else if (c.scope !== "ADMIN") parts.push("all projects");
  return parts.join(" · ");
}

function setCaller(c) {
  caller = c;
  callerLabel.textContent = c ? callerText(c) : "";
  callerLabel.hidden = !c;
  accessLink.hidden = !isAdmin();
}

// Projects and access tokens: scope ADMIN only.
function isAdmin() { return !!caller && caller.scope === "ADMIN"; }

// Senders, handlers, re-triggers and recoveries: ADMIN, and PROJECT_ADMIN
// (whose project the server enforces). READ_ONLY only reads.
function canWrite() { return !!caller && (caller.scope === "ADMIN" || caller.scope === "PROJECT_ADMIN"); }

function readOnlyNote() {
  if (canWrite()) return null;
  return el("p", { class: "muted", id: "read-only-note" },
    "Signed in read-only: changes and re-triggers need a token with scope ADMIN or PROJECT_ADMIN.");
}

// In-page confirmation (keyboard-friendly: the confirm button gets focus,
// Escape cancels).
function confirmBox(container, text, confirmLabel, onConfirm) {
  const box = el("div", { class: "card confirm", role: "alertdialog", "aria-label": text });
  const yes = el("button", { class: "danger primary", type: "button" }, confirmLabel);
  const no = el("button", { type: "button" }, "Cancel");
  const close = () => box.remove();
  yes.addEventListener("click", async () => { await act(yes, onConfirm); close(); });
  no.addEventListener("click", close);
  box.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
  append(box, [el("p", {}, text), el("div", { class: "row" }, yes, no)]);
  container.prepend(box);
  yes.focus();
  return box;
}

// ---------------------------------------------------------------- layout

function setCrumbs(...parts) {
  crumbs.replaceChildren();
  parts.forEach((part, i) => {
    if (i) crumbs.append(el("span", { class: "sep" }, "/"));
    crumbs.append(part[1] ? el("a", { href: part[1] }, part[0]) : el("span", {}, part[0]));
  });
}

// Children may be null or false (controls the caller's scope does not
// allow): they are left out.
function page(title, ...children) {
  app.replaceChildren(el("h1", {}, title));
  append(app, children);
}

function showSignIn(message) {
  pageGeneration++;
  pageTimers.forEach((id) => { clearTimeout(id); clearInterval(id); });
  pageTimers = [];
  signOutButton.hidden = true;
  setCaller(null);
  setCrumbs(["Sign in"]);
  const input = el("input", { type: "password", id: "token", name: "token", autocomplete: "current-password",
    required: true, "aria-describedby": "signin-error" });
  const error = el("p", { id: "signin-error", class: "error", role: "alert" }, message || "");
  const submit = el("button", { class: "primary", type: "submit" }, "Sign in");
  const form = el("form", { class: "card signin", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      const token = input.value.trim();
      const who = await rawApi("rio.v1.AccessService/GetCaller", {}, token);
      sessionStorage.setItem(TOKEN_KEY, token);
      setCaller(who);
      route();
    } catch (err) {
      error.textContent = "Sign-in failed: " + err.message;
      input.focus();
      input.select();
    } finally {
      submit.disabled = false;
    }
  } },
  el("h1", {}, "Sign in to Rio"),
  el("p", { class: "muted" }, "Paste the admin token rio-server printed at start-up (tools/run prints it too), or an access token (rio_at_…) an admin created for you. It is kept for this tab only."),
  el("label", { for: "token" }, "Admin token or access token", input), el("p", {}, submit), error);
  app.replaceChildren(form);
  input.focus();
}

signOutButton.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = "#/";
  showSignIn("Signed out.");
});

// ---------------------------------------------------------------- router

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || "") };
}

async function route() {
  pageGeneration++;
  pageTimers.forEach((id) => { clearTimeout(id); clearInterval(id); });
  pageTimers = [];
  if (!sessionStorage.getItem(TOKEN_KEY)) return showSignIn("");
  signOutButton.hidden = false;
  const { parts, params } = parseHash();
  try {
    if (!caller) setCaller(await api("rio.v1.AccessService/GetCaller", {}));
    if (parts[0] === "access" && parts.length === 1) return await accessPage();
    if (parts.length === 0) return await projectsPage();
    if (parts[0] === "p" && parts.length === 2) return await projectPage(parts[1]);
    if (parts[0] === "p" && parts[2] === "deliveries") return await deliveriesPage(parts[1], params);
    if (parts[0] === "p" && parts[2] === "d" && parts[3]) return await deliveryPage(parts[1], parts[3]);
    if (parts[0] === "p" && parts[2] === "h" && parts[3]) return await handlerPage(parts[1], parts[3]);
    if (parts[0] === "p" && parts[2] === "tail") return await tailPage(parts[1], params);
    page("Not found", el("p", {}, "Nothing lives at this address. ", el("a", { href: "#/" }, "Projects")));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    page("Error", el("p", { class: "error", role: "alert" }, e.message));
  }
}

window.addEventListener("hashchange", () => { route(); app.focus({ preventScroll: true }); });
window.addEventListener("DOMContentLoaded", route);

// ---------------------------------------------------------------- projects

// Every project the caller may see (a token limited to a project sees that
// one only).
async function listAllProjects() {
  let token = "";
  const projects = [];
  do {
    const r = await api("rio.v1.ProjectService/ListProjects", { page_size: 1000, page_token: token });
    projects.push(...(r.projects || []));
    token = r.next_page_token;
  } while (token);
  return projects;
}

async function projectsPage() {
  setCrumbs(["Projects"]);
  const list = el("tbody");
  const slug = el("input", { name: "slug", required: true, pattern: "[A-Za-z0-9._\\-]{1,128}", placeholder: "comments" });
  const name = el("input", { name: "name", placeholder: "Comments" });
  const create = el("button", { class: "primary", type: "submit" }, "Create project");
  const form = el("form", { class: "grid card", "aria-label": "Create project", onsubmit: (e) => {
    e.preventDefault();
    act(create, async () => {
      const p = await api("rio.v1.ProjectService/CreateProject", { slug: slug.value.trim(), name: name.value.trim() });
      say(`Project ${p.slug} created`);
      location.hash = "#/p/" + enc(p.slug);
    });
  } }, el("label", {}, "Slug", slug), el("label", {}, "Name", name), el("div", {}, create));
  const area = el("div");
  page("Projects", isAdmin() ? form : null, area,
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Slug"), el("th", {}, "Name"), el("th", {}, "Created"), el("th", {}, ""))), list));

  const projects = await listAllProjects();
  if (!projects.length) list.append(el("tr", {}, el("td", { colspan: 4, class: "muted" },
    isAdmin() ? "No projects yet: create one above." : "No projects.")));
  for (const p of projects) {
    const renameBtn = el("button", { type: "button" }, "Rename");
    const deleteBtn = el("button", { type: "button", class: "danger" }, "Delete");
    const nameCell = el("td", {}, p.name);
    renameBtn.addEventListener("click", () => {
      const input = el("input", { value: p.name, "aria-label": "New name of " + p.slug });
      const save = el("button", { type: "submit", class: "primary" }, "Save");
      const cancel = el("button", { type: "button" }, "Cancel");
      const f = el("form", { class: "row", onsubmit: (e) => {
        e.preventDefault();
        act(save, async () => {
          const u = await api("rio.v1.ProjectService/UpdateProject", { slug: p.slug, name: input.value.trim() });
          p.name = u.name;
          nameCell.replaceChildren(u.name);
          say("Project renamed");
        });
      } }, input, save, cancel);
      cancel.addEventListener("click", () => nameCell.replaceChildren(p.name));
      nameCell.replaceChildren(f);
      input.focus();
    });
    deleteBtn.addEventListener("click", () => confirmBox(area,
      `Delete project "${p.slug}" with its senders, handlers and history? This cannot be undone.`,
      "Delete project", async () => {
        await api("rio.v1.ProjectService/DeleteProject", { slug: p.slug });
        say(`Project ${p.slug} deleted`);
        route();
      }));
    list.append(el("tr", {},
      el("td", {}, el("a", { href: "#/p/" + enc(p.slug) }, p.slug)), nameCell,
      el("td", {}, fmtTime(p.create_time)),
      el("td", {}, isAdmin() ? el("div", { class: "row" }, renameBtn, deleteBtn) : null)));
  }
}

// ---------------------------------------------------------------- access tokens

const SCOPE_TEXT = {
  READ_ONLY: "READ_ONLY: reads only",
  PROJECT_ADMIN: "PROJECT_ADMIN: everything inside one project",
  ADMIN: "ADMIN: everything, projects and tokens too",
};

function copyButton(value) {
  const button = el("button", { type: "button" }, "Copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(value);
      button.textContent = "Copied";
    } catch (e) {
      say("Copying failed: select the token and copy it by hand.", true);
    }
  });
  return button;
}

async function accessPage() {
  setCrumbs(["Projects", "#/"], ["Access tokens"]);
  if (!isAdmin()) {
    page("Access tokens", el("p", { class: "error", role: "alert" },
      `Managing access tokens needs scope ADMIN; you are signed in as ${callerText(caller)}.`));
    return;
  }
  const [list, projects] = await Promise.all([
    api("rio.v1.AccessService/ListAccessTokens", {}),
    listAllProjects(),
  ]);
  const notices = el("div");

  // Create: the project select appears for the scopes that take a project
  // (required for PROJECT_ADMIN, optional for READ_ONLY).
  const name = el("input", { name: "name", required: true, pattern: "[A-Za-z0-9._\\-]{1,128}", placeholder: "ci-reader" });
  const scope = el("select", { name: "scope" }, SCOPES.slice().reverse().map((s) => el("option", { value: s }, SCOPE_TEXT[s])));
  scope.value = "READ_ONLY";
  const project = el("select", { name: "project" });
  const projectLabel = el("label", {}, "Project", project);
  const expires = el("input", { type: "datetime-local", name: "expire_time" });
  const create = el("button", { class: "primary", type: "submit" }, "Create token");
  const fillProjects = () => {
    const keep = project.value;
    const options = [];
    if (scope.value === "READ_ONLY") options.push(el("option", { value: "" }, "every project"));
    else if (!projects.length) options.push(el("option", { value: "" }, "no project yet: create one first"));
    options.push(...projects.map((p) => el("option", { value: p.slug }, p.slug)));
    project.replaceChildren(...options);
    if ([...project.options].some((o) => o.value === keep)) project.value = keep;
    project.required = scope.value === "PROJECT_ADMIN";
    projectLabel.hidden = scope.value === "ADMIN";
  };
  scope.addEventListener("change", fillProjects);
  fillProjects();
  const form = el("form", { class: "grid card", "aria-label": "Create access token", onsubmit: (e) => {
    e.preventDefault();
    act(create, async () => {
      const req = { name: name.value.trim(), scope: scope.value };
      if (scope.value !== "ADMIN" && project.value) req.project = project.value;
      if (expires.value) req.expire_time = localToRfc3339(expires.value);
      const r = await api("rio.v1.AccessService/CreateAccessToken", req);
      await route();
      const box = secretBox(`Access token ${r.access_token.name} created.`, r.token,
        "Copy its secret now: it will not be shown again.");
      box.id = "new-token";
      box.append(el("div", { class: "row" }, copyButton(r.token),
        el("button", { type: "button", onclick: () => box.remove() }, "Done")));
      document.getElementById("notices").prepend(box);
    });
  } },
  el("label", {}, "Name", name), el("label", {}, "Scope", scope), projectLabel,
  el("label", {}, "Expires (empty: never)", expires), el("div", {}, create));

  const rows = el("tbody");
  const now = new Date();
  for (const t of list.access_tokens || []) {
    const revoke = el("button", { type: "button", class: "danger" }, "Revoke");
    revoke.addEventListener("click", () => confirmBox(notices,
      `Revoke access token "${t.name}"? Calls presenting it are refused from now on.`, "Revoke token", async () => {
        await api("rio.v1.AccessService/RevokeAccessToken", { name: t.name });
        say(`Access token ${t.name} revoked`);
        route();
      }));
    const expired = t.expire_time && new Date(t.expire_time) <= now;
    rows.append(el("tr", { "data-token": t.name },
      el("td", {}, t.name), el("td", {}, t.scope),
      el("td", {}, t.project || el("span", { class: "muted" }, "all projects")),
      el("td", {}, fmtTime(t.create_time)),
      el("td", {}, t.expire_time ? fmtTime(t.expire_time) : el("span", { class: "muted" }, "never"),
        expired ? [" ", el("span", { class: "badge bad" }, "expired")] : null),
      el("td", {}, revoke)));
  }
  if (!rows.children.length) rows.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No access tokens yet.")));

  page("Access tokens",
    el("p", { class: "muted" }, "Tokens for the dashboard and the admin API, each limited to a scope. Rio keeps only a hash: a token's secret is shown once, when it is created. The bootstrap admin token (--admin_token) is not listed here."),
    el("div", { id: "notices" }, notices),
    el("h2", {}, "New token"), form,
    el("h2", {}, "Tokens"),
    el("table", { id: "access-tokens" }, el("thead", {}, el("tr", {},
      ["Name", "Scope", "Project", "Created", "Expires", ""].map((t) => el("th", {}, t)))), rows));
}

// ---------------------------------------------------------------- project

function projectNav(slug) {
  return el("div", { class: "row" },
    el("a", { class: "button", href: "#/p/" + enc(slug) }, "Senders & handlers"),
    el("a", { class: "button", href: "#/p/" + enc(slug) + "/deliveries" }, "Deliveries"),
    el("a", { class: "button", href: "#/p/" + enc(slug) + "/deliveries?status=FAILING" }, "Failing"),
    el("a", { class: "button", href: "#/p/" + enc(slug) + "/tail" }, "Live tail"));
}

function parseHeaders(text) {
  const headers = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const i = line.indexOf(":");
    if (i <= 0) throw new Error(`header line "${line}" is not "Name: value"`);
    headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return headers;
}

function headersText(headers) {
  return Object.entries(headers || {}).map(([k, v]) => `${k}: ${v}`).join("\n");
}

function secretBox(title, value, note) {
  return el("div", { class: "secret", role: "status" },
    el("strong", {}, title), " ", el("span", { class: "muted" }, note), el("br"), el("code", {}, value));
}

// Write-only values (header values, the client key) come back as this.
const MASKED = "\u2022\u2022\u2022";

// Text as a textarea holds it (line breaks as \n), to tell an edit from
// what the server sent.
function textareaText(text) { return String(text || "").replace(/\r\n?/g, "\n"); }

// A file input that reads the chosen file (a PEM, so text and small) into
// `target`; the file goes nowhere else.
function pemFileInput(name, target) {
  const input = el("input", { type: "file", name, accept: ".pem,.crt,.cer,.key,application/x-pem-file" });
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    if (!file) return;
    if (file.size > 65536) {
      say(`${file.name} is larger than 65536 bytes: not a PEM file?`, true);
      input.value = "";
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      target.value = textareaText(reader.result);
      target.dispatchEvent(new Event("input"));
    };
    reader.onerror = () => say(`${file.name} could not be read`, true);
    reader.readAsText(file);
  });
  return input;
}

// The optional client certificate (mutual TLS) of a handler form. On edit
// the stored certificate is shown and the key as MASKED, which keeps the
// stored key. request() gives {client_certificate, client_key} to send, or
// null when nothing changed (an unchanged save leaves them alone).
function clientCertificateFields(v, editing) {
  const storedCert = textareaText(v.client_certificate);
  const storedKey = v.client_key ? MASKED : "";
  const cert = el("textarea", { name: "client_certificate", class: "pem", spellcheck: "false", autocomplete: "off",
    placeholder: "-----BEGIN CERTIFICATE-----" });
  cert.value = storedCert;
  const key = el("textarea", { name: "client_key", class: "pem", spellcheck: "false", autocomplete: "off",
    placeholder: "-----BEGIN PRIVATE KEY-----" });
  key.value = storedKey;
  const certFile = pemFileInput("client_certificate_file", cert);
  const keyFile = pemFileInput("client_key_file", key);
  const remove = editing && storedCert
    ? el("input", { type: "checkbox", name: "remove_client_certificate" }) : null;
  if (remove) {
    remove.addEventListener("change", () => {
      for (const control of [cert, key, certFile, keyFile]) control.disabled = remove.checked;
    });
  }
  const fieldset = el("fieldset", { class: "wide client-cert" },
    el("legend", {}, "Client certificate (mutual TLS), optional"),
    el("p", { class: "muted wide" }, "Presented on https:// calls to receivers that require one. The key is write-only: Rio stores it encrypted and shows \u2022\u2022\u2022 for it; leaving \u2022\u2022\u2022 keeps the stored key."),
    el("label", {}, "Client certificate (PEM: the leaf first, then any intermediates)", cert),
    el("label", {}, "Private key (PEM, unencrypted)", key),
    el("label", {}, "Read the certificate from a .pem file", certFile),
    el("label", {}, "Read the key from a .pem file", keyFile),
    remove ? el("label", { class: "inline wide" }, remove, "Remove client certificate") : null);
  const request = () => {
    if (remove && remove.checked) return { client_certificate: "", client_key: "" };
    const c = textareaText(cert.value), k = textareaText(key.value);
    if (editing && c === storedCert && k === storedKey) return null;
    if (!editing && !c.trim() && !k.trim()) return null;
    return { client_certificate: c, client_key: k };
  };
  return { fieldset, request };
}

// A form for CreateHandler / UpdateHandler; `handler` set when editing.
function handlerForm(slug, handler, onDone) {
  const v = handler || {};
  const event = el("input", { name: "event", required: true, value: v.event || "", placeholder: "comment-published" });
  const url = el("input", { name: "url", type: "url", required: true, value: v.url || "", placeholder: "https://example.com/hooks/comments" });
  const method = el("select", { name: "method" }, ["POST", "PUT", "GET"].map((m) => el("option", { value: m }, m)));
  method.value = v.method && v.method !== "METHOD_UNSPECIFIED" ? v.method : "POST";
  const contentType = el("select", { name: "content_type" },
    el("option", { value: "FORM" }, "form (application/x-www-form-urlencoded)"),
    el("option", { value: "JSON" }, "JSON (payload as emitted)"));
  contentType.value = v.content_type === "JSON" ? "JSON" : "FORM";
  const timeout = el("input", { name: "timeout_ms", type: "number", min: 1, max: 300000, value: v.timeout_ms || 15000 });
  const headers = el("textarea", { name: "headers", placeholder: "X-Team: antispam" });
  headers.value = headersText(v.headers);
  const enabled = el("input", { type: "checkbox", name: "enabled", checked: handler ? v.enabled : true });
  const clientCert = clientCertificateFields(v, !!handler);
  const submit = el("button", { class: "primary", type: "submit" }, handler ? "Save handler" : "Create handler");
  const cancel = el("button", { type: "button", onclick: () => onDone(null) }, "Cancel");
  const form = el("form", { class: "grid card", "aria-label": handler ? "Edit handler" : "Create handler", onsubmit: (e) => {
    e.preventDefault();
    act(submit, async () => {
      const hdrs = parseHeaders(headers.value);
      const certificate = clientCert.request();
      let result;
      if (handler) {
        const req = { id: handler.id, event: event.value.trim(), url: url.value.trim(), method: method.value,
          content_type: contentType.value, timeout_ms: Number(timeout.value), enabled: enabled.checked };
        if (Object.keys(hdrs).length) req.headers = hdrs;
        else if (Object.keys(handler.headers || {}).length) req.clear_headers = true;
        if (certificate) Object.assign(req, certificate);
        result = await api("rio.v1.HandlerService/UpdateHandler", req);
        say("Handler saved");
      } else {
        result = await api("rio.v1.HandlerService/CreateHandler", { project: slug, event: event.value.trim(),
          url: url.value.trim(), method: method.value, content_type: contentType.value,
          timeout_ms: Number(timeout.value), headers: hdrs, enabled: enabled.checked, ...(certificate || {}) });
        say("Handler created");
      }
      onDone(result);
    });
  } },
  el("label", {}, "Event", event), el("label", { class: "wide" }, "URL", url),
  el("label", {}, "Method", method), el("label", {}, "Content type", contentType),
  el("label", {}, "Timeout (ms)", timeout), el("label", { class: "inline" }, enabled, "Enabled"),
  el("label", { class: "wide" }, "Extra headers (one \"Name: value\" a line; values are write-only: Rio shows \u2022\u2022\u2022 for each, and \u2022\u2022\u2022 keeps the stored value)", headers),
  clientCert.fieldset,
  el("div", { class: "row wide" }, submit, cancel));
  setTimeout(() => event.focus(), 0);
  return form;
}

async function projectPage(slug) {
  setCrumbs(["Projects", "#/"], [slug]);
  const [project, senders, handlers] = await Promise.all([
    api("rio.v1.ProjectService/GetProject", { slug }),
    api("rio.v1.ProjectService/ListSenders", { project: slug }),
    api("rio.v1.HandlerService/ListHandlers", { project: slug }),
  ]);
  const notices = el("div");

  // Senders
  const senderName = el("input", { name: "sender", required: true, placeholder: "comments-app", pattern: "[A-Za-z0-9._\\-]{1,128}" });
  const senderBtn = el("button", { class: "primary", type: "submit" }, "Create sender");
  const senderRows = el("tbody");
  for (const s of senders.senders || []) {
    const revoke = el("button", { type: "button", class: "danger" }, "Revoke");
    revoke.addEventListener("click", () => confirmBox(notices,
      `Revoke sender "${s.name}"? Emits with its DSN fail from now on.`, "Revoke sender", async () => {
        await api("rio.v1.ProjectService/DeleteSender", { project: slug, name: s.name });
        say(`Sender ${s.name} revoked`);
        route();
      }));
    senderRows.append(el("tr", {}, el("td", {}, s.name), el("td", {}, fmtTime(s.create_time)), el("td", {}, canWrite() ? revoke : null)));
  }
  if (!senderRows.children.length) senderRows.append(el("tr", {}, el("td", { colspan: 3, class: "muted" },
    canWrite() ? "No senders: create one to emit events." : "No senders.")));
  const senderForm = el("form", { class: "row", "aria-label": "Create sender", onsubmit: (e) => {
    e.preventDefault();
    act(senderBtn, async () => {
      const r = await api("rio.v1.ProjectService/CreateSender", { project: slug, name: senderName.value.trim() });
      await route();
      document.getElementById("notices").prepend(secretBox(`Sender ${r.sender.name} created.`, r.dsn,
        "Copy its DSN now: it is shown only once."));
    });
  } }, el("label", {}, "New sender", senderName), senderBtn);

  // Handlers, grouped by event
  const handlerArea = el("div");
  const newHandler = el("button", { type: "button", class: "primary" }, "New handler");
  newHandler.addEventListener("click", () => {
    const f = handlerForm(slug, null, async (h) => {
      f.remove();
      if (h) {
        await route();
        document.getElementById("notices").prepend(secretBox("Handler created.", h.secret,
          "Its signing secret is shown only now."));
      }
    });
    handlerArea.prepend(f);
  });
  const byEvent = new Map();
  for (const h of handlers.handlers || []) {
    if (!byEvent.has(h.event)) byEvent.set(h.event, []);
    byEvent.get(h.event).push(h);
  }
  if (!byEvent.size) handlerArea.append(el("p", { class: "muted" }, "No handlers yet."));
  for (const [event, list] of [...byEvent.entries()].sort()) {
    handlerArea.append(el("h3", {}, "Event ", el("code", {}, event)));
    for (const h of list) handlerArea.append(handlerCard(slug, h, notices));
  }

  page(project.name && project.name !== slug ? `${project.name} (${slug})` : slug,
    projectNav(slug), readOnlyNote(), el("div", { id: "notices" }, notices),
    el("h2", {}, "Senders"), canWrite() ? senderForm : null,
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Created"), el("th", {}, ""))), senderRows),
    el("h2", {}, "Handlers"), canWrite() ? el("p", {}, newHandler) : null, handlerArea);
}

function handlerCard(slug, h, notices) {
  const card = el("div", { class: "card handler", "data-handler-id": h.id });
  const toggle = el("button", { type: "button" }, h.enabled ? "Disable" : "Enable");
  toggle.addEventListener("click", () => act(toggle, async () => {
    await api("rio.v1.HandlerService/UpdateHandler", { id: h.id, enabled: !h.enabled });
    say(h.enabled ? "Handler disabled" : "Handler enabled");
    route();
  }));
  const edit = el("button", { type: "button" }, "Edit");
  edit.addEventListener("click", () => {
    const f = handlerForm(slug, h, (saved) => { if (saved) route(); else f.replaceWith(card); });
    card.replaceWith(f);
  });
  const rotate = el("button", { type: "button" }, "Rotate secret");
  rotate.addEventListener("click", () => confirmBox(notices,
    "Issue a new signing secret? The previous one keeps signing for a day so the receiver can switch over.",
    "Rotate secret", async () => {
      const r = await api("rio.v1.HandlerService/RotateHandlerSecret", { id: h.id });
      notices.prepend(secretBox("New signing secret.", r.secret,
        `Shown only now; the previous secret signs until ${fmtTime(r.previous_secret_expire_time)}.`));
    }));
  const del = el("button", { type: "button", class: "danger" }, "Delete");
  del.addEventListener("click", () => confirmBox(notices, `Delete the handler for ${h.url}?`, "Delete handler", async () => {
    await api("rio.v1.HandlerService/DeleteHandler", { id: h.id });
    say("Handler deleted");
    route();
  }));
  append(card, [
    el("div", { class: "row" },
      el("span", { class: "badge " + (h.enabled ? "ok" : "off") }, h.enabled ? "enabled" : "disabled"),
      el("code", { class: "grow" }, `${h.method === "METHOD_UNSPECIFIED" ? "POST" : h.method} ${h.url}`),
      el("a", { href: `#/p/${enc(slug)}/h/${enc(h.id)}` }, "Stats & recovery"),
      el("a", { href: `#/p/${enc(slug)}/deliveries?handler=${enc(h.id)}` }, "Deliveries")),
    !h.enabled && h.disabled_reason ? el("p", { class: "error" }, "Disabled: " + h.disabled_reason) : null,
    el("p", { class: "muted" },
      `${h.content_type === "JSON" ? "JSON" : "form"} body · timeout ${h.timeout_ms} ms`,
      Object.keys(h.headers || {}).length ? " · headers: " + Object.keys(h.headers).join(", ") : "",
      h.client_certificate ? " · client certificate" : "",
      " · id ", el("code", {}, h.id)),
    canWrite() ? el("div", { class: "row" }, edit, toggle, rotate, del) : null,
  ]);
  return card;
}

// ---------------------------------------------------------------- deliveries

const STATUSES = ["ANY", "FAILING", "PENDING", "SUCCEEDED", "FAILED", "CANCELLED"];

async function deliveriesPage(slug, params) {
  setCrumbs(["Projects", "#/"], [slug, "#/p/" + enc(slug)], ["Deliveries"]);
  const handlers = (await api("rio.v1.HandlerService/ListHandlers", { project: slug })).handlers || [];
  const handlerById = new Map(handlers.map((h) => [h.id, h]));
  const event = el("input", { name: "event", value: params.get("event") || "", placeholder: "any event" });
  const handler = el("select", { name: "handler" }, el("option", { value: "" }, "any handler"),
    handlers.map((h) => el("option", { value: h.id }, `${h.event} → ${h.url}`)));
  handler.value = params.get("handler") || "";
  const status = el("select", { name: "status" }, STATUSES.map((s) => el("option", { value: s }, s === "ANY" ? "any status" : s)));
  status.value = params.get("status") || "ANY";
  const since = el("input", { type: "datetime-local", name: "since", value: rfc3339ToLocal(params.get("since")) });
  const until = el("input", { type: "datetime-local", name: "until", value: rfc3339ToLocal(params.get("until")) });
  const auto = el("input", { type: "checkbox", name: "auto", checked: params.get("auto") !== "0" });
  const apply = el("button", { type: "submit", class: "primary" }, "Apply");
  const form = el("form", { class: "grid card", "aria-label": "Filters", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (event.value.trim()) q.set("event", event.value.trim());
    if (handler.value) q.set("handler", handler.value);
    if (status.value !== "ANY") q.set("status", status.value);
    if (since.value) q.set("since", localToRfc3339(since.value));
    if (until.value) q.set("until", localToRfc3339(until.value));
    if (!auto.checked) q.set("auto", "0");
    location.hash = `#/p/${enc(slug)}/deliveries` + (q.toString() ? "?" + q : "");
  } },
  el("label", {}, "Event", event), el("label", {}, "Handler", handler), el("label", {}, "Status", status),
  el("label", {}, "Created since", since), el("label", {}, "Created before", until),
  el("label", { class: "inline" }, auto, "Refresh every 3 s"), el("div", {}, apply));

  const tbody = el("tbody");
  const updated = el("span", { class: "muted" });
  const more = el("button", { type: "button", hidden: true }, "Older deliveries");
  const request = {
    project: slug, event: params.get("event") || "", handler_id: params.get("handler") || "",
    status: params.get("status") || "ANY", page_size: 50,
  };
  if (params.get("since")) request.since = params.get("since");
  if (params.get("until")) request.until = params.get("until");

  const row = (d) => {
    const h = handlerById.get(d.handler_id);
    const link = el("a", { href: `#/p/${enc(slug)}/d/${enc(d.id)}` }, fmtTime(d.create_time));
    const tr = el("tr", { class: "clickable" + (isFailing(d) ? " failing" : ""), "data-delivery-id": d.id },
      el("td", {}, link), el("td", {}, d.event),
      el("td", { class: "mono" }, d.handler_url || (h && h.url) || d.handler_id),
      el("td", {}, statusBadge(d.status)), el("td", {}, codeText(d.last_status_code)),
      el("td", {}, d.last_error_class || ""), el("td", {}, String(d.attempt_count)),
      el("td", {}, d.status === "PENDING" ? fmtTime(d.next_attempt_time) : ""));
    tr.addEventListener("click", (e) => { if (e.target.tagName !== "A") location.hash = link.getAttribute("href"); });
    return tr;
  };
  let nextToken = "";
  let pagedOn = false;  // older pages loaded: refreshing would drop them
  const generation = pageGeneration;
  const load = async (append_) => {
    const r = await api("rio.v1.DeliveryService/ListDeliveries", { ...request, page_token: append_ ? nextToken : "" });
    if (generation !== pageGeneration) return;
    const rows = (r.deliveries || []).map(row);
    if (append_) {
      tbody.append(...rows);
      pagedOn = true;
    }
    else {
      tbody.replaceChildren(...rows);
      if (!rows.length) tbody.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No deliveries match.")));
    }
    nextToken = r.next_page_token;
    more.hidden = !nextToken;
    updated.textContent = "Updated " + new Date().toLocaleTimeString();
  };
  more.addEventListener("click", () => act(more, () => load(true)));

  page("Deliveries", projectNav(slug), readOnlyNote(), form, el("p", {}, updated),
    el("table", { id: "deliveries" }, el("thead", {}, el("tr", {},
      ["Created", "Event", "Handler", "Status", "HTTP", "Error", "Attempts", "Next attempt"].map((t) => el("th", {}, t)))), tbody),
    el("p", {}, more));
  await load(false);
  if (auto.checked) {
    // Only the first page refreshes, so paging on is not disturbed.
    every(() => { if (!pagedOn) load(false).catch(() => {}); }, 3000);
  }
}

// ---------------------------------------------------------------- delivery

function timing(a) {
  const total = Math.max(Number(a.total_us || a.duration_us || 0), 1);
  const dns = Number(a.dns_us || 0), connect = Number(a.connect_us || 0), tls = Number(a.tls_us || 0);
  const first = Number(a.first_byte_us || 0);
  const seg = [["t-dns", "DNS", dns], ["t-connect", "connect", Math.max(connect - dns, 0)],
    ["t-tls", "TLS", tls ? Math.max(tls - connect, 0) : 0],
    ["t-wait", "waiting for first byte", first ? Math.max(first - Math.max(tls, connect), 0) : 0],
    ["t-body", "body", first ? Math.max(total - first, 0) : 0]];
  return el("div", {},
    el("div", { class: "timing", role: "img", "aria-label": "Timing breakdown" },
      seg.map(([cls, label, us]) => el("span", { class: cls, title: `${label}: ${fmtUs(us)}`, style: `width:${(100 * us / total).toFixed(2)}%` }))),
    el("div", { class: "legend muted" }, seg.map(([cls, label, us]) => [el("span", { class: cls }), `${label} ${fmtUs(us)}`]),
      ` · total ${fmtUs(a.total_us || a.duration_us)}`));
}

function headerTable(headers) {
  if (!headers || !headers.length) return el("p", { class: "muted" }, "none");
  return el("table", {}, el("tbody", {}, headers.map((h) => el("tr", {}, el("td", { class: "mono" }, h.name), el("td", { class: "mono" }, h.value)))));
}

function attemptCard(a) {
  return el("div", { class: "card attempt", "data-attempt": a.number },
    el("div", { class: "row" }, el("strong", {}, `Attempt ${a.number}`), a.manual ? el("span", { class: "badge off" }, "manual") : null,
      el("span", {}, fmtTime(a.start_time)), el("span", {}, "HTTP "), codeText(a.status_code),
      a.error_class ? el("span", { class: "error" }, `${a.error_class}: ${a.error_message}`) : null),
    timing(a),
    el("details", {}, el("summary", {}, "Request headers"), headerTable(a.request_headers)),
    el("details", { open: a.status_code ? true : false }, el("summary", {}, "Response headers"), headerTable(a.response_headers)),
    el("h3", {}, "Response body"), el("pre", { class: "response-body" }, a.response_body || ""));
}

async function deliveryPage(slug, id) {
  setCrumbs(["Projects", "#/"], [slug, "#/p/" + enc(slug)], ["Deliveries", `#/p/${enc(slug)}/deliveries`], [id.slice(0, 8)]);
  const generation = pageGeneration;
  const summary = el("div");
  const attempts = el("div");
  const retrigger = el("button", { type: "button", class: "primary", id: "retrigger" }, "Re-trigger");
  const payload = el("pre", { id: "payload" });
  const render = (d) => {
    summary.replaceChildren(el("dl", { class: "kv card" + (isFailing(d) ? " failing" : "") },
      el("dt", {}, "Status"), el("dd", { id: "delivery-status" }, statusBadge(d.status)),
      el("dt", {}, "Last HTTP status"), el("dd", {}, codeText(d.last_status_code), d.last_error_class ? " " + d.last_error_class : ""),
      el("dt", {}, "Event"), el("dd", {}, d.event),
      el("dt", {}, "Handler"), el("dd", {}, el("a", { href: `#/p/${enc(slug)}/h/${enc(d.handler_id)}` }, d.handler_url || d.handler_id)),
      el("dt", {}, "Attempts"), el("dd", {}, String(d.attempt_count)),
      el("dt", {}, "Next attempt"), el("dd", {}, d.status === "PENDING" ? fmtTime(d.next_attempt_time) : "—"),
      el("dt", {}, "Created"), el("dd", {}, fmtTime(d.create_time)),
      el("dt", {}, "Delivery id (X-Rio-Delivery)"), el("dd", { class: "mono" }, d.id),
      el("dt", {}, "Message id (webhook-id)"), el("dd", { class: "mono" }, d.message_id)));
    attempts.replaceChildren(...(d.attempts || []).slice().reverse().map(attemptCard));
    if (!(d.attempts || []).length) attempts.append(el("p", { class: "muted" }, "No attempt yet."));
  };
  const d = await api("rio.v1.DeliveryService/GetDelivery", { id });
  render(d);
  retrigger.addEventListener("click", () => act(retrigger, async () => {
    const before = (await api("rio.v1.DeliveryService/GetDelivery", { id })).attempt_count;
    render(await api("rio.v1.DeliveryService/Redeliver", { delivery_id: id }));
    say("Re-triggered: a new attempt is on its way");
    // Follow the new attempt for up to half a minute.
    for (let i = 0; i < 60 && generation === pageGeneration; i++) {
      await new Promise((r) => later(r, 500));
      const now = await api("rio.v1.DeliveryService/GetDelivery", { id });
      if (generation !== pageGeneration) return;
      render(now);
      if (now.attempt_count > before && now.status !== "PENDING") break;
      if (now.attempt_count > before && now.status === "PENDING" && now.last_error_class) break;
    }
  }));
  page("Delivery", projectNav(slug), readOnlyNote(), canWrite() ? el("div", { class: "row" }, retrigger,
    el("span", { class: "muted" }, "Makes a new attempt now, whatever the delivery's state.")) : null,
  summary, el("h2", {}, "Payload"), payload, el("h2", {}, "Attempts (newest first)"), attempts);
  try {
    const m = await api("rio.v1.DeliveryService/GetMessage", { id: d.message_id });
    payload.textContent = prettyJson(m.payload);
  } catch (e) {
    payload.textContent = "(message unavailable: " + e.message + ")";
  }
}

// ---------------------------------------------------------------- handler

function barChart(title, buckets, series, unit) {
  // buckets: [{label, values: [..]}]; series: [{name, cls}]
  const W = 640, H = 170, left = 40, bottom = 22, top = 10;
  const max = Math.max(1, ...buckets.map((b) => b.values.reduce((a, v) => a + v, 0)));
  const bw = (W - left - 10) / Math.max(buckets.length, 1);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", class: "chart", role: "img", "aria-label": title });
  chart.append(svg("title", {}, title));
  for (const frac of [0, 0.5, 1]) {
    const y = H - bottom - frac * (H - bottom - top);
    chart.append(svg("line", { x1: left, x2: W - 5, y1: y, y2: y, stroke: "#e5e7eb" }));
    chart.append(svg("text", { x: left - 4, y: y + 3, "text-anchor": "end" }, (max * frac).toFixed(max < 10 ? 1 : 0) + (unit || "")));
  }
  buckets.forEach((b, i) => {
    let y = H - bottom;
    b.values.forEach((v, s) => {
      const h = (v / max) * (H - bottom - top);
      if (h > 0) chart.append(svg("rect", { x: left + i * bw + 2, y: y - h, width: Math.max(bw - 4, 1), height: h, fill: series[s].color },
        svg("title", {}, `${b.label}: ${series[s].name} ${Number(v.toFixed(2))}${unit || ""}`)));
      y -= h;
    });
    if (buckets.length <= 12 || i % 2 === 0) chart.append(svg("text", { x: left + i * bw + bw / 2, y: H - 6, "text-anchor": "middle" }, b.label));
  });
  return el("figure", { class: "grow" }, el("figcaption", {}, title, " ",
    series.map((s) => el("span", { class: "legend muted" }, el("span", { style: `background:${s.color}` }), s.name))), chart);
}

// Whether a handler has a client certificate, and the certificate itself
// (public); the key is never shown (replies carry only MASKED).
function clientCertificateInfo(h) {
  const text = h.client_certificate
    ? "Client certificate: set (" + (h.client_key ? "key stored, write-only" : "no key stored") + ")"
    : "Client certificate: none";
  return el("div", { class: "client-cert-info" },
    el("p", { id: "client-certificate" }, text),
    h.client_certificate ? el("details", {}, el("summary", {}, "Certificate (PEM)"),
      el("pre", { id: "client-certificate-pem" }, h.client_certificate)) : null);
}

async function handlerPage(slug, id) {
  setCrumbs(["Projects", "#/"], [slug, "#/p/" + enc(slug)], ["Handler " + id.slice(0, 8)]);
  const generation = pageGeneration;
  const h = await api("rio.v1.HandlerService/GetHandler", { id });
  const statsArea = el("div", { class: "stats" });
  const charts = el("div", { class: "row" });
  const recoverArea = el("div");
  const recoveries = el("div");

  const loadStats = async () => {
    const s = await api("rio.v1.DeliveryService/GetHandlerStats", { handler_id: id, window: "3600s" });
    if (generation !== pageGeneration) return;
    const stat = (label, value) => el("div", { class: "stat" }, el("b", {}, value), label);
    statsArea.replaceChildren(
      stat("succeeded (1 h)", s.succeeded), stat("failed", s.failed), stat("pending", s.pending),
      stat("cancelled", s.cancelled), stat("success ratio", (100 * s.success_ratio).toFixed(1) + " %"),
      stat("attempts / failed", `${s.attempts} / ${s.failed_attempts}`),
      stat("latency p50", s.latency_p50_ms.toFixed(1) + " ms"), stat("p90", s.latency_p90_ms.toFixed(1) + " ms"),
      stat("p99", s.latency_p99_ms.toFixed(1) + " ms"), stat("failures in a row", s.consecutive_failures));

    // Deliveries over the last hour, in 5-minute buckets, from the
    // handler's counters.
    const series = await api("rio.v1.DeliveryService/GetHandlerStats",
      { handler_id: id, window: "3600s", bucket: "300s" });
    const buckets = (series.buckets || []).map((b) => ({
      label: new Date(b.start_time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
      values: [Number(b.succeeded || 0), Number(b.failed || 0), Number(b.pending || 0)],
    }));
    // Latency percentiles over trailing windows (the service reports a
    // window ending now).
    const windows = [["5 m", 300], ["15 m", 900], ["1 h", 3600], ["6 h", 21600], ["24 h", 86400]];
    const lat = await Promise.all(windows.map(([, secs]) =>
      api("rio.v1.DeliveryService/GetHandlerStats", { handler_id: id, window: secs + "s" })));
    if (generation !== pageGeneration) return;
    charts.replaceChildren(
      barChart("Deliveries, last hour (5-minute buckets)", buckets,
        [{ name: "succeeded", color: "#18794e" }, { name: "failed", color: "#c4262e" }, { name: "pending", color: "#a35c00" }]),
      barChart("Latency over the last 5 m … 24 h", windows.map(([label], i) => ({ label,
        values: [lat[i].latency_p50_ms, Math.max(lat[i].latency_p90_ms - lat[i].latency_p50_ms, 0),
          Math.max(lat[i].latency_p99_ms - lat[i].latency_p90_ms, 0)] })),
      [{ name: "p50", color: "#2557d6" }, { name: "p90", color: "#7c9cf0" }, { name: "p99", color: "#c7d4fa" }], " ms"));
  };

  // Recover failed: dry run, confirm, then follow the job.
  const since = el("input", { type: "datetime-local", name: "since", required: true, value: rfc3339ToLocal(new Date(Date.now() - 24 * 3600e3).toISOString()) });
  const until = el("input", { type: "datetime-local", name: "until" });
  const rate = el("input", { type: "number", name: "rate", min: 1, max: 10000, value: 100 });
  const recoverBtn = el("button", { type: "submit", class: "primary", id: "recover" }, canWrite() ? "Recover failed…" : "Count failed…");
  const followRecovery = async (rec) => {
    const bar = el("span", { style: "width:0%" });
    const text = el("p", { class: "recovery-progress" });
    const box = el("div", { class: "card" }, el("h3", {}, "Recovery ", el("code", {}, rec.id)), el("div", { class: "progress" }, bar), text);
    recoverArea.replaceChildren(box);
    for (;;) {
      const pct = rec.matched > 0 ? (100 * rec.requeued) / rec.matched : 100;
      bar.style.width = pct.toFixed(1) + "%";
      text.replaceChildren(statusBadge(rec.state), ` re-queued ${rec.requeued} of ${rec.matched}: ${rec.succeeded} succeeded, ${rec.failed} failed, ${rec.pending} pending`);
      if (rec.state !== "RUNNING" && Number(rec.pending) === 0) break;
      await new Promise((r) => later(r, 1000));
      if (generation !== pageGeneration) return;
      rec = await api("rio.v1.DeliveryService/GetRecovery", { id: rec.id });
    }
    loadRecoveries();
  };
  const recoverForm = el("form", { class: "grid card", "aria-label": "Recover failed deliveries", onsubmit: (e) => {
    e.preventDefault();
    act(recoverBtn, async () => {
      const req = { project: slug, handler_id: id, since: localToRfc3339(since.value), rate_per_second: Number(rate.value) };
      if (until.value) req.until = localToRfc3339(until.value);
      const dry = await api("rio.v1.DeliveryService/RecoverFailed", { ...req, dry_run: true });
      if (Number(dry.matched) === 0) {
        recoverArea.replaceChildren(el("p", { class: "card", role: "status" }, "No failed or cancelled deliveries in that range."));
        return;
      }
      if (!canWrite()) {
        recoverArea.replaceChildren(el("p", { class: "card", role: "status" },
          `${dry.matched} failed or cancelled deliveries match. Re-queuing them needs a token with scope ADMIN or PROJECT_ADMIN.`));
        return;
      }
      recoverArea.replaceChildren();
      confirmBox(recoverArea, `${dry.matched} failed or cancelled deliveries match. Re-queue them at ${req.rate_per_second}/s?`,
        `Re-queue ${dry.matched}`, async () => {
          const rec = await api("rio.v1.DeliveryService/RecoverFailed", req);
          followRecovery(rec);
        });
    });
  } }, el("label", {}, "Created since", since), el("label", {}, "Created before (empty: now)", until),
  el("label", {}, "Rate (per second)", rate), el("div", {}, recoverBtn));

  const loadRecoveries = async () => {
    const r = await api("rio.v1.DeliveryService/ListRecoveries", { project: slug });
    if (generation !== pageGeneration) return;
    const mine = (r.recoveries || []).filter((x) => x.handler_id === id).slice(0, 10);
    recoveries.replaceChildren(mine.length ? el("table", {}, el("thead", {}, el("tr", {},
      ["Started", "State", "Matched", "Re-queued", "Succeeded", "Failed", "Pending", ""].map((t) => el("th", {}, t)))),
    el("tbody", {}, mine.map((x) => {
      const cancel = x.state === "RUNNING" && canWrite() ? el("button", { type: "button", onclick: (e) => act(e.target, async () => {
        await api("rio.v1.DeliveryService/CancelRecovery", { id: x.id });
        loadRecoveries();
      }) }, "Cancel") : null;
      return el("tr", {}, el("td", {}, fmtTime(x.create_time)), el("td", {}, statusBadge(x.state)), el("td", {}, x.matched),
        el("td", {}, x.requeued), el("td", {}, x.succeeded), el("td", {}, x.failed), el("td", {}, x.pending), el("td", {}, cancel));
    }))) : el("p", { class: "muted" }, "No recoveries yet."));
  };

  page(`Handler for ${h.event}`, projectNav(slug), readOnlyNote(),
    el("p", {}, el("code", {}, `${h.method === "METHOD_UNSPECIFIED" ? "POST" : h.method} ${h.url}`), " ",
      el("span", { class: "badge " + (h.enabled ? "ok" : "off") }, h.enabled ? "enabled" : "disabled"), " ",
      el("a", { href: `#/p/${enc(slug)}/deliveries?handler=${enc(id)}` }, "Deliveries"), " · ",
      el("a", { href: `#/p/${enc(slug)}/deliveries?handler=${enc(id)}&status=FAILING` }, "Failing")),
    !h.enabled && h.disabled_reason ? el("p", { class: "error" }, "Disabled: " + h.disabled_reason) : null,
    clientCertificateInfo(h),
    el("h2", {}, "Last hour"), statsArea, charts,
    el("h2", {}, "Recover failed deliveries"),
    el("p", { class: "muted" }, canWrite()
      ? "Re-queues every failed or cancelled delivery of this handler created in the range, paced, as a job that survives restarts."
      : "Counts the failed or cancelled deliveries of this handler created in the range (a dry run: re-queuing them needs scope ADMIN or PROJECT_ADMIN)."),
    recoverForm, recoverArea, el("h3", {}, "Recent recoveries"), recoveries);
  await Promise.all([loadStats(), loadRecoveries()]);
  every(() => loadStats().catch(() => {}), 10000);
}

// ---------------------------------------------------------------- live tail

// Polls the newest deliveries and lists every change (new delivery, new
// attempt, new status) as it is seen. Works against any instance, unlike a
// stream, which sees only the attempts of the instance answering it.
async function tailPage(slug, params) {
  setCrumbs(["Projects", "#/"], [slug, "#/p/" + enc(slug)], ["Live tail"]);
  const generation = pageGeneration;
  const list = el("ul", { class: "tail", "aria-live": "polite", id: "tail" });
  const pause = el("button", { type: "button" }, "Pause");
  const state = el("span", { class: "muted" }, "Watching…");
  let paused = false;
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    state.textContent = paused ? "Paused." : "Watching…";
  });
  page("Live tail", projectNav(slug), el("div", { class: "row" }, pause, state), list);
  const seen = new Map();
  let first = true;
  const poll = async () => {
    if (paused) return;
    const r = await api("rio.v1.DeliveryService/ListDeliveries", { project: slug, page_size: 100,
      since: new Date(Date.now() - 3600e3).toISOString(), event: params.get("event") || "", handler_id: params.get("handler") || "" });
    if (generation !== pageGeneration) return;
    const changed = [];
    for (const d of r.deliveries || []) {
      const key = `${d.status}/${d.attempt_count}`;
      if (seen.get(d.id) === key) continue;
      seen.set(d.id, key);
      if (!first) changed.push(d);
    }
    if (first) {
      first = false;
      list.append(el("li", { class: "muted" }, `Watching ${slug}; showing changes from ${new Date().toLocaleTimeString()} on.`));
      return;
    }
    for (const d of changed.reverse()) {
      list.prepend(el("li", { class: isFailing(d) ? "failing" : "" },
        new Date().toLocaleTimeString(), " ", statusBadge(d.status), " ", codeText(d.last_status_code), " ",
        el("a", { href: `#/p/${enc(slug)}/d/${enc(d.id)}` }, d.event), ` attempt ${d.attempt_count} → ${d.handler_url}`,
        d.last_error_class ? ` (${d.last_error_class})` : ""));
    }
    while (list.children.length > 300) list.lastChild.remove();
  };
  await poll();
  every(() => poll().catch(() => {}), 2000);
}
