// Gatehouse admin console: a single-page app in plain JavaScript (no build
// step). It signs in as the public client gatehouse-admin-console with the
// authorization code flow and PKCE, keeps its tokens in sessionStorage,
// refreshes them silently (refresh-token rotation) before they expire, and
// does everything through the admin API at /api/v1/admin: anything it can
// do, the API can do. Served under a strict Content-Security-Policy:
// nothing inline, fetches to Gatehouse's own origin only.
"use strict";

const CLIENT_ID = "gatehouse-admin-console";
const ADMIN_ORG = "org-admin";
const API = "/api/v1/admin";
const store = window.sessionStorage;
const $ = (id) => document.getElementById(id);

let discovery;
let me; // GET /auth/me
let mode; // "instance" (Gatehouse administrator) or "org" (an organization's admin)
let refreshTimer;
const orgNames = new Map();

// --- DOM helpers ----------------------------------------------------------

// h builds an element: h("a", {href: "#/x", class: "y"}, "text", child…).
// Text is always set as text, never parsed as HTML.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function when(t) {
  if (!t) return "—";
  const d = new Date(t);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/:\d\dZ$/, "Z");
}

function table(headers, rows, caption) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      caption ? h("caption", { class: "visually-hidden" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "Nothing here.")))));
}

function badge(text, kind = "") {
  return h("span", { class: "badge " + kind }, text);
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err.message || String(err));
}

// --- PKCE and tokens --------------------------------------------------------

function base64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const randomString = () => base64url(crypto.getRandomValues(new Uint8Array(32)));

async function s256(verifier) {
  return base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

function decodeJWT(jwt) {
  const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

const tokens = () => JSON.parse(store.getItem("console-tokens") || "null");

function saveTokens(t) {
  store.setItem("console-tokens", JSON.stringify({
    access_token: t.access_token,
    refresh_token: t.refresh_token || tokens()?.refresh_token,
    id_token: t.id_token || tokens()?.id_token,
  }));
  scheduleRefresh();
}

function redirectURI() {
  return discovery.issuer.replace(/\/$/, "") + "/admin/";
}

async function tokenRequest(params) {
  const res = await fetch(discovery.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: CLIENT_ID, ...params }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(body.error_description || body.error || res.statusText);
    err.code = body.error;
    throw err;
  }
  return body;
}

async function signIn() {
  const saved = { verifier: randomString(), state: randomString(), nonce: randomString(), back: location.hash };
  store.setItem("console-pkce", JSON.stringify(saved));
  const url = new URL(discovery.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code", client_id: CLIENT_ID, redirect_uri: redirectURI(), scope: "openid email profile",
    state: saved.state, nonce: saved.nonce, code_challenge: await s256(saved.verifier), code_challenge_method: "S256",
    // Administrators act in the administrators' organization; anyone
    // else lands in their own (Gatehouse ignores an organization the
    // person is not an active member of).
    organization: ADMIN_ORG,
  });
  location.assign(url);
}

async function finishSignIn(params) {
  const saved = JSON.parse(store.getItem("console-pkce") || "null");
  store.removeItem("console-pkce");
  history.replaceState(null, "", redirectURI() + (saved?.back || ""));
  // The state comes first: an answer this tab did not ask for (a link
  // anyone can craft, with an error_description of their choosing) is
  // never shown, only refused.
  if (!saved || params.get("state") !== saved.state) throw new Error("This sign-in answer was not started here; please sign in again.");
  if (params.get("error")) throw new Error("Sign-in did not complete: " + (params.get("error_description") || params.get("error")));
  if (params.get("iss") && params.get("iss") !== discovery.issuer) throw new Error("The sign-in answer came from an unexpected issuer.");
  const t = await tokenRequest({ grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectURI(), code_verifier: saved.verifier });
  if (decodeJWT(t.id_token).nonce !== saved.nonce) throw new Error("ID token nonce mismatch.");
  saveTokens(t);
}

// refresh redeems the refresh token (rotated: the answer carries the next
// one); with organization, the new tokens act in that organization.
let refreshing;
function refresh(organization) {
  if (refreshing && !organization) return refreshing;
  const params = { grant_type: "refresh_token", refresh_token: tokens()?.refresh_token || "" };
  if (organization) params.organization = organization;
  refreshing = tokenRequest(params).then(saveTokens).finally(() => { refreshing = null; });
  return refreshing;
}

// scheduleRefresh renews the tokens a minute before the access token
// expires, so the console never shows a page half-loaded with an expired one.
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const t = tokens();
  if (!t) return;
  const exp = decodeJWT(t.access_token).exp * 1000;
  const wait = Math.max(5000, exp - Date.now() - 60000);
  refreshTimer = setTimeout(() => refresh().catch(sessionEnded), wait);
}

function sessionEnded() {
  store.removeItem("console-tokens");
  clearTimeout(refreshTimer);
  renderSignIn("Your session ended. Sign in again.");
}

function signOut() {
  const t = tokens();
  store.removeItem("console-tokens");
  clearTimeout(refreshTimer);
  if (!t?.id_token || !discovery.end_session_endpoint) return renderSignIn("You are signed out.");
  const url = new URL(discovery.end_session_endpoint);
  url.search = new URLSearchParams({ id_token_hint: t.id_token, client_id: CLIENT_ID, post_logout_redirect_uri: redirectURI(), state: "signed-out" });
  location.assign(url);
}

// --- The admin API ------------------------------------------------------------

class APIError extends Error {
  constructor(status, body) {
    super(body.error_description || body.error || "HTTP " + status);
    this.status = status;
    this.body = body;
  }
}

// api calls the admin API (or another of Gatehouse's JSON endpoints) with
// the access token; a 401 refreshes once and retries.
async function api(method, path, body, retried = false) {
  const t = tokens();
  const opts = { method, headers: { Authorization: "Bearer " + (t?.access_token || "") } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  // Paths are the admin API's, except Gatehouse's own /auth/ endpoints.
  const res = await fetch(path.startsWith("/auth/") ? path : API + path, opts);
  if (res.status === 401 && !retried && t?.refresh_token) {
    try {
      await refresh();
    } catch {
      sessionEnded();
      throw new APIError(401, { error_description: "Your session ended." });
    }
    return api(method, path, body, true);
  }
  if (res.status === 204) return null;
  const out = await res.json().catch(() => ({}));
  if (!res.ok) throw new APIError(res.status, out);
  return out;
}

const qs = (o) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v) p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
};

// --- Confirmation dialog ------------------------------------------------------

// confirmAction asks before a destructive action; action runs on confirm,
// and its refusal (the API's error text) shows in the dialog, which stays
// open. Resolves true once the action succeeded.
// extra, when given, is a node of choices shown under the text (removed
// when the dialog closes).
function confirmAction({ title, text, ok = "Confirm", action, extra }) {
  const dlg = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  if (extra) $("confirm-text").after(extra);
  $("confirm-ok").textContent = ok;
  $("confirm-error").hidden = true;
  return new Promise((resolve) => {
    const done = (v) => {
      $("confirm-form").removeEventListener("submit", onSubmit);
      $("confirm-cancel").removeEventListener("click", onCancel);
      dlg.removeEventListener("cancel", onCancel);
      extra?.remove();
      if (dlg.open) dlg.close();
      resolve(v);
    };
    const onCancel = (e) => { e.preventDefault(); done(false); };
    const onSubmit = async (e) => {
      e.preventDefault();
      $("confirm-ok").disabled = true;
      try {
        await action();
        done(true);
      } catch (err) {
        $("confirm-error").textContent = err.message;
        $("confirm-error").hidden = false;
      } finally {
        $("confirm-ok").disabled = false;
      }
    };
    $("confirm-form").addEventListener("submit", onSubmit);
    $("confirm-cancel").addEventListener("click", onCancel);
    dlg.addEventListener("cancel", onCancel);
    dlg.showModal();
    $("confirm-cancel").focus();
  });
}

