// @gatehouse/node: Express and Fastify middleware that trusts Gatehouse the
// way Gatehouse's Go rbac package does. Access tokens are verified locally
// with jose against the issuer's JWKS (discovered, cached, refetched on an
// unknown kid within a bound); API keys are asked about at Gatehouse's
// introspection endpoint; permissions, roles, scopes and the organization
// a request names are enforced with the same rules and the same answers.
// The middleware logs nothing by itself.

import { decodeProtectedHeader, jwtVerify } from "jose";

import {
  CredentialError,
  KIND_ACCESS_TOKEN,
  KIND_API_KEY,
  REASON_NO_CREDENTIAL,
  extractCredential,
  isWebSocketUpgrade,
  parseJWTSyntax,
  splitQuery,
  stripQueryCredentials,
} from "./credentials.js";
import { REASON_WEBHOOK_NONE, parseWebhookOptions, webhookSecretIndex } from "./webhook.js";
import { KeyCache, DEFAULT_REFETCH_INTERVAL_MS, maxAgeMs, parseSet } from "./keys.js";
import {
  APIKeyCache,
  APIKeyRefused,
  DEFAULT_API_KEY_CACHE_TTL_MS,
  REASON_API_KEY_INACTIVE,
  Unavailable,
  introspector,
} from "./apikeys.js";
import { getJSON } from "./http.js";
import {
  REASON_MEMBERSHIP_INACTIVE,
  REASON_MISSING_PERMISSION,
  REASON_MISSING_ROLE,
  REASON_MISSING_SCOPE,
  REASON_NO_ACTIVE_ORGANIZATION,
  REASON_OTHER_ORGANIZATION,
  RefusalError,
  SENTENCE_NO_ACTIVE_ORGANIZATION,
  SENTENCE_OTHER_ORGANIZATION,
  checkOutcome,
  forbiddenRefusal,
  invalidTokenRefusal,
  noCredentialRefusal,
  rejectUpgrade,
  unavailableRefusal,
  writeRefusal,
} from "./answers.js";
import { Principal } from "./principal.js";
import { MAX_LEN, validateGrant, validatePermission, validateRoleName } from "./permission.js";

export * from "./permission.js";
export {
  API_KEY_HEADER,
  API_KEY_PREFIX,
  KIND_ACCESS_TOKEN,
  KIND_API_KEY,
  MAX_TOKEN_LEN,
  QUERY_KEY,
  QUERY_TOKEN,
  isWebSocketUpgrade,
} from "./credentials.js";
export {
  DEFAULT_KEYS_MAX_AGE_MS,
  DEFAULT_REFETCH_INTERVAL_MS,
  MAX_KEYS_MAX_AGE_MS,
  MIN_KEYS_MAX_AGE_MS,
} from "./keys.js";
export { DEFAULT_API_KEY_CACHE_TTL_MS } from "./apikeys.js";
export {
  REASON_MEMBERSHIP_INACTIVE,
  REASON_MISSING_PERMISSION,
  REASON_MISSING_ROLE,
  REASON_MISSING_SCOPE,
  REASON_NO_ACTIVE_ORGANIZATION,
  REASON_OTHER_ORGANIZATION,
  RETRY_AFTER_SECONDS,
  Refusal,
  RefusalError,
  forbid,
  membershipInactive,
  refuse,
  rejectUpgrade,
  unavailable,
  writeRefusal,
} from "./answers.js";
export { Principal } from "./principal.js";
export {
  KIND_WEBHOOK,
  MIN_WEBHOOK_SECRET_LEN,
  WEBHOOK_SUBJECT_PREFIX,
} from "./webhook.js";

/** KIND_INSECURE_DEV is the default kind of options.insecureDevPrincipal. */
export const KIND_INSECURE_DEV = "insecure_dev";

/** DEV_WARN_INTERVAL_MS is how often the insecure development principal's warning repeats. */
export const DEV_WARN_INTERVAL_MS = 60_000;

