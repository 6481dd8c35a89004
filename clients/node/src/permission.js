// Permission grammar and wildcard matching, as Gatehouse's Go rbac package
// (rbac/permission.go) defines them, so that a grant means the same in a
// Node backend as in Gatehouse and in Go backends. The shared cases in
// rbac/testdata/permission-cases.json are run against this file.
//
// A permission is "resource:action", each part made of lowercase letters,
// digits, hyphens and underscores, starting and ending with a letter or
// digit ("kb:read", "api-key:rotate", "api_key:rotate"). A grant,
// what a role holds, may use wildcards: "*" (everything), "kb:*" (every
// action on kb), "*:read" (read on every resource) and a trailing "*"
// after a prefix ("kb:r*" covers kb:read and kb:run). A wildcard may only
// end a part.

/** MAX_LEN bounds a permission or grant; real ones are short. */
export const MAX_LEN = 128;

/** MAX_ROLE_NAME_LEN bounds a role name. */
export const MAX_ROLE_NAME_LEN = 63;

const EXAMPLE = "write resource:action, such as kb:read";

/**
 * PermissionError says what is wrong with a permission, grant or role
 * name, in words a person can act on. It never holds a credential.
 */
export class PermissionError extends Error {
  /**
   * @param {string} kind "permission", "grant" or "role name"
   * @param {string} value what was checked
   * @param {string} reason what is wrong
   */
  constructor(kind, value, reason) {
    super(`${kind} ${JSON.stringify(value)}: ${reason}`);
    this.name = "PermissionError";
    this.kind = kind;
    this.value = value;
    this.reason = reason;
  }
}

// byteLength is the length Go's len() gives: UTF-8 bytes.
function byteLength(s) {
  return Buffer.byteLength(s, "utf8");
}

// checkPart returns why one part (or a role name) is malformed, or "".
// With wildcards, a part may be "*" or end with "*" after a valid prefix.
// With underscores, "_" is allowed like "-": inside a name, never first,
// and never last unless a wildcard follows ("team_*").
function checkPart(v, wildcards, underscores) {
  let name = v;
  const n = v.split("*").length - 1;
  if (n > 1) return "has more than one wildcard; a wildcard may only end a part, as in kb:r*";
  if (n === 1 && !v.endsWith("*")) return "has a wildcard in the middle; a wildcard may only end a part, as in kb:r*";
  if (n === 1 && !wildcards) return "is a wildcard; a required permission names one resource and one action";
  if (n === 1) {
    name = v.slice(0, -1);
    if (name === "") return "";
  }
  const allowedChars = underscores
    ? "only lowercase letters, digits, hyphens and underscores are allowed"
    : "only lowercase letters, digits and hyphens are allowed";
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if ((c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c === "-" || (c === "_" && underscores)) continue;
    if (c >= "A" && c <= "Z") return `has the uppercase letter ${JSON.stringify(c)}; use lowercase`;
    if (c === " " || c === "\t") return "contains a space";
    const cp = String.fromCodePoint(name.codePointAt(i));
    return `contains ${JSON.stringify(cp)}; ${allowedChars}`;
  }
  if (name === "") return "";
  const first = name[0];
  const last = name[name.length - 1];
  if (first === "-") return "starts with a hyphen; start with a letter or digit";
  if (first === "_") return "starts with an underscore; start with a letter or digit";
  if (name === v && last === "-") return "ends with a hyphen";
  if (name === v && last === "_") return "ends with an underscore";
  return "";
}

// parse checks the overall shape and both parts, returning [resource, action].
function parse(kind, s, wildcards) {
  const fail = (reason) => {
    throw new PermissionError(kind, s, reason);
  };
  if (typeof s !== "string") fail("is not a string; " + EXAMPLE);
  if (s === "") fail("is empty; " + EXAMPLE);
  if (byteLength(s) > MAX_LEN) fail(`is longer than ${MAX_LEN} characters`);
  const i = s.indexOf(":");
  if (i < 0) fail("has no colon; " + EXAMPLE);
  const res = s.slice(0, i);
  const act = s.slice(i + 1);
  if (act.includes(":")) fail("has more than one colon; " + EXAMPLE);
  if (res === "") fail("has an empty resource before the colon");
  if (act === "") fail("has an empty action after the colon");
  for (const [what, v] of [["resource", res], ["action", act]]) {
    const reason = checkPart(v, wildcards, true);
    if (reason !== "") fail(`${what} ${JSON.stringify(v)} ${reason}`);
  }
  return [res, act];
}