// form builds a labelled form; onSubmit gets the values, and a refusal
// shows the API's error text under the form (naming the field when the
// API names one).
function form({ fields, submit, onSubmit, cls = "" }) {
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const f = h("form", { class: "form " + cls, novalidate: true },
    fields.map((x) => x instanceof Node ? x : field(x)),
    h("div", { class: "row" }, h("button", { type: "submit" }, submit)), err);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    f.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
    const values = Object.fromEntries(new FormData(f).entries());
    const btn = f.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      await onSubmit(values, f);
    } catch (ex) {
      err.textContent = ex.message;
      err.hidden = false;
      const name = ex.body?.field?.split(".").pop().replace(/\[\d+\]$/, "");
      const input = name && f.querySelector(`[name="${CSS.escape(name)}"]`);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
    } finally {
      btn.disabled = false;
    }
  });
  return f;
}

let fieldSeq = 0;
function field({ name, label, type = "text", value = "", options, required, placeholder, hint }) {
  const id = "f" + (++fieldSeq);
  let input;
  if (options) {
    input = h("select", { id, name }, options.map((o) => {
      const [v, t] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: v, selected: v === value }, t);
    }));
  } else {
    input = h("input", { id, name, type, value, required, placeholder, autocomplete: "off" });
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("small", { class: "muted" }, hint) : null);
}

// pager renders a list with a "Load more" button following next_cursor.
function pager(load, renderRows, headers, caption) {
  const body = h("tbody");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const status = h("p", { class: "muted small", role: "status" });
  const wrap = h("div", {}, h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))), body)), status, more);
  let cursor = "";
  let count = 0;
  const next = async () => {
    more.disabled = true;
    try {
      const page = await load(cursor);
      const rows = renderRows(page.items);
      body.append(...rows);
      count += page.items.length;
      cursor = page.next_cursor || "";
      more.hidden = !cursor;
      status.textContent = count === 0 ? "Nothing found." : count + (cursor ? " shown; more available." : " in all.");
    } catch (err) {
      wrap.append(errorBox(err));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", next);
  next();
  return wrap;
}

// --- Organization names ---------------------------------------------------------

async function loadOrgNames() {
  if (mode !== "instance") {
    for (const o of me.organizations) orgNames.set(o.id, o.name || o.slug);
    return;
  }
  let cursor = "";
  do {
    const page = await api("GET", "/orgs" + qs({ limit: 200, cursor }));
    for (const o of page.items) orgNames.set(o.id, o.name || o.slug);
    cursor = page.next_cursor;
  } while (cursor);
}

const orgName = (id) => (id ? orgNames.get(id) || id : "—");

async function orgList() {
  if (mode === "instance") {
    await loadOrgNames();
    return [...orgNames.entries()].map(([id, name]) => ({ id, name }));
  }
  return [{ id: me.active_org_id, name: orgName(me.active_org_id) }];
}

// --- Pages ---------------------------------------------------------------------------

const pages = {
  users: { title: "Users", instance: true, render: usersPage },
  orgs: { title: "Organizations", render: orgsPage },
  "api-keys": { title: "API keys", render: apiKeysPage },
  audit: { title: "Audit log", render: auditPage },
  activity: { title: "Activity", instance: true, render: activityPage },
  instance: { title: "Instance", instance: true, render: instancePage },
};

function heading(text, ...extra) {
  return h("div", { class: "page-head" }, h("h1", {}, text), ...extra);
}

async function usersPage(view, [id]) {
  if (id) return userDetail(view, id);
  const q = new URLSearchParams(location.hash.split("?")[1] || "").get("q") || "";
  const search = h("form", { class: "search", role: "search" },
    h("label", { for: "user-q" }, "Search by email or name"),
    h("div", { class: "row" }, h("input", { id: "user-q", name: "q", type: "search", value: q }), h("button", { type: "submit" }, "Search")));
  search.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = "#/users" + qs({ q: search.q.value.trim() });
  });
  view.append(heading("Users"), search, pager(
    (cursor) => api("GET", "/users" + qs({ q, cursor, limit: 25 })),
    (items) => items.map((u) => h("tr", {},
      h("td", {}, h("a", { href: "#/users/" + encodeURIComponent(u.id) }, u.email || u.id)),
      h("td", {}, u.name || "—"),
      h("td", {}, u.disabled ? badge("disabled", "bad") : badge("active", "good")),
      h("td", {}, when(u.last_login_at)),
      h("td", {}, when(u.created_at)))),
    ["Email", "Name", "Status", "Last sign-in", "Created"], "Users"));
}

async function userDetail(view, id) {
  await loadOrgNames();
  const u = await api("GET", "/users/" + encodeURIComponent(id));
  const toggle = h("button", { type: "button", class: u.disabled ? "" : "danger" }, u.disabled ? "Enable user" : "Disable user");
  toggle.addEventListener("click", async () => {
    const verb = u.disabled ? "enable" : "disable";
    const ok = await confirmAction({
      title: (u.disabled ? "Enable " : "Disable ") + (u.email || u.id) + "?",
      text: u.disabled ? "They will be able to sign in again. No session is revived."
        : "Every session of theirs ends now and they cannot sign in until enabled. API keys they created keep working.",
      ok: u.disabled ? "Enable" : "Disable",
      action: () => api("POST", `/users/${encodeURIComponent(id)}/${verb}`),
    });
    if (ok) { toast("User " + verb + "d."); route(); }
  });
  const endAll = h("button", { type: "button", class: "danger", id: "end-all-sessions" }, "End all sessions");
  endAll.addEventListener("click", async () => {
    if (await confirmAction({ title: "End all sessions of " + (u.email || u.id) + "?", text: "Every app session and browser session of theirs ends now; their apps are told by back-channel logout.",
      ok: "End all", action: () => api("DELETE", `/users/${encodeURIComponent(id)}/sessions`) })) {
      toast("All sessions ended.");
      route();
    }
  });
  view.append(
    heading(u.name || u.email || u.id, h("div", { class: "row" }, toggle)),
    h("dl", { class: "facts" },
      h("dt", {}, "Email"), h("dd", {}, u.email || "—", u.email_verified ? " (verified)" : ""),
      h("dt", {}, "User id"), h("dd", {}, h("code", {}, u.id)),
      h("dt", {}, "Status"), h("dd", {}, u.disabled ? badge("disabled", "bad") : badge("active", "good")),
      h("dt", {}, "Last sign-in"), h("dd", {}, when(u.last_login_at)),
      h("dt", {}, "Created"), h("dd", {}, when(u.created_at))),
    h("h2", {}, "Identities"),
    table(["Provider", "Subject", "Email", "Last sign-in", ""], u.identities.map((i) => h("tr", {},
      h("td", {}, i.provider), h("td", {}, h("code", {}, i.subject)), h("td", {}, i.email || "—"), h("td", {}, when(i.last_login_at)),
      h("td", {}, h("button", { type: "button", class: "small danger", onclick: async () => {
        if (await confirmAction({ title: "Unlink " + i.provider + " identity?", text: "They will no longer sign in through " + i.provider + " as this user.",
          ok: "Unlink", action: () => api("DELETE", `/users/${encodeURIComponent(id)}/identities/${encodeURIComponent(i.id)}`) })) {
          toast("Identity unlinked."); route();
        }
      } }, "Unlink")))), "Identities"),
    h("h2", {}, "Memberships"),
    table(["Organization", "Role", "Status", "Source"], u.memberships.map((m) => h("tr", {},
      h("td", {}, h("a", { href: "#/orgs/" + encodeURIComponent(m.organization_id) }, orgName(m.organization_id))),
      h("td", {}, m.role_id.replace(/^role-/, "")),
      h("td", {}, badge(m.status, m.status === "active" ? "good" : "bad")),
      h("td", {}, sourceText(m.source)))), "Memberships"),
    h("div", { class: "page-head" }, h("h2", {}, "Sessions"), endAll),
    pager((cursor) => api("GET", `/users/${encodeURIComponent(id)}/sessions` + qs({ cursor, limit: 25 })),
      (items) => items.map((s) => h("tr", {},
        h("td", {}, s.client_id), h("td", {}, s.provider), h("td", {}, orgName(s.active_org_id)),
        h("td", {}, when(s.created_at)), h("td", {}, when(s.last_used_at)),
        h("td", {}, s.active ? badge("active", "good") : badge(s.revoke_reason || "ended", "")),
        h("td", {}, s.active ? h("button", { type: "button", class: "small danger", "data-session": s.id, onclick: async () => {
          if (await confirmAction({ title: "End this session?", text: "The session of " + s.client_id + " ends now; its refresh token stops working.",
            ok: "End session", action: () => api("DELETE", `/users/${encodeURIComponent(id)}/sessions/${encodeURIComponent(s.id)}`) })) {
            toast("Session ended."); route();
          }
        } }, "End") : ""))),
      ["Client", "Provider", "Organization", "Started", "Last used", "Status", ""], "Sessions"));
}

