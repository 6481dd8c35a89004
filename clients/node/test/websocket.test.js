// WebSocket upgrades against a live Gatehouse: ?token= or ?key= (exactly
// one), with the ws package's verifyClient and with a raw "upgrade"
// handler; the credential is gone from the URL the application sees.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";
import { WebSocket, WebSocketServer } from "ws";
import Fastify from "fastify";
import fastifyWebsocket from "@fastify/websocket";

import { createGatehouse, principalOf, rejectUpgrade } from "../src/index.js";
import { GH, needGatehouse, listen } from "./helpers.js";

let gh;
const servers = [];

before(async () => {
  if (!GH) return;
  gh = createGatehouse({ issuer: GH.issuer, audience: GH.audience, apiKeys: { clientId: GH.clientId, clientSecret: GH.clientSecret } });
  await gh.ready({ timeoutMs: 10_000 });
});

after(async () => {
  for (const s of servers) await s.close();
  gh?.close();
});

// connect opens a WebSocket and resolves to {open, status, body, hello}.
function connect(url, headers = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on("message", (data) => {
      resolve({ open: true, hello: JSON.parse(data.toString()) });
      ws.close();
    });
    ws.on("unexpected-response", (req, res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ open: false, status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    ws.on("error", () => {});
  });
}

// verifyClientServer: ws with verifyClient(requirePermission kb:read).
async function verifyClientServer() {
  const server = http.createServer((req, res) => res.end("http"));
  const wss = new WebSocketServer({ server, verifyClient: gh.verifyClient(gh.requirePermission("kb", "read")) });
  wss.on("connection", (ws, req) => {
    const p = principalOf(req);
    ws.send(JSON.stringify({ kind: p.kind, org_id: p.orgId, sub: p.subject, url: req.url }));
  });
  const s = await listen(server);
  servers.push(s);
  return s.url.replace("http", "ws");
}

// rawUpgradeServer: the "upgrade" event with authenticateUpgrade and rejectUpgrade.
async function rawUpgradeServer() {
  const server = http.createServer((req, res) => res.end("http"));
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", async (req, socket, head) => {
    const out = await gh.authenticateUpgrade(req, gh.requireRole("member", "admin"));
    if (!out.ok) return rejectUpgrade(socket, out.refusal);
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ kind: out.principal.kind, org_id: out.principal.orgId, url: req.url }));
    });
  });
  const s = await listen(server);
  servers.push(s);
  return s.url.replace("http", "ws");
}

test("ws verifyClient: ?token= or ?key=, exactly one", { skip: needGatehouse }, async () => {
  const base = await verifyClientServer();
  let r = await connect(`${base}/ws?token=${encodeURIComponent(GH.reader)}&org_id=${GH.acme}`);
  assert.ok(r.open, JSON.stringify(r));
  assert.equal(r.hello.kind, "access_token");
  assert.equal(r.hello.org_id, GH.acme);
  assert.equal(r.hello.url, `/ws?org_id=${GH.acme}`, "the token is gone from the URL");
  r = await connect(`${base}/ws?key=${GH.apiKey}`);
  assert.ok(r.open, JSON.stringify(r));
  assert.equal(r.hello.kind, "api_key");
  assert.equal(r.hello.url, "/ws");
  r = await connect(`${base}/ws`, { Authorization: `Bearer ${GH.member}` });
  assert.ok(r.open, "a header works on upgrades too");

  const refused = [
    ["no credential", `${base}/ws`, 401, "a bearer access token is required"],
    ["token and key", `${base}/ws?token=${encodeURIComponent(GH.reader)}&key=${GH.apiKey}`, 401, /send one credential/],
    ["two tokens", `${base}/ws?token=${encodeURIComponent(GH.reader)}&token=${encodeURIComponent(GH.reader)}`, 401, /send one credential/],
    ["garbage key", `${base}/ws?key=nope`, 401, "the API key is malformed"],
    ["ID token", `${base}/ws?token=${encodeURIComponent(GH.idToken)}`, 401, "not an access token (typ must be at+jwt)"],
    ["another organization", `${base}/ws?token=${encodeURIComponent(GH.reader)}&org_id=${GH.beta}`, 403, "the credential acts in another organization than this request concerns"],
    ["missing permission", `${base}/ws?token=${encodeURIComponent(GH.noOrg)}`, 403, /no organization/],
  ];
  for (const [name, url, status, desc] of refused) {
    r = await connect(url);
    assert.equal(r.open, false, name);
    assert.equal(r.status, status, `${name}: ${r.body}`);
    assert.equal(r.headers["content-type"], "application/json", name);
    const body = JSON.parse(r.body);
    if (desc instanceof RegExp) assert.match(body.error_description, desc, name);
    else assert.equal(body.error_description, desc, name);
    assert.ok(!r.body.includes(GH.reader.slice(0, 40)), `${name}: no token in the answer`);
  }
  r = await connect(`${base}/ws?token=${encodeURIComponent(GH.reader)}&token=x`, { Authorization: `Bearer ${GH.member}` });
  assert.equal(r.status, 401, "a header and a query token are two credentials");
});

