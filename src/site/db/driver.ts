/**
 * How the site database behaves when several processes write at once (the CLI, `site serve`,
 * the roles): a write transaction takes the write lock when it begins (SQLite `BEGIN IMMEDIATE`,
 * so a read-then-write transaction never fails half-way on a lock it cannot upgrade), lock waits
 * end after the busy timeout with a typed DATABASE_BUSY error, and a unique-constraint violation
 * becomes a conflict error naming the field.
 */
import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect as KyselyDialect,
  type Driver,
  type QueryResult,
  type TransactionSettings,
} from "kysely";
import { ConflictError, DatabaseBusyError } from "../../errors.ts";
import type { Dialect } from "./dialect.ts";

/** How long a writer waits for another one before giving up with DATABASE_BUSY. */
export const DEFAULT_BUSY_TIMEOUT_MS = 15_000;

/** Names of duplicate-able things, for messages like the services' own ("account X already exists"). */
const NOUNS: Record<string, string> = {
  sites: "site",
  servers: "site system server",
  accounts: "account",
  roles: "role",
  cmgs: "CMG",
  adrs: "automatic deployment rule",
  clients: "client",
};

/** A write that lost a race on a unique key: what the service says for a duplicate. */
export class UniqueViolationError extends ConflictError {
  readonly table: string | undefined;
  constructor(table: string | undefined, column: string, value: string | undefined, options?: { cause?: unknown }) {
    const noun = (table && NOUNS[table]) ?? "a row";
    super(column, value !== undefined ? `${noun} ${value} already exists` : `${noun} with this ${column} already exists`);
    if (options?.cause) (this as { cause?: unknown }).cause = options.cause;
    this.table = table;
  }
}

interface DbErrorLike {
  code?: unknown;
  message?: unknown;
  detail?: unknown;
  table?: unknown;
  constraint?: unknown;
}

/** The SQLSTATE of a PostgreSQL error, or the better-sqlite3 code (`SQLITE_BUSY`). */
export function dbErrorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur && typeof cur === "object"; i++) {
    const code = (cur as DbErrorLike).code;
    if (typeof code === "string") return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isSqliteBusy(e: unknown): boolean {
  const code = dbErrorCode(e);
  return code !== undefined && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

/** SQLSTATEs a write transaction is run again for: serialization failure and deadlock. */
export const RETRYABLE_PG_CODES = new Set(["40001", "40P01"]);

/** PostgreSQL lock waits that ran out (lock_timeout) or a pool that stayed full. */
const PG_BUSY_CODES = new Set(["55P03"]);

export interface TranslateOptions {
  dialect: Dialect;
  busyTimeoutMs: number;
  /** Best-effort: what other processes writing to the database are doing. */
  otherWork?: () => Promise<string | undefined>;
}

/** Turns a driver error into the product's typed error, or returns it unchanged. */
export async function translateDbError(e: unknown, o: TranslateOptions): Promise<unknown> {
  if (!(e instanceof Error) || e instanceof ConflictError || e instanceof DatabaseBusyError) return e;
  const err = e as Error & DbErrorLike;
  const code = dbErrorCode(e);
  if (o.dialect === "sqlite") {
    if (isSqliteBusy(e)) return new DatabaseBusyError(o.busyTimeoutMs, await other(o), { cause: e });
    if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
      // "UNIQUE constraint failed: servers.fqdn" (several columns: "roles.server_id, roles.kind")
      const m = /failed: ([\w]+)\.([\w]+)/.exec(String(err.message));
      return new UniqueViolationError(m?.[1], m?.[2] ?? "value", undefined, { cause: e });
    }
    return e;
  }
  if (code === "23505") {
    // detail: "Key (fqdn)=(a.example.com) already exists."
    const m = /^Key \(([^)]+)\)=\((.*)\) already exists/.exec(String(err.detail ?? ""));
    const columns = m?.[1]?.split(", ") ?? [];
    const single = columns.length === 1;
    return new UniqueViolationError(typeof err.table === "string" ? err.table : undefined, columns.at(-1) ?? "value", single ? m?.[2] : undefined, { cause: e });
  }
  if (code !== undefined && PG_BUSY_CODES.has(code)) return new DatabaseBusyError(o.busyTimeoutMs, await other(o), { cause: e });
  if (/timeout exceeded when trying to connect/i.test(String(err.message))) return new DatabaseBusyError(o.busyTimeoutMs, await other(o), { cause: e });
  return e;
}

async function other(o: TranslateOptions): Promise<string | undefined> {
  try {
    return await o.otherWork?.();
  } catch {
    return undefined;
  }
}

/** A connection whose errors come out translated. */
class TranslatingConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    private readonly o: TranslateOptions,
  ) {}
  async executeQuery<R>(q: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await this.inner.executeQuery<R>(q);
    } catch (e) {
      throw await translateDbError(e, this.o);
    }
  }
  streamQuery<R>(q: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(q, chunkSize);
  }
}

/**
 * Wraps kysely's own driver: translated errors, and on SQLite `BEGIN IMMEDIATE` (kysely issues a
 * plain, deferred `BEGIN`, whose first write can fail with SQLITE_BUSY without waiting when another
 * process wrote in between).
 */
class SiteDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly o: TranslateOptions,
  ) {}
  init(): Promise<void> {
    return this.inner.init();
  }
  async acquireConnection(): Promise<DatabaseConnection> {
    try {
      return new TranslatingConnection(await this.inner.acquireConnection(), this.o);
    } catch (e) {
      throw await translateDbError(e, this.o);
    }
  }
  async beginTransaction(c: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    if (this.o.dialect === "sqlite") await c.executeQuery(CompiledQuery.raw("begin immediate"));
    else await this.inner.beginTransaction(c, settings);
  }
  commitTransaction(c: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(c);
  }
  rollbackTransaction(c: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(c);
  }
  async savepoint(c: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver["savepoint"]>>[2]): Promise<void> {
    await this.inner.savepoint!(c, name, compile);
  }
  async rollbackToSavepoint(c: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver["rollbackToSavepoint"]>>[2]): Promise<void> {
    await this.inner.rollbackToSavepoint!(c, name, compile);
  }
  async releaseSavepoint(c: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver["releaseSavepoint"]>>[2]): Promise<void> {
    await this.inner.releaseSavepoint!(c, name, compile);
  }
  releaseConnection(c: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(unwrapForDriver(c));
  }
  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

/** kysely's PostgreSQL driver releases its own connection objects, not the wrappers. */
function unwrapForDriver(c: DatabaseConnection): DatabaseConnection {
  return c instanceof TranslatingConnection ? c.inner : c;
}

/** kysely's dialect with the site's driver behaviour (see the top of this file). */
export function siteDialect(inner: KyselyDialect, o: TranslateOptions): KyselyDialect {
  return {
    createAdapter: () => inner.createAdapter(),
    createDriver: () => new SiteDriver(inner.createDriver(), o),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createIntrospector: (db) => inner.createIntrospector(db),
  };
}
