// Finding a request's one credential, as Gatehouse's Go rbac package does
// (rbac/credentials.go): "Authorization: Bearer <jwt>" (exactly that scheme
// and one space), "X-API-Key: <key>", or, only on a WebSocket upgrade, the
// query parameter token=<jwt> or key=<API key>.

/** API_KEY_PREFIX starts every Gatehouse API key; 43 base64url characters follow. */
export const API_KEY_PREFIX = "ghk_";

/** API_KEY_HEADER carries an API key. */
export const API_KEY_HEADER = "X-API-Key";

/** QUERY_TOKEN carries an access token on a WebSocket upgrade: ?token=<access token>. */
export const QUERY_TOKEN = "token";

/** QUERY_KEY carries an API key on a WebSocket upgrade: ?key=<API key>. */
export const QUERY_KEY = "key";

const API_KEY_BODY_LEN = 43;

/** MAX_TOKEN_LEN bounds what is parsed: Gatehouse's tokens are a few KiB. */
export const MAX_TOKEN_LEN = 16 << 10;

/** Credential kinds, as Gatehouse's introspection names them. */
export const KIND_ACCESS_TOKEN = "access_token";
export const KIND_API_KEY = "api_key";

// Why a request's credentials are unusable; the text is what the caller
// reads and never contains the credential (Go's credentialError values).
export const REASON_NO_CREDENTIAL = "a bearer access token is required";
export const REASON_NOT_BEARER = "the Authorization header must be the Bearer scheme, one space and an access token";
export const REASON_MALFORMED_TOKEN = "the access token is malformed";
export const REASON_MALFORMED_API_KEY = "the API key is malformed";
export const REASON_TWO_CREDENTIALS =
  "send one credential: an Authorization header, an X-API-Key header, or on a WebSocket upgrade a token or key query parameter";

/** CredentialError is a refused credential's reason, safe to show. */
export class CredentialError extends Error {
  constructor(reason) {
    super(reason);
    this.name = "CredentialError";
    this.reason = reason;
  }
}

/** headerValues returns every value of a header as sent (duplicates kept, which req.headers drops). */
export function headerValues(req, name) {
  const lower = name.toLowerCase();
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) {
    const v = req.headers?.[lower];
    if (v === undefined) return [];
    return Array.isArray(v) ? v : [String(v)];
  }
  const out = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i].toLowerCase() === lower) out.push(raw[i + 1]);
  }
  return out;
}

function headerHasToken(req, name, token) {
  for (const v of headerValues(req, name)) {
    for (const part of v.split(",")) {
      if (part.trim().toLowerCase() === token) return true;
    }
  }
  return false;
}

/**
 * isWebSocketUpgrade reports an RFC 6455 opening handshake: a GET with
 * "Connection: upgrade" (among other tokens) and "Upgrade: websocket".
 * Only such requests may carry a credential in the URL: browsers cannot
 * set headers on WebSocket requests.
 */
export function isWebSocketUpgrade(req) {
  return req.method === "GET" && headerHasToken(req, "connection", "upgrade") && headerHasToken(req, "upgrade", "websocket");
}

function decodeComponent(s) {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return null; // malformed percent-encoding
  }
}

/**
 * splitQuery splits a raw query string into its pairs, keeping each
 * pair's raw text next to its decoded name and value (null when the
 * percent-encoding is malformed).
 */
export function splitQuery(rawQuery) {
  if (!rawQuery) return [];
  return rawQuery.split("&").map((raw) => {
    const eq = raw.indexOf("=");
    const k = eq < 0 ? raw : raw.slice(0, eq);
    const v = eq < 0 ? "" : raw.slice(eq + 1);
    return { raw, name: decodeComponent(k), value: decodeComponent(v) };
  });
}

/**
 * stripURL removes the credential parameters "token" and "key" from a
 * URL's query, however their names are percent-encoded. Other parameters
 * keep their raw text. It returns the new URL.
 */
function stripURL(url) {
  const q = url.indexOf("?");
  if (q < 0) return url;
  const hash = url.indexOf("#", q);
  const rawQuery = hash < 0 ? url.slice(q + 1) : url.slice(q + 1, hash);
  const kept = [];
  let changed = false;
  for (const p of splitQuery(rawQuery)) {
    // A name that cannot be decoded might be a disguised credential name:
    // drop it rather than risk logging a token.
    if (p.name === null || p.name === QUERY_TOKEN || p.name === QUERY_KEY) {
      changed = true;
      continue;
    }
    kept.push(p.raw);
  }
  if (!changed) return url;
  const rest = hash < 0 ? "" : url.slice(hash);
  return url.slice(0, q) + (kept.length ? "?" + kept.join("&") : "") + rest;
}

