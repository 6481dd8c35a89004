// Permission grammar and matching: the shared cases Gatehouse's Go rbac
// package runs too (rbac/testdata/permission-cases.json, read from the
// repository, never edited here), and the grammar's edges.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

import {
  Principal,
  allowed,
  covers,
  match,
  parseGrant,
  permissionRule,
  roleRule,
  scopeRule,
  anyPermissionRule,
  validateGrant,
  validatePermission,
  validateRoleName,
} from "../src/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const casesPath =
  process.env.GH_PERMISSION_CASES || path.join(here, "..", "..", "..", "rbac", "testdata", "permission-cases.json");

test("the shared permission-matching cases (rbac/testdata/permission-cases.json)", () => {
  const cases = JSON.parse(readFileSync(casesPath, "utf8"));
  assert.ok(Array.isArray(cases.match) && cases.match.length >= 10, `only ${cases.match?.length} cases`);
  for (const tc of cases.match) {
    assert.equal(match(tc.grant, tc.permission), tc.allowed, `match(${JSON.stringify(tc.grant)}, ${JSON.stringify(tc.permission)})`);
    assert.equal(allowed([tc.grant], tc.permission), tc.allowed, `allowed([${JSON.stringify(tc.grant)}], ${JSON.stringify(tc.permission)})`);
    // A principal holding the grant decides the same.
    const p = new Principal({ kind: "access_token", subject: "u", permissions: [tc.grant] });
    const i = tc.permission.indexOf(":");
    if (validatePermission(tc.permission) === null) {
      assert.equal(p.can(tc.permission.slice(0, i), tc.permission.slice(i + 1)), tc.allowed, `Principal.can ${tc.grant} ${tc.permission}`);
    }
  }
  // Sections the Go side may add later (valid/invalid lists) are run when present.
  for (const key of ["valid_permissions", "valid_grants"]) {
    for (const s of cases[key] ?? []) {
      const err = key === "valid_grants" ? validateGrant(s) : validatePermission(s);
      assert.equal(err, null, `${key}: ${s}: ${err?.message}`);
    }
  }
  for (const key of ["invalid_permissions", "invalid_grants"]) {
    for (const s of cases[key] ?? []) {
      const err = key === "invalid_grants" ? validateGrant(s) : validatePermission(s);
      assert.notEqual(err, null, `${key}: ${s} accepted`);
    }
  }
});

test("underscores are accepted inside names, as hyphens are", () => {
  for (const s of ["api_key:read", "api_key:rotate_all", "team_a-b:read", "a__b:c"]) {
    assert.equal(validatePermission(s), null, s);
  }
  for (const [s, why] of [["_x:y", "starts with an underscore"], ["x_:y", "ends with an underscore"], ["x:_y", "starts with an underscore"], ["x:y_", "ends with an underscore"]]) {
    assert.match(validatePermission(s)?.message ?? "accepted", new RegExp(why), s);
  }
  assert.equal(validateGrant("api_key:read_*"), null, "a wildcard may follow an underscore");
  assert.match(validateGrant("api:_*").message, /starts with an underscore/);
  assert.ok(match("api_key:*", "api_key:read"));
  assert.ok(match("api_*:read", "api_key:read"));
  assert.ok(match("*:rotate_all", "api_key:rotate_all"));
  assert.ok(!match("api_key:read", "api-key:read"));
  assert.ok(!match("api:*", "api_key:read"));
  assert.match(validateRoleName("key_admin").message, /only lowercase letters, digits and hyphens/, "role names keep hyphens only");
  assert.equal(validateRoleName("key-admin"), null);
  assert.equal(permissionRule("api_key", "read").fields.required, "api_key:read");
});

test("malformed permissions, grants and role names say why", () => {
  const bad = {
    "": "is empty",
    kb: "has no colon",
    "kb:read:all": "more than one colon",
    ":read": "empty resource",
    "kb:": "empty action",
    "KB:read": "uppercase",
    "kb:re ad": "space",
    "kb:ré": "only lowercase letters, digits, hyphens and underscores",
    "-kb:read": "starts with a hyphen",
    "kb-:read": "ends with a hyphen",
    "kb:*": "is a wildcard",
    ["k".repeat(129) + ":r"]: "longer than 128",
  };
  for (const [s, why] of Object.entries(bad)) {
    const err = validatePermission(s);
    assert.ok(err, `${JSON.stringify(s)} accepted`);
    assert.match(err.message, new RegExp(why), s);
  }
  for (const [s, why] of Object.entries({ "k*b:read": "in the middle", "kb:**": "more than one wildcard", "*:": "empty action" })) {
    assert.match(validateGrant(s).message, new RegExp(why), s);
  }
  assert.equal(validateGrant("*"), null);
  assert.equal(parseGrant("*").toString(), "*");
  assert.equal(parseGrant("kb:r*").toString(), "kb:r*");
  assert.match(validateRoleName("Owner").message, /uppercase/);
  assert.match(validateRoleName("x".repeat(64)).message, /longer than 63/);
  assert.match(validateRoleName("").message, /empty/);
  assert.equal(validatePermission(42)?.kind, "permission");
});

test("rule builders refuse malformed requirements at set-up", () => {
  assert.throws(() => permissionRule("kb", "*"), /requirePermission: permission "kb:\*": action "\*" is a wildcard/);
  assert.throws(() => permissionRule("KB", "read"), /uppercase/);
  assert.throws(() => permissionRule("kb"), /no colon/);
  assert.throws(() => anyPermissionRule(), /no permission given/);
  assert.throws(() => anyPermissionRule("kb:read", "kb"), /no colon/);
  assert.throws(() => roleRule(), /no role given/);
  assert.throws(() => roleRule("Owner"), /uppercase/);
  assert.throws(() => scopeRule(), /no scope given/);
  assert.throws(() => scopeRule("two words"), /is not a scope/);
  assert.throws(() => scopeRule('quo"te'), /is not a scope/);
  assert.equal(permissionRule("kb:read").fields.required, "kb:read");
});

test("covers: who holds a may hand b on", () => {
  const cases = [
    ["kb:*", "kb:r*", true],
    ["kb:*", "kb:read", true],
    ["kb:r*", "kb:*", false],
    ["*", "kb:*", true],
    ["*:read", "kb:read", true],
    ["*:read", "*:*", false],
    ["kb:read", "kb:read", true],
    ["KB:*", "kb:read", false],
    ["kb:*", "KB:read", false],
  ];
  for (const [a, b, want] of cases) assert.equal(covers(a, b), want, `covers(${a}, ${b})`);
});

test("a principal's malformed grants grant nothing", () => {
  const p = new Principal({ kind: "access_token", subject: "u", permissions: ["KB:*", "kb", "*:", "kb:read"] });
  assert.ok(p.can("kb", "read"));
  assert.ok(p.can("kb:read"));
  assert.ok(!p.can("kb", "write"));
  assert.ok(Object.isFrozen(p) && Object.isFrozen(p.permissions));
  assert.throws(() => {
    "use strict";
    p.permissions.push("*");
  });
});