/** Defaults and bounds of the options. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;
export const MAX_CLOCK_SKEW_SECONDS = 300;
export const DEFAULT_ORG_PARAM = "org_id";
export const DEFAULT_ALGORITHMS = Object.freeze(["RS256", "ES256", "EdDSA"]);
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;

// Asymmetric JWS algorithms: the only ones that may be configured. "none"
// and HMAC (HS*) never are, so a token cannot pick a shared secret.
const ASYMMETRIC = new Set(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]);

// Token refusals, built once; their text is what the caller reads (the
// same as Go's rbac).
const R = {
  malformed: invalidTokenRefusal("the access token is malformed"),
  alg: invalidTokenRefusal("the access token's signing algorithm is not accepted"),
  type: invalidTokenRefusal("not an access token (typ must be at+jwt)"),
  key: invalidTokenRefusal("the access token is signed with an unknown key"),
  signature: invalidTokenRefusal("the access token's signature is invalid"),
  issuer: invalidTokenRefusal("the access token is from another issuer"),
  audience: invalidTokenRefusal("the access token is for another audience"),
  expired: invalidTokenRefusal("the access token has expired"),
  notYet: invalidTokenRefusal("the access token is not valid yet"),
  noExpiry: invalidTokenRefusal("the access token has no expiry"),
  keysUnavailable: unavailableRefusal("the issuer's keys cannot be fetched right now; try again shortly"),
  keysNotYet: unavailableRefusal("the issuer's keys are not loaded yet; try again shortly"),
  apiKeysOff: invalidTokenRefusal("API keys are not accepted here"),
  apiKeyUnavailable: unavailableRefusal("the credential cannot be checked right now; try again shortly"),
  checkRefused: invalidTokenRefusal("the credential was refused"),
  noCredential: noCredentialRefusal(REASON_NO_CREDENTIAL),
};

const NOT_READY = unavailableRefusal("the issuer's keys are not loaded yet");

const credentialRefusals = new Map();
function credentialRefusal(reason) {
  let r = credentialRefusals.get(reason);
  if (!r) {
    r = reason === REASON_NO_CREDENTIAL || reason === REASON_WEBHOOK_NONE ? noCredentialRefusal(reason) : invalidTokenRefusal(reason);
    credentialRefusals.set(reason, r);
  }
  return r;
}

// AMBIGUOUS stands for a request naming its organization in two places
// that disagree, or twice: it matches no token.
const AMBIGUOUS = Symbol("ambiguous organization");

// The principal of every request any Gatehouse middleware authenticated,
// by raw request (for principalOf).
const principals = new WeakMap();

/**
 * principalOf returns the principal the middleware authenticated for a
 * request (Express's req, Fastify's request, or a raw Node request), or
 * null.
 */
export function principalOf(req) {
  if (!req) return null;
  return principals.get(req.raw ?? req) ?? principals.get(req) ?? null;
}

// Rules: one authorization requirement with its prepared refusals, built
// once at route set-up. perOrg: the requirement is about what the
// credential may do in its organization (permissions, roles), so an
// access token acting in none is told to get one.
class Rule {
  constructor(kind, allow, perOrg, fields, reason, sentence, sentenceNoScopes) {
    this.kind = kind;
    this.allow = allow;
    this.perOrg = perOrg;
    this.fields = Object.freeze(fields);
    this.missing = reason ? forbiddenRefusal(reason, sentence, fields) : null;
    // The same, for credentials that carry no scopes (API keys).
    this.missingNoScopes = reason && sentenceNoScopes ? forbiddenRefusal(reason, sentenceNoScopes, fields) : this.missing;
    this.otherOrg = forbiddenRefusal(REASON_OTHER_ORGANIZATION, SENTENCE_OTHER_ORGANIZATION, fields);
    this.noOrg = forbiddenRefusal(REASON_NO_ACTIVE_ORGANIZATION, SENTENCE_NO_ACTIVE_ORGANIZATION, fields);
    this.checked = new Map(); // reason + description -> refusal of the check hook's forbid()
    Object.freeze(this);
  }

  // forbidden is the 403 of the check hook's forbid(): its reason and
  // sentence with this rule's required fields.
  forbidden(reason, description) {
    const k = `${reason}\u0000${description}`;
    let r = this.checked.get(k);
    if (!r) {
      r = forbiddenRefusal(reason, description, this.fields);
      if (this.checked.size < 64) this.checked.set(k, r);
    }
    return r;
  }
}

function splitPermission(perm) {
  const i = perm.indexOf(":");
  return [perm.slice(0, i), perm.slice(i + 1)];
}

/** anyCredentialRule is the rule of authenticate(): any valid credential; the organization check still applies. */
export function anyCredentialRule() {
  return ANY_CREDENTIAL;
}
const ANY_CREDENTIAL = new Rule("any", () => true, false, {}, null, "");

/**
 * permissionRule is the rule of requirePermission: a grant of the principal
 * covers resource:action. permissionRule("kb:read") is the same. It
 * throws on a malformed permission: that is a programming error.
 */
export function permissionRule(resource, action) {
  const perm = action === undefined ? String(resource) : `${resource}:${action}`;
  const err = validatePermission(perm);
  if (err) throw new TypeError("requirePermission: " + err.message);
  const [res, act] = splitPermission(perm);
  return new Rule("permission", (p) => p.can(res, act), true, { required: perm }, REASON_MISSING_PERMISSION,
    `the credential's permissions do not grant ${perm}`);
}

/** anyPermissionRule is the rule of requireAnyPermission: a grant covers one of perms. It throws on none or a malformed one. */
export function anyPermissionRule(...perms) {
  if (perms.length === 0) throw new TypeError("requireAnyPermission: no permission given");
  const parsed = perms.map((perm) => {
    const err = validatePermission(perm);
    if (err) throw new TypeError("requireAnyPermission: " + err.message);
    return splitPermission(perm);
  });
  return new Rule("any_permission", (p) => parsed.some(([r, a]) => p.can(r, a)), true, { required_any: [...perms] },
    REASON_MISSING_PERMISSION, `the credential's permissions grant none of ${perms.join(", ")}`);
}

