// Test helpers: the live Gatehouse the Go test started (clients/node/node_test.go),
// tiny Express and Fastify apps using the middleware, and a raw HTTP client
// that can send a header twice.

import http from "node:http";
import { once } from "node:events";
import express from "express";
import Fastify from "fastify";

/**
 * GH is the live Gatehouse's URL, tokens and expected values, or null when
 * the tests run without the Go test (npm test alone).
 */
export const GH = process.env.GH_ISSUER
  ? {
      issuer: process.env.GH_ISSUER,
      audience: process.env.GH_AUDIENCE,
      clientId: process.env.GH_CLIENT_ID,
      clientSecret: process.env.GH_CLIENT_SECRET,
      acme: process.env.GH_ACME,
      beta: process.env.GH_BETA,
      admin: process.env.GH_ADMIN_TOKEN,
      member: process.env.GH_MEMBER_TOKEN,
      idToken: process.env.GH_ID_TOKEN,
      reader: process.env.GH_READER_TOKEN,
      viewer: process.env.GH_VIEWER_TOKEN,
      lead: process.env.GH_LEAD_TOKEN,
      betaMember: process.env.GH_BETA_TOKEN,
      noOrg: process.env.GH_NOORG_TOKEN,
      otherAudience: process.env.GH_OTHER_AUD_TOKEN,
      underscore: process.env.GH_UNDERSCORE_TOKEN || "",
      apiKey: process.env.GH_API_KEY,
      apiKeyId: process.env.GH_API_KEY_ID,
      disableKey: process.env.GH_DISABLE_KEY,
      disableKeyId: process.env.GH_DISABLE_KEY_ID,
    }
  : null;

/** needGatehouse is the skip option of tests that need the live Gatehouse. */
export const needGatehouse = GH ? false : "needs a live Gatehouse: run go test ./clients/node";

/** countingFetch wraps fetch and counts requests per URL path. */
export function countingFetch() {
  const counts = new Map();
  const f = async (url, init) => {
    const path = new URL(url).pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    return fetch(url, init);
  };
  f.count = (suffix) => {
    let n = 0;
    for (const [p, c] of counts) if (p.endsWith(suffix)) n += c;
    return n;
  };
  return f;
}

function handlerBody(req, principal) {
  return { principal, url: req.originalUrl ?? req.url };
}

// routes is what both apps serve: [method, path, middleware name, args].
const routes = [
  ["GET", "/kb", "requirePermission", ["kb", "read"]],
  ["POST", "/kb", "requirePermission", ["kb", "write"]],
  ["GET", "/orgs/:org_id/kb", "requirePermission", ["kb:read"]],
  ["DELETE", "/kb/:id", "requireAnyPermission", ["kb:delete", "kb:admin"]],
  ["GET", "/billing", "requireRole", ["admin"]],
  ["GET", "/me", "authenticate", []],
  ["GET", "/scoped", "requireScope", ["email"]],
  ["GET", "/scoped-admin", "requireScope", ["kb:admin"]],
  ["GET", "/keys", "requirePermission", ["api_key", "read"]],
];

/** expressApp serves the routes with Express 5 and the middleware. */
export function expressApp(gh) {
  const app = express();
  app.get("/public", (req, res) => res.json({ anyone: true }));
  for (const [method, path, mw, args] of routes) {
    app[method.toLowerCase()](path, gh[mw](...args), (req, res) => res.json(handlerBody(req, req.principal)));
  }
  return app;
}

/**
 * fastifyApp serves the routes with Fastify 5 and the middleware as an
 * onRequest hook (before the body is parsed).
 */
export function fastifyApp(gh) {
  const app = Fastify({ logger: false });
  app.decorateRequest("principal", null);
  app.get("/public", async () => ({ anyone: true }));
  for (const [method, path, mw, args] of routes) {
    app.route({
      method,
      url: path,
      onRequest: gh[mw](...args),
      handler: async (request) => handlerBody(request.raw, request.principal),
    });
  }
  return app;
}

/** listen starts an Express app or a Node server on a free port and returns {url, close}. */
export async function listen(appOrServer, serverOptions = {}) {
  if (appOrServer && typeof appOrServer.inject === "function") {
    const url = await appOrServer.listen({ port: 0, host: "127.0.0.1" });
    return { url, close: () => appOrServer.close() };
  }
  const server = appOrServer instanceof http.Server ? appOrServer : http.createServer(serverOptions, appOrServer);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/**
 * request sends one HTTP request; headers is a list of [name, value] pairs
 * (a name may repeat). It resolves to {status, headers, text, json}.
 */
export function request(url, { method = "GET", headers = [], body } = {}) {
  return new Promise((resolve, reject) => {
    const flat = ["Host", new URL(url).host]; // raw header arrays get no Host by default
    for (const [k, v] of headers) flat.push(k, v);
    if (body !== undefined) flat.push("content-type", "application/json");
    const req = http.request(url, { method, headers: flat }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** bearer is an Authorization header pair. */
export const bearer = (token) => ["Authorization", `Bearer ${token}`];

/** apiKeyHeader is an X-API-Key header pair. */
export const apiKeyHeader = (key) => ["X-API-Key", key];

/** upgradeHeaders make a request a WebSocket opening handshake. */
export const upgradeHeaders = [
  ["Connection", "Upgrade"],
  ["Upgrade", "websocket"],
  ["Sec-WebSocket-Version", "13"],
  ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="],
];

/** b64url encodes JSON or bytes as base64url. */
export function b64url(v) {
  const buf = Buffer.isBuffer(v) ? v : Buffer.from(typeof v === "string" ? v : JSON.stringify(v));
  return buf.toString("base64url");
}

/** parts splits a compact JWT into its decoded header and payload and its raw segments. */
export function parts(token) {
  const [h, p, s] = token.split(".");
  return {
    header: JSON.parse(Buffer.from(h, "base64url").toString()),
    payload: JSON.parse(Buffer.from(p, "base64url").toString()),
    raw: [h, p, s],
  };
}