test("raw upgrade handler: authenticateUpgrade and rejectUpgrade", { skip: needGatehouse }, async () => {
  const base = await rawUpgradeServer();
  let r = await connect(`${base}/chat?key=${GH.apiKey}`);
  assert.equal(r.open, false, "an API key holds no role");
  assert.equal(r.status, 403);
  assert.equal(JSON.parse(r.body).reason, "missing_role");
  r = await connect(`${base}/chat?token=${encodeURIComponent(GH.member)}&room=1`);
  assert.ok(r.open, JSON.stringify(r));
  assert.equal(r.hello.url, "/chat?room=1");
  r = await connect(`${base}/chat?token=${encodeURIComponent(GH.viewer)}`);
  assert.equal(r.status, 403);
  assert.deepEqual(JSON.parse(r.body).required_role, ["member", "admin"]);
  r = await connect(`${base}/chat?token=${encodeURIComponent(GH.member)}x`);
  assert.equal(r.status, 401);
  assert.match(r.headers["www-authenticate"], /^Bearer error="invalid_token"/);
});

test("@fastify/websocket runs the hook on upgrades", { skip: needGatehouse }, async () => {
  const app = Fastify({ logger: false });
  app.decorateRequest("principal", null);
  await app.register(fastifyWebsocket);
  app.get("/ws", { websocket: true, onRequest: gh.requirePermission("kb", "read") }, (socket, request) => {
    socket.send(JSON.stringify({ kind: request.principal.kind, org_id: request.principal.orgId, url: request.raw.url }));
  });
  const s = await listen(app);
  servers.push(s);
  const base = s.url.replace("http", "ws");
  let r = await connect(`${base}/ws?token=${encodeURIComponent(GH.reader)}`);
  assert.ok(r.open, JSON.stringify(r));
  assert.deepEqual(r.hello, { kind: "access_token", org_id: GH.acme, url: "/ws" });
  r = await connect(`${base}/ws?key=${GH.apiKey}`);
  assert.ok(r.open, JSON.stringify(r));
  assert.equal(r.hello.kind, "api_key");
  r = await connect(`${base}/ws`);
  assert.equal(r.open, false);
  assert.equal(r.status, 401);
  assert.equal(JSON.parse(r.body).error_description, "a bearer access token is required");
  r = await connect(`${base}/ws?token=${encodeURIComponent(GH.reader)}&org_id=${GH.beta}`);
  assert.equal(r.status, 403);
  assert.equal(JSON.parse(r.body).reason, "other_organization");
});

test("query credentials are never accepted on plain requests", { skip: needGatehouse }, async () => {
  // A plain GET to the same server: the query parameter is not a credential.
  const server = http.createServer(async (req, res) => {
    const out = await gh.authenticateUpgrade(req); // the helper itself refuses without an upgrade
    res.statusCode = out.ok ? 200 : out.refusal.status;
    res.end(JSON.stringify({ url: req.url, description: out.refusal?.description }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    for (const q of [`token=${encodeURIComponent(GH.member)}`, `key=${GH.apiKey}`]) {
      const res = await fetch(`${base}/ws?${q}&x=1`);
      const body = await res.json();
      assert.equal(res.status, 401, q);
      assert.equal(body.description, "a bearer access token is required");
      assert.equal(body.url, "/ws?x=1", "removed from the URL all the same");
    }
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