/**
 * roleRule is the rule of requireRole: the principal holds one of roles in
 * its organization. It throws on none or a malformed one. Prefer
 * permissions: roles are per organization and may be renamed.
 */
export function roleRule(...roles) {
  if (roles.length === 0) throw new TypeError("requireRole: no role given");
  for (const r of roles) {
    const err = validateRoleName(r);
    if (err) throw new TypeError("requireRole: " + err.message);
  }
  const sentence = roles.length === 1
    ? `the credential does not hold the role ${roles[0]}`
    : `the credential holds none of the roles ${roles.join(", ")}`;
  return new Rule("role", (p) => roles.some((r) => p.hasRole(r)), true, { required_role: [...roles] }, REASON_MISSING_ROLE, sentence);
}

/**
 * scopeRule is the rule of requireScope: every one of scopes is among the
 * access token's granted scopes (its "scope" claim). API keys carry no
 * scopes and never pass. It throws on none or one that is not a scope
 * token (RFC 6749 §3.3: printable ASCII without space, '"' or '\\').
 */
export function scopeRule(...scopes) {
  if (scopes.length === 0) throw new TypeError("requireScope: no scope given");
  for (const s of scopes) {
    if (typeof s !== "string" || s.length > MAX_LEN || !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s)) {
      throw new TypeError(`requireScope: scope ${JSON.stringify(s)} is not a scope token (printable ASCII without space, '"' or '\\')`);
    }
  }
  const list = scopes.join(" ");
  const many = scopes.length > 1;
  return new Rule("scope", (p) => p.hasScopes(...scopes), false, { required_scope: [...scopes] }, REASON_MISSING_SCOPE,
    many ? `the token was not granted every one of the scopes ${list}` : `the token was not granted the scope ${list}`,
    `API keys and webhooks carry no scopes; this route takes an access token granted the scope${many ? "s" : ""} ${list}`);
}

function ruleOf(x) {
  if (x === undefined || x === null) return ANY_CREDENTIAL;
  if (x instanceof Rule) return x;
  if (typeof x === "function" && x.rule instanceof Rule) return x.rule;
  throw new TypeError("expected a rule (permissionRule, ...) or a middleware of this package");
}

function toMs(t) {
  return t instanceof Date ? t.getTime() : Number(t);
}

function isFastify(res) {
  return !!res && typeof res.code === "function" && typeof res.send === "function" && typeof res.raw === "object";
}

function nonEmptyString(v) {
  return typeof v === "string" && v !== "";
}

/**
 * Gatehouse verifies Gatehouse credentials and enforces permissions. Build
 * one per issuer and audience at start (createGatehouse); it is safe to
 * share between routes and requests.
 */
