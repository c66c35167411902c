/**
 * Typed errors with stable codes. The code is data (logs, status messages, exit codes and API
 * responses switch on it); the message is for people and says what to check.
 */

/** Where on the path a failure happened. */
export type Hop = "proxy" | "target" | "gateway" | "tunnel" | "site";

/** Outbound failure codes, as the platform of the source documents writes them in logs. */
export const NetCode = {
  TIMEOUT: 12002,
  NAME_NOT_RESOLVED: 12007,
  CANNOT_CONNECT: 12029,
  CONNECTION_ENDED: 12030,
  SECURITY: 12175,
  PROXY_AUTH_REQUIRED: 407,
} as const;
export type NetCode = (typeof NetCode)[keyof typeof NetCode];

export type ErrorKind = "validation" | "not_found" | "conflict" | "unauthorized" | "forbidden" | "net" | "busy" | "internal";

export class OpenCmgError extends Error {
  readonly kind: ErrorKind;
  readonly code: string | number;
  constructor(kind: ErrorKind, code: string | number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.kind = kind;
    this.code = code;
  }
  /** What the admin API answers with. */
  get httpStatus(): number {
    switch (this.kind) {
      case "validation":
        return 400;
      case "not_found":
        return 404;
      case "conflict":
        return 409;
      case "unauthorized":
        return 401;
      case "forbidden":
        return 403;
      case "net":
        return 502;
      case "busy":
        return 503;
      default:
        return 500;
    }
  }
  /** CLI exit code: 2 for anything the caller can fix in the command line, 1 otherwise. */
  get exitCode(): number {
    return this.kind === "validation" || this.kind === "not_found" || this.kind === "conflict" ? 2 : 1;
  }
  toJSON(): Record<string, unknown> {
    return { error: this.name, kind: this.kind, code: this.code, message: this.message };
  }
}

/** A setting that breaks a rule. `field` names the setting, `rule` the rule it breaks. */
export class ValidationError extends OpenCmgError {
  readonly field: string;
  readonly rule: string;
  constructor(field: string, rule: string, message?: string) {
    super("validation", "VALIDATION", message ?? `${field}: ${rule}`);
    this.field = field;
    this.rule = rule;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), field: this.field, rule: this.rule };
  }
}

export class NotFoundError extends OpenCmgError {
  readonly field: string;
  constructor(field: string, what: string) {
    super("not_found", "NOT_FOUND", `${field}: ${what} does not exist`);
    this.field = field;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), field: this.field };
  }
}

/** The caller is known but may not do this (a read-only admin token asking for a change). */
export class ForbiddenError extends OpenCmgError {
  constructor(message: string) {
    super("forbidden", "FORBIDDEN", message);
  }
}

export class ConflictError extends OpenCmgError {
  readonly field: string;
  constructor(field: string, message: string) {
    super("conflict", "CONFLICT", `${field}: ${message}`);
    this.field = field;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), field: this.field };
  }
}

/**
 * The site database stayed locked by another writer for longer than the wait allows (or kept
 * conflicting with concurrent writers). Nothing was changed; running the same command again is safe.
 */
export class DatabaseBusyError extends OpenCmgError {
  /** What the other writer was doing, when that is known (`opencmg site serve`, `opencmg server add`). */
  readonly otherWork: string | undefined;
  constructor(waitedMs: number, otherWork?: string | undefined, options?: { cause?: unknown }) {
    const who = otherWork ? `another process (${otherWork})` : "another OpenCMG process";
    super("busy", "DATABASE_BUSY", `the site database is busy: ${who} kept it locked for writing for more than ${Math.round(waitedMs / 1000)} s; nothing was changed, retry the command`, options);
    this.otherWork = otherWork;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), ...(this.otherWork ? { otherWork: this.otherWork } : {}) };
  }
}

/** An outbound connection failure: which hop, which host, which code, and what to check. */
export class NetError extends OpenCmgError {
  readonly hop: Hop;
  readonly host: string;
  override readonly code: NetCode;
  constructor(code: NetCode, hop: Hop, host: string, message: string, options?: { cause?: unknown }) {
    super("net", code, message, options);
    this.code = code;
    this.hop = hop;
    this.host = host;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), hop: this.hop, host: this.host };
  }
}

export function isOpenCmgError(e: unknown): e is OpenCmgError {
  return e instanceof OpenCmgError;
}

/** What checkObject needs of a schema (zod's `safeParse`), so this module does not load zod. */
export interface SafeParser<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: { issues: readonly SchemaIssue[] } };
}

/** One issue of a schema check (zod's shape): `keys` lists the unknown fields of a strict object. */
export interface SchemaIssue {
  path: readonly PropertyKey[];
  message: string;
  code?: string;
  keys?: readonly string[];
}

/** The first issue as a ValidationError: an unknown field is named itself, not its parent object. */
export function issueToValidation(issue: SchemaIssue): ValidationError {
  if (issue.code === "unrecognized_keys" && issue.keys && issue.keys.length > 0) {
    const field = [...issue.path.map(String), issue.keys[0]!].join(".");
    const more = issue.keys.length > 1 ? ` (also ${issue.keys.slice(1).join(", ")})` : "";
    return new ValidationError(field, "is not a known field", `${field}: is not a known field${more}; check its spelling`);
  }
  const field = issue.path.map(String).join(".") || "body";
  return new ValidationError(field, issue.message, `${field}: ${issue.message}`);
}

/** Validates `value` against a schema; the first issue becomes a ValidationError naming its field. */
export function checkObject<T>(schema: SafeParser<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw issueToValidation(r.error.issues[0]!);
}
