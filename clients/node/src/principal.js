// Who a request acts as, with what it may do in its organization.

import { parseGrants } from "./permission.js";

const grantsOf = new WeakMap();

/**
 * Principal is who a request acts as: a user's or client's access token,
 * or an API key. It is frozen once built. Its JSON (toJSON) uses the
 * names of Gatehouse's Go rbac.Principal, so Node and Go backends answer
 * alike.
 */
export class Principal {
  /**
   * @param {object} p
   * @param {"access_token"|"api_key"} p.kind
   * @param {string} p.subject user id; client id for client_credentials; "apikey:<id>" for an API key
   * @param {string} [p.orgId] the organization the credential acts in ("" for none)
   * @param {string[]} [p.roles]
   * @param {string[]} [p.permissions] grants, which may use wildcards
   * @param {string} [p.tokenId] the access token's jti or the API key's id
   * @param {string} [p.clientId]
   * @param {string} [p.sessionId]
   * @param {string} [p.scope] space-separated scopes
   * @param {string} [p.email]
   * @param {string} [p.name]
   * @param {Date|null} [p.expiresAt]
   * @param {object} [p.claims] the verified access token's claims
   */
  constructor(p) {
    this.kind = p.kind;
    this.subject = p.subject ?? "";
    this.orgId = p.orgId ?? "";
    this.roles = Object.freeze([...(p.roles ?? [])]);
    this.permissions = Object.freeze([...(p.permissions ?? [])]);
    this.tokenId = p.tokenId ?? "";
    this.clientId = p.clientId ?? "";
    this.sessionId = p.sessionId ?? "";
    this.scope = p.scope ?? "";
    this.email = p.email ?? "";
    this.name = p.name ?? "";
    this.expiresAt = p.expiresAt ?? null;
    this.claims = p.claims ? Object.freeze({ ...p.claims }) : null;
    grantsOf.set(this, parseGrants(this.permissions));
    Object.freeze(this);
  }

  /** can reports whether the principal's grants cover resource:action ("kb:*" covers kb:read). */
  can(resource, action) {
    if (action === undefined && typeof resource === "string" && resource.includes(":")) {
      [resource, action] = [resource.slice(0, resource.indexOf(":")), resource.slice(resource.indexOf(":") + 1)];
    }
    return (grantsOf.get(this) ?? []).some((g) => g.allows(resource, action));
  }

  /** hasRole reports whether the principal holds the role in its organization. */
  hasRole(role) {
    return this.roles.includes(role);
  }

  /**
   * hasScope reports whether scope is among the access token's granted
   * scopes; API keys carry none.
   */
  hasScope(scope) {
    return this.hasScopes(scope);
  }

  /** hasScopes reports whether every one of scopes was granted (false for API keys). */
  hasScopes(...scopes) {
    if (!this.scopable()) return false;
    const granted = this.scope.split(/[ \t\n\r\f\v]+/).filter(Boolean);
    return scopes.every((s) => granted.includes(s));
  }

  /** scopable reports whether the credential can carry scopes (an access token). */
  scopable() {
    return this.kind !== "api_key" && this.kind !== "webhook";
  }

  /** isUser reports whether a person stands behind the credential: an access token of a user's session. */
  isUser() {
    return this.kind === "access_token" && this.sessionId !== "";
  }

  /** toJSON is the principal under the names of Go's rbac.Principal (empty optional fields left out). */
  toJSON() {
    const out = { kind: this.kind, sub: this.subject };
    if (this.orgId) out.org_id = this.orgId;
    out.roles = [...this.roles];
    out.permissions = [...this.permissions];
    out.token_id = this.tokenId;
    if (this.clientId) out.client_id = this.clientId;
    if (this.sessionId) out.sid = this.sessionId;
    if (this.scope) out.scope = this.scope;
    if (this.email) out.email = this.email;
    if (this.name) out.name = this.name;
    if (this.expiresAt) out.expires_at = this.expiresAt.toISOString().replace(/\.000Z$/, "Z");
    return out;
  }
}
