// API keys, resolved as Gatehouse's Go rbac package does (rbac/apikeys.go):
// Gatehouse's introspection endpoint (RFC 7662) is asked with a
// confidential client's credentials; answers are cached per key by the
// key's SHA-256 (the key itself is not kept), refusals too; concurrent
// requests with the same uncached key share one introspection call; when
// Gatehouse cannot be asked, the request is answered 503 and nothing is
// cached.

import { createHash } from "node:crypto";
import { MAX_DOCUMENT_BYTES, readBounded } from "./http.js";
import { KIND_API_KEY } from "./credentials.js";
import { Principal } from "./principal.js";

/** DEFAULT_API_KEY_CACHE_TTL_MS is how long an answer about a key is reused. */
export const DEFAULT_API_KEY_CACHE_TTL_MS = 30_000;

const MAX_CACHED_KEYS = 10_000;
const INTROSPECTION_TIMEOUT_MS = 15_000;

export const REASON_API_KEY_INACTIVE = "the API key is unknown, disabled or expired";
export const REASON_API_KEY_NOT_KEY = "the X-API-Key header does not hold an API key";

/** Refused: the key was refused (401), with a reason safe to show. */
export class APIKeyRefused extends Error {
  constructor(reason) {
    super(reason);
    this.name = "APIKeyRefused";
    this.reason = reason;
  }
}

/** Unavailable: Gatehouse could not be asked (503). Its text names no key. */
export class Unavailable extends Error {
  constructor(message) {
    super(message);
    this.name = "Unavailable";
  }
}

// formEncode is application/x-www-form-urlencoded, as RFC 6749 §2.3.1
// asks for client credentials in HTTP Basic.
function formEncode(s) {
  return new URLSearchParams({ v: s }).toString().slice(2);
}

/**
 * introspector returns a function that asks Gatehouse about a key,
 * authenticating as a confidential client (client_secret_basic).
 */
export function introspector({ fetchFn, endpoint, clientId, clientSecret, now }) {
  const basic = "Basic " + Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString("base64");
  return async (key) => {
    const url = typeof endpoint === "function" ? await endpoint() : endpoint;
    let resp;
    try {
      resp = await fetchFn(url, {
        method: "POST",
        headers: {
          authorization: basic,
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
        },
        body: new URLSearchParams({ token: key, token_type_hint: "api_key" }).toString(),
        signal: AbortSignal.timeout(INTROSPECTION_TIMEOUT_MS),
      });
    } catch {
      throw new Unavailable("introspection: Gatehouse cannot be reached");
    }
    if (resp.status !== 200) {
      await resp.body?.cancel().catch(() => {});
      // 401 here means our client credentials are wrong: not the caller's fault.
      throw new Unavailable(`introspection answered ${resp.status}`);
    }
    let answer;
    try {
      answer = JSON.parse(await readBounded(resp, MAX_DOCUMENT_BYTES));
    } catch {
      throw new Unavailable("introspection: malformed answer");
    }
    if (!answer || typeof answer !== "object" || answer.active !== true) throw new APIKeyRefused(REASON_API_KEY_INACTIVE);
    if (answer.token_type !== KIND_API_KEY) throw new APIKeyRefused(REASON_API_KEY_NOT_KEY);
    const exp = typeof answer.exp === "number" && answer.exp > 0 ? new Date(answer.exp * 1000) : null;
    if (exp && exp.getTime() <= now()) throw new APIKeyRefused(REASON_API_KEY_INACTIVE);
    return new Principal({
      kind: KIND_API_KEY,
      subject: str(answer.sub),
      orgId: str(answer.org_id),
      roles: strings(answer.roles),
      permissions: strings(answer.permissions),
      tokenId: str(answer.jti),
      clientId: str(answer.client_id),
      scope: str(answer.scope),
      name: str(answer.username),
      expiresAt: exp,
    });
  };
}

function str(v) {
  return typeof v === "string" ? v : "";
}

function strings(v) {
  return Array.isArray(v) ? v.filter((x) => typeof x === "string") : [];
}

/** APIKeyCache answers "whose key is this?" from a short-lived cache, else from resolve. */
export class APIKeyCache {
  /**
   * @param {object} o
   * @param {(key: string) => Promise<Principal>} o.resolve throws APIKeyRefused or anything else (503)
   * @param {number} o.ttlMs
   * @param {number} o.negativeTtlMs
   * @param {() => number} o.now
   */
  constructor({ resolve, ttlMs, negativeTtlMs, now }) {
    this.resolveFn = resolve;
    this.ttlMs = ttlMs;
    this.negativeTtlMs = negativeTtlMs;
    this.now = now;
    this.entries = new Map(); // sha256 hex -> {principal, refusal, expires}
    this.inflight = new Map(); // sha256 hex -> Promise
  }

  /** resolve returns the key's principal, or throws APIKeyRefused or Unavailable. */
  async resolve(key) {
    const h = createHash("sha256").update(key).digest("hex");
    const e = this.entries.get(h);
    if (e && this.now() < e.expires) {
      if (e.refusal) throw e.refusal;
      return e.principal;
    }
    let call = this.inflight.get(h);
    if (!call) {
      call = this.ask(h, key);
      this.inflight.set(h, call);
    }
    const r = await call;
    if (r.err) throw r.err;
    return r.principal;
  }

  async ask(h, key) {
    await null; // resolve registers the call before the question is asked
    let principal = null;
    let err = null;
    try {
      principal = await this.resolveFn(key);
    } catch (e) {
      err = e instanceof APIKeyRefused || e instanceof Unavailable ? e : new Unavailable("API key resolution failed");
    }
    this.inflight.delete(h);
    if (!(err instanceof Unavailable)) {
      const now = this.now();
      let expires = now + (err ? this.negativeTtlMs : this.ttlMs);
      if (principal?.expiresAt && principal.expiresAt.getTime() < expires) expires = principal.expiresAt.getTime();
      if (this.entries.size >= MAX_CACHED_KEYS) this.prune(now);
      this.entries.set(h, { principal, refusal: err, expires });
    }
    return { principal, err };
  }

  // prune drops expired entries, and everything if that is not enough.
  prune(now) {
    for (const [h, e] of this.entries) if (now >= e.expires) this.entries.delete(h);
    if (this.entries.size >= MAX_CACHED_KEYS) this.entries.clear();
  }
}