/**
 * extractCredential finds the one credential of a raw Node request
 * (http.IncomingMessage). The query parameters "token" and "key" are
 * removed from req.url (and req.originalUrl, and a parsed req.query) on
 * every request, upgrade or not, so loggers that run afterwards never see
 * them; they count as credentials on WebSocket upgrades only. Returns
 * {kind, value} or throws a CredentialError.
 *
 * @param {import('node:http').IncomingMessage} req
 * @param {object} [framework] the framework's request object (Express's
 *   req is the raw one; Fastify's wraps it), whose parsed query is cleaned too
 */
export function extractCredential(req, framework) {
  const upgrade = isWebSocketUpgrade(req);
  const { tokens: queryTokens, keys: queryKeys } = stripQueryCredentials(req, framework);
  const auth = headerValues(req, "authorization");
  const keys = headerValues(req, API_KEY_HEADER);
  let n = auth.length + keys.length;
  if (upgrade) n += queryTokens.length + queryKeys.length;
  if (n === 0) throw new CredentialError(REASON_NO_CREDENTIAL);
  if (n > 1) throw new CredentialError(REASON_TWO_CREDENTIALS);
  if (auth.length === 1) return parseBearer(auth[0]);
  if (keys.length === 1) return parseAPIKey(keys[0]);
  if (queryTokens.length === 1) return parseJWTSyntax(queryTokens[0] ?? "");
  return parseAPIKey(queryKeys[0] ?? "");
}

/**
 * stripQueryCredentials removes every "token" and "key" query parameter
 * from req.url (and req.originalUrl, and a query object the framework
 * parsed), however their names are percent-encoded, and returns their
 * values: {tokens, keys}.
 */
export function stripQueryCredentials(req, framework) {
  const url = typeof req.url === "string" ? req.url : "";
  const q = url.indexOf("?");
  if (q < 0) return { tokens: [], keys: [] };
  const hash = url.indexOf("#", q);
  const pairs = splitQuery(hash < 0 ? url.slice(q + 1) : url.slice(q + 1, hash));
  const tokens = pairs.filter((p) => p.name === QUERY_TOKEN).map((p) => p.value);
  const keys = pairs.filter((p) => p.name === QUERY_KEY).map((p) => p.value);
  const cleaned = stripURL(url);
  if (cleaned !== url) {
    req.url = cleaned;
    if (typeof req.originalUrl === "string") req.originalUrl = stripURL(req.originalUrl);
    for (const r of [req, framework]) cleanParsedQuery(r);
  }
  return { tokens, keys };
}

// cleanParsedQuery deletes the credential parameters from a query object a
// framework parsed before the middleware ran (Express 4, Fastify).
function cleanParsedQuery(r) {
  if (!r) return;
  let query;
  try {
    query = r.query;
  } catch {
    return;
  }
  if (!query || typeof query !== "object") return;
  try {
    delete query[QUERY_TOKEN];
    delete query[QUERY_KEY];
  } catch {
    // a frozen or computed query: the URL is cleaned, which is what loggers read
  }
}

/** parseBearer reads an Authorization header value. */
export function parseBearer(h) {
  if (typeof h !== "string" || !h.startsWith("Bearer ")) throw new CredentialError(REASON_NOT_BEARER);
  return parseJWTSyntax(h.slice("Bearer ".length));
}

function base64URLChar(c) {
  return (
    (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f
  );
}

/**
 * parseJWTSyntax accepts three non-empty base64url segments, nothing else
 * (no padding, no spaces), before any decoding is spent on it.
 */
export function parseJWTSyntax(tok) {
  if (typeof tok !== "string" || tok.length === 0 || tok.length > MAX_TOKEN_LEN) {
    throw new CredentialError(REASON_MALFORMED_TOKEN);
  }
  let dots = 0;
  let seg = 0;
  for (let i = 0; i < tok.length; i++) {
    const c = tok.charCodeAt(i);
    if (c === 0x2e) {
      if (seg === 0) throw new CredentialError(REASON_MALFORMED_TOKEN);
      dots++;
      seg = 0;
    } else if (base64URLChar(c)) {
      seg++;
    } else {
      throw new CredentialError(REASON_MALFORMED_TOKEN);
    }
  }
  if (dots !== 2 || seg === 0) throw new CredentialError(REASON_MALFORMED_TOKEN);
  return { kind: KIND_ACCESS_TOKEN, value: tok };
}

/** parseAPIKey checks a key's shape: the prefix and 43 base64url characters. */
export function parseAPIKey(k) {
  if (typeof k !== "string" || !k.startsWith(API_KEY_PREFIX) || k.length !== API_KEY_PREFIX.length + API_KEY_BODY_LEN) {
    throw new CredentialError(REASON_MALFORMED_API_KEY);
  }
  for (let i = API_KEY_PREFIX.length; i < k.length; i++) {
    if (!base64URLChar(k.charCodeAt(i))) throw new CredentialError(REASON_MALFORMED_API_KEY);
  }
  return { kind: KIND_API_KEY, value: k };
}
