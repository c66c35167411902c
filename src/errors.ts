/**
 * Typed errors with stable codes. The code is data (logs, status messages, exit codes and API
 * responses switch on it); the message is for people and says what to check.
 */
import { fieldWords } from "./field-words.ts";

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

/**
 * One field's problem: the API's field path, the rule it breaks, and a message naming the field in
 * words and the rule ("Private key file: is required with the certificate file").
 */
export interface FieldProblem {
  field: string;
  rule: string;
  message: string;
}

/** A problem of `field`, its message in words. */
export function fieldProblem(field: string, rule: string): FieldProblem {
  return { field, rule, message: `${fieldWords(field)}: ${rule}` };
}

/**
 * A setting that breaks a rule. `field` names the setting, `rule` the rule it breaks; `problems`
 * lists every field problem of the request (this one first), so a form can show them all at once.
 */
export class ValidationError extends OpenCmgError {
  readonly field: string;
  readonly rule: string;
  readonly problems: readonly FieldProblem[];
  constructor(field: string, rule: string, message?: string, more: readonly FieldProblem[] = []) {
    super("validation", "VALIDATION", message ?? `${field}: ${rule}`);
    this.field = field;
    this.rule = rule;
    this.problems = [fieldProblem(field, rule), ...more.filter((p) => p.field !== field)];
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), field: this.field, rule: this.rule, errors: this.problems.map((p) => ({ field: p.field, rule: p.rule, message: p.message })) };
  }
}

/**
 * Runs a request's checks one after another and keeps every field problem, so the answer names
 * them all at once instead of the first only: `take` returns undefined for a check that failed,
 * `done` throws them together (before any value is used).
 */
export class FieldChecks {
  private readonly problems: FieldProblem[] = [];
  /** The first failed check's own message (it may say more than field and rule: what was given). */
  private firstMessage: string | undefined;
  take<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      if (this.problems.length === 0) this.firstMessage = e.message;
      this.add(...e.problems);
      return undefined;
    }
  }
  /** A problem of a field no check covers (a rule between fields); a field already at fault keeps its first problem. */
  add(...problems: FieldProblem[]): void {
    for (const p of problems) if (!this.problems.some((q) => q.field === p.field)) this.problems.push(p);
  }
  /** The problems kept so far. */
  get list(): readonly FieldProblem[] {
    return this.problems;
  }
  /** Throws every problem kept as one ValidationError (the first check's message on top); nothing when all checks passed. */
  done(): void {
    const [first, ...more] = this.problems;
    if (first) throw new ValidationError(first.field, first.rule, this.firstMessage, more);
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

/**
 * Runs every check of `checks` (each may depend on no other) and answers their values by name, or
 * throws all their field problems together: `checkAll({ name: () => check("name", ...), ... })`.
 */
export function checkAll<F extends Record<string, () => unknown>>(checks: F): { [K in keyof F]: ReturnType<F[K]> } {
  const v = new FieldChecks();
  const out: Record<string, unknown> = {};
  for (const [k, fn] of Object.entries(checks)) out[k] = v.take(fn);
  v.done();
  return out as { [K in keyof F]: ReturnType<F[K]> };
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

/** The problems of one issue: an unknown field is named itself (each of them), not its parent object. */
export function issueProblems(issue: SchemaIssue, prefix: readonly string[] = []): FieldProblem[] {
  const path = [...prefix, ...issue.path.map(String)];
  if (issue.code === "unrecognized_keys" && issue.keys && issue.keys.length > 0) {
    return issue.keys.map((k) => fieldProblem([...path, k].join("."), "is not a known field; check its spelling"));
  }
  return [fieldProblem(path.join(".") || "body", issue.message)];
}

/**
 * Every issue as one ValidationError (one problem per field, the first issue of a field kept); its
 * top-level message is the first issue's, as it always was.
 */
export function issuesToValidation(issues: readonly SchemaIssue[], prefix: readonly string[] = []): ValidationError {
  const checks = new FieldChecks();
  for (const i of issues) checks.add(...issueProblems(i, prefix));
  const [head, ...more] = checks.list;
  const first = issues[0]!;
  if (first.code === "unrecognized_keys" && first.keys && first.keys.length > 0) {
    // The message names the first unknown field and the others beside it, as before.
    const field = [...prefix, ...first.path.map(String), first.keys[0]!].join(".");
    const also = first.keys.length > 1 ? ` (also ${first.keys.slice(1).join(", ")})` : "";
    return new ValidationError(field, "is not a known field", `${field}: is not a known field${also}; check its spelling`, more);
  }
  return new ValidationError(head!.field, head!.rule, `${head!.field}: ${head!.rule}`, more);
}

/** The first issue as a ValidationError (the others beside it in `problems`). */
export function issueToValidation(issue: SchemaIssue): ValidationError {
  return issuesToValidation([issue]);
}

/** Validates `value` against a schema; every issue becomes a problem naming its field, the first one the message. */
export function checkObject<T>(schema: SafeParser<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw issuesToValidation(r.error.issues);
}
