// Webhook senders (static secrets, rotation, constant-time comparison)
// and the insecure development principal that refuses production. Neither
// needs Gatehouse: a webhook route takes no Gatehouse credential, and the
// development principal fetches nothing.

import { test } from "node:test";
import assert from "node:assert/strict";
import express from "express";
import Fastify from "fastify";

import { createGatehouse, MIN_WEBHOOK_SECRET_LEN } from "../src/index.js";
import { listen, request, bearer, apiKeyHeader } from "./helpers.js";

const CURRENT = "whsec-current-0123456789abcdefghij";
const PREVIOUS = "whsec-previous-0123456789abcdefghi";
const DEAD_ISSUER = "http://127.0.0.1:1";

function gatehouse(extra = {}) {
  return createGatehouse({ issuer: DEAD_ISSUER, audience: "kb-api", startupBackoff: { minMs: 60_000, maxMs: 60_000 }, ...extra });
}

async function webhookApps(gh, hook) {
  const e = express();
  e.post("/webhooks/chainhook", hook.authenticate(), gh.requirePermission("chainhook", "deliver"), (req, res) =>
    res.json({ principal: req.principal, url: req.originalUrl }));
  e.post("/webhooks/other", hook.authenticate(), gh.requirePermission("dao", "write"), (req, res) => res.json({}));
  const f = Fastify();
  f.decorateRequest("principal", null);
  f.post("/webhooks/chainhook", { onRequest: [hook.authenticate(), gh.requirePermission("chainhook", "deliver")] },
    async (request) => ({ principal: request.principal, url: request.raw.url }));
  f.post("/webhooks/other", { onRequest: [hook.authenticate(), gh.requirePermission("dao", "write")] }, async () => ({}));
  return { express: await listen(e), fastify: await listen(f) };
}

test("a webhook sender's secrets: either during a rotation, nothing else", async () => {
  const gh = gatehouse();
  const hook = gh.webhook({ name: "chainhook", secrets: [CURRENT, PREVIOUS], permissions: ["chainhook:deliver"] });
  const apps = await webhookApps(gh, hook);
  try {
    for (const [fw, srv] of Object.entries(apps)) {
      const post = (path, headers) => request(srv.url + path, { method: "POST", headers, body: { event: "dao_created" } });
      let r = await post("/webhooks/chainhook", [bearer(CURRENT)]);
      assert.equal(r.status, 200, `${fw}: ${r.text}`);
      assert.equal(r.json.principal.kind, "webhook");
      assert.equal(r.json.principal.sub, "webhook:chainhook");
      assert.equal(r.json.principal.token_id, "0");
      r = await post("/webhooks/chainhook", [bearer(PREVIOUS)]);
      assert.equal(r.status, 200, `${fw}: the previous secret during a rotation`);
      assert.equal(r.json.principal.token_id, "1");
      r = await post("/webhooks/chainhook?token=x&a=1", [bearer(CURRENT)]);
      assert.equal(r.status, 401, `${fw}: a query credential besides`);
      const cases = [
        [[], 401, "a webhook secret is required", "Bearer"],
        [[bearer(CURRENT + "x")], 401, "the webhook secret is not accepted"],
        [[bearer(CURRENT.slice(0, -1))], 401, "the webhook secret is not accepted"],
        [[["Authorization", CURRENT]], 401, "the Authorization header must be the Bearer scheme, one space and the webhook secret"],
        [[["Authorization", `bearer ${CURRENT}`]], 401, "the Authorization header must be the Bearer scheme, one space and the webhook secret"],
        [[bearer(CURRENT), bearer(CURRENT)], 401, "send one credential: the webhook secret alone"],
        [[bearer(CURRENT), apiKeyHeader("ghk_" + "A".repeat(43))], 401, "send one credential: the webhook secret alone"],
      ];
      for (const [headers, status, desc, challenge] of cases) {
        r = await post("/webhooks/chainhook", headers);
        assert.equal(r.status, status, `${fw}: ${desc}`);
        assert.equal(r.json.error_description, desc, fw);
        assert.ok(!r.text.includes(CURRENT.slice(0, 12)), `${fw}: no secret in the answer`);
        if (challenge) assert.equal(r.headers["www-authenticate"], challenge);
      }
      // An oversized secret is refused before hashing (Node's own header
      // limit stops it earlier on a default server).
      const huge = { method: "POST", url: "/", rawHeaders: ["Authorization", `Bearer ${"a".repeat(17 * 1024)}`], headers: {} };
      assert.throws(() => hook.authenticateRequest(huge), (err) => err.status === 401 && err.message === "the webhook secret is not accepted");
      // The sender's permissions are what the backend assigned.
      r = await post("/webhooks/other", [bearer(CURRENT)]);
      assert.equal(r.status, 403);
      assert.equal(r.json.reason, "missing_permission");
      // No organization: a request naming one is refused.
      r = await post(`/webhooks/chainhook?org_id=acme`, [bearer(CURRENT)]);
      assert.equal(r.status, 403);
      assert.equal(r.json.reason, "other_organization");
    }
  } finally {
    for (const s of Object.values(apps)) await s.close();
    gh.close();
  }
});

