// Webhook senders authenticated by static secrets, as Gatehouse's Go rbac
// package does it (rbac/webhook.go): several secrets at once for rotation,
// kept only as SHA-256 hashes, compared in constant time (every stored
// hash, whichever matches), never logged nor named by value in errors.

import { createHash, timingSafeEqual } from "node:crypto";

import { API_KEY_HEADER, CredentialError, MAX_TOKEN_LEN, headerValues, stripQueryCredentials } from "./credentials.js";
import { validateGrant, validatePermission } from "./permission.js";

/** MIN_WEBHOOK_SECRET_LEN is the shortest webhook secret accepted, in bytes. */
export const MIN_WEBHOOK_SECRET_LEN = 16;

/** WEBHOOK_SUBJECT_PREFIX starts the subject of a webhook principal: "webhook:<name>". */
export const WEBHOOK_SUBJECT_PREFIX = "webhook:";

/** KIND_WEBHOOK is the kind of a webhook sender's principal. */
export const KIND_WEBHOOK = "webhook";

// Webhook refusals; none holds a secret (Go's words).
export const REASON_WEBHOOK_NONE = "a webhook secret is required";
export const REASON_WEBHOOK_NOT_BEARER = "the Authorization header must be the Bearer scheme, one space and the webhook secret";
export const REASON_WEBHOOK_REFUSED = "the webhook secret is not accepted";
export const REASON_WEBHOOK_TWO = "send one credential: the webhook secret alone";

/** checkWebhookSecret says what is wrong with a secret, without its value, or "". */
export function checkWebhookSecret(s) {
  if (typeof s !== "string") return "is not a string";
  if (s.toLowerCase().startsWith("bearer ")) {
    return 'starts with "Bearer ": give the secret alone; the sender sends "Authorization: Bearer <secret>"';
  }
  const len = Buffer.byteLength(s, "utf8");
  if (len < MIN_WEBHOOK_SECRET_LEN) return `is shorter than ${MIN_WEBHOOK_SECRET_LEN} bytes`;
  if (len > MAX_TOKEN_LEN) return `is longer than ${MAX_TOKEN_LEN} bytes`;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return "holds a space, a control character or a non-ASCII byte: printable ASCII only";
  }
  return "";
}

const HEADER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * parseWebhookOptions checks a webhook sender's options and returns
 * {name, hashes, principals, header}; it throws on a malformed name,
 * permission or header, and on no, a short, a malformed or a repeated
 * secret (naming a secret by its position only).
 */
export function parseWebhookOptions(o, makePrincipal) {
  const name = o?.name;
  if (typeof name !== "string" || name === "") throw new TypeError("gatehouse: webhook name is required");
  // The name follows the rule of a permission's part.
  const nameErr = validatePermission(`${name}:x`);
  if (nameErr) throw new TypeError(`gatehouse: webhook name ${JSON.stringify(name)} is malformed: ${nameErr.reason}`);
  const secrets = o.secrets;
  if (!Array.isArray(secrets) || secrets.length === 0) {
    throw new TypeError(`gatehouse: webhook ${name}: secrets: at least one secret is required`);
  }
  const permissions = o.permissions ?? [];
  if (!Array.isArray(permissions)) throw new TypeError(`gatehouse: webhook ${name}: permissions must be an array`);
  for (const g of permissions) {
    const err = validateGrant(g);
    if (err) throw new TypeError(`gatehouse: webhook ${name}: permissions: ${err.message}`);
  }
  let header = "";
  if (o.header !== undefined && o.header !== "") {
    if (typeof o.header !== "string" || !HEADER_TOKEN.test(o.header)) {
      throw new TypeError(`gatehouse: webhook ${name}: header ${JSON.stringify(o.header)} is not a header name`);
    }
    header = o.header.toLowerCase();
    if (header === API_KEY_HEADER.toLowerCase()) {
      throw new TypeError(`gatehouse: webhook ${name}: header may not be ${API_KEY_HEADER}, which carries API keys`);
    }
    if (header === "authorization") header = ""; // the default: Bearer
  }
  const hashes = [];
  const principals = [];
  secrets.forEach((s, i) => {
    const reason = checkWebhookSecret(s);
    if (reason) throw new TypeError(`gatehouse: webhook ${name}: secrets[${i}] ${reason}`);
    const h = createHash("sha256").update(s, "utf8").digest();
    const j = hashes.findIndex((seen) => seen.equals(h));
    if (j >= 0) throw new TypeError(`gatehouse: webhook ${name}: secrets[${i}] repeats secrets[${j}]`);
    hashes.push(h);
    principals.push(makePrincipal({ kind: KIND_WEBHOOK, subject: WEBHOOK_SUBJECT_PREFIX + name, orgId: o.orgId ?? "",
      permissions: [...permissions], tokenId: String(i) }));
  });
  return { name, hashes, principals, header };
}

/**
 * webhookSecretIndex returns the index of the secret a raw request
 * carries, or throws a CredentialError when it carries none, another credential
 * besides (an Authorization or X-API-Key header, a token or key query
 * parameter), or one that is not accepted. The token and key query
 * parameters leave the URL as on every other path.
 */
export function webhookSecretIndex(req, framework, hook) {
  const q = stripQueryCredentials(req, framework);
  const queryCreds = q.tokens.length + q.keys.length;
  const auth = headerValues(req, "authorization");
  const keys = headerValues(req, API_KEY_HEADER);
  let values;
  let others = keys.length + queryCreds;
  if (hook.header === "") {
    values = auth;
  } else {
    values = headerValues(req, hook.header);
    others += auth.length;
  }
  if (values.length === 0) throw new CredentialError(REASON_WEBHOOK_NONE);
  if (values.length !== 1 || others > 0) throw new CredentialError(REASON_WEBHOOK_TWO);
  let secret = values[0];
  if (hook.header === "") {
    if (!secret.startsWith("Bearer ")) throw new CredentialError(REASON_WEBHOOK_NOT_BEARER);
    secret = secret.slice("Bearer ".length);
  }
  if (secret.length > MAX_TOKEN_LEN) throw new CredentialError(REASON_WEBHOOK_REFUSED);
  const h = createHash("sha256").update(secret, "utf8").digest();
  // Every stored hash is compared, whichever matches: the time taken says
  // nothing about which secret, or how much of one, was right.
  let match = -1;
  for (let i = 0; i < hook.hashes.length; i++) {
    const eq = timingSafeEqual(h, hook.hashes[i]);
    if (eq && match < 0) match = i;
  }
  if (match < 0) throw new CredentialError(REASON_WEBHOOK_REFUSED);
  return match;
}
