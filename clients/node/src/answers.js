// The answers to requests that may not proceed: the same statuses, bodies
// and headers as Gatehouse's Go rbac package (docs/backends.md, "Answers").

import { STATUS_CODES } from "node:http";

/** RETRY_AFTER_SECONDS is the Retry-After of every 503. */
export const RETRY_AFTER_SECONDS = 5;

// Reasons of 403 answers (the "reason" member), as Go's rbac names them.
export const REASON_NO_ACTIVE_ORGANIZATION = "no_active_organization";
export const REASON_OTHER_ORGANIZATION = "other_organization";
export const REASON_MEMBERSHIP_INACTIVE = "membership_inactive";
export const REASON_MISSING_PERMISSION = "missing_permission";
export const REASON_MISSING_ROLE = "missing_role";
export const REASON_MISSING_SCOPE = "missing_scope";

// Human sentences of the 403 answers that do not depend on the rule (Go's
// rbac words them the same).
export const SENTENCE_NO_ACTIVE_ORGANIZATION =
  "the credential acts in no organization; refresh the token with organization=<organization id> to act in one";
export const SENTENCE_OTHER_ORGANIZATION = "the credential acts in another organization than this request concerns";
export const SENTENCE_MEMBERSHIP_INACTIVE = "the credential's membership in its organization is not active";

/**
 * Refusal is a prepared answer: status, headers and body, plus what a
 * refusal callback wants to know (error, reason, description). It never
 * holds the credential. Bodies are built once per rule, so a flood of bad
 * requests allocates little.
 */
export class Refusal {
  /**
   * @param {number} status 401, 403 or 503
   * @param {object} body the JSON body
   * @param {object} [extraHeaders]
   */
  constructor(status, body, extraHeaders = {}) {
    this.status = status;
    this.error = body.error;
    this.reason = body.reason ?? null;
    this.description = body.error_description ?? "";
    this.body = Object.freeze(body);
    this.bodyText = JSON.stringify(body);
    this.headers = Object.freeze({
      "Content-Type": "application/json",
      "Cache-Control": "no-store",
      ...extraHeaders,
    });
    Object.freeze(this);
  }
}

// BODY_ORDER is the order of a 403 body's members, as Go's rbac writes them.
const BODY_ORDER = ["error", "reason", "error_description", "required", "required_any", "required_role", "required_scope"];

function ordered(o) {
  const out = {};
  for (const k of BODY_ORDER) if (o[k] !== undefined && o[k] !== "") out[k] = o[k];
  return out;
}

/** noCredential answers a request without any credential: 401 with a bare "Bearer" challenge (RFC 6750 §3.1). */
export function noCredentialRefusal(description) {
  return new Refusal(401, { error: "invalid_token", error_description: description }, { "WWW-Authenticate": "Bearer" });
}

/** invalidToken answers a refused credential: 401 with an RFC 6750 challenge naming the reason. */
export function invalidTokenRefusal(description) {
  return new Refusal(
    401,
    { error: "invalid_token", error_description: description },
    { "WWW-Authenticate": `Bearer error="invalid_token", error_description="${challengeText(description)}"` },
  );
}

/**
 * challengeText makes a description safe inside the quoted error_description
 * of a WWW-Authenticate header, as Go's rbac does: a double quote becomes a
 * single one, a control character a space; other characters go out as their
 * UTF-8 bytes (Node writes a header string byte per character, so the UTF-8
 * is spelled in Latin-1 here).
 */
export function challengeText(description) {
  const safe = String(description).replaceAll('"', "'").replace(/[\u0000-\u001f\u007f]/g, " ");
  return Buffer.from(safe, "utf8").toString("latin1");
}

/** unavailableRefusal answers a credential that cannot be checked right now: 503 with Retry-After. */
export function unavailableRefusal(description) {
  return new Refusal(
    503,
    { error: "temporarily_unavailable", error_description: description },
    { "Retry-After": String(RETRY_AFTER_SECONDS) },
  );
}