export class Gatehouse {
  /** @param {import('./index.js').GatehouseOptions} opts */
  constructor(opts = {}) {
    if (!nonEmptyString(opts.issuer)) throw new TypeError("gatehouse: options.issuer is required (GATEHOUSE_ISSUER)");
    if (!nonEmptyString(opts.audience)) {
      throw new TypeError("gatehouse: options.audience is required: the aud Gatehouse mints for this backend's clients");
    }
    const skew = opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
    if (!Number.isFinite(skew) || skew < 0 || skew > MAX_CLOCK_SKEW_SECONDS) {
      throw new RangeError(`gatehouse: options.clockSkewSeconds must be between 0 and ${MAX_CLOCK_SKEW_SECONDS}`);
    }
    const algs = opts.algorithms ?? DEFAULT_ALGORITHMS;
    if (!Array.isArray(algs) || algs.length === 0) throw new TypeError("gatehouse: options.algorithms must be a non-empty array");
    for (const a of algs) {
      if (!ASYMMETRIC.has(a)) {
        throw new TypeError(`gatehouse: algorithm ${JSON.stringify(a)} is not accepted (asymmetric JWS algorithms only)`);
      }
    }
    const refetch = opts.refetchIntervalMs ?? DEFAULT_REFETCH_INTERVAL_MS;
    if (!Number.isFinite(refetch) || refetch <= 0) throw new RangeError("gatehouse: options.refetchIntervalMs must be positive");
    const orgParam = opts.orgParam ?? DEFAULT_ORG_PARAM;
    if (!nonEmptyString(orgParam)) throw new TypeError("gatehouse: options.orgParam must be a non-empty string");
    const dev = opts.insecureDevPrincipal ? devPrincipal(opts) : null;
    for (const f of ["fetch", "now", "orgCheck", "check", "errorWriter", "onRefusal"]) {
      if (opts[f] !== undefined && typeof opts[f] !== "function") throw new TypeError(`gatehouse: options.${f} must be a function`);
    }
    const backoff = { minMs: 1000, maxMs: 60_000, ...(opts.startupBackoff ?? {}) };
    if (!(backoff.minMs > 0 && backoff.maxMs >= backoff.minMs)) {
      throw new RangeError("gatehouse: options.startupBackoff needs 0 < minMs <= maxMs");
    }

    this.issuer = opts.issuer;
    this.audience = opts.audience;
    this.algorithms = Object.freeze([...algs]);
    this.algSet = new Set(algs);
    this.skew = skew;
    this.orgParam = orgParam;
    this.orgCheck = opts.orgCheck ?? null;
    this.check = opts.check ?? null;
    this.errorWriter = opts.errorWriter ?? null;
    this.onRefusal = opts.onRefusal ?? null;
    this.fetch = opts.fetch ?? ((...a) => globalThis.fetch(...a));
    this.now = opts.now ? () => toMs(opts.now()) : Date.now;
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
    this.jwksUri = opts.jwksUri ?? null;
    this.backoff = backoff;
    this.authenticated = new WeakMap(); // raw request -> principal, for this instance
    this.discovery = null;
    this.discovering = null;
    this.startError = null;
    this.closed = false;
    this.timer = null;

    this.keys = new KeyCache({
      minRefetchMs: refetch,
      now: this.now,
      fetchKeys: async () => {
        const uri = this.jwksUri ?? (await this.discover()).jwks_uri;
        const { json, headers } = await getJSON(this.fetch, uri, this.fetchTimeoutMs);
        return { keys: parseSet(json), maxAgeMs: maxAgeMs(headers.get("cache-control")) };
      },
    });

    this.apiKeys = null;
    const ak = opts.apiKeys;
    if (ak) {
      let resolve = ak.resolve;
      if (resolve !== undefined && typeof resolve !== "function") throw new TypeError("gatehouse: apiKeys.resolve must be a function");
      if (!resolve) {
        if (!nonEmptyString(ak.clientId) || !nonEmptyString(ak.clientSecret)) {
          throw new TypeError("gatehouse: apiKeys.clientId and apiKeys.clientSecret of a confidential client are required for introspection");
        }
        const endpoint = ak.introspectionUrl ?? (async () => {
          const d = await this.discover();
          if (!nonEmptyString(d.introspection_endpoint)) {
            throw new Unavailable("discovery names no introspection_endpoint (set apiKeys.introspectionUrl)");
          }
          return d.introspection_endpoint;
        });
        const ask = introspector({ fetchFn: this.fetch, endpoint, clientId: ak.clientId, clientSecret: ak.clientSecret, now: this.now });
        resolve = async (key) => {
          try {
            return await ask(key);
          } catch (err) {
            if (err instanceof APIKeyRefused) throw err;
            throw err instanceof Unavailable ? err : new Unavailable("Gatehouse cannot be asked about the key");
          }
        };
      } else {
        const custom = resolve;
        resolve = async (key) => {
          let p;
          try {
            p = await custom(key);
          } catch (err) {
            // refuse(reason) refuses the key (401); anything else is 503.
            const out = checkOutcome(err);
            if (out?.status === 401) throw new APIKeyRefused(out.description);
            throw new Unavailable("apiKeys.resolve failed");
          }
          if (p === null || p === undefined) throw new APIKeyRefused(REASON_API_KEY_INACTIVE);
          if (!(p instanceof Principal)) throw new Unavailable("apiKeys.resolve returned no Principal");
          return p;
        };
      }
      const ttl = ak.cacheTtlMs ?? DEFAULT_API_KEY_CACHE_TTL_MS;
      this.apiKeys = new APIKeyCache({ resolve, ttlMs: ttl, negativeTtlMs: ak.negativeCacheTtlMs ?? ttl, now: this.now });
    }

    this.readyPromise = new Promise((resolve) => {
      this.markReady = resolve;
    });
    this.dev = dev;
    if (dev) {
      // Nothing is fetched: every request acts as the development principal.
      this.markReady();
      this.warnInsecure(opts.logger ?? defaultLogger());
      return;
    }
    this.startLoading();
  }

  // warnInsecure says, now and every minute until close(), that every
  // request acts as the development principal.
  warnInsecure(logger) {
    const warn = () =>
      logger.warn(
        "gatehouse: INSECURE: insecureDevPrincipal is set: every request acts as this principal without any credential; never run this in production",
        { subject: this.dev.subject, org_id: this.dev.orgId, permissions: [...this.dev.permissions] },
      );
    warn();
    this.devTimer = setInterval(warn, DEV_WARN_INTERVAL_MS);
    this.devTimer.unref?.();
  }

  // startLoading fetches discovery and the keys in the background, retrying
  // with backoff until they are loaded: a backend may start before Gatehouse.
  startLoading() {
    let delay = this.backoff.minMs;
    const attempt = async () => {
      this.timer = null;
      if (this.closed) return;
      try {
        await this.keys.load();
        this.startError = null;
        this.markReady();
      } catch (err) {
        this.startError = err?.message ?? String(err);
        if (this.closed) return;
        // Jittered, so that replicas started together do not ask together.
        this.timer = setTimeout(attempt, delay / 2 + Math.random() * (delay / 2));
        this.timer.unref?.();
        delay = Math.min(delay * 2, this.backoff.maxMs);
      }
    };
    attempt();
  }

