// The cache of Gatehouse's public keys, with the policy of Gatehouse's Go
// jwks package (jwks/cache.go) and rbac (rbac/keys.go):
//
//   - the key set is fresh for its Cache-Control max-age, clamped to
//     [1 minute, 24 hours] (5 minutes without one); stale keys are
//     refreshed in the background, never on the request path;
//   - a kid the cache does not know triggers a refetch, but one at a time
//     (concurrent requests join the fetch in flight) and at most one per
//     refetch interval (30 s by default); a kid still unknown afterwards is
//     refused without another fetch for that interval;
//   - a failed fetch keeps the keys there are; while the keys cannot be
//     fetched, a kid nobody knows is "unavailable" (503), not "unknown".

import { createLocalJWKSet } from "jose";

/** Freshness bounds of the key set, in milliseconds (Go's rbac/keys.go). */
export const MIN_KEYS_MAX_AGE_MS = 60_000;
export const DEFAULT_KEYS_MAX_AGE_MS = 5 * 60_000;
export const MAX_KEYS_MAX_AGE_MS = 24 * 60 * 60_000;

/** DEFAULT_REFETCH_INTERVAL_MS is the least time between two refetches caused by unknown kids. */
export const DEFAULT_REFETCH_INTERVAL_MS = 30_000;

// MAX_UNKNOWN_KIDS bounds the negative cache; when full it is emptied,
// which costs at most one more refetch per interval.
const MAX_UNKNOWN_KIDS = 1024;

/** KeyError says why no key answers for a kid: code "unknown" or "unavailable". */
export class KeyError extends Error {
  constructor(code) {
    super(code === "unknown" ? "signed with a key the issuer does not publish" : "the issuer's signing keys cannot be fetched");
    this.name = "KeyError";
    this.code = code;
  }
}

/**
 * maxAgeMs reads max-age from a Cache-Control header value, clamped to the
 * bounds; no-cache and no-store ask for the shortest time.
 */
export function maxAgeMs(cacheControl) {
  let age = DEFAULT_KEYS_MAX_AGE_MS;
  for (let d of String(cacheControl ?? "").split(",")) {
    d = d.trim().toLowerCase();
    if (d.startsWith("max-age=")) {
      const v = d.slice("max-age=".length);
      if (/^\d+$/.test(v)) age = Number(v) * 1000;
    } else if (d === "no-cache" || d === "no-store") {
      age = 0;
    }
  }
  return Math.min(Math.max(age, MIN_KEYS_MAX_AGE_MS), MAX_KEYS_MAX_AGE_MS);
}

const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
const EC_CURVES = new Set(["P-256", "P-384", "P-521"]);

/**
 * parseSet keeps the public signing keys of a JWKS document: RSA, EC and
 * Ed25519 keys whose use is "sig" or unset, with a kid. Symmetric keys,
 * other keys and malformed entries are skipped (RFC 7517 §5); a private
 * key published by mistake is kept as its public half. It throws only
 * when doc is not a key set at all.
 */
export function parseSet(doc) {
  if (!doc || typeof doc !== "object" || !Array.isArray(doc.keys)) throw new Error("not a JSON Web Key Set");
  const out = [];
  for (const k of doc.keys) {
    if (!k || typeof k !== "object" || Array.isArray(k)) continue;
    if (typeof k.kid !== "string" || k.kid === "") continue;
    if (k.use !== undefined && k.use !== "sig") continue;
    if (k.alg !== undefined && typeof k.alg !== "string") continue;
    const str = (v) => typeof v === "string" && v !== "";
    let ok = false;
    switch (k.kty) {
      case "RSA":
        ok = str(k.n) && str(k.e);
        break;
      case "EC":
        ok = EC_CURVES.has(k.crv) && str(k.x) && str(k.y);
        break;
      case "OKP":
        ok = k.crv === "Ed25519" && str(k.x);
        break;
    }
    if (!ok) continue;
    const pub = { ...k };
    for (const m of PRIVATE_MEMBERS) delete pub[m];
    delete pub.key_ops; // a public key verifies; a stray key_ops must not make it unusable
    out.push(Object.freeze(pub));
  }
  return out;
}

