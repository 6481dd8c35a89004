// Type declarations of @gatehouse/node (the implementation is src/index.js).

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

/** A credential's kind, as Gatehouse's introspection names it. */
export type Kind = "access_token" | "api_key" | "webhook" | "insecure_dev";

/** Who a request acts as; frozen. toJSON uses the names of Go's rbac.Principal. */
export class Principal {
  constructor(p: {
    kind: Kind;
    subject: string;
    orgId?: string;
    roles?: string[];
    permissions?: string[];
    tokenId?: string;
    clientId?: string;
    sessionId?: string;
    scope?: string;
    email?: string;
    name?: string;
    expiresAt?: Date | null;
    claims?: Record<string, unknown>;
  });
  readonly kind: Kind;
  /** The user id; the client id for client_credentials; "apikey:<id>" for an API key. */
  readonly subject: string;
  /** The organization the credential acts in ("" for none). */
  readonly orgId: string;
  readonly roles: readonly string[];
  /** Grants in orgId; they may use wildcards ("kb:*"). */
  readonly permissions: readonly string[];
  readonly tokenId: string;
  readonly clientId: string;
  readonly sessionId: string;
  readonly scope: string;
  readonly email: string;
  readonly name: string;
  readonly expiresAt: Date | null;
  /** The verified access token's claims (null for an API key). */
  readonly claims: Readonly<Record<string, unknown>> | null;
  can(resource: string, action?: string): boolean;
  hasRole(role: string): boolean;
  hasScope(scope: string): boolean;
  /** Every one of scopes was granted; always false for an API key. */
  hasScopes(...scopes: string[]): boolean;
  /** Whether the credential can carry scopes (an access token). */
  scopable(): boolean;
  isUser(): boolean;
  toJSON(): Record<string, unknown>;
}

/** A prepared answer to a request that may not proceed. Never holds the credential. */
export class Refusal {
  readonly status: 401 | 403 | 503;
  /** "invalid_token", "insufficient_permission" or "temporarily_unavailable". */
  readonly error: string;
  /** The machine reason of a 403 (REASON_*), else null. */
  readonly reason: string | null;
  readonly description: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Readonly<Record<string, unknown>>;
  readonly bodyText: string;
}

/** Thrown by verify() and authenticateRequest(); name "GatehouseRefusal". */
export class RefusalError extends Error {
  readonly refusal: Refusal;
  readonly status: number;
}