  /** discover reads the issuer's discovery document once; its issuer must equal options.issuer exactly. */
  async discover() {
    if (this.discovery) return this.discovery;
    this.discovering ??= (async () => {
      try {
        const u = this.issuer.replace(/\/$/, "") + "/.well-known/openid-configuration";
        const { json: d } = await getJSON(this.fetch, u, this.fetchTimeoutMs);
        if (!d || typeof d !== "object") throw new Error(`discovery: ${u} is not a discovery document`);
        if (d.issuer !== this.issuer) throw new Error(`discovery: issuer is ${JSON.stringify(d.issuer)}, not ${JSON.stringify(this.issuer)}`);
        if (!nonEmptyString(d.jwks_uri)) throw new Error("discovery: no jwks_uri");
        this.discovery = Object.freeze({ ...d });
        return this.discovery;
      } finally {
        this.discovering = null;
      }
    })();
    return this.discovering;
  }

  /** isReady reports whether the issuer's keys are loaded (tokens can be verified). */
  isReady() {
    return this.dev !== null || this.keys.loaded;
  }

  /**
   * readiness says whether the keys are loaded and, if not, why the last
   * attempt failed (a URL and a status; never a credential).
   */
  readiness() {
    const ready = this.isReady();
    return { ready, error: ready ? null : this.startError };
  }