function sourceText(source) {
  if (!source || source === "manual") return "manual";
  if (source.startsWith("sync:")) return "synced by " + source.slice(5);
  return source;
}

async function orgsPage(view, [id, tab]) {
  if (id) return orgDetail(view, id, tab || "members");
  if (mode !== "instance") {
    location.hash = "#/orgs/" + encodeURIComponent(me.active_org_id);
    return;
  }
  const create = form({
    cls: "inline",
    fields: [{ name: "slug", label: "Slug", placeholder: "acme" }, { name: "name", label: "Name", placeholder: "Acme Corp" }],
    submit: "Create organization",
    onSubmit: async (v) => {
      const o = await api("POST", "/orgs", { slug: v.slug, name: v.name || undefined });
      toast("Organization " + o.slug + " created.");
      location.hash = "#/orgs/" + encodeURIComponent(o.id);
    },
  });
  view.append(heading("Organizations"), pager((cursor) => api("GET", "/orgs" + qs({ cursor, limit: 50 })),
    (items) => items.map((o) => h("tr", {},
      h("td", {}, h("a", { href: "#/orgs/" + encodeURIComponent(o.id) }, o.name || o.slug)),
      h("td", {}, h("code", {}, o.slug)), h("td", {}, when(o.created_at)))),
    ["Name", "Slug", "Created"], "Organizations"),
  h("h2", {}, "New organization"), create);
}

async function orgDetail(view, id, tab) {
  const org = await api("GET", "/orgs/" + encodeURIComponent(id));
  const base = "#/orgs/" + encodeURIComponent(id) + "/";
  const tabs = [["members", "Members"], ["invitations", "Invitations"], ["roles", "Roles"], ["sync", "Org sync"], ["api-keys", "API keys"], ["audit", "Audit"]];
  view.append(heading(org.name || org.slug, h("code", {}, org.slug)),
    h("nav", { class: "tabs", "aria-label": "Organization" }, tabs.map(([k, t]) =>
      h("a", { href: base + k, "aria-current": k === tab ? "page" : null }, t))));
  const panel = h("section", { "aria-label": tabs.find(([k]) => k === tab)?.[1] || tab });
  view.append(panel);
  const roles = (await api("GET", `/orgs/${encodeURIComponent(id)}/roles` + qs({ limit: 200 }))).items;
  switch (tab) {
  case "members": return membersTab(panel, org, roles);
  case "invitations": return invitationsTab(panel, org, roles);
  case "roles": return rolesTab(panel, org, roles);
  case "sync": return syncTab(panel, org);
  case "api-keys": return apiKeysFor(panel, org.id);
  case "audit": return auditTable(panel, { org_id: org.id }, `/orgs/${encodeURIComponent(org.id)}/audit-events`);
  }
}

function roleOptions(roles) {
  return roles.map((r) => [r.name, r.name + " (level " + r.level + ")"]);
}

function inviteForm(org, roles) {
  return form({
    cls: "inline",
    fields: [{ name: "email", label: "Email", type: "email", placeholder: "person@example.com" },
      { name: "role", label: "Role", options: roleOptions(roles), value: "member" }],
    submit: "Invite",
    onSubmit: async (v, f) => {
      await api("POST", `/orgs/${encodeURIComponent(org.id)}/invitations`, { email: v.email, role: v.role });
      toast("Invitation sent to " + v.email + ": they join at their next sign-in.");
      f.reset();
      route();
    },
  });
}

function membersTab(panel, org, roles) {
  const path = `/orgs/${encodeURIComponent(org.id)}/members`;
  panel.append(h("h2", {}, "Invite someone"), inviteForm(org, roles), h("h2", {}, "Members"),
    pager((cursor) => api("GET", path + qs({ cursor, limit: 50 })), (items) => items.map((m) => {
      const sel = h("select", { "aria-label": "Role of " + (m.email || m.user_id), name: "role" },
        roles.map((r) => h("option", { value: r.name, selected: r.id === m.role_id }, r.name)));
      const save = h("button", { type: "button", class: "small" }, "Change role");
      save.addEventListener("click", async () => {
        if (await confirmAction({ title: "Change the role of " + (m.email || m.user_id) + "?", text: "From " + m.role + " to " + sel.value + ".",
          ok: "Change role", action: () => api("PATCH", path + "/" + encodeURIComponent(m.user_id), { role: sel.value }) })) {
          toast("Role changed to " + sel.value + "."); route();
        }
      });
      const suspended = m.status === "suspended";
      const suspend = h("button", { type: "button", class: "small secondary" }, suspended ? "Reactivate" : "Suspend");
      suspend.addEventListener("click", async () => {
        if (await confirmAction({ title: (suspended ? "Reactivate " : "Suspend ") + (m.email || m.user_id) + "?",
          text: suspended ? "Their role applies again from their next request." : "Their role stops counting at once; they stay listed.",
          ok: suspended ? "Reactivate" : "Suspend",
          action: () => api("PATCH", path + "/" + encodeURIComponent(m.user_id), { status: suspended ? "active" : "suspended" }) })) {
          toast("Membership " + (suspended ? "reactivated." : "suspended.")); route();
        }
      });
      const remove = h("button", { type: "button", class: "small danger" }, "Remove");
      remove.addEventListener("click", async () => {
        if (await confirmAction({ title: "Remove " + (m.email || m.user_id) + " from " + (org.name || org.slug) + "?",
          text: "Their membership ends. Org sync may add them again at their next sign-in if a rule places them here.",
          ok: "Remove", action: () => api("DELETE", path + "/" + encodeURIComponent(m.user_id)) })) {
          toast("Member removed."); route();
        }
      });
      return h("tr", { "data-member": m.email },
        h("td", {}, mode === "instance" ? h("a", { href: "#/users/" + encodeURIComponent(m.user_id) }, m.email || m.user_id) : m.email || m.user_id),
        h("td", {}, m.name || "—"),
        h("td", {}, h("div", { class: "row tight" }, sel, save)),
        h("td", {}, badge(m.status, m.status === "active" ? "good" : "bad")),
        h("td", {}, sourceText(m.source)),
        h("td", {}, h("div", { class: "row tight" }, suspend, remove)));
    }), ["Email", "Name", "Role", "Status", "Source", ""], "Members"));
}