test("a webhook secret in a header of its own", async () => {
  const gh = gatehouse();
  const hook = gh.webhook({ name: "github_push", secrets: [CURRENT], permissions: ["*:deliver"], header: "X-Webhook-Token", orgId: "o1" });
  const app = express();
  app.post("/hook", hook.authenticate(), gh.requirePermission("repo", "deliver"), (req, res) => res.json(req.principal));
  const srv = await listen(app);
  try {
    let r = await request(srv.url + "/hook?org_id=o1", { method: "POST", headers: [["X-Webhook-Token", CURRENT]] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.org_id, "o1");
    r = await request(srv.url + "/hook", { method: "POST", headers: [["X-Webhook-Token", CURRENT], bearer("a.b.c")] });
    assert.equal(r.status, 401);
    assert.equal(r.json.error_description, "send one credential: the webhook secret alone");
    r = await request(srv.url + "/hook", { method: "POST", headers: [bearer(CURRENT)] });
    assert.equal(r.status, 401);
    assert.equal(r.json.error_description, "a webhook secret is required");
  } finally {
    await srv.close();
    gh.close();
  }
});

test("webhook options are checked; errors name a secret by position only", () => {
  const gh = gatehouse();
  const bad = [
    [{ secrets: [CURRENT] }, /name is required/],
    [{ name: "Chain", secrets: [CURRENT] }, /uppercase/],
    [{ name: "_chain", secrets: [CURRENT] }, /starts with an underscore/],
    [{ name: "chain" }, /at least one secret/],
    [{ name: "chain", secrets: [] }, /at least one secret/],
    [{ name: "chain", secrets: ["short"] }, new RegExp(`secrets\\[0\\] is shorter than ${MIN_WEBHOOK_SECRET_LEN} bytes`)],
    [{ name: "chain", secrets: [CURRENT, "has a space in it 0123456789"] }, /secrets\[1\] holds a space/],
    [{ name: "chain", secrets: [`Bearer ${CURRENT}`] }, /starts with "Bearer "/],
    [{ name: "chain", secrets: [CURRENT, CURRENT] }, /secrets\[1\] repeats secrets\[0\]/],
    [{ name: "chain", secrets: [CURRENT], permissions: ["KB:read"] }, /permissions/],
    [{ name: "chain", secrets: [CURRENT], header: "X-API-Key" }, /may not be X-API-Key/],
    [{ name: "chain", secrets: [CURRENT], header: "Bad Header" }, /not a header name/],
  ];
  for (const [o, want] of bad) {
    assert.throws(() => gh.webhook(o), (err) => {
      assert.match(err.message, want);
      assert.ok(!err.message.includes(CURRENT) && !err.message.includes("has a space"), "no secret in the error");
      return true;
    });
  }
  gh.close();
});

test("the insecure development principal: every request acts as it, and it refuses production", async () => {
  const dev = { subject: "dev-user", orgId: "o1", roles: ["owner"], permissions: ["kb:*"] };
  const warnings = [];
  const logger = { warn: (msg, fields) => warnings.push([msg, fields]) };
  const saved = { GATEHOUSE_ENV: process.env.GATEHOUSE_ENV, NODE_ENV: process.env.NODE_ENV };
  try {
    for (const [env, value] of [["GATEHOUSE_ENV", "production"], ["GATEHOUSE_ENV", "staging"], ["NODE_ENV", "production"]]) {
      delete process.env.GATEHOUSE_ENV;
      delete process.env.NODE_ENV;
      process.env[env] = value;
      assert.throws(() => gatehouse({ insecureDevPrincipal: dev, logger }), new RegExp(`${env}=`), `${env}=${value}`);
    }
    delete process.env.GATEHOUSE_ENV;
    delete process.env.NODE_ENV;
    assert.throws(() => gatehouse({ insecureDevPrincipal: dev, logger, production: true }), /options.production/);
    assert.throws(() => gatehouse({ insecureDevPrincipal: { orgId: "o1" }, logger }), /subject is required/);
    assert.throws(() => gatehouse({ insecureDevPrincipal: { ...dev, permissions: ["KB:*"] }, logger }), /permissions/);
    assert.throws(() => gatehouse({ insecureDevPrincipal: dev, logger: {} }), /logger/);
    assert.equal(warnings.length, 0, "nothing was built, nothing warned");

    process.env.GATEHOUSE_ENV = "development";
    const gh = gatehouse({ insecureDevPrincipal: dev, logger });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0][0], /INSECURE/);
    assert.equal(warnings[0][1].subject, "dev-user");
    assert.ok(gh.isReady(), "nothing to fetch");
    const app = express();
    app.get("/kb", gh.requirePermission("kb", "read"), (req, res) => res.json({ principal: req.principal, url: req.originalUrl }));
    app.get("/billing", gh.requirePermission("billing", "read"), (req, res) => res.json({}));
    const srv = await listen(app);
    try {
      let r = await request(srv.url + "/kb?token=whatever&x=1");
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.principal.kind, "insecure_dev");
      assert.equal(r.json.principal.sub, "dev-user");
      assert.equal(r.json.url, "/kb?x=1", "query credentials still leave the URL");
      r = await request(srv.url + "/kb", { headers: [bearer("not.a.token")] });
      assert.equal(r.status, 200, "no credential is read");
      r = await request(srv.url + "/billing");
      assert.equal(r.status, 403, "Require… still applies");
      r = await request(srv.url + "/kb?org_id=o2");
      assert.equal(r.status, 403, "the organization check still applies");
      assert.equal(r.json.reason, "other_organization");
    } finally {
      await srv.close();
      gh.close();
    }
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});
