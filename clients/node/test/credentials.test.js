// Finding a request's one credential: headers, the WebSocket query
// parameters, and what is removed from the URL.

import { test } from "node:test";
import assert from "node:assert/strict";

import { extractCredential, isWebSocketUpgrade, parseJWTSyntax, parseAPIKey, MAX_TOKEN_LEN } from "../src/credentials.js";

const JWT = "aaa.bbb.ccc";
const KEY = "ghk_" + "A".repeat(43);

// fakeReq is the part of http.IncomingMessage extractCredential reads.
function fakeReq({ method = "GET", url = "/", headers = [], upgrade = false } = {}) {
  const raw = [];
  for (const [k, v] of headers) raw.push(k, v);
  if (upgrade) raw.push("Connection", "keep-alive, Upgrade", "Upgrade", "websocket");
  return { method, url, rawHeaders: raw, headers: {} };
}

function reason(fn) {
  try {
    fn();
  } catch (err) {
    return err.reason;
  }
  return "accepted";
}

test("headers: exactly one credential, Bearer with one space", () => {
  assert.deepEqual(extractCredential(fakeReq({ headers: [["Authorization", `Bearer ${JWT}`]] })), { kind: "access_token", value: JWT });
  assert.deepEqual(extractCredential(fakeReq({ headers: [["x-api-key", KEY]] })), { kind: "api_key", value: KEY });
  const cases = [
    [[], "a bearer access token is required"],
    [[["Authorization", `bearer ${JWT}`]], "the Authorization header must be the Bearer scheme, one space and an access token"],
    [[["Authorization", `Bearer  ${JWT}`]], "the access token is malformed"],
    [[["Authorization", `Basic ${JWT}`]], "the Authorization header must be the Bearer scheme, one space and an access token"],
    [[["Authorization", `Bearer ${JWT}`], ["Authorization", `Bearer ${JWT}`]], "send one credential: an Authorization header, an X-API-Key header, or on a WebSocket upgrade a token or key query parameter"],
    [[["Authorization", `Bearer ${JWT}`], ["X-API-Key", KEY]], "send one credential: an Authorization header, an X-API-Key header, or on a WebSocket upgrade a token or key query parameter"],
    [[["X-API-Key", KEY], ["X-API-Key", KEY]], "send one credential: an Authorization header, an X-API-Key header, or on a WebSocket upgrade a token or key query parameter"],
    [[["X-API-Key", "not-a-key"]], "the API key is malformed"],
    [[["X-API-Key", KEY + "A"]], "the API key is malformed"],
    [[["X-API-Key", "ghk_" + "A".repeat(42) + "="]], "the API key is malformed"],
    [[["Authorization", "Bearer a.b"]], "the access token is malformed"],
    [[["Authorization", "Bearer a..c"]], "the access token is malformed"],
    [[["Authorization", "Bearer a.b.c.d"]], "the access token is malformed"],
    [[["Authorization", "Bearer a.b.c="]], "the access token is malformed"],
    [[["Authorization", "Bearer a.b."]], "the access token is malformed"],
    [[["Authorization", `Bearer ${"a".repeat(MAX_TOKEN_LEN)}.b.c`]], "the access token is malformed"],
  ];
  for (const [headers, want] of cases) {
    assert.equal(reason(() => extractCredential(fakeReq({ headers }))), want, JSON.stringify(headers).slice(0, 120));
  }
});