/**
 * KeyCache holds the public keys of one issuer. fetchKeys resolves to
 * {keys, maxAgeMs}; it is called at most once at a time.
 */
export class KeyCache {
  /**
   * @param {object} o
   * @param {() => Promise<{keys: object[], maxAgeMs: number}>} o.fetchKeys
   * @param {number} o.minRefetchMs
   * @param {() => number} o.now milliseconds since the epoch
   */
  constructor({ fetchKeys, minRefetchMs, now }) {
    this.fetchKeys = fetchKeys;
    this.minRefetchMs = minRefetchMs;
    this.now = now;
    this.snap = null; // {byKid: Map<kid, {jwk, resolver}>, staleAt}
    this.inflight = null; // Promise of the fetch in flight
    this.lastErr = null;
    this.lastRefetch = 0;
    this.refreshing = false;
    this.unknown = new Map(); // kid -> refused until
    this.fetches = 0;
  }

  /** loaded reports whether a fetch has succeeded. */
  get loaded() {
    return this.snap !== null;
  }

  /** load fetches the key set and waits for it (at start); it counts as a refetch. */
  async load() {
    this.lastRefetch = this.now();
    const call = this.inflight ?? this.start();
    await call.done;
    if (call.err) throw call.err;
  }

  /**
   * resolver returns jose's key resolver for the kid (a local JWKS of that
   * one key), refetching the key set for a kid it does not know within the
   * limits above. It throws a KeyError.
   */
  async resolver(kid) {
    const s = this.current();
    const hit = s?.byKid.get(kid);
    if (hit) return this.resolverOf(hit);
    await this.refetchFor(kid);
    const again = this.snap?.byKid.get(kid);
    if (again) return this.resolverOf(again);
    this.rememberUnknown(kid);
    throw new KeyError("unknown");
  }

  resolverOf(entry) {
    entry.resolver ??= createLocalJWKSet({ keys: [entry.jwk] });
    return entry.resolver;
  }

  // current returns the snapshot, starting a background refresh once its
  // max-age has passed.
  current() {
    const s = this.snap;
    if (s && this.now() >= s.staleAt && !this.refreshing) {
      this.refreshing = true;
      const call = this.inflight ?? this.start();
      call.done.finally(() => {
        this.refreshing = false;
      });
    }
    return s;
  }

  async refetchFor(kid) {
    const now = this.now();
    const until = this.unknown.get(kid);
    if (until !== undefined && now < until) throw new KeyError("unknown");
    let call = this.inflight;
    if (!call) {
      if (this.lastRefetch !== 0 && now - this.lastRefetch < this.minRefetchMs) {
        // While the endpoint fails, nobody knows whether the kid is real.
        throw new KeyError(this.snap === null || this.lastErr !== null ? "unavailable" : "unknown");
      }
      this.lastRefetch = now;
      call = this.start();
    }
    await call.done;
    if (call.err) throw new KeyError("unavailable");
  }

  rememberUnknown(kid) {
    if (this.unknown.size >= MAX_UNKNOWN_KIDS) this.unknown.clear();
    this.unknown.set(kid, this.now() + this.minRefetchMs);
  }

  // start runs one fetch and returns {done, err}: done never rejects; err
  // is the fetch's error once done.
  start() {
    this.fetches++;
    const call = { done: null, err: null };
    this.inflight = call;
    call.done = (async () => {
      await null; // the caller holds the call before the fetch begins
      try {
        const { keys, maxAgeMs: age } = await this.fetchKeys();
        const byKid = new Map();
        for (const jwk of keys) {
          byKid.set(jwk.kid, { jwk, resolver: null });
          this.unknown.delete(jwk.kid);
        }
        this.snap = { byKid, staleAt: this.now() + age };
        this.lastErr = null;
      } catch (err) {
        this.lastErr = err;
        call.err = err;
        if (this.snap) {
          // Keep the keys; try again no sooner than the refetch interval.
          this.snap = { byKid: this.snap.byKid, staleAt: this.now() + this.minRefetchMs };
        }
      } finally {
        this.inflight = null;
      }
    })();
    return call;
  }
}
