// The key cache's policy with a real HTTP issuer whose keys the test
// controls (a local discovery document and JWKS): rotation picked up by
// the unknown-kid refetch, max-age, background refresh, what a JWKS may
// hold, and starting before the issuer is up.

import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";
import { SignJWT, exportJWK, generateKeyPair } from "jose";

import { createGatehouse } from "../src/index.js";
import { maxAgeMs, parseSet } from "../src/keys.js";
import { expressApp, listen, request, bearer } from "./helpers.js";

// issuer serves a discovery document and a JWKS of the keys it holds;
// status and cacheControl can be changed while it runs.
async function issuer() {
  const state = { keys: [], status: 200, cacheControl: "public, max-age=300", jwksHits: 0, discoveryHits: 0 };
  const server = http.createServer((req, res) => {
    if (state.status !== 200) {
      res.statusCode = state.status;
      return res.end("down");
    }
    res.setHeader("content-type", "application/json");
    if (req.url === "/.well-known/openid-configuration") {
      state.discoveryHits++;
      return res.end(JSON.stringify({ issuer: state.url, jwks_uri: `${state.url}/jwks` }));
    }
    if (req.url === "/jwks") {
      state.jwksHits++;
      res.setHeader("cache-control", state.cacheControl);
      return res.end(JSON.stringify({ keys: state.keys.map((k) => k.public) }));
    }
    res.statusCode = 404;
    res.end("{}");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  state.url = `http://127.0.0.1:${server.address().port}`;
  state.addKey = async (kid, alg = "RS256") => {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const key = { kid, alg, privateKey, public: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
    state.keys.push(key);
    return key;
  };
  state.sign = (key, claims = {}, header = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: state.url, aud: ["kb-api"], sub: "u1", exp: now + 600, iat: now, nbf: now, jti: "j", client_id: "kb-web",
      org_id: "o1", roles: ["member"], permissions: ["kb:read"], ...claims })
      .setProtectedHeader({ alg: key.alg, typ: "at+jwt", kid: key.kid, ...header })
      .sign(key.privateKey);
  };
  state.close = () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
  return state;
}

async function refusalOf(m, token) {
  try {
    await m.verify(token);
    return "accepted";
  } catch (err) {
    return err.refusal?.description ?? String(err);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("max-age is clamped to [1 minute, 24 hours], 5 minutes without one", () => {
  assert.equal(maxAgeMs(""), 300_000);
  assert.equal(maxAgeMs("public, max-age=3600"), 3_600_000);
  assert.equal(maxAgeMs("max-age=5"), 60_000);
  assert.equal(maxAgeMs("max-age=9999999"), 86_400_000);
  assert.equal(maxAgeMs("no-store"), 60_000);
  assert.equal(maxAgeMs("max-age=-1"), 300_000);
  assert.equal(maxAgeMs("MAX-AGE=120"), 120_000);
});

test("a JWKS yields only public signing keys with a kid", async () => {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const pub = await exportJWK(publicKey);
  const priv = await exportJWK(privateKey);
  const keys = parseSet({
    keys: [
      { ...pub, kid: "ok" },
      { ...priv, kid: "private" }, // published by mistake: kept as its public half
      { ...pub, kid: "enc", use: "enc" },
      { kty: "oct", k: "c2VjcmV0", kid: "hmac" },
      { ...pub }, // no kid
      { ...pub, kid: "bad-curve", crv: "secp256k1" },
      { kty: "RSA", kid: "no-modulus", e: "AQAB" },
      "garbage",
      null,
    ],
  });
  assert.deepEqual(keys.map((k) => k.kid), ["ok", "private"]);
  assert.equal(keys[1].d, undefined);
  assert.throws(() => parseSet({ nokeys: [] }), /not a JSON Web Key Set/);
  assert.throws(() => parseSet("x"), /not a JSON Web Key Set/);
});

test("a rotated key is picked up by the unknown-kid refetch; the old one keeps working", async () => {
  const iss = await issuer();
  try {
    const k1 = await iss.addKey("k1");
    const m = createGatehouse({ issuer: iss.url, audience: "kb-api", refetchIntervalMs: 100 });
    await m.ready({ timeoutMs: 5000 });
    assert.equal(await refusalOf(m, await iss.sign(k1)), "accepted");
    assert.equal(iss.jwksHits, 1);
    const k2 = await iss.addKey("k2", "ES256");
    await sleep(120);
    assert.equal(await refusalOf(m, await iss.sign(k2)), "accepted", "the new kid after one refetch");
    assert.equal(iss.jwksHits, 2);
    assert.equal(await refusalOf(m, await iss.sign(k1)), "accepted");
    assert.equal(await refusalOf(m, await iss.sign(k2)), "accepted");
    assert.equal(iss.jwksHits, 2, "known kids cost nothing");
    // EdDSA too.
    const k3 = await iss.addKey("k3", "EdDSA");
    await sleep(120);
    assert.equal(await refusalOf(m, await iss.sign(k3)), "accepted");
    // A token whose header names an algorithm other than its key's.
    const [h, p, sig] = (await iss.sign(k1)).split(".");
    const rs512 = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(h, "base64url")), alg: "RS512" })).toString("base64url");
    const strict = createGatehouse({ issuer: iss.url, audience: "kb-api", algorithms: ["RS256", "RS512"] });
    await strict.ready({ timeoutMs: 5000 });
    assert.equal(await refusalOf(strict, `${rs512}.${p}.${sig}`), "the access token's signing algorithm is not accepted");
    assert.equal(await refusalOf(m, `${rs512}.${p}.${sig}`), "the access token's signing algorithm is not accepted");
    strict.close();
    m.close();
  } finally {
    await iss.close();
  }
});