test("?token= and ?key= count only on WebSocket upgrades, and are removed from the URL", () => {
  // Upgrade: each is a credential.
  let req = fakeReq({ url: `/ws?a=1&token=${JWT}&b=2`, upgrade: true });
  assert.deepEqual(extractCredential(req), { kind: "access_token", value: JWT });
  assert.equal(req.url, "/ws?a=1&b=2");
  req = fakeReq({ url: `/ws?key=${KEY}`, upgrade: true });
  assert.deepEqual(extractCredential(req), { kind: "api_key", value: KEY });
  assert.equal(req.url, "/ws");
  // Exactly one.
  for (const url of [`/ws?token=${JWT}&key=${KEY}`, `/ws?token=${JWT}&token=${JWT}`, `/ws?key=${KEY}&key=${KEY}`]) {
    req = fakeReq({ url, upgrade: true });
    assert.match(reason(() => extractCredential(req)), /send one credential/, url);
    assert.equal(req.url, "/ws");
  }
  req = fakeReq({ url: `/ws?token=${JWT}`, upgrade: true, headers: [["Authorization", `Bearer ${JWT}`]] });
  assert.match(reason(() => extractCredential(req)), /send one credential/);
  req = fakeReq({ url: `/ws?key=not-a-key`, upgrade: true });
  assert.equal(reason(() => extractCredential(req)), "the API key is malformed");

  // Not an upgrade: never a credential, and removed all the same.
  req = fakeReq({ url: `/kb?token=${JWT}` });
  assert.equal(reason(() => extractCredential(req)), "a bearer access token is required");
  assert.equal(req.url, "/kb");
  req = fakeReq({ url: `/kb?key=${KEY}&page=2` });
  assert.equal(reason(() => extractCredential(req)), "a bearer access token is required");
  assert.equal(req.url, "/kb?page=2");
  req = fakeReq({ url: `/kb?key=sort-order&token=x`, headers: [["Authorization", `Bearer ${JWT}`]] });
  assert.deepEqual(extractCredential(req), { kind: "access_token", value: JWT });
  assert.equal(req.url, "/kb", "removed whatever its value, as Go's rbac does");
  // Encoded names are decoded as frameworks decode them.
  req = fakeReq({ url: `/ws?%74oken=${JWT}`, upgrade: true });
  assert.deepEqual(extractCredential(req), { kind: "access_token", value: JWT });
  assert.equal(req.url, "/ws");
  // An undecodable name is dropped rather than risk keeping a credential.
  req = fakeReq({ url: `/kb?%zz=1&a=2`, headers: [["Authorization", `Bearer ${JWT}`]] });
  extractCredential(req);
  assert.equal(req.url, "/kb?a=2");
  // A POST with upgrade headers is not an upgrade.
  req = fakeReq({ method: "POST", url: `/ws?token=${JWT}`, upgrade: true });
  assert.equal(reason(() => extractCredential(req)), "a bearer access token is required");
});

test("the parsed query and originalUrl are cleaned too", () => {
  const req = fakeReq({ url: `/ws?token=${JWT}&x=1`, upgrade: true });
  req.originalUrl = `/api/ws?token=${JWT}&x=1`;
  req.query = { token: JWT, x: "1" };
  const fastifyRequest = { raw: req, query: { token: JWT, x: "1" } };
  extractCredential(req, fastifyRequest);
  assert.equal(req.originalUrl, "/api/ws?x=1");
  assert.deepEqual(req.query, { x: "1" });
  assert.deepEqual(fastifyRequest.query, { x: "1" });
});

test("isWebSocketUpgrade needs GET, Connection: upgrade and Upgrade: websocket", () => {
  assert.ok(isWebSocketUpgrade(fakeReq({ upgrade: true })));
  assert.ok(!isWebSocketUpgrade(fakeReq({ headers: [["Upgrade", "websocket"]] })));
  assert.ok(!isWebSocketUpgrade(fakeReq({ headers: [["Connection", "upgrade"], ["Upgrade", "h2c"]] })));
  assert.ok(isWebSocketUpgrade(fakeReq({ headers: [["connection", "UPGRADE"], ["upgrade", "WebSocket"]] })));
  assert.ok(!isWebSocketUpgrade(fakeReq({ method: "HEAD", upgrade: true })));
});

test("syntax checks spend nothing on garbage", () => {
  assert.throws(() => parseJWTSyntax(""), /malformed/);
  assert.throws(() => parseJWTSyntax(null), /malformed/);
  assert.throws(() => parseJWTSyntax("a.b.c\n"), /malformed/);
  assert.throws(() => parseAPIKey("ghk_" + "é".repeat(43)), /malformed/);
  assert.throws(() => parseAPIKey(undefined), /malformed/);
  assert.deepEqual(parseAPIKey(KEY), { kind: "api_key", value: KEY });
});
