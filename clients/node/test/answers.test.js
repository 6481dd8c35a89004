// Customised refusals (errorWriter, onRefusal), the check hook (refuse,
// membershipInactive, unavailable, any other error), a custom organization
// rule, and a middleware that logs nothing by itself.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { createGatehouse, forbid, membershipInactive, refuse, unavailable } from "../src/index.js";
import { GH, needGatehouse, expressApp, fastifyApp, listen, request, bearer } from "./helpers.js";

async function serve(gh, make, fn) {
  await gh.ready({ timeoutMs: 10_000 });
  const srv = await listen(make(gh));
  try {
    await fn(srv.url);
  } finally {
    await srv.close();
    gh.close();
  }
}

test("onRefusal sees every refusal, without the credential; errorWriter writes it", { skip: needGatehouse }, async () => {
  for (const [fw, make] of Object.entries({ express: expressApp, fastify: fastifyApp })) {
    const seen = [];
    const gh = createGatehouse({
      issuer: GH.issuer,
      audience: GH.audience,
      onRefusal: (refusal, req, principal) => {
        seen.push({ status: refusal.status, reason: refusal.reason, error: refusal.error, description: refusal.description,
          sub: principal?.subject ?? null, url: (req.raw ?? req).url });
      },
      errorWriter: (refusal, req, res) => {
        const body = JSON.stringify({ problem: refusal.reason ?? refusal.error, detail: refusal.description });
        if (fw === "fastify") return res.code(refusal.status).header("content-type", "application/problem+json").send(body);
        res.status(refusal.status).type("application/problem+json").send(body);
      },
    });
    await serve(gh, make, async (url) => {
      let r = await request(url + "/kb", { method: "POST", headers: [bearer(GH.reader)], body: {} });
      assert.equal(r.status, 403);
      assert.match(r.headers["content-type"], /^application\/problem\+json/);
      assert.deepEqual(r.json, { problem: "missing_permission", detail: "the credential's permissions do not grant kb:write" });
      r = await request(url + `/kb?token=${GH.member}`);
      assert.equal(r.status, 401);
      assert.deepEqual(r.json, { problem: "invalid_token", detail: "a bearer access token is required" });
      assert.equal(seen.length, 2, fw);
      assert.equal(seen[0].status, 403);
      assert.equal(seen[0].reason, "missing_permission");
      assert.ok(seen[0].sub, "a 403 names who was refused");
      assert.equal(seen[1].status, 401);
      assert.equal(seen[1].sub, null);
      assert.equal(seen[1].url, "/kb", "the token is gone from the URL the callback sees");
      assert.ok(!JSON.stringify(seen).includes(GH.member.slice(0, 40)));
    });
  }
});

test("forbid refuses malformed reasons", () => {
  for (const bad of ["", "Plan", "plan expired", "x".repeat(65), 7]) assert.throws(() => forbid(bad, "s"), /must be 1 to 64/);
  assert.ok(forbid("plan_expired_2", "s") instanceof Error);
});

test("a failing onRefusal does not change the answer", { skip: needGatehouse }, async () => {
  const gh = createGatehouse({ issuer: GH.issuer, audience: GH.audience, onRefusal: () => { throw new Error("metrics down"); } });
  await serve(gh, expressApp, async (url) => {
    const r = await request(url + "/kb");
    assert.equal(r.status, 401);
    assert.equal(r.json.error_description, "a bearer access token is required");
  });
  const gh2 = createGatehouse({ issuer: GH.issuer, audience: GH.audience, onRefusal: async () => { throw new Error("async too"); } });
  await serve(gh2, fastifyApp, async (url) => {
    const r = await request(url + "/kb");
    assert.equal(r.status, 401);
  });
});

test("the check hook: refuse, membershipInactive, unavailable, anything else", { skip: needGatehouse }, async () => {
  const outcomes = {
    "mia@example.com": () => refuse("the session has ended"),
    "rae@example.com": () => membershipInactive(),
    "vic@example.com": () => unavailable(),
    "lee@example.com": () => new Error("SELECT failed: connection refused to db.internal:5432"),
    "bob@example.com": () => forbid("plan_expired", "the organization's plan has expired"),
  };
  for (const [fw, make] of Object.entries({ express: expressApp, fastify: fastifyApp })) {
    const gh = createGatehouse({
      issuer: GH.issuer,
      audience: GH.audience,
      check: async (p) => {
        const f = outcomes[p.email];
        if (f) throw f();
      },
    });
    await serve(gh, make, async (url) => {
      let r = await request(url + "/kb", { headers: [bearer(GH.member)] });
      assert.equal(r.status, 401, fw);
      assert.equal(r.json.error_description, "the session has ended");
      assert.equal(r.headers["www-authenticate"], 'Bearer error="invalid_token", error_description="the session has ended"');
      r = await request(url + "/kb", { headers: [bearer(GH.reader)] });
      assert.equal(r.status, 403, fw);
      assert.deepEqual(r.json, {
        error: "insufficient_permission",
        error_description: "the credential's membership in its organization is not active",
        reason: "membership_inactive",
        required: "kb:read",
      });
      r = await request(url + "/kb", { headers: [bearer(GH.viewer)] });
      assert.equal(r.status, 503, fw);
      assert.equal(r.headers["retry-after"], "5");
      assert.equal(r.json.error, "temporarily_unavailable");
      r = await request(url + "/kb", { headers: [bearer(GH.lead)] });
      assert.equal(r.status, 401, fw);
      assert.equal(r.json.error_description, "the credential was refused", "a hook's own error text stays out");
      assert.ok(!r.text.includes("db.internal"));
      r = await request(url + "/kb", { headers: [bearer(GH.betaMember)] });
      assert.equal(r.status, 403, fw);
      assert.equal(r.text, '{"error":"insufficient_permission","reason":"plan_expired","error_description":"the organization\'s plan has expired","required":"kb:read"}');
      r = await request(url + "/me", { headers: [bearer(GH.noOrg)] });
      assert.equal(r.status, 200, "no outcome: allowed");
    });
  }
});