test("stale keys are refreshed in the background; a failed fetch keeps them", async () => {
  const iss = await issuer();
  try {
    const k1 = await iss.addKey("k1");
    let clock = Date.now();
    const m = createGatehouse({ issuer: iss.url, audience: "kb-api", now: () => clock, refetchIntervalMs: 1000 });
    await m.ready({ timeoutMs: 5000 });
    const token = await iss.sign(k1);
    clock += 301_000; // past max-age=300
    iss.status = 503;
    assert.equal(await refusalOf(m, token), "accepted", "a stale key still verifies while refreshing");
    await sleep(50);
    assert.equal(iss.jwksHits, 1, "the failed refresh got no keys (503)");
    assert.equal(await refusalOf(m, token), "accepted", "the cached keys stay in use");
    iss.status = 200;
    clock += 1_001; // failed refresh: retried after the refetch interval
    assert.equal(await refusalOf(m, token), "accepted");
    await sleep(50);
    assert.equal(iss.jwksHits, 2, "refreshed in the background");
    m.close();
  } finally {
    await iss.close();
  }
});

test("starting while the issuer is down: 503 until the keys are loaded, then tokens verify", async () => {
  const iss = await issuer();
  try {
    const k1 = await iss.addKey("k1");
    iss.status = 502;
    const m = createGatehouse({ issuer: iss.url, audience: "kb-api", startupBackoff: { minMs: 20, maxMs: 80 } });
    const srv = await listen(expressApp(m));
    try {
      const token = await iss.sign(k1);
      await sleep(100);
      assert.equal(m.isReady(), false);
      assert.match(m.readiness().error, /502/);
      await assert.rejects(m.ready({ timeoutMs: 50 }), /keys not loaded after 50 ms/);
      let res = await request(srv.url + "/kb", { headers: [bearer(token)] });
      assert.equal(res.status, 503);
      assert.equal(res.headers["retry-after"], "5");
      assert.deepEqual(res.json, { error: "temporarily_unavailable", error_description: "the issuer's keys are not loaded yet; try again shortly" });
      res = await request(srv.url + "/kb");
      assert.equal(res.status, 401, "no credential is still 401");
      // The readiness probe says so.
      const probe = await listen((req, res2) => m.readinessHandler()(req, res2));
      res = await request(probe.url);
      assert.equal(res.status, 503);
      assert.deepEqual(res.json, { error: "temporarily_unavailable", error_description: "the issuer's keys are not loaded yet" });
      assert.equal(res.headers["retry-after"], "5");
      iss.status = 200;
      await m.ready({ timeoutMs: 2000 });
      res = await request(probe.url);
      assert.equal(res.status, 200);
      await probe.close();
      res = await request(srv.url + "/kb", { headers: [bearer(token)] });
      assert.equal(res.status, 200, res.text);
      assert.ok(iss.discoveryHits >= 1);
    } finally {
      await srv.close();
      m.close();
    }
  } finally {
    await iss.close();
  }
});

test("options are checked at construction", () => {
  assert.throws(() => createGatehouse({ audience: "a" }), /issuer is required/);
  assert.throws(() => createGatehouse({ issuer: "http://x" }), /audience is required/);
  assert.throws(() => createGatehouse({ issuer: "http://x", audience: "a", refetchIntervalMs: 0 }), /refetchIntervalMs/);
  assert.throws(() => createGatehouse({ issuer: "http://x", audience: "a", orgParam: "" }), /orgParam/);
  assert.throws(() => createGatehouse({ issuer: "http://x", audience: "a", check: "yes" }), /check must be a function/);
  assert.throws(() => createGatehouse({ issuer: "http://x", audience: "a", apiKeys: { clientId: "c" } }), /clientSecret/);
  assert.throws(() => createGatehouse({ issuer: "http://x", audience: "a", startupBackoff: { minMs: 0 } }), /startupBackoff/);
  const m = createGatehouse({ issuer: "http://127.0.0.1:1", audience: "a" });
  assert.equal(m.isReady(), false, "never throws for an unreachable issuer");
  m.close();
});
