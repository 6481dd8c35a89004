// Forged and misused tokens against a live Gatehouse's keys: expired and
// not yet valid (a moved clock), another issuer or audience, alg none,
// HS256 keyed with the public key, an unknown kid (one refetch, bounded),
// a tampered payload or signature, an ID token, an oversized token.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac, createPublicKey } from "node:crypto";
import http from "node:http";
import { SignJWT, generateKeyPair } from "jose";

import { createGatehouse } from "../src/index.js";
import { GH, needGatehouse, countingFetch, expressApp, fastifyApp, listen, request, bearer, b64url, parts } from "./helpers.js";

let jwks; // the live Gatehouse's JWKS
let gh;

before(async () => {
  if (!GH) return;
  const d = await (await fetch(`${GH.issuer}/.well-known/openid-configuration`)).json();
  jwks = await (await fetch(d.jwks_uri)).json();
  gh = createGatehouse({ issuer: GH.issuer, audience: GH.audience });
  await gh.ready({ timeoutMs: 10_000 });
});

after(() => gh?.close());

// refusalOf verifies token with m and returns the refusal's description,
// or "accepted".
async function refusalOf(m, token) {
  try {
    await m.verify(token);
    return "accepted";
  } catch (err) {
    assert.equal(err.name, "GatehouseRefusal", String(err?.stack));
    return err.refusal.description;
  }
}

function realKey(token) {
  const { header } = parts(token);
  return jwks.keys.find((k) => k.kid === header.kid);
}

test("alg none and HMAC keyed with the public key are refused", { skip: needGatehouse }, async () => {
  const { header, raw } = parts(GH.member);
  const none = b64url({ ...header, alg: "none" });
  assert.equal(await refusalOf(gh, `${none}.${raw[1]}.`), "the access token is malformed");
  assert.equal(await refusalOf(gh, `${none}.${raw[1]}.AAAA`), "the access token's signing algorithm is not accepted");
  for (const alg of ["None", "NONE", "HS256", "HS384", "HS512", "RS1", "", 7]) {
    assert.equal(await refusalOf(gh, `${b64url({ ...header, alg })}.${raw[1]}.AAAA`), "the access token's signing algorithm is not accepted", `alg ${alg}`);
  }
  // HS256 "signed" with what an attacker has: the public key as PEM, as
  // JWK JSON, and its modulus.
  const jwk = realKey(GH.member);
  const pem = createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" });
  const h = b64url({ ...header, alg: "HS256" });
  for (const secret of [pem, JSON.stringify(jwk), Buffer.from(jwk.n ?? jwk.x, "base64url")]) {
    const sig = createHmac("sha256", secret).update(`${h}.${raw[1]}`).digest("base64url");
    assert.equal(await refusalOf(gh, `${h}.${raw[1]}.${sig}`), "the access token's signing algorithm is not accepted");
  }
  // And no configuration accepts them.
  for (const algorithms of [["HS256"], ["none"], ["RS256", "HS512"], []]) {
    assert.throws(() => createGatehouse({ issuer: GH.issuer, audience: "a", algorithms }), /asymmetric JWS algorithms only|non-empty/);
  }
});

test("a header algorithm other than the key's is refused", { skip: needGatehouse }, async () => {
  const { header, raw } = parts(GH.member);
  const other = header.alg === "ES256" ? "RS256" : "ES256";
  assert.equal(await refusalOf(gh, `${b64url({ ...header, alg: other })}.${raw[1]}.${raw[2]}`),
    "the access token's signing algorithm is not accepted");
});

test("tampered payloads and signatures are refused", { skip: needGatehouse }, async () => {
  const { header, payload, raw } = parts(GH.member);
  // Another organization, more permissions, a later expiry: the signature no longer fits.
  for (const change of [{ org_id: GH.beta }, { permissions: ["*"] }, { exp: payload.exp + 3600 }]) {
    const forged = `${raw[0]}.${b64url({ ...payload, ...change })}.${raw[2]}`;
    assert.equal(await refusalOf(gh, forged), "the access token's signature is invalid", JSON.stringify(change));
  }
  const flipped = raw[2].slice(0, 10) + (raw[2][10] === "A" ? "B" : "A") + raw[2].slice(11);
  assert.equal(await refusalOf(gh, `${raw[0]}.${raw[1]}.${flipped}`), "the access token's signature is invalid");
  // Signed by another key under the real kid.
  const { privateKey } = await generateKeyPair(header.alg);
  const own = await new SignJWT(payload).setProtectedHeader(header).sign(privateKey);
  assert.equal(await refusalOf(gh, own), "the access token's signature is invalid");
  // Header and payload that are not JSON, a critical extension, no kid.
  assert.equal(await refusalOf(gh, `${b64url("nope")}.${raw[1]}.${raw[2]}`), "the access token is malformed");
  assert.equal(await refusalOf(gh, `${b64url({ ...header, crit: ["x-gatehouse"], "x-gatehouse": 1 })}.${raw[1]}.${raw[2]}`),
    "the access token is malformed");
  const { kid, ...noKid } = header;
  assert.ok(kid);
  assert.equal(await refusalOf(gh, `${b64url(noKid)}.${raw[1]}.${raw[2]}`), "the access token is signed with an unknown key");
});

