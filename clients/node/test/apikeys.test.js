// API keys against a live Gatehouse's introspection endpoint: cached,
// refusals too; one introspection call for concurrent requests; disabled
// mid-run; 503 (never 401) when Gatehouse cannot be asked.

import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";

import { createGatehouse, Principal, refuse } from "../src/index.js";
import { GH, needGatehouse, countingFetch, expressApp, fastifyApp, listen, request, apiKeyHeader } from "./helpers.js";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function withApp(gh, make, fn) {
  const srv = await listen(make(gh));
  try {
    await fn(srv.url);
  } finally {
    await srv.close();
    gh.close();
  }
}

test("answers are cached per key, refusals too; concurrent requests share one call", { skip: needGatehouse }, async () => {
  const f = countingFetch();
  const gh = createGatehouse({ issuer: GH.issuer, audience: GH.audience, fetch: f,
    apiKeys: { clientId: GH.clientId, clientSecret: GH.clientSecret, cacheTtlMs: 60_000 } });
  await gh.ready({ timeoutMs: 10_000 });
  await withApp(gh, expressApp, async (url) => {
    const calls = () => f.count("/introspect");
    const burst = await Promise.all(Array.from({ length: 20 }, () => request(url + "/kb", { headers: [apiKeyHeader(GH.apiKey)] })));
    assert.ok(burst.every((r) => r.status === 200), burst.map((r) => r.status).join(","));
    assert.equal(calls(), 1, "one introspection call for a burst");
    await request(url + "/kb", { headers: [apiKeyHeader(GH.apiKey)] });
    assert.equal(calls(), 1, "cached");
    const unknown = "ghk_" + "U".repeat(43);
    for (let i = 0; i < 3; i++) {
      const r = await request(url + "/kb", { headers: [apiKeyHeader(unknown)] });
      assert.equal(r.status, 401);
      assert.equal(r.json.error_description, "the API key is unknown, disabled or expired");
    }
    assert.equal(calls(), 2, "a refusal is cached too");
    // Malformed keys are refused without asking.
    await request(url + "/kb", { headers: [apiKeyHeader("ghk_short")] });
    assert.equal(calls(), 2);
  });
});

test("a key disabled at Gatehouse is refused once the cache time has passed", { skip: needGatehouse }, async () => {
  const ttl = 300;
  const gh = createGatehouse({ issuer: GH.issuer, audience: GH.audience,
    apiKeys: { clientId: GH.clientId, clientSecret: GH.clientSecret, cacheTtlMs: ttl } });
  await gh.ready({ timeoutMs: 10_000 });
  await withApp(gh, fastifyApp, async (url) => {
    let r = await request(url + "/kb", { headers: [apiKeyHeader(GH.disableKey)] });
    assert.equal(r.status, 200, r.text);
    const patch = await fetch(`${GH.issuer}/api/v1/admin/orgs/${GH.acme}/api-keys/${GH.disableKeyId}`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${GH.admin}`, "content-type": "application/json" },
      body: JSON.stringify({ disabled: true }),
    });
    assert.equal(patch.status, 200, await patch.text());
    const disabledAt = Date.now();
    for (;;) {
      r = await request(url + "/kb", { headers: [apiKeyHeader(GH.disableKey)] });
      if (r.status === 401) break;
      assert.equal(r.status, 200);
      assert.ok(Date.now() - disabledAt < ttl + 1000, `still accepted after ${Date.now() - disabledAt} ms (cache ${ttl} ms)`);
      await sleep(25);
    }
    assert.equal(r.json.error_description, "the API key is unknown, disabled or expired");
  });
});

test("when Gatehouse cannot be asked: 503 with Retry-After, nothing cached", { skip: needGatehouse }, async () => {
  // A port nobody listens on.
  const dead = http.createServer();
  dead.listen(0, "127.0.0.1");
  await once(dead, "listening");
  const deadURL = `http://127.0.0.1:${dead.address().port}/auth/introspect`;
  await new Promise((r) => dead.close(r));

  const variants = {
    "introspection unreachable": { clientId: GH.clientId, clientSecret: GH.clientSecret, introspectionUrl: deadURL },
    "wrong client secret (Gatehouse answers 401 to us)": { clientId: GH.clientId, clientSecret: "not-the-secret-0123456789" },
    "a resolver that throws": { resolve: async () => { throw new Error("database down"); } },
  };
  for (const [name, apiKeys] of Object.entries(variants)) {
    const gh = createGatehouse({ issuer: GH.issuer, audience: GH.audience, apiKeys });
    await gh.ready({ timeoutMs: 10_000 });
    await withApp(gh, expressApp, async (url) => {
      for (let i = 0; i < 2; i++) {
        const r = await request(url + "/kb", { headers: [apiKeyHeader(GH.apiKey)] });
        assert.equal(r.status, 503, `${name}: ${r.text}`);
        assert.equal(r.headers["retry-after"], "5", name);
        assert.deepEqual(r.json, { error: "temporarily_unavailable", error_description: "the credential cannot be checked right now; try again shortly" });
        assert.ok(!r.text.includes(GH.apiKey) && !r.text.includes("not-the-secret") && !r.text.includes("database"), name);
      }
    });
  }
});

test("API keys are refused where they are not configured", { skip: needGatehouse }, async () => {
  const gh = createGatehouse({ issuer: GH.issuer, audience: GH.audience });
  await gh.ready({ timeoutMs: 10_000 });
  await withApp(gh, expressApp, async (url) => {
    const r = await request(url + "/kb", { headers: [apiKeyHeader(GH.apiKey)] });
    assert.equal(r.status, 401);
    assert.equal(r.json.error_description, "API keys are not accepted here");
  });
});

test("a custom resolver replaces introspection", { skip: needGatehouse }, async () => {
  const seen = [];
  const revoked = "ghk_" + "R".repeat(43);
  const gh = createGatehouse({ issuer: GH.issuer, audience: GH.audience, apiKeys: {
    resolve: async (key) => {
      seen.push(key.length);
      if (key === revoked) throw refuse("the API key was revoked");
      if (key !== GH.apiKey) return null;
      return new Principal({ kind: "api_key", subject: "apikey:local", orgId: GH.acme, permissions: ["kb:*"] });
    },
  } });
  await gh.ready({ timeoutMs: 10_000 });
  await withApp(gh, expressApp, async (url) => {
    const r = await request(url + "/kb", { method: "POST", headers: [apiKeyHeader(GH.apiKey)], body: {} });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.principal.sub, "apikey:local");
    assert.deepEqual(seen, [47]);
    let bad = await request(url + "/kb", { headers: [apiKeyHeader(revoked)] });
    assert.equal(bad.status, 401);
    assert.equal(bad.json.error_description, "the API key was revoked");
    bad = await request(url + "/kb", { headers: [apiKeyHeader("ghk_" + "N".repeat(43))] });
    assert.equal(bad.status, 401);
    assert.equal(bad.json.error_description, "the API key is unknown, disabled or expired");
  });
});