  /**
   * ready resolves once the keys are loaded; with timeoutMs, it rejects
   * after that long.
   */
  ready({ timeoutMs } = {}) {
    if (this.isReady()) return Promise.resolve();
    if (timeoutMs === undefined) return this.readyPromise;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`gatehouse: keys not loaded after ${timeoutMs} ms: ${this.startError ?? "still fetching"}`)), timeoutMs);
      t.unref?.();
      this.readyPromise.then(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /**
   * readinessHandler returns an Express or Fastify handler for a readiness
   * probe, answering at once: 200 {"status":"ready"} once the keys are
   * loaded, else 503 {"error":"temporarily_unavailable",...} with
   * Retry-After (as Go's ReadyHandler). It says nothing about why.
   */
  readinessHandler() {
    return (req, res) => {
      if (!this.isReady()) return writeRefusal(res, NOT_READY);
      const headers = { "Content-Type": "application/json", "Cache-Control": "no-store" };
      const body = '{"status":"ready"}';
      if (isFastify(res)) return res.code(200).headers(headers).send(Buffer.from(body));
      res.statusCode = 200;
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
      res.end(body);
    };
  }

  /** close stops the background start-up retries and the development principal's warnings. */
  close() {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.devTimer) clearInterval(this.devTimer);
    this.timer = null;
    this.devTimer = null;
  }

  /**
   * verify checks a Gatehouse access token locally and returns its
   * principal: a compact JWS signed by a key of the issuer with an accepted
   * algorithm (the key's own), typ at+jwt, iss, aud, exp (required), nbf
   * and iat with the configured skew. It throws a RefusalError (401, or 503
   * when the keys cannot be fetched) whose text never holds the token.
   */
  async verify(token) {
    try {
      parseJWTSyntax(token);
    } catch {
      throw new RefusalError(R.malformed);
    }
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new RefusalError(R.malformed);
    }
    if (typeof header.alg !== "string" || !this.algSet.has(header.alg)) throw new RefusalError(R.alg);
    const typ = typeof header.typ === "string" ? header.typ.toLowerCase() : "";
    if (typ !== "at+jwt" && typ !== "application/at+jwt") throw new RefusalError(R.type);
    if (!nonEmptyString(header.kid)) throw new RefusalError(R.key);
    if (!this.keys.loaded) throw new RefusalError(R.keysNotYet);
    let resolver;
    try {
      resolver = await this.keys.resolver(header.kid);
    } catch (err) {
      throw new RefusalError(err?.code === "unavailable" ? R.keysUnavailable : R.key);
    }
    const nowMs = this.now();
    let payload;
    try {
      ({ payload } = await jwtVerify(token, resolver, {
        algorithms: this.algorithms,
        typ: "at+jwt",
        issuer: this.issuer,
        audience: this.audience,
        requiredClaims: ["exp"],
        clockTolerance: this.skew,
        currentDate: new Date(nowMs),
      }));
    } catch (err) {
      throw new RefusalError(joseRefusal(err));
    }
    if (typeof payload.iat === "number" && Math.floor(nowMs / 1000) + this.skew < payload.iat) throw new RefusalError(R.notYet);
    const p = principalFromClaims(payload);
    if (!p) throw new RefusalError(R.malformed);
    return p;
  }

  /**
   * authenticateRequest finds the request's one credential, checks it and
   * returns its principal; it throws a RefusalError (401 or 503). req is a
   * raw Node request, Express's req or Fastify's request. It removes the
   * token and key query parameters from the URL (see the README).
   */
  async authenticateRequest(req) {
    const raw = req.raw ?? req;
    const known = this.authenticated.get(raw);
    if (known) return known;
    const p = await this.authenticateRaw(raw, req === raw ? undefined : req);
    this.remember(raw, req, p);
    return p;
  }

  remember(raw, req, p) {
    this.authenticated.set(raw, p);
    principals.set(raw, p);
    try {
      req.principal = p;
      if (req !== raw) raw.principal = p;
    } catch {
      // a sealed request object: principalOf still answers
    }
  }

  async authenticateRaw(raw, framework) {
    if (this.dev) {
      stripQueryCredentials(raw, framework); // nothing is read, nothing is logged either
      return this.dev;
    }
    let cred;
    try {
      cred = extractCredential(raw, framework);
    } catch (err) {
      if (err instanceof CredentialError) throw new RefusalError(credentialRefusal(err.reason));
      throw err;
    }
    let p;
    if (cred.kind === KIND_API_KEY) {
      if (!this.apiKeys) throw new RefusalError(R.apiKeysOff);
      try {
        p = await this.apiKeys.resolve(cred.value);
      } catch (err) {
        if (err instanceof APIKeyRefused) throw new RefusalError(credentialRefusal(err.reason));
        throw new RefusalError(R.apiKeyUnavailable);
      }
    } else {
      p = await this.verify(cred.value);
    }
    if (this.check) {
      try {
        await this.check(p, framework ?? raw);
      } catch (err) {
        const out = checkOutcome(err);
        if (out && out.status === 403) {
          const e = new RefusalError(forbiddenRefusal(out.reason, out.description));
          e.forbidden = out;
          throw e;
        }
        throw new RefusalError(out ?? R.checkRefused);
      }
    }
    return p;
  }

  // requestedOrg is the organization a request names: the path parameter,
  // else the query parameter; AMBIGUOUS when they disagree or the query
  // names it twice (or in a form the framework parses into a non-string).
  requestedOrg(raw, framework, pathOrg) {
    const url = typeof raw.url === "string" ? raw.url : "";
    const qi = url.indexOf("?");
    let q = "";
    if (qi >= 0) {
      const hash = url.indexOf("#", qi);
      const pairs = splitQuery(hash < 0 ? url.slice(qi + 1) : url.slice(qi + 1, hash));
      const name = this.orgParam;
      const vals = [];
      for (const p of pairs) {
        if (p.name === null) return AMBIGUOUS;
        if (p.name === name) {
          if (p.value === null) return AMBIGUOUS;
          vals.push(p.value);
        } else if (p.name.startsWith(name + "[") || p.name.startsWith(name + ".")) {
          return AMBIGUOUS; // org_id[]=… or org_id.x=…: an array or object to extended query parsers
        }
      }
      if (vals.length > 1) return AMBIGUOUS;
      if (vals.length === 1) q = vals[0];
    }
    // What the framework parsed must agree: a handler reads that.
    let parsed;
    try {
      parsed = framework?.query?.[this.orgParam];
    } catch {
      parsed = undefined;
    }
    if (parsed !== undefined && (typeof parsed !== "string" || parsed !== q)) return AMBIGUOUS;
    const path = typeof pathOrg === "string" ? pathOrg : "";
    if (path === "") return q;
    if (q !== "" && q !== path) return AMBIGUOUS;
    return path;
  }

  // decide applies the organization check and the rule, as Go's rbac does.
  decide(p, org, rule) {
    // Only an access token can be refreshed into one acting in an
    // organization: other credentials are told what is missing.
    const noOrg = p.orgId === "" && p.kind === KIND_ACCESS_TOKEN;
    let orgOK;
    if (org === AMBIGUOUS) orgOK = false; // never handed to orgCheck: it matches no organization
    else if (this.orgCheck) orgOK = !!this.orgCheck(p, org);
    else orgOK = org === "" || org === p.orgId;
    if (!orgOK) return noOrg ? rule.noOrg : rule.otherOrg;
    if (rule.allow(p)) return null;
    if (rule.perOrg && noOrg) return rule.noOrg;
    if (!p.scopable()) return rule.missingNoScopes;
    return rule.missing;
  }

  /**
   * enforce authenticates the request (unless done already for it) and
   * applies the organization check and the rule. It resolves to null when
   * the request may proceed, else to the Refusal to answer with (which it
   * does not write). pathOrg is the router's value of the path parameter
   * options.orgParam. For routers this package has no adapter for.
   */
  async enforce(req, rule, { pathOrg } = {}) {
    const r = ruleOf(rule);
    const raw = req.raw ?? req;
    let p = this.authenticated.get(raw);
    if (!p) {
      try {
        p = await this.authenticateRaw(raw, req === raw ? undefined : req);
      } catch (err) {
        if (!(err instanceof RefusalError)) throw err;
        if (err.forbidden) return r.forbidden(err.forbidden.reason, err.forbidden.description);
        return err.refusal;
      }
      this.remember(raw, req, p);
    }
    return this.decide(p, this.requestedOrg(raw, req, pathOrg), r);
  }

  // middleware builds an Express/Fastify middleware for a rule.
  middleware(rule) {
    const self = this;
    const orgParam = this.orgParam;
    const mw = function gatehouse(req, res, next) {
      const pathOrg = req.params && typeof req.params === "object" ? req.params[orgParam] : undefined;
      self.enforce(req, rule, { pathOrg }).then(
        (refusal) => {
          if (!refusal) {
            next();
            return;
          }
          self.answer(refusal, req, res).catch((err) => next(err));
        },
        (err) => next(err),
      );
    };
    mw.rule = rule;
    return mw;
  }

  // answer tells onRefusal and writes the refusal.
  async answer(refusal, req, res) {
    this.notify(refusal, req);
    if (this.errorWriter) return this.errorWriter(refusal, req, res);
    writeRefusal(res, refusal);
  }

  notify(refusal, req) {
    if (!this.onRefusal) return;
    try {
      const out = this.onRefusal(refusal, req, principalOf(req));
      if (out && typeof out.catch === "function") out.catch(() => {});
    } catch {
      // a failing callback must not change the answer
    }
  }

  /**
   * webhook returns the authenticator of one webhook sender, whose secret
   * the sender presents on every delivery ("Authorization: Bearer
   * <secret>", or options.header). Its authenticate() middleware puts the
   * sender's principal (kind "webhook", subject "webhook:<name>", the
   * permissions given) on the request; requirePermission after it checks
   * them. Refusals go through errorWriter and onRefusal like any other.
   * It throws on a malformed name, permission or header, and on no, a
   * short, a malformed or a repeated secret.
   *
   * @param {{name: string, secrets: string[], permissions?: string[], orgId?: string, header?: string}} options
   */
  webhook(options) {
    const hook = parseWebhookOptions(options, (p) => new Principal(p));
    const self = this;
    const authenticateRequest = (req) => {
      const raw = req.raw ?? req;
      let i;
      try {
        i = webhookSecretIndex(raw, req === raw ? undefined : req, hook);
      } catch (err) {
        if (err instanceof CredentialError) throw new RefusalError(credentialRefusal(err.reason));
        throw err;
      }
      const p = hook.principals[i];
      self.remember(raw, req, p); // replaces any other principal
      return p;
    };
    return Object.freeze({
      name: hook.name,
      /** authenticateRequest returns the sender's principal or throws a RefusalError (401). */
      authenticateRequest,
      /** authenticate returns the Express/Fastify middleware of the webhook. */
      authenticate() {
        return function gatehouseWebhook(req, res, next) {
          try {
            authenticateRequest(req);
          } catch (err) {
            if (!(err instanceof RefusalError)) return next(err);
            self.answer(err.refusal, req, res).catch((e) => next(e));
            return;
          }
          next();
        };
      },
    });
  }

  /**
   * authenticate returns Express/Fastify middleware that requires a valid
   * credential and sets req.principal (principalOf(req)). A request naming
   * an organization (options.orgParam, path or query) must name the
   * credential's.
   */
  authenticate() {
    return this.middleware(ANY_CREDENTIAL);
  }

  /**
   * requirePermission returns middleware that authenticates the request
   * (unless done already) and requires resource:action, which a grant of
   * the principal must cover ("kb:*" covers "kb:read"). It throws on a
   * malformed permission.
   */
  requirePermission(resource, action) {
    return this.middleware(permissionRule(resource, action));
  }

  /** requireAnyPermission is requirePermission for "one of these" ("kb:delete", "kb:admin"). */
  requireAnyPermission(...perms) {
    return this.middleware(anyPermissionRule(...perms));
  }

  /** requireRole requires one of the roles in the principal's organization. */
  requireRole(...roles) {
    return this.middleware(roleRule(...roles));
  }

  /** requireScope requires every one of the scopes among the credential's granted scopes. */
  requireScope(...scopes) {
    return this.middleware(scopeRule(...scopes));
  }

  /**
   * authenticateUpgrade checks a WebSocket upgrade request (the "upgrade"
   * event of a Node server): the credential may be ?token= (an access
   * token) or ?key= (an API key), exactly one. It resolves to {ok: true,
   * principal} or {ok: false, refusal}; write a refusal with
   * rejectUpgrade(socket, refusal). rule is a rule or a middleware of this
   * package (default: any credential).
   */
  async authenticateUpgrade(req, rule, { pathOrg } = {}) {
    const refusal = await this.enforce(req, rule, { pathOrg });
    if (refusal) {
      this.notify(refusal, req);
      return { ok: false, refusal };
    }
    return { ok: true, principal: principalOf(req) };
  }

  /**
   * verifyClient returns a verifyClient function for the ws package's
   * WebSocketServer: the upgrade is accepted only with a credential the
   * rule allows; the principal is principalOf(req) in the "connection"
   * handler.
   */
  verifyClient(rule) {
    const r = ruleOf(rule);
    return (info, cb) => {
      this.authenticateUpgrade(info.req, r).then(
        (out) => {
          if (out.ok) return cb(true);
          const { status, headers, bodyText } = out.refusal;
          cb(false, status, bodyText, headers);
        },
        () => cb(false, 500),
      );
    };
  }
}