function invitationsTab(panel, org, roles) {
  const path = `/orgs/${encodeURIComponent(org.id)}/invitations`;
  const roleName = (id) => roles.find((r) => r.id === id)?.name || id;
  panel.append(h("h2", {}, "Invite someone"), inviteForm(org, roles), h("h2", {}, "Invitations"),
    pager((cursor) => api("GET", path + qs({ cursor, limit: 50 })), (items) => items.map((i) => h("tr", {},
      h("td", {}, i.email), h("td", {}, roleName(i.role_id)), h("td", {}, badge(i.status, i.status === "pending" ? "" : i.status === "accepted" ? "good" : "bad")),
      h("td", {}, when(i.expires_at)), h("td", {}, when(i.created_at)),
      h("td", {}, i.status === "pending" ? h("button", { type: "button", class: "small danger", onclick: async () => {
        if (await confirmAction({ title: "Revoke the invitation of " + i.email + "?", text: "It will no longer be accepted at sign-in.",
          ok: "Revoke", action: () => api("DELETE", path + "/" + encodeURIComponent(i.id)) })) {
          toast("Invitation revoked."); route();
        }
      } }, "Revoke") : ""))), ["Email", "Role", "Status", "Expires", "Sent", ""], "Invitations"));
}

// syncReasons says why a rule places people here (the API's `via`).
const syncReasons = {
  bound: "bound to this organization when sync first placed people here",
  slug: "its organization slug; bound here at the next sign-in it matches",
  upstream_org: "this organization is mapped to an upstream organization",
  slug_pattern: "its pattern makes this slug (auto_create_orgs is off)",
};

async function syncTab(panel, org) {
  const rules = (await api("GET", `/orgs/${encodeURIComponent(org.id)}/sync-rules`)).items;
  panel.append(h("h2", {}, "Org-sync rules that place people here"),
    h("p", { class: "muted" }, "From the configuration file's org_sync.rules. Members they add show the source “synced by” their provider; manual changes stop sync from touching a membership."),
    rules.length ? table(["Rule", "Match", "Target", "Role", "Provider", "Why"], rules.map((r) => h("tr", {},
      h("td", {}, "org_sync.rules[" + r.index + "]"), h("td", {}, h("code", {}, r.match)), h("td", {}, h("code", {}, r.org)),
      h("td", {}, r.role), h("td", {}, r.provider || "any"), h("td", {}, syncReasons[r.via] || r.via))), "Org-sync rules")
      : h("p", {}, "No org-sync rule places people in this organization."));
}

function rolesTab(panel, org, roles) {
  const path = `/orgs/${encodeURIComponent(org.id)}/roles`;
  panel.append(h("h2", {}, "Roles"),
    table(["Name", "Level", "Permissions", "Kind", ""], roles.map((r) => h("tr", {},
      h("td", {}, r.name), h("td", {}, String(r.level)),
      h("td", {}, r.permissions.length ? r.permissions.map((p) => h("code", { class: "perm" }, p)) : "—"),
      h("td", {}, r.system ? "system" : "custom"),
      h("td", {}, r.system ? "" : h("button", { type: "button", class: "small danger", onclick: async () => {
        if (await confirmAction({ title: "Delete the role " + r.name + "?", text: "A role held by members or pending invitations cannot be deleted.",
          ok: "Delete role", action: () => api("DELETE", path + "/" + encodeURIComponent(r.id)) })) {
          toast("Role deleted."); route();
        }
      } }, "Delete")))), "Roles"),
    h("h2", {}, "New role"),
    form({
      fields: [{ name: "name", label: "Name", placeholder: "support" },
        { name: "level", label: "Level (0–99)", type: "number", value: "30" },
        { name: "permissions", label: "Permissions", placeholder: "kb:read, admin:audit-read", hint: "resource:action, separated by commas; * wildcards as in the API" },
        { name: "description", label: "Description" }],
      submit: "Create role",
      onSubmit: async (v) => {
        const level = Number(v.level);
        await api("POST", path, { name: v.name, level: Number.isFinite(level) ? level : v.level,
          permissions: v.permissions.split(",").map((s) => s.trim()).filter(Boolean), description: v.description || undefined });
        toast("Role " + v.name + " created."); route();
      },
    }));
}

async function apiKeysPage(view, [orgID]) {
  const orgs = await orgList();
  const current = orgID || orgs[0]?.id;
  const pick = h("select", { id: "key-org", "aria-label": "Organization" }, orgs.map((o) => h("option", { value: o.id, selected: o.id === current }, o.name)));
  pick.addEventListener("change", () => { location.hash = "#/api-keys/" + encodeURIComponent(pick.value); });
  view.append(heading("API keys", h("label", { class: "inline-label" }, "Organization ", pick)));
  if (current) await apiKeysFor(view, current);
}

async function apiKeysFor(panel, orgID) {
  const path = `/orgs/${encodeURIComponent(orgID)}/api-keys`;
  const shown = h("div", { "aria-live": "polite" });
  panel.append(h("h2", {}, "New API key"), form({
    cls: "inline",
    fields: [{ name: "name", label: "Name", placeholder: "ci reader" },
      { name: "permissions", label: "Permissions", placeholder: "kb:read", hint: "separated by commas; covered by your own grants" },
      { name: "expires_at", label: "Expires (optional)", type: "date" }],
    submit: "Create key",
    onSubmit: async (v, f) => {
      const body = { name: v.name, permissions: v.permissions.split(",").map((s) => s.trim()).filter(Boolean) };
      if (v.expires_at) body.expires_at = new Date(v.expires_at + "T00:00:00Z").toISOString();
      const k = await api("POST", path, body);
      f.reset();
      shown.replaceChildren(shownOnce(k.key, "new-key", "copy-key", "Copy this key now: "));
      list.replaceWith(list = keyList());
    },
  }), shown, h("h2", {}, "Keys"));
  const keyList = () => pager((cursor) => api("GET", path + qs({ cursor, limit: 50 })), (items) => items.map((k) => h("tr", { "data-key": k.name },
    h("td", {}, k.name), h("td", {}, h("code", {}, k.prefix + "…")),
    h("td", {}, k.permissions.map((p) => h("code", { class: "perm" }, p))),
    h("td", {}, k.disabled ? badge("disabled", "bad") : badge("active", "good")),
    h("td", {}, when(k.last_used_at)), h("td", {}, when(k.expires_at)),
    h("td", {}, h("div", { class: "row tight" },
      h("button", { type: "button", class: "small secondary", onclick: async () => {
        if (await confirmAction({ title: (k.disabled ? "Enable " : "Disable ") + "the key " + k.name + "?",
          text: k.disabled ? "It will be accepted again." : "Introspection and exchange refuse it at once.", ok: k.disabled ? "Enable" : "Disable",
          action: () => api("PATCH", path + "/" + encodeURIComponent(k.id), { disabled: !k.disabled }) })) {
          toast("Key " + (k.disabled ? "enabled." : "disabled.")); route();
        }
      } }, k.disabled ? "Enable" : "Disable"),
      h("button", { type: "button", class: "small danger", onclick: async () => {
        if (await confirmAction({ title: "Delete the key " + k.name + "?", text: "It stops working at once and cannot be restored.", ok: "Delete key",
          action: () => api("DELETE", path + "/" + encodeURIComponent(k.id)) })) {
          toast("Key deleted."); route();
        }
      } }, "Delete"))))), ["Name", "Prefix", "Permissions", "Status", "Last use", "Expires", ""], "API keys");
  let list = keyList();
  panel.append(list);
}

