// Gatehouse demo: a complete single-page OpenID Connect client in plain
// JavaScript. It signs in with the authorization code flow and PKCE
// (RFC 7636), shows the tokens, calls /auth/me, refreshes, switches the
// active organization, renews silently (prompt=none in a hidden iframe,
// answered from Gatehouse's browser session with no sign-in form) and signs
// out with RP-initiated logout.
//
// Copy it freely. Two choices to revisit in your own app:
//  - Tokens live in sessionStorage so a reload keeps you signed in; an
//    XSS bug could read them. Memory-only storage is safer but signs you
//    out on reload.
//  - Every call goes to the same origin as Gatehouse. From another origin,
//    add it to GATEHOUSE_CORS_ORIGINS.
"use strict";

const CLIENT_ID = "gatehouse-demo";
const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;

let discovery; // the OpenID Provider metadata

// --- PKCE and random values -------------------------------------------

function base64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function s256(verifier) {
  return base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

// --- Talking to Gatehouse ---------------------------------------------

function redirectURI() {
  // Registered for the demo client: <issuer>/demo/
  return discovery.issuer.replace(/\/$/, "") + "/demo/";
}

function silentRedirectURI() {
  // Also registered: the page that hands the hidden iframe's answer back.
  return redirectURI() + "silent.html";
}

// tokenRequest posts an application/x-www-form-urlencoded request to the
// token endpoint and returns the JSON answer, or throws the OAuth error.
async function tokenRequest(params) {
  const res = await fetch(discovery.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: CLIENT_ID, ...params }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error_description || body.error || res.statusText);
  return body;
}

function saveTokens(t) {
  store.setItem("tokens", JSON.stringify({
    access_token: t.access_token,
    refresh_token: t.refresh_token,
    // A refresh does not always return a new ID token; keep the last one.
    id_token: t.id_token || tokens()?.id_token,
  }));
}

function tokens() {
  return JSON.parse(store.getItem("tokens") || "null");
}

// decodeJWT shows a token's claims. It does NOT verify the signature:
// that is the job of whoever trusts the token (your backend, via JWKS).
function decodeJWT(jwt) {
  const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

// --- The flow -----------------------------------------------------------

// authorizationURL builds an authorization request with PKCE; extra
// parameters (prompt, id_token_hint) are added to it.
async function authorizationURL(redirect, { verifier, state, nonce }, extra = {}) {
  const url = new URL(discovery.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: CLIENT_ID,
    redirect_uri: redirect,
    scope: "openid email profile",
    state,
    nonce,
    code_challenge: await s256(verifier),
    code_challenge_method: "S256",
    ...extra,
  });
  return url;
}

async function signIn() {
  const saved = { verifier: randomString(), state: randomString(), nonce: randomString() };
  // Remember what we need when Gatehouse sends the browser back.
  store.setItem("pkce", JSON.stringify(saved));
  window.location.assign(await authorizationURL(redirectURI(), saved));
}

// renewSilently asks for new tokens without showing anything: an
// authorization request with prompt=none in a hidden iframe. Gatehouse
// answers from its browser session (a cookie on its own site, so this
// works for apps on the same site as Gatehouse; a cross-site app, whose
// iframe gets no cookie once third-party cookies are blocked, renews with
// its refresh token instead) by redirecting the iframe to silent.html with
// a code, or with error=login_required when nobody is signed in. It never
// shows a page there. Returns the tokens, or throws the OAuth error.
async function renewSilently() {
  const saved = { verifier: randomString(), state: randomString(), nonce: randomString() };
  const extra = { prompt: "none" };
  // Whom this app believes is signed in: another user's session answers login_required.
  if (tokens()?.id_token) extra.id_token_hint = tokens().id_token;
  const answer = await inHiddenIframe(await authorizationURL(silentRedirectURI(), saved, extra), 10000);
  const params = new URL(answer).searchParams;
  if (params.get("state") !== saved.state) throw new Error("The silent renewal's answer was not for this request.");
  if (params.get("iss") && params.get("iss") !== discovery.issuer) {
    throw new Error("The silent renewal's answer came from an unexpected issuer.");
  }
  if (params.get("error")) {
    const err = new Error(params.get("error_description") || params.get("error"));
    err.code = params.get("error");
    throw err;
  }
  const t = await tokenRequest({
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: silentRedirectURI(),
    code_verifier: saved.verifier,
  });
  if (decodeJWT(t.id_token).nonce !== saved.nonce) throw new Error("ID token nonce mismatch.");
  saveTokens(t);
  return t;
}

// inHiddenIframe loads url in an invisible iframe and resolves with the
// URL that silent.html reports from inside it (same origin, that very
// iframe), or rejects after timeout milliseconds.
function inHiddenIframe(url, timeout) {
  return new Promise((resolve, reject) => {
    const frame = document.createElement("iframe");
    frame.hidden = true;
    frame.title = "silent renewal";
    const finish = (fn, value) => {
      window.removeEventListener("message", onMessage);
      clearTimeout(timer);
      frame.remove();
      fn(value);
    };
    const onMessage = (e) => {
      if (e.origin !== window.location.origin || e.source !== frame.contentWindow || e.data?.type !== "gatehouse-demo-silent") return;
      finish(resolve, e.data.url);
    };
    const timer = setTimeout(() => finish(reject, new Error("Gatehouse did not answer the silent renewal in time.")), timeout);
    window.addEventListener("message", onMessage);
    frame.src = url;
    document.body.append(frame);
  });
}