/**
 * Grant is a parsed grant; its parts may end with a wildcard. Build one
 * with parseGrant.
 */
export class Grant {
  /** @param {string} resource @param {string} action */
  constructor(resource, action) {
    this.resource = resource;
    this.action = action;
    Object.freeze(this);
  }

  /** allows reports whether the grant covers resource:action. */
  allows(resource, action) {
    return this.resource !== "" && matchPart(this.resource, resource) && matchPart(this.action, action);
  }

  /** toString is the grant as written ("*" for everything). */
  toString() {
    return this.resource === "*" && this.action === "*" ? "*" : `${this.resource}:${this.action}`;
  }
}

/**
 * parseGrant validates a grant such as "kb:read", "kb:*", "*:read",
 * "kb:r*" or "*" and returns it; it throws a PermissionError otherwise.
 */
export function parseGrant(s) {
  if (s === "*") return new Grant("*", "*");
  const [res, act] = parse("grant", s, true);
  return new Grant(res, act);
}

/** validateGrant returns what is wrong with a grant (a PermissionError), or null. */
export function validateGrant(s) {
  try {
    parseGrant(s);
    return null;
  } catch (err) {
    if (err instanceof PermissionError) return err;
    throw err;
  }
}

/**
 * validatePermission returns what is wrong with a required permission
 * (what an endpoint asks for; wildcards are refused) as a PermissionError,
 * or null.
 */
export function validatePermission(s) {
  try {
    parse("permission", s, false);
    return null;
  } catch (err) {
    if (err instanceof PermissionError) return err;
    throw err;
  }
}

/**
 * validateRoleName returns what is wrong with a role name (a
 * PermissionError), or null. Role names follow the rule of permission
 * parts without the underscore (lowercase letters, digits and hyphens,
 * starting and ending with a letter or digit) and are at most 63
 * characters.
 */
export function validateRoleName(s) {
  if (typeof s !== "string") return new PermissionError("role name", String(s), "is not a string");
  let reason = checkPart(s, false, false);
  if (s === "") reason = "is empty";
  else if (byteLength(s) > MAX_ROLE_NAME_LEN) reason = `is longer than ${MAX_ROLE_NAME_LEN} characters`;
  return reason ? new PermissionError("role name", s, reason) : null;
}

/**
 * match reports whether grant covers permission. A malformed grant or
 * permission matches nothing, so a typo can never widen access.
 */
export function match(grant, permission) {
  if (validatePermission(permission) !== null) return false;
  let g;
  try {
    g = parseGrant(grant);
  } catch {
    return false;
  }
  const i = permission.indexOf(":");
  return g.allows(permission.slice(0, i), permission.slice(i + 1));
}

/** allowed reports whether any of grants covers permission. */
export function allowed(grants, permission) {
  if (!Array.isArray(grants)) return false;
  return grants.some((g) => match(g, permission));
}

/**
 * covers reports whether grant a allows everything grant b allows
 * ("kb:*" covers "kb:r*" and "kb:read"; "kb:r*" does not cover "kb:*").
 * Malformed grants cover and are covered by nothing.
 */
export function covers(a, b) {
  let ga, gb;
  try {
    ga = parseGrant(a);
    gb = parseGrant(b);
  } catch {
    return false;
  }
  return coversPart(ga.resource, gb.resource) && coversPart(ga.action, gb.action);
}

/** parseGrants keeps the well-formed grants: a malformed one grants nothing. */
export function parseGrants(perms) {
  const out = [];
  if (!Array.isArray(perms)) return out;
  for (const s of perms) {
    try {
      out.push(parseGrant(s));
    } catch {
      // malformed: grants nothing
    }
  }
  return out;
}

// matchPart matches one part of a grant against a concrete value.
function matchPart(pattern, v) {
  if (pattern.endsWith("*")) return v.startsWith(pattern.slice(0, -1));
  return pattern === v;
}

// coversPart: a literal covers only itself; "p*" covers whatever starts
// with p, literal or pattern.
function coversPart(a, b) {
  if (!a.endsWith("*")) return a === b;
  const prefix = a.slice(0, -1);
  return (b.endsWith("*") ? b.slice(0, -1) : b).startsWith(prefix);
}