test("an ID token is not an access token, and typ cannot be relabelled", { skip: needGatehouse }, async () => {
  assert.equal(await refusalOf(gh, GH.idToken), "not an access token (typ must be at+jwt)");
  const { header, raw } = parts(GH.idToken);
  assert.notEqual(String(header.typ).toLowerCase(), "at+jwt");
  assert.equal(await refusalOf(gh, `${b64url({ ...header, typ: "at+jwt" })}.${raw[1]}.${raw[2]}`), "the access token's signature is invalid");
  const m = parts(GH.member);
  for (const typ of [undefined, "JWT", "jwt", "application/jwt", "at+jwt2"]) {
    assert.equal(await refusalOf(gh, `${b64url({ ...m.header, typ })}.${m.raw[1]}.${m.raw[2]}`), "not an access token (typ must be at+jwt)", `typ ${typ}`);
  }
});

test("expiry, not-before and issued-at with the clock skew", { skip: needGatehouse }, async () => {
  const { payload } = parts(GH.member);
  const at = (ms, skew) => {
    const m = createGatehouse({ issuer: GH.issuer, audience: GH.audience, now: () => ms, clockSkewSeconds: skew });
    return m.ready({ timeoutMs: 10_000 }).then(() => m);
  };
  const cases = [
    [payload.exp * 1000 + 3_600_000, 30, "the access token has expired"],
    [payload.exp * 1000 + 31_000, 30, "the access token has expired"],
    [payload.exp * 1000 + 20_000, 30, "accepted"],
    [payload.exp * 1000 - 1_000, 0, "accepted"],
    [payload.exp * 1000, 0, "the access token has expired"],
    [payload.iat * 1000 - 3_600_000, 30, "the access token is not valid yet"],
    [payload.iat * 1000 - 20_000, 30, "accepted"],
    [payload.iat * 1000 - 20_000, 0, "the access token is not valid yet"],
  ];
  for (const [now, skew, want] of cases) {
    const m = await at(now, skew);
    assert.equal(await refusalOf(m, GH.member), want, `now ${now - payload.exp * 1000} ms after exp, skew ${skew}`);
    m.close();
  }
  assert.throws(() => createGatehouse({ issuer: GH.issuer, audience: "a", clockSkewSeconds: 301 }), /between 0 and 300/);
  assert.throws(() => createGatehouse({ issuer: GH.issuer, audience: "a", clockSkewSeconds: -1 }), /between 0 and 300/);
});

test("another issuer and another audience", { skip: needGatehouse }, async () => {
  const d = await (await fetch(`${GH.issuer}/.well-known/openid-configuration`)).json();
  // Same keys (jwksUri given), another expected issuer: the real token's iss does not match.
  const elsewhere = createGatehouse({ issuer: "https://auth.elsewhere.example", audience: GH.audience, jwksUri: d.jwks_uri });
  await elsewhere.ready({ timeoutMs: 10_000 });
  assert.equal(await refusalOf(elsewhere, GH.member), "the access token is from another issuer");
  elsewhere.close();
  const otherApi = createGatehouse({ issuer: GH.issuer, audience: "billing-api" });
  await otherApi.ready({ timeoutMs: 10_000 });
  assert.equal(await refusalOf(otherApi, GH.member), "the access token is for another audience");
  assert.equal(await refusalOf(gh, GH.otherAudience), "the access token is for another audience");
  otherApi.close();
  // A discovery document for another issuer (a trailing slash is another
  // issuer) never loads: tokens are answered 503, not verified.
  const slash = createGatehouse({ issuer: GH.issuer + "/", audience: GH.audience, startupBackoff: { minMs: 20, maxMs: 50 } });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(slash.isReady(), false);
  assert.match(slash.readiness().error, /discovery: issuer is/);
  assert.equal(await refusalOf(slash, GH.member), "the issuer's keys are not loaded yet; try again shortly");
  slash.close();
});