async function renew() {
  const before = tokens();
  const out = $("renew-result");
  out.classList.remove("error");
  out.textContent = "Asking Gatehouse with prompt=none…";
  try {
    const t = await renewSilently();
    const id = decodeJWT(t.id_token);
    const when = new Date(id.auth_time * 1000).toLocaleTimeString();
    out.textContent = (before ? "Renewed silently" : "Signed in silently") + " at " + new Date().toLocaleTimeString() +
      ", with no sign-in form: new tokens for " + (id.email || id.sub) + " (signed in upstream at " + when + ").";
    $("renew-count").textContent = String(Number($("renew-count").textContent) + 1);
  } catch (err) {
    out.classList.add("error");
    out.textContent = err.code === "login_required"
      ? "login_required: this browser has no Gatehouse session, so signing in needs the form."
      : "Silent renewal failed: " + (err.code ? err.code + ": " : "") + err.message;
  }
  await render();
}

// handleCallback finishes sign-in when the URL carries ?code= or ?error=.
async function handleCallback(params) {
  const saved = JSON.parse(store.getItem("pkce") || "null");
  store.removeItem("pkce");
  // Clean the URL so a reload does not replay the code.
  window.history.replaceState(null, "", redirectURI());
  if (params.get("error")) {
    throw new Error("Sign-in did not complete: " + (params.get("error_description") || params.get("error")));
  }
  if (!saved || params.get("state") !== saved.state) {
    throw new Error("This sign-in response was not started here; please sign in again.");
  }
  if (params.get("iss") && params.get("iss") !== discovery.issuer) {
    throw new Error("The sign-in response came from an unexpected issuer.");
  }
  const t = await tokenRequest({
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectURI(),
    code_verifier: saved.verifier,
  });
  if (decodeJWT(t.id_token).nonce !== saved.nonce) throw new Error("ID token nonce mismatch.");
  saveTokens(t);
}

async function refresh(organization) {
  const params = { grant_type: "refresh_token", refresh_token: tokens().refresh_token };
  if (organization) params.organization = organization;
  saveTokens(await tokenRequest(params));
  $("refresh-count").textContent = String(Number($("refresh-count").textContent) + 1);
  await render();
}

function signOut() {
  const t = tokens();
  store.removeItem("tokens");
  const url = new URL(discovery.end_session_endpoint);
  url.search = new URLSearchParams({
    id_token_hint: t.id_token,
    client_id: CLIENT_ID,
    post_logout_redirect_uri: redirectURI(),
    state: "signed-out",
  });
  window.location.assign(url);
}

// --- Rendering ------------------------------------------------------------

async function render() {
  const t = tokens();
  const signedIn = Boolean(t);
  $("signin").hidden = signedIn;
  $("renew").hidden = $("silent").hidden = false;
  $("refresh").hidden = $("signout").hidden = $("signed-in").hidden = !signedIn;
  if (!signedIn) {
    $("org-picker").hidden = true;
    return;
  }
  $("access-claims").textContent = JSON.stringify(decodeJWT(t.access_token), null, 2);
  $("id-claims").textContent = t.id_token ? JSON.stringify(decodeJWT(t.id_token), null, 2) : "(none)";
  const res = await fetch("/auth/me", { headers: { Authorization: "Bearer " + t.access_token } });
  if (res.status === 401) {
    store.removeItem("tokens");
    setStatus("Your session ended. Sign in again.");
    return render();
  }
  const me = await res.json();
  $("me").textContent = JSON.stringify(me, null, 2);
  setStatus("Signed in as " + (me.name || me.email) + ".");
  const active = me.organizations.filter((o) => o.status === "active");
  $("org-picker").hidden = active.length < 2;
  $("org").replaceChildren(...active.map((o) => new Option(o.name || o.slug, o.id, false, o.id === me.active_org_id)));
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(err) {
  $("error").hidden = false;
  $("error").textContent = err.message;
}

async function main() {
  discovery = await (await fetch("/.well-known/openid-configuration")).json();
  // The registered redirect URI is on the issuer's origin; come back there.
  if (window.location.origin + "/demo/" !== redirectURI()) {
    window.location.replace(redirectURI());
    return;
  }
  $("signin").addEventListener("click", () => signIn().catch(showError));
  $("refresh").addEventListener("click", () => refresh().catch(showError));
  $("renew").addEventListener("click", () => renew().catch(showError));
  $("signout").addEventListener("click", signOut);
  $("org").addEventListener("change", (e) => refresh(e.target.value).catch(showError));

  const params = new URLSearchParams(window.location.search);
  if (params.get("state") === "signed-out") {
    window.history.replaceState(null, "", redirectURI());
    setStatus("You are signed out.");
  } else if (params.has("code") || params.has("error")) {
    setStatus("Finishing sign-in…");
    await handleCallback(params);
  } else {
    setStatus(tokens() ? "" : "You are not signed in.");
  }
  await render();
}

main().catch((err) => {
  showError(err);
  render();
});