test("orgCheck replaces the organization rule", { skip: needGatehouse }, async () => {
  // Staff of acme may act on every organization.
  const gh = createGatehouse({ issuer: GH.issuer, audience: GH.audience, orgCheck: (p, requested) => requested === "" || p.orgId === GH.acme || requested === p.orgId });
  await serve(gh, expressApp, async (url) => {
    let r = await request(url + `/orgs/${GH.beta}/kb`, { headers: [bearer(GH.member)] });
    assert.equal(r.status, 200, r.text);
    r = await request(url + `/orgs/${GH.acme}/kb`, { headers: [bearer(GH.betaMember)] });
    assert.equal(r.status, 403);
    assert.equal(r.json.reason, "other_organization");
    r = await request(url + `/kb?org_id=${GH.beta}&org_id=${GH.beta}`, { headers: [bearer(GH.member)] });
    assert.equal(r.status, 403, "an ambiguous request is refused whatever the rule");
  });
});

test("the middleware logs nothing by itself", { skip: needGatehouse }, async () => {
  const written = [];
  const saved = {};
  for (const m of ["log", "info", "warn", "error", "debug", "trace", "dir"]) {
    saved[m] = console[m];
    console[m] = (...a) => written.push(a.join(" "));
  }
  const emitWarning = process.emitWarning;
  process.emitWarning = (w) => written.push(String(w));
  try {
    const gh = createGatehouse({ issuer: GH.issuer, audience: GH.audience, apiKeys: { clientId: GH.clientId, clientSecret: "wrong-secret-0123456789" } });
    await serve(gh, expressApp, async (url) => {
      for (const h of [[], [bearer(GH.member)], [bearer("a.b.c")], [["X-API-Key", GH.apiKey]], [bearer(GH.idToken)]]) {
        await request(url + "/kb", { headers: h });
      }
    });
    const down = createGatehouse({ issuer: "http://127.0.0.1:1", audience: "a", startupBackoff: { minMs: 10, maxMs: 20 } });
    await new Promise((r) => setTimeout(r, 100));
    down.close();
  } finally {
    Object.assign(console, saved);
    process.emitWarning = emitWarning;
  }
  assert.deepEqual(written, []);
  // And no code path could: the sources name no console or process
  // stream, but for the one warning of the insecure development principal
  // (when no logger is given).
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src");
  const uses = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".js"))) {
    for (const line of readFileSync(path.join(dir, f), "utf8").split("\n")) {
      if (/console\.|process\.std(out|err)|emitWarning|debuglog/.test(line)) uses.push(`${f}: ${line.trim()}`);
    }
  }
  assert.deepEqual(uses, ['index.js: return { warn: (msg, fields) => console.warn(msg, JSON.stringify(fields)) };']);
});

test("a refusal's words reach the challenge safely, as Go sends them", async () => {
  const { invalidTokenRefusal } = await import("../src/answers.js");
  const http = await import("node:http");
  const words = 'you’re not a member "here"\r\nX-Injected: 1 ✓';
  const srv = http.createServer((req, res) => {
    const r = invalidTokenRefusal(words);
    for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
    res.writeHead(r.status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(r.body));
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  try {
    const got = await fetch(`http://127.0.0.1:${srv.address().port}/`);
    assert.equal(got.status, 401);
    assert.equal(got.headers.get("x-injected"), null);
    const challenge = Buffer.from(got.headers.get("www-authenticate"), "latin1").toString("utf8");
    assert.equal(challenge, `Bearer error="invalid_token", error_description="you’re not a member 'here'  X-Injected: 1 ✓"`);
    assert.equal((await got.json()).error_description, words);
  } finally {
    srv.close();
  }
});

test("unavailable() never shows its own words to the client", () => {
  const err = unavailable("dial tcp 10.0.0.5:5432: password authentication failed for dbpass=hunter2");
  assert.match(err.message, /hunter2/);
  const refusalOf = Object.getOwnPropertySymbols(err).map((s) => err[s]).find((v) => v && v.status === 503);
  assert.ok(refusalOf, "unavailable() carries a 503 refusal");
  assert.doesNotMatch(JSON.stringify(refusalOf.body), /hunter2|dial tcp/);
});