test("an unknown kid costs one refetch, at most one per interval and one at a time", { skip: needGatehouse }, async () => {
  const { payload } = parts(GH.member);
  const { privateKey } = await generateKeyPair("RS256");
  const forge = (kid) => new SignJWT(payload).setProtectedHeader({ alg: "RS256", typ: "at+jwt", kid }).sign(privateKey);
  const forged0 = await forge("forged-0");
  const f = countingFetch();
  const m = createGatehouse({ issuer: GH.issuer, audience: GH.audience, fetch: f, refetchIntervalMs: 400 });
  await m.ready({ timeoutMs: 10_000 });
  const jwksPath = new URL(m.discovery.jwks_uri).pathname;
  const jwksFetches = () => f.count(jwksPath);
  assert.equal(jwksFetches(), 1, "the first load");

  // Right after the first load, within the interval: refused without a fetch.
  assert.equal(await refusalOf(m, forged0), "the access token is signed with an unknown key");
  assert.equal(jwksFetches(), 1);
  await new Promise((r) => setTimeout(r, 450));
  assert.equal(await refusalOf(m, await forge("forged-1")), "the access token is signed with an unknown key");
  assert.equal(jwksFetches(), 2, "one refetch for the unknown kid");
  assert.equal(await refusalOf(m, await forge("forged-1")), "the access token is signed with an unknown key");
  assert.equal(await refusalOf(m, await forge("forged-2")), "the access token is signed with an unknown key");
  assert.equal(jwksFetches(), 2, "no second refetch within the interval");
  assert.equal(await refusalOf(m, GH.member), "accepted", "known keys still verify");
  // A burst of distinct unknown kids after the interval: one fetch in flight, shared.
  await new Promise((r) => setTimeout(r, 450));
  const burst = await Promise.all(Array.from({ length: 25 }, async (_, i) => refusalOf(m, await forge(`burst-${i}`))));
  assert.ok(burst.every((d) => d === "the access token is signed with an unknown key"), burst.join(", "));
  assert.equal(jwksFetches(), 3, "a burst costs one fetch");
  m.close();
});

test("when the keys cannot be refetched: 503 for unknown kids, cached keys keep working", { skip: needGatehouse }, async () => {
  let down = false;
  const f = async (url, init) => {
    if (down) throw new TypeError("fetch failed");
    return fetch(url, init);
  };
  const m = createGatehouse({ issuer: GH.issuer, audience: GH.audience, fetch: f, refetchIntervalMs: 50 });
  await m.ready({ timeoutMs: 10_000 });
  down = true;
  await new Promise((r) => setTimeout(r, 60));
  const { payload } = parts(GH.member);
  const { privateKey } = await generateKeyPair("RS256");
  const forged = await new SignJWT(payload).setProtectedHeader({ alg: "RS256", typ: "at+jwt", kid: "while-down" }).sign(privateKey);
  assert.equal(await refusalOf(m, forged), "the issuer's keys cannot be fetched right now; try again shortly");
  assert.equal(await refusalOf(m, GH.member), "accepted");
  const srv = await listen(expressApp(m));
  try {
    const res = await request(srv.url + "/kb", { headers: [bearer(forged)] });
    assert.equal(res.status, 503);
    assert.equal(res.headers["retry-after"], "5");
    assert.equal(res.json.error, "temporarily_unavailable");
    assert.equal(res.headers["www-authenticate"], undefined);
  } finally {
    await srv.close();
    m.close();
  }
});

test("an oversized token is refused before any work", { skip: needGatehouse }, async () => {
  const big = "a".repeat(17 * 1024) + ".b.c";
  assert.equal(await refusalOf(gh, big), "the access token is malformed");
  const { raw } = parts(GH.member);
  const padded = `${raw[0]}.${raw[1]}${"A".repeat(17 * 1024)}.${raw[2]}`;
  assert.equal(await refusalOf(gh, padded), "the access token is malformed");
  // Through Express on a server that lets such headers through: 401.
  const srv = await listen(http.createServer({ maxHeaderSize: 64 * 1024 }, expressApp(gh)));
  try {
    const res = await request(srv.url + "/kb", { headers: [bearer(padded)] });
    assert.equal(res.status, 401);
    assert.equal(res.json.error_description, "the access token is malformed");
  } finally {
    await srv.close();
  }
  // Node's own header limit (16 KiB) refuses it before Fastify routes it.
  const app = fastifyApp(gh);
  const fs = await listen(app);
  try {
    const res = await request(fs.url + "/kb", { headers: [bearer(padded)] });
    assert.equal(res.status, 431);
  } finally {
    await fs.close();
  }
});