/** forbiddenRefusal answers a valid credential that may not do this: 403 with a machine reason and a sentence. */
export function forbiddenRefusal(reason, description, fields = {}) {
  return new Refusal(403, ordered({ error: "insufficient_permission", reason, error_description: description, ...fields }));
}

/**
 * RefusalError carries a Refusal out of verify() and authenticateRequest():
 * status is its HTTP status, message its description.
 */
export class RefusalError extends Error {
  constructor(refusal) {
    super(refusal.description);
    this.name = "GatehouseRefusal";
    this.refusal = refusal;
    this.status = refusal.status;
  }
}

const CHECK = Symbol("gatehouse.check");

/**
 * refuse returns an error for the check option that refuses the credential
 * (401) with a reason the client reads; the reason must hold no secret.
 */
export function refuse(reason) {
  const err = new Error(reason);
  err[CHECK] = invalidTokenRefusal(String(reason));
  return err;
}

/**
 * forbid returns an error for the check option that refuses the request
 * with 403 insufficient_permission, a machine reason (1 to 64 lowercase
 * letters, digits and underscores, such as "membership_inactive") and one
 * sentence the caller reads, which must hold no secret. It throws on a
 * malformed reason: that is a programming error.
 */
export function forbid(reason, description) {
  if (typeof reason !== "string" || !/^[a-z0-9_]{1,64}$/.test(reason)) {
    throw new TypeError(`forbid: reason ${JSON.stringify(reason)} must be 1 to 64 lowercase letters, digits and underscores`);
  }
  const err = new Error(`forbidden: ${reason}: ${description}`);
  err[CHECK] = { status: 403, reason, description: String(description) };
  return err;
}

/**
 * membershipInactive is forbid("membership_inactive", description): the
 * credential's membership is suspended or otherwise not active.
 */
export function membershipInactive(description = SENTENCE_MEMBERSHIP_INACTIVE) {
  return forbid(REASON_MEMBERSHIP_INACTIVE, description);
}

/**
 * unavailable returns an error for the check option that could not decide
 * right now (its database is down): 503 with Retry-After, so the client
 * retries instead of signing the person out.
 */
export function unavailable(description = "the credential cannot be checked right now; try again shortly") {
  // As in Go, the client never reads the check's own words (they may be a
  // storage error's): description stays in err.message, for logs.
  const err = new Error(description);
  err[CHECK] = unavailableRefusal("the credential cannot be checked right now; try again shortly");
  return err;
}

/** checkOutcome is what a check hook's error means: a Refusal, or a 403 description. */
export function checkOutcome(err) {
  return err && typeof err === "object" ? err[CHECK] ?? null : null;
}

/**
 * writeRefusal writes a refusal with the framework's response object:
 * Fastify's reply, or Express's (or plain Node's) response.
 */
export function writeRefusal(res, refusal) {
  if (res && typeof res.code === "function" && typeof res.send === "function" && res.raw) {
    // A Buffer: Fastify adds a charset to the content type of strings.
    res.code(refusal.status).headers(refusal.headers).send(Buffer.from(refusal.bodyText));
    return;
  }
  if (res.headersSent) {
    res.destroy?.();
    return;
  }
  res.statusCode = refusal.status;
  for (const [k, v] of Object.entries(refusal.headers)) res.setHeader(k, v);
  res.setHeader("Content-Length", Buffer.byteLength(refusal.bodyText));
  res.end(refusal.bodyText);
}

/**
 * rejectUpgrade answers a refused WebSocket upgrade on its raw socket (the
 * "upgrade" event of a Node server) and closes the socket.
 */
export function rejectUpgrade(socket, refusal) {
  if (socket.destroyed) return;
  const lines = [`HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? ""}`];
  for (const [k, v] of Object.entries(refusal.headers)) lines.push(`${k}: ${v}`);
  lines.push(`Content-Length: ${Buffer.byteLength(refusal.bodyText)}`, "Connection: close", "", "");
  socket.end(lines.join("\r\n") + refusal.bodyText);
  socket.once("finish", () => socket.destroy());
}