/** createGatehouse builds a Gatehouse middleware factory; it never waits for the network (see ready()). */
export function createGatehouse(options) {
  return new Gatehouse(options);
}

// joseRefusal maps a jose error to the refusal the caller reads.
function joseRefusal(err) {
  switch (err?.code) {
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return R.signature;
    case "ERR_JOSE_ALG_NOT_ALLOWED":
    case "ERR_JWKS_NO_MATCHING_KEY":
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return R.alg;
    case "ERR_JWT_EXPIRED":
      return err.claim === "exp" ? R.expired : R.malformed;
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      switch (err.claim) {
        case "iss":
          return err.reason === "invalid" ? R.malformed : R.issuer;
        case "aud":
          return err.reason === "invalid" ? R.malformed : R.audience;
        case "nbf":
          return err.reason === "check_failed" ? R.notYet : R.malformed;
        case "exp":
          return err.reason === "missing" ? R.noExpiry : R.malformed;
        case "typ":
          return R.type;
        default:
          return R.malformed;
      }
    case "ERR_JWT_INVALID":
    case "ERR_JWS_INVALID":
    case "ERR_JOSE_NOT_SUPPORTED":
      return R.malformed;
    default:
      return R.signature;
  }
}

const STRING_CLAIMS = ["sub", "jti", "client_id", "sid", "scope", "email", "name", "org_id"];