// shownOnce is the box for a secret Gatehouse shows this once (an API
// key, a client secret), with a copy button that falls back to selecting
// the text where the clipboard is not available.
function shownOnce(value, codeID, copyID, lead, ...more) {
  const code = h("code", { id: codeID }, value);
  const copy = h("button", { type: "button", class: "small", id: copyID }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(value);
      copy.textContent = "Copied";
    } catch {
      const r = document.createRange();
      r.selectNodeContents(code);
      getSelection().removeAllRanges();
      getSelection().addRange(r);
      copy.textContent = "Selected: press Ctrl+C";
    }
  });
  return h("div", { class: "secret", role: "alert" },
    h("p", {}, h("strong", {}, lead), "it is shown once and cannot be recovered."), h("div", { class: "row" }, code, copy), ...more);
}

async function auditPage(view) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const v = Object.fromEntries(params.entries());
  const local = (t) => (t ? t.slice(0, 16) : "");
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Audit filters" },
    field({ name: "type", label: "Type", value: v.type || "", placeholder: "membership.added" }),
    field({ name: "outcome", label: "Outcome", options: [["", "any"], ["success", "success"], ["failure", "failure"]], value: v.outcome || "" }),
    field({ name: "user", label: "User id (actor or subject)", value: v.user || "" }),
    mode === "instance" ? field({ name: "org_id", label: "Organization", options: [["", "any"], ...[...orgNames.entries()]], value: v.org_id || "" }) : null,
    field({ name: "client_id", label: "Client", value: v.client_id || "" }),
    field({ name: "since", label: "Since (UTC)", type: "datetime-local", value: local(v.since) }),
    field({ name: "until", label: "Until (UTC)", type: "datetime-local", value: local(v.until) }),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Filter")));
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(filters).entries());
    for (const k of ["since", "until"]) if (f[k]) f[k] = f[k] + ":00Z";
    location.hash = "#/audit" + qs(f);
  });
  view.append(heading("Audit log"), filters);
  const q = { type: v.type, outcome: v.outcome, client_id: v.client_id, since: v.since, until: v.until, org_id: mode === "instance" ? v.org_id : me.active_org_id };
  // "User" matches the actor or the subject: two queries would page
  // apart, so the console asks for the actor when the filter is set and
  // shows the subject's events in a second list.
  if (v.user) {
    view.append(h("h2", {}, "Done by this user"));
    await auditTable(view, { ...q, actor_user_id: v.user });
    view.append(h("h2", {}, "Done to this user"));
    return auditTable(view, { ...q, subject_user_id: v.user });
  }
  return auditTable(view, q);
}

function auditTable(panel, q, path = "/audit-events") {
  panel.append(pager((cursor) => api("GET", path + qs({ ...q, cursor, limit: 50 })), (items) => items.flatMap((e) => {
    const detail = h("tr", { class: "detail", hidden: true }, h("td", { colspan: 7 }, h("dl", { class: "facts" },
      h("dt", {}, "Event id"), h("dd", {}, String(e.id)),
      h("dt", {}, "Actor"), h("dd", {}, e.actor_user_id || "—"),
      h("dt", {}, "Subject"), h("dd", {}, e.subject_user_id || "—"),
      h("dt", {}, "Organization"), h("dd", {}, orgName(e.organization_id)),
      h("dt", {}, "IP"), h("dd", {}, e.ip || "—"),
      h("dt", {}, "Request id"), h("dd", {}, e.request_id || "—")),
    h("pre", {}, JSON.stringify(e.details, null, 2))));
    const toggle = h("button", { type: "button", class: "small secondary", "aria-expanded": "false" }, "Details");
    toggle.addEventListener("click", () => {
      detail.hidden = !detail.hidden;
      toggle.setAttribute("aria-expanded", String(!detail.hidden));
    });
    return [h("tr", { "data-type": e.type },
      h("td", {}, when(e.occurred_at)), h("td", {}, h("code", {}, e.type)),
      h("td", {}, badge(e.outcome, e.outcome === "success" ? "good" : "bad")),
      h("td", {}, e.actor_user_id ? h("a", { href: "#/audit" + qs({ user: e.actor_user_id }) }, short(e.actor_user_id)) : "—"),
      h("td", {}, orgName(e.organization_id)), h("td", {}, e.client_id || e.provider || "—"), h("td", {}, toggle)), detail];
  }), ["When", "Type", "Outcome", "Actor", "Organization", "Client", ""], "Audit events"));
}

const short = (id) => (id.length > 14 ? id.slice(0, 8) + "…" : id);

// --- Activity ------------------------------------------------------------------------

const PALETTE = ["#2f5bd3", "#0e9f6e", "#c27803", "#9f1239", "#7e3af2", "#0891b2", "#6b7280"];

async function activityPage(view) {
  const bucket = new URLSearchParams(location.hash.split("?")[1] || "").get("bucket") || "hour";
  const pick = h("select", { id: "bucket", "aria-label": "Bucket" },
    h("option", { value: "hour", selected: bucket === "hour" }, "Last 24 hours, by hour"),
    h("option", { value: "day", selected: bucket === "day" }, "Last 30 days, by day"));
  pick.addEventListener("change", () => { location.hash = "#/activity?bucket=" + pick.value; });
  view.append(heading("Activity", pick));
  const a = await api("GET", "/activity" + qs({ bucket }));
  const total = (pts) => pts.reduce((n, p) => n + p.count, 0);
  view.append(h("div", { class: "stats" },
    stat("Active sessions", a.active_sessions, "stat-sessions"),
    stat("Sign-ins", total(a.sign_ins), "stat-signins"),
    stat("Failed sign-ins", total(a.failed_sign_ins), "stat-failed"),
    stat("Refresh-token reuse", total(a.refresh_token_reuse), "stat-reuse")),
  chart("Sign-ins per provider", a.buckets, a.sign_ins, (p) => p.provider, bucket),
  chart("Failed sign-ins by reason", a.buckets, a.failed_sign_ins, (p) => p.reason.replace(/^login\./, ""), bucket),
  chart("Refresh-token reuse (a rotated token presented again; its session was ended)", a.buckets, a.refresh_token_reuse, () => "reuse", bucket));
}

function stat(label, value, id) {
  return h("div", { class: "stat", id }, h("div", { class: "stat-value" }, String(value)), h("div", { class: "muted" }, label));
}