/** An authorization requirement, built once at route set-up. */
export interface Rule {
  readonly kind: "any" | "permission" | "any_permission" | "role" | "scope";
  /** The requirement is about what the credential may do in its organization. */
  readonly perOrg: boolean;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** A middleware for Express (req, res, next) and Fastify hooks (request, reply, done). */
export interface GatehouseMiddleware {
  (req: any, res: any, next: (err?: unknown) => void): void;
  readonly rule: Rule;
}

export interface APIKeyOptions {
  /** A confidential client's id and secret, for Gatehouse's introspection endpoint. */
  clientId?: string;
  clientSecret?: string;
  /** Defaults to the discovery document's introspection_endpoint. */
  introspectionUrl?: string;
  /** How long an answer about a key is reused; default 30 000 ms. */
  cacheTtlMs?: number;
  /** How long a refused key stays refused without asking; default cacheTtlMs. */
  negativeCacheTtlMs?: number;
  /**
   * Replaces introspection: the key's principal, null for an unknown key,
   * throw refuse(reason) to refuse it (401); any other error answers 503.
   */
  resolve?: (key: string) => Promise<Principal | null>;
}

export interface GatehouseOptions {
  /** Gatehouse's issuer URL (GATEHOUSE_ISSUER), compared exactly. */
  issuer: string;
  /** Must be among the tokens' aud: the audience Gatehouse mints for this backend's clients. */
  audience: string;
  /** Accepted JWS algorithms; default RS256, ES256, EdDSA. Asymmetric only. */
  algorithms?: string[];
  /** Leeway for exp, nbf and iat; default 30, at most 300. */
  clockSkewSeconds?: number;
  /** Least time between two key fetches caused by unknown kids; default 30 000. */
  refetchIntervalMs?: number;
  /** Skips discovery for the keys (discovery is still used for introspection unless apiKeys.introspectionUrl is set). */
  jwksUri?: string;
  /** Enables X-API-Key (and ?key= on WebSocket upgrades). */
  apiKeys?: APIKeyOptions;
  /** The path or query parameter that names the organization a request is about; default "org_id". */
  orgParam?: string;
  /** Replaces the organization rule; requested is "" when the request names none. */
  orgCheck?: (p: Principal, requested: string) => boolean;
  /** Runs after a credential verified; throw refuse(), forbid(), membershipInactive() or unavailable(). */
  check?: (p: Principal, req: any) => void | Promise<void>;
  /** Writes refusals instead of the default JSON answers. */
  errorWriter?: (refusal: Refusal, req: any, res: any) => void | Promise<void>;
  /** Learns every refusal (to log or count it); its errors are ignored. */
  onRefusal?: (refusal: Refusal, req: any, principal: Principal | null) => void | Promise<void>;
  /** fetch for discovery, keys and introspection; default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Timeout of one discovery or key fetch; default 10 000 ms. */
  fetchTimeoutMs?: number;
  /** Backoff of the start-up retries (jittered); default 1 000 to 60 000 ms. */
  startupBackoff?: { minMs?: number; maxMs?: number };
  /** The clock (ms since the epoch or a Date); default Date.now. */
  now?: () => number | Date;
  /** The process serves production: refuses insecureDevPrincipal. */
  production?: boolean;
  /**
   * Development only: every request acts as this principal without any
   * credential. Refused with production, GATEHOUSE_ENV other than
   * development, or NODE_ENV=production.
   */
  insecureDevPrincipal?: {
    subject: string;
    orgId?: string;
    roles?: string[];
    permissions?: string[];
    kind?: Kind;
    email?: string;
    name?: string;
  };
  /** Receives the insecure development principal's warnings; default console. */
  logger?: { warn(message: string, fields: Record<string, unknown>): void };
}

export interface WebhookOptions {
  /** The sender's name, like a permission's part; the principal's subject is "webhook:" + name. */
  name: string;
  /** One secret, or two during a rotation; at least 16 bytes of printable ASCII each. */
  secrets: string[];
  /** The grants the sender's principal holds. */
  permissions?: string[];
  /** The organization the principal acts in; default none. */
  orgId?: string;
  /** A header carrying the secret as its whole value; default "Authorization: Bearer <secret>". */
  header?: string;
}

export interface Webhook {
  readonly name: string;
  /** Express middleware or Fastify hook putting the sender's principal on the request. */
  authenticate(): (req: any, res: any, next: (err?: unknown) => void) => void;
  authenticateRequest(req: any): Principal;
}

export class Gatehouse {
  constructor(options: GatehouseOptions);
  authenticate(): GatehouseMiddleware;
  requirePermission(resource: string, action?: string): GatehouseMiddleware;
  requireAnyPermission(...permissions: string[]): GatehouseMiddleware;
  requireRole(...roles: string[]): GatehouseMiddleware;
  requireScope(...scopes: string[]): GatehouseMiddleware;
  verify(token: string): Promise<Principal>;
  authenticateRequest(req: any): Promise<Principal>;
  enforce(req: any, rule?: Rule | GatehouseMiddleware, opts?: { pathOrg?: string }): Promise<Refusal | null>;
  authenticateUpgrade(
    req: IncomingMessage,
    rule?: Rule | GatehouseMiddleware,
    opts?: { pathOrg?: string },
  ): Promise<{ ok: true; principal: Principal } | { ok: false; refusal: Refusal }>;
  verifyClient(
    rule?: Rule | GatehouseMiddleware,
  ): (info: { req: IncomingMessage }, cb: (ok: boolean, code?: number, message?: string, headers?: Record<string, string>) => void) => void;
  isReady(): boolean;
  readiness(): { ready: boolean; error: string | null };
  ready(opts?: { timeoutMs?: number }): Promise<void>;
  readinessHandler(): (req: any, res: any) => void;
  webhook(options: WebhookOptions): Webhook;
  close(): void;
}

export function createGatehouse(options: GatehouseOptions): Gatehouse;
export function principalOf(req: unknown): Principal | null;
export function writeRefusal(res: ServerResponse | any, refusal: Refusal): void;
export function rejectUpgrade(socket: Duplex, refusal: Refusal): void;
export function isWebSocketUpgrade(req: IncomingMessage): boolean;

export function refuse(reason: string): Error;
/** A 403 from the check hook: reason is 1 to 64 lowercase letters, digits and underscores. */
export function forbid(reason: string, description: string): Error;
export function membershipInactive(description?: string): Error;
/** A check hook's 503: the client reads a fixed sentence; description is for logs (err.message) only. */
export function unavailable(description?: string): Error;

export function anyCredentialRule(): Rule;
export function permissionRule(resource: string, action?: string): Rule;
export function anyPermissionRule(...permissions: string[]): Rule;
export function roleRule(...roles: string[]): Rule;
export function scopeRule(...scopes: string[]): Rule;

export class PermissionError extends Error {
  readonly kind: string;
  readonly value: string;
  readonly reason: string;
}
export class Grant {
  readonly resource: string;
  readonly action: string;
  allows(resource: string, action: string): boolean;
}
export function parseGrant(s: string): Grant;
export function parseGrants(perms: string[]): Grant[];
export function validateGrant(s: string): PermissionError | null;
export function validatePermission(s: string): PermissionError | null;
export function validateRoleName(s: string): PermissionError | null;
export function match(grant: string, permission: string): boolean;
export function allowed(grants: string[], permission: string): boolean;
export function covers(a: string, b: string): boolean;

export const MAX_LEN: number;
export const MAX_ROLE_NAME_LEN: number;
export const MAX_TOKEN_LEN: number;
export const API_KEY_PREFIX: "ghk_";
export const API_KEY_HEADER: "X-API-Key";
export const QUERY_TOKEN: "token";
export const QUERY_KEY: "key";
export const KIND_ACCESS_TOKEN: "access_token";
export const KIND_API_KEY: "api_key";
export const KIND_WEBHOOK: "webhook";
export const KIND_INSECURE_DEV: "insecure_dev";
export const WEBHOOK_SUBJECT_PREFIX: "webhook:";
export const MIN_WEBHOOK_SECRET_LEN: number;
export const DEV_WARN_INTERVAL_MS: number;
export const DEFAULT_ALGORITHMS: readonly string[];
export const DEFAULT_CLOCK_SKEW_SECONDS: number;
export const MAX_CLOCK_SKEW_SECONDS: number;
export const DEFAULT_ORG_PARAM: string;
export const DEFAULT_FETCH_TIMEOUT_MS: number;
export const DEFAULT_REFETCH_INTERVAL_MS: number;
export const DEFAULT_API_KEY_CACHE_TTL_MS: number;
export const MIN_KEYS_MAX_AGE_MS: number;
export const DEFAULT_KEYS_MAX_AGE_MS: number;
export const MAX_KEYS_MAX_AGE_MS: number;
export const RETRY_AFTER_SECONDS: number;
export const REASON_NO_ACTIVE_ORGANIZATION: "no_active_organization";
export const REASON_OTHER_ORGANIZATION: "other_organization";
export const REASON_MEMBERSHIP_INACTIVE: "membership_inactive";
export const REASON_MISSING_PERMISSION: "missing_permission";
export const REASON_MISSING_ROLE: "missing_role";
export const REASON_MISSING_SCOPE: "missing_scope";