// principalFromClaims builds the principal of a verified token, or null
// when a claim has the wrong type (the token is malformed).
function principalFromClaims(c) {
  for (const k of STRING_CLAIMS) if (c[k] !== undefined && typeof c[k] !== "string") return null;
  for (const k of ["roles", "permissions"]) {
    if (c[k] !== undefined && (!Array.isArray(c[k]) || c[k].some((x) => typeof x !== "string"))) return null;
  }
  if (typeof c.exp !== "number") return null;
  return new Principal({
    kind: KIND_ACCESS_TOKEN,
    subject: c.sub ?? "",
    orgId: c.org_id ?? "",
    roles: c.roles ?? [],
    permissions: c.permissions ?? [],
    tokenId: c.jti ?? "",
    clientId: c.client_id ?? "",
    sessionId: c.sid ?? "",
    scope: c.scope ?? "",
    email: c.email ?? "",
    name: c.name ?? "",
    expiresAt: new Date(c.exp * 1000),
    claims: c,
  });
}

// defaultLogger is where the development principal's warning goes without
// options.logger: the one thing this package ever writes by itself.
function defaultLogger() {
  return { warn: (msg, fields) => console.warn(msg, JSON.stringify(fields)) };
}

// devPrincipal checks options.insecureDevPrincipal and whether the process
// looks like production (options.production, GATEHOUSE_ENV other than
// development, NODE_ENV=production).
function devPrincipal(opts) {
  const env = String(process.env.GATEHOUSE_ENV ?? "").trim();
  if (opts.production) {
    throw new Error("gatehouse: options.insecureDevPrincipal cannot be used with options.production: it lets every request in without a credential");
  }
  if (env !== "" && env.toLowerCase() !== "development") {
    throw new Error(`gatehouse: options.insecureDevPrincipal cannot be used with GATEHOUSE_ENV=${JSON.stringify(env)}: only in development (GATEHOUSE_ENV unset or development)`);
  }
  if (String(process.env.NODE_ENV ?? "").trim().toLowerCase() === "production") {
    throw new Error("gatehouse: options.insecureDevPrincipal cannot be used with NODE_ENV=production");
  }
  const d = opts.insecureDevPrincipal;
  if (typeof d !== "object") throw new TypeError("gatehouse: options.insecureDevPrincipal must be an object");
  if (!nonEmptyString(d.subject)) throw new TypeError("gatehouse: options.insecureDevPrincipal.subject is required");
  for (const g of d.permissions ?? []) {
    const err = validateGrant(g);
    if (err) throw new TypeError(`gatehouse: options.insecureDevPrincipal.permissions: ${err.message}`);
  }
  for (const r of d.roles ?? []) {
    const err = validateRoleName(r);
    if (err) throw new TypeError(`gatehouse: options.insecureDevPrincipal.roles: ${err.message}`);
  }
  if (opts.logger !== undefined && typeof opts.logger?.warn !== "function") {
    throw new TypeError("gatehouse: options.logger must have a warn(message, fields) method");
  }
  return new Principal({ ...d, kind: d.kind ?? KIND_INSECURE_DEV, roles: [...(d.roles ?? [])], permissions: [...(d.permissions ?? [])] });
}