// chart draws a stacked bar chart (SVG, built with DOM calls: no inline
// markup) with a legend, and the same numbers as a table for screen readers.
function chart(title, buckets, points, keyOf, bucket) {
  const keys = [...new Set(points.map(keyOf))].sort();
  const color = (k) => PALETTE[keys.indexOf(k) % PALETTE.length];
  const byBucket = new Map(buckets.map((b) => [new Date(b).getTime(), {}]));
  for (const p of points) {
    const row = byBucket.get(new Date(p.bucket).getTime());
    if (row) row[keyOf(p)] = (row[keyOf(p)] || 0) + p.count;
  }
  const rows = [...byBucket.entries()];
  const max = Math.max(1, ...rows.map(([, r]) => Object.values(r).reduce((a, b) => a + b, 0)));
  const W = 720, H = 120, pad = 28, right = 16, bw = (W - pad - right) / Math.max(1, rows.length);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 20}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  el("line", { x1: pad, y1: H, x2: W - right, y2: H, class: "axis" });
  el("text", { x: pad - 4, y: 10, "text-anchor": "end", class: "tick" }, String(max));
  el("text", { x: pad - 4, y: H, "text-anchor": "end", class: "tick" }, "0");
  const label = (t) => (bucket === "hour" ? new Date(t).toISOString().slice(11, 16) : new Date(t).toISOString().slice(5, 10));
  const every = Math.ceil(rows.length / 8);
  rows.forEach(([t, r], i) => {
    let y = H;
    for (const k of keys) {
      const v = r[k] || 0;
      if (!v) continue;
      const bh = (v / max) * (H - 12);
      y -= bh;
      const rect = el("rect", { x: pad + i * bw + 1, y, width: Math.max(1, bw - 2), height: bh, fill: color(k) });
      const tip = document.createElementNS(NS, "title");
      tip.textContent = `${label(t)} ${k}: ${v}`;
      rect.append(tip);
    }
    if (i % every === 0) el("text", { x: pad + i * bw + bw / 2, y: H + 14, "text-anchor": "middle", class: "tick" }, label(t));
  });
  const legend = h("ul", { class: "legend" }, keys.length ? keys.map((k) => {
    const sw = h("span", { class: "swatch" });
    sw.style.background = color(k); // CSSOM, which the CSP allows (not an inline style attribute)
    return h("li", {}, sw, k);
  }) : h("li", { class: "muted" }, "No events in this window."));
  const nonEmpty = rows.filter(([, r]) => Object.keys(r).length);
  const numbers = h("details", {}, h("summary", {}, "Numbers"),
    table(["Bucket (UTC)", ...keys], nonEmpty.map(([t, r]) => h("tr", {}, h("td", {}, when(t)), keys.map((k) => h("td", {}, String(r[k] || 0))))), title));
  return h("section", { class: "card" }, h("h2", {}, title), svg, legend, numbers);
}

// --- Instance --------------------------------------------------------------------------

async function instancePage(view, [sub, id]) {
  if (sub === "clients" && id) return id === "new" ? newClientPage(view) : clientPage(view, id);
  view.append(heading("Instance"));
  // Providers' health comes from /readyz (public, no token needed).
  const health = h("section", { class: "card", "aria-labelledby": "h-providers" }, h("h2", { id: "h-providers" }, "Health"));
  view.append(health);
  try {
    const res = await fetch("/readyz");
    const r = await res.json();
    health.append(h("p", {}, "Status: ", badge(r.status, r.status === "ready" ? "good" : "bad")),
      table(["Check", "State"], Object.entries(r.checks).sort().map(([k, v]) => h("tr", {},
        h("td", {}, k.startsWith("provider:") ? "provider " + k.slice(9) : k), h("td", {}, badge(v, v === "ok" ? "good" : "bad")))), "Health checks"),
      h("p", { class: "muted small" }, "Providers without a check of their own (dev, GitHub) are not listed."));
  } catch (err) {
    health.append(errorBox(err));
  }

  const keys = h("section", { class: "card", "aria-labelledby": "h-keys" });
  const rotate = h("button", { type: "button", class: "danger", id: "rotate-key" }, "Rotate signing key");
  rotate.addEventListener("click", async () => {
    if (await confirmAction({ title: "Rotate the signing key?", text: "A new key is published now and starts signing after the publish lead; the current one keeps verifying until its tokens expire.",
      ok: "Rotate", action: async () => { const k = await api("POST", "/signing-keys/rotate"); toast("New key " + k.kid + " published."); } })) {
      route();
    }
  });
  keys.append(h("div", { class: "page-head" }, h("h2", { id: "h-keys" }, "Signing keys"), rotate));
  view.append(keys);
  try {
    const list = await api("GET", "/signing-keys");
    keys.append(table(["Key id", "Algorithm", "State", "Signs from", "Retired", "Unpublished after"], list.items.map((k) => h("tr", {},
      h("td", {}, h("code", {}, k.kid)), h("td", {}, k.alg), h("td", {}, badge(k.state, k.state === "active" ? "good" : "")),
      h("td", {}, when(k.activates_at)), h("td", {}, when(k.retired_at)), h("td", {}, when(k.delete_after)))), "Signing keys"));
  } catch (err) {
    keys.append(errorBox(err));
  }

  view.append(await clientsCard());
}

// --- Clients ---------------------------------------------------------------------------

// The grant types a client may be given (config/file.go's Grant… constants).
const GRANTS = [
  ["authorization_code", "authorization code"],
  ["refresh_token", "refresh token"],
  ["client_credentials", "client credentials (confidential only)"],
  ["urn:ietf:params:oauth:grant-type:token-exchange", "token exchange"],
  ["urn:ietf:params:oauth:grant-type:device_code", "device code"],
];
// The fields the client form has controls for; any other goes in the
// advanced JSON. Gatehouse sets the read-only ones itself.
const CLIENT_FIELDS = ["name", "public", "redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes", "audience"];
const CLIENT_READ_ONLY = ["client_id", "source", "origin", "created_at", "updated_at", "previous_secret_expires_at", "client_secret"];
// The secret a creation, rotation or change just answered: shown on the
// client's page once, then forgotten.
let freshSecret;

async function clientsCard() {
  const card = h("section", { class: "card", "aria-labelledby": "h-clients" });
  const create = h("a", { href: "#/instance/clients/new", class: "button", id: "new-client" }, "New client");
  card.append(h("div", { class: "page-head" }, h("h2", { id: "h-clients" }, "Clients"), create));
  try {
    const list = await api("GET", "/clients" + qs({ limit: 200 }));
    card.append(table(["Client id", "Name", "Source", "Type", "Grants", "Redirect URIs"], list.items.map((c) => h("tr", { "data-client": c.client_id },
      h("td", {}, h("a", { href: "#/instance/clients/" + encodeURIComponent(c.client_id) }, h("code", {}, c.client_id))), h("td", {}, c.name || "—"),
      h("td", {}, c.source === "config" ? badge("configuration file") : badge("stored", "good")),
      h("td", {}, c.public ? "public" : "confidential"), h("td", {}, (c.grant_types || []).join(", ") || "—"),
      h("td", {}, (c.redirect_uris || []).map((u) => h("div", {}, h("code", {}, u)))))), "Clients"),
    h("p", { class: "muted small" }, "Stored clients are created and changed here (or with gatehouse clients); those of the configuration file are read-only here."));
  } catch (err) {
    create.remove();
    card.append(err.status === 404 ? h("p", { class: "muted", id: "clients-unavailable" }, "Listing clients is not available in this version of Gatehouse.") : errorBox(err));
  }
  return card;
}

// words splits a list typed one per line, or separated by commas or spaces.
const words = (s) => s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

function textArea({ name, label, value = "", hint, rows = 3, cls = "" }) {
  const id = "f" + (++fieldSeq);
  return h("div", { class: "field " + cls }, h("label", { for: id }, label),
    h("textarea", { id, name, rows, spellcheck: "false", autocomplete: "off" }, value), hint ? h("small", { class: "muted" }, hint) : null);
}

// clientForm has the common fields of a client (c: its current values,
// or a new one's defaults) and the other fields as JSON.
function clientForm(c, { isNew, submit, onSubmit }) {
  const others = Object.fromEntries(Object.entries(c).filter(([k, v]) => !CLIENT_FIELDS.includes(k) && !CLIENT_READ_ONLY.includes(k) && !isDefault(k, v)));
  const granted = c.grant_types || ["authorization_code", "refresh_token"];
  const grants = h("fieldset", { class: "field checks" }, h("legend", {}, "Grant types"),
    GRANTS.map(([g, t]) => h("label", {}, h("input", { type: "checkbox", name: "grant_types", value: g, checked: granted.includes(g) }), " ", t)));
  return form({
    cls: "client-form",
    fields: [
      isNew ? { name: "client_id", label: "Client id (optional)", placeholder: "reports", hint: "letters, digits, . _ : -; generated when empty" } : null,
      { name: "name", label: "Name", value: c.name || "", placeholder: "Reports" },
      { name: "type", label: "Type", value: c.public ? "public" : "confidential",
        options: [["confidential", "confidential (a server: gets a secret)"], ["public", "public (a browser or mobile app: PKCE, no secret)"]] },
      textArea({ name: "redirect_uris", label: "Redirect URIs", value: (c.redirect_uris || []).join("\n"), hint: "one per line; needed for the authorization code grant" }),
      textArea({ name: "post_logout_redirect_uris", label: "Post-logout redirect URIs", value: (c.post_logout_redirect_uris || []).join("\n"), rows: 2, hint: "one per line" }),
      grants,
      { name: "scopes", label: "Scopes", value: (c.scopes || []).join(" "), placeholder: "kb:read", hint: "beyond openid, profile, email and offline_access; separated by spaces" },
      { name: "audience", label: "Audience", value: (c.audience || []).join(" "), placeholder: "reports-api", hint: "the aud of its access tokens, separated by spaces; empty: the client id" },
      textArea({ name: "advanced", label: "Other fields (JSON)", value: JSON.stringify(others, null, 2), rows: 4,
        hint: "any other field of a client, with the configuration file's names, e.g. {\"access_token_ttl\": \"10m\"}" }),
    ].filter(Boolean),
    submit,
    onSubmit: async (v, f) => {
      let extra;
      try {
        extra = JSON.parse(v.advanced.trim() || "{}");
      } catch (err) {
        throw new Error("Other fields: not valid JSON (" + err.message + ")");
      }
      if (!extra || typeof extra !== "object" || Array.isArray(extra)) throw new Error("Other fields: a JSON object is needed, like {}");
      const list = (s) => (words(s).length ? words(s) : null);
      const body = {
        name: v.name.trim() || null,
        public: v.type === "public",
        redirect_uris: list(v.redirect_uris),
        post_logout_redirect_uris: list(v.post_logout_redirect_uris),
        grant_types: [...f.querySelectorAll("input[name=grant_types]:checked")].map((i) => i.value),
        scopes: list(v.scopes),
        audience: list(v.audience),
      };
      if (!body.grant_types.length) body.grant_types = null;
      if (isNew) {
        if (v.client_id.trim()) body.client_id = v.client_id.trim();
        for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
        return onSubmit({ ...body, ...extra });
      }
      // A change sends only what differs; a field left out of the JSON
      // returns to its default (null).
      const patch = {};
      for (const k of Object.keys(others)) if (!(k in extra)) patch[k] = null;
      for (const [k, x] of Object.entries({ ...body, ...extra })) {
        if (JSON.stringify(x ?? null) !== JSON.stringify(c[k] ?? null)) patch[k] = x;
      }
      if (k0(patch)) return toast("Nothing changed.");
      return onSubmit(patch);
    },
  });
}

const k0 = (o) => Object.keys(o).length === 0;

// isDefault: a stored client's field at its default, left out of the
// "other fields" JSON so that it shows only what was set (leaving one out
// there keeps it as it is). id_token_on_refresh defaults to true.
function isDefault(k, v) {
  if (v === null || v === "" || v === "0s" || (Array.isArray(v) && !v.length) || (typeof v === "object" && v && k0(v))) return true;
  return v === false && k !== "id_token_on_refresh";
}

async function newClientPage(view) {
  view.append(heading("New client", h("a", { href: "#/instance" }, "Back to the instance")),
    h("p", { class: "muted" }, "A stored client: every replica follows within the clients' poll interval. Fields are checked as the configuration file's are."),
    clientForm({}, { isNew: true, submit: "Create client", onSubmit: async (body) => {
      const c = await api("POST", "/clients", body);
      freshSecret = { client_id: c.client_id, secret: c.client_secret };
      toast("Client " + c.client_id + " created.");
      location.hash = "#/instance/clients/" + encodeURIComponent(c.client_id);
    } }));
}

async function clientPage(view, id) {
  const c = await api("GET", "/clients/" + encodeURIComponent(id));
  const path = "/clients/" + encodeURIComponent(id);
  const fresh = freshSecret?.client_id === id && freshSecret.secret ? freshSecret : null;
  freshSecret = undefined;
  const stored = c.source === "database";
  const label = c.name ? c.name + " (" + c.client_id + ")" : c.client_id;
  const actions = h("div", { class: "row" });
  if (stored && !c.public) {
    const rotate = h("button", { type: "button", class: "secondary", id: "rotate-secret" }, "Rotate secret");
    rotate.addEventListener("click", async () => {
      const overlap = h("select", { id: "rotate-overlap", name: "overlap" },
        [["0s", "none: the current secret stops now"], ["1h", "1 hour"], ["24h", "24 hours"], ["168h", "7 days"], ["720h", "30 days"]]
          .map(([v, t]) => h("option", { value: v, selected: v === "24h" }, t)));
      const extra = h("div", { class: "field" }, h("label", { for: "rotate-overlap" }, "The current secret keeps working for"), overlap);
      if (await confirmAction({ title: "Rotate the secret of " + label + "?",
        text: "A new secret is generated and shown once. Until the overlap ends, both work; then only the new one. Rotating again within the overlap ends the oldest secret at once.",
        ok: "Rotate secret", extra,
        action: async () => {
          const r = await api("POST", path + "/rotate-secret", { overlap: overlap.value });
          freshSecret = { client_id: id, secret: r.client_secret, previous_secret_expires_at: r.previous_secret_expires_at, rotated: true };
        } })) {
        toast("Secret rotated.");
        route();
      }
    });
    actions.append(rotate);
  }
  if (stored) {
    const del = h("button", { type: "button", class: "danger", id: "delete-client" }, "Delete client");
    del.addEventListener("click", async () => {
      let ended = 0;
      if (await confirmAction({ title: "Delete the client " + label + "?",
        text: "Every session of " + label + " ends now (reason client_deleted): everyone signed in to it is signed out, and its refresh tokens and codes stop working. " +
          "Access tokens it already holds stay valid until they expire at backends that verify them locally. The client cannot be restored.",
        ok: "Delete client",
        action: async () => { ended = (await api("DELETE", path)).sessions_ended; } })) {
        toast("Client " + c.client_id + " deleted: " + ended + " session(s) ended.");
        location.hash = "#/instance";
      }
    });
    actions.append(del);
  }
  view.append(heading(label, actions), h("p", {}, h("a", { href: "#/instance" }, "Back to the instance")));
  if (fresh) {
    view.append(shownOnce(fresh.secret, "client-secret", "copy-secret", fresh.rotated ? "Copy the new secret now: " : "Copy the client secret now: ",
      fresh.previous_secret_expires_at ? h("p", { id: "previous-secret" }, "The previous secret keeps working until " + when(fresh.previous_secret_expires_at) + ".")
        : fresh.rotated ? h("p", { id: "previous-secret" }, "The previous secret no longer works.") : null));
  }
  view.append(h("dl", { class: "facts" },
    h("dt", {}, "Client id"), h("dd", {}, h("code", {}, c.client_id)),
    h("dt", {}, "Source"), h("dd", {}, stored ? "stored" + (c.origin ? " (created by " + c.origin + ")" : "") : "the configuration file"),
    h("dt", {}, "Type"), h("dd", {}, c.public ? "public" : "confidential"),
    stored ? [h("dt", {}, "Created"), h("dd", {}, when(c.created_at)), h("dt", {}, "Updated"), h("dd", {}, when(c.updated_at))] : null,
    c.previous_secret_expires_at ? [h("dt", {}, "Previous secret works until"), h("dd", { id: "previous-expires" }, when(c.previous_secret_expires_at))] : null));
  if (!stored) {
    view.append(h("p", { class: "note", id: "config-client" }, "Defined in the configuration file: read-only here. Change it in the file's clients list (a SIGHUP reloads the file)."),
      h("pre", {}, JSON.stringify(c, null, 2)));
    return;
  }
  view.append(h("h2", {}, "Settings"), clientForm(c, { submit: "Save changes", onSubmit: async (patch) => {
    const save = async () => {
      const r = await api("PATCH", path, patch);
      if (r.client_secret) freshSecret = { client_id: id, secret: r.client_secret };
    };
    // Made public, the client loses its secrets: that is asked first.
    if (patch.public === true && !c.public) {
      if (!await confirmAction({ title: "Make " + label + " a public client?",
        text: "Its secrets stop working at once: a server still authenticating with one is refused until it is changed.", ok: "Make public", action: save })) return;
    } else {
      await save();
    }
    toast("Client " + c.client_id + " saved.");
    route();
  } }));
}

// --- Shell -------------------------------------------------------------------------------

function renderSignIn(message) {
  $("nav").hidden = $("who").hidden = true;
  const btn = h("button", { type: "button", id: "signin" }, "Sign in");
  btn.addEventListener("click", () => signIn().catch((e) => view().append(errorBox(e))));
  view().replaceChildren(h("section", { class: "card narrow" },
    h("h1", {}, "Gatehouse admin console"),
    message ? h("p", { id: "status", role: "status" }, message) : null,
    h("p", { class: "muted" }, "Sign in with your usual account. Gatehouse administrators manage the whole instance; an organization's admins manage their organization."),
    btn));
  btn.focus();
}

const view = () => $("view");

// renderRefusal is the page for someone whose role grants no admin access:
// who they are, where they act, what they lack, and how to get it.
function renderRefusal(err) {
  renderWho();
  $("nav").hidden = true;
  const org = me.organizations.find((o) => o.id === me.active_org_id);
  view().replaceChildren(h("section", { class: "card narrow", id: "refusal" },
    h("h1", {}, "You cannot use the admin console"),
    h("p", {}, "You are signed in as ", h("strong", {}, me.name || me.email), me.email && me.name ? ` (${me.email})` : "",
      org ? [", acting in the organization ", h("strong", {}, org.name || org.slug), ` with the role ${org.role}.`] : ", in no organization."),
    h("p", {}, "The console needs an admin permission there", err?.body?.required ? [": ", h("code", {}, err.body.required)] : "",
      ". Gatehouse said: ", h("q", {}, err?.message || "no admin permission")),
    h("p", { class: "muted" }, "Gatehouse administrators hold a role granting admin permissions in the administrators' organization; an organization's admins in theirs. Ask one of them, or an operator can run ",
      h("code", {}, "gatehouse admin grant " + (me.email || "EMAIL")), ".")));
}

function renderWho() {
  const org = me.organizations.find((o) => o.id === me.active_org_id);
  $("who").hidden = false;
  $("who-text").replaceChildren(h("span", {}, h("strong", { id: "who-name" }, me.name || me.email)),
    h("span", { class: "muted" }, " in "), h("span", { id: "who-org" }, org ? org.name || org.slug : "no organization"));
  const active = me.organizations.filter((o) => o.status === "active");
  $("org-switch").hidden = active.length < 2;
  $("org-select").replaceChildren(...active.map((o) => h("option", { value: o.id, selected: o.id === me.active_org_id }, o.name || o.slug)));
}

function renderNav(current) {
  $("nav").hidden = false;
  $("nav-links").replaceChildren(...Object.entries(pages).filter(([, p]) => mode === "instance" || !p.instance).map(([k, p]) =>
    h("li", {}, h("a", { href: "#/" + k, "aria-current": k === current ? "page" : null }, p.title))));
}

// start reads who is signed in and decides what the console may show:
// the administrators' organization gets everything; another organization
// its own pages when the role there grants admin permissions; otherwise
// the refusal page.
async function start() {
  me = await api("GET", "/auth/me");
  const adminMembership = me.organizations.find((o) => o.id === ADMIN_ORG && o.status === "active");
  if (me.active_org_id !== ADMIN_ORG && adminMembership && !store.getItem("console-stay")) {
    await refresh(ADMIN_ORG);
    me = await api("GET", "/auth/me");
  }
  renderWho();
  try {
    if (me.active_org_id === ADMIN_ORG) {
      await api("GET", "/orgs" + qs({ limit: 1 }));
      mode = "instance";
    } else if (me.active_org_id) {
      await api("GET", `/orgs/${encodeURIComponent(me.active_org_id)}/members` + qs({ limit: 1 }));
      mode = "org";
    } else {
      throw new APIError(403, { error_description: "you are not an active member of any organization" });
    }
  } catch (err) {
    if (err.status === 403) return renderRefusal(err);
    throw err;
  }
  await loadOrgNames();
  await route();
}

async function route() {
  if (!me || !mode) return;
  const [path] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/").map(decodeURIComponent);
  const key = pages[name] && (mode === "instance" || !pages[name].instance) ? name : mode === "instance" ? "users" : "orgs";
  renderNav(key);
  const v = view();
  v.replaceChildren();
  document.title = pages[key].title + " · Gatehouse admin";
  try {
    await pages[key].render(v, key === name ? rest : []);
  } catch (err) {
    if (err.status === 401) return;
    v.append(errorBox(err));
  }
}

async function main() {
  discovery = await (await fetch("/.well-known/openid-configuration")).json();
  if (location.origin + "/admin/" !== redirectURI()) {
    location.replace(redirectURI());
    return;
  }
  $("signout").addEventListener("click", signOut);
  $("org-select").addEventListener("change", async (e) => {
    try {
      await refresh(e.target.value);
      // Stay where the person chose, even if they are an administrator.
      store.setItem("console-stay", "1");
      orgNames.clear();
      mode = undefined;
      await start();
    } catch (err) {
      toast(err.message);
    }
  });
  window.addEventListener("hashchange", () => {
    $("toast").hidden = true;
    route().then(() => view().focus());
  });
  const params = new URLSearchParams(location.search);
  if (params.get("state") === "signed-out") {
    history.replaceState(null, "", redirectURI());
    return renderSignIn("You are signed out.");
  }
  if (params.has("code") || params.has("error")) await finishSignIn(params);
  if (!tokens()) return renderSignIn();
  scheduleRefresh();
  await start();
}

main().catch((err) => {
  view().replaceChildren(errorBox(err));
  if (!tokens()) renderSignIn(err.message);
});
