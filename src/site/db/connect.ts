/**
 * Opens the site database: SQLite in the data folder by default (embedded, zero set-up), or
 * PostgreSQL when a `postgres://` URL is given. Migrations run on open.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type SQLite from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect } from "kysely";
import { ValidationError } from "../../errors.ts";
import type { Dialect } from "./dialect.ts";
import { dbErrorCode, DEFAULT_BUSY_TIMEOUT_MS, siteDialect, translateDbError, type TranslateOptions } from "./driver.ts";
import { loadPg, loadSqlite } from "./load-driver.ts";
import { migrateToLatest } from "./migrations/index.ts";
import type { Database } from "./schema.ts";

export type { Dialect } from "./dialect.ts";

export interface SiteDb {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  /** Where it lives, with any password removed (safe to print). */
  readonly location: string;
  close(): Promise<void>;
}

/** `postgres://user:secret@host/db` -> `postgres://user:***@host/db`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<invalid url>";
  }
}

export interface OpenDbOptions {
  /** A `postgres://` / `postgresql://` URL; otherwise SQLite at `sqlitePath`. */
  databaseUrl?: string | undefined;
  sqlitePath: string;
  /** What this process does (`server add`, `site serve`): named to other writers that wait on it. */
  work?: string | undefined;
  /** How long a write waits for another writer's lock before DATABASE_BUSY; default 15 s. */
  busyTimeoutMs?: number | undefined;
  /**
   * PostgreSQL: told once when the connection to the server is lost (a restart, a failover, an
   * administrator's pg_terminate_backend) and once when a new one is made after that.
   */
  onConnection?: ((event: "lost" | "restored", message: string) => void) | undefined;
}

export async function openDatabase(o: OpenDbOptions): Promise<SiteDb> {
  const url = o.databaseUrl;
  const busyTimeoutMs = o.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  const work = `opencmg ${o.work ?? "process"}`;
  let siteDb: SiteDb;
  if (url) {
    if (!/^postgres(ql)?:\/\//.test(url)) {
      throw new ValidationError("database", "must be a postgres:// or postgresql:// URL (leave it out to use the embedded SQLite database)");
    }
    // Loaded only here: SQLite commands never load the PostgreSQL driver (an optional dependency).
    const pg = await loadPg();
    // 20: BIGINT counts come back as strings by default; our ids fit in a JS number. Set on this
    // pool only, never process-wide (pg.types), so other users of the driver keep its defaults.
    const types = {
      getTypeParser: ((oid: number, format?: "text" | "binary") => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as "text"))) as typeof pg.types.getTypeParser,
    };
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      types,
      application_name: work.slice(0, 63),
      // A lock wait (another writer's row, the migration lock) ends with 55P03 -> DATABASE_BUSY.
      lock_timeout: busyTimeoutMs,
      connectionTimeoutMillis: busyTimeoutMs,
    });
    // A connection the server ended (a restart, a failover, an administrator's
    // pg_terminate_backend) reports an error event: on the pool while it is idle, on the client
    // itself while a query or a transaction holds it, where the pool listens no more. Either is
    // handled here, or the event would end the process. The pool drops that connection (a client
    // no longer queryable is not taken back), a query under way fails with its own error, and the
    // next query opens a new connection: the process reconnects by itself.
    let lost = false;
    const onLost = (e: Error): void => {
      if (lost) return;
      lost = true;
      o.onConnection?.("lost", `the connection to the site database ${redactUrl(url)} was lost (${dbErrorCode(e) ?? "no code"}: ${e.message}); the next query connects again`);
    };
    pool.on("error", onLost);
    pool.on("connect", (client) => {
      client.on("error", onLost);
      if (!lost) return;
      lost = false;
      o.onConnection?.("restored", `connected to the site database ${redactUrl(url)} again`);
    });
    const translate: TranslateOptions = {
      dialect: "postgres",
      busyTimeoutMs,
      otherWork: async () => {
        const r = await pool.query<{ name: string }>(
          "select distinct application_name as name from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and xact_start is not null and application_name like 'opencmg%'",
        );
        return r.rows.map((x) => x.name).join(", ") || undefined;
      },
    };
    const db = new Kysely<Database>({ dialect: siteDialect(new PostgresDialect({ pool }), translate) });
    siteDb = { db, dialect: "postgres", location: redactUrl(url), close: () => db.destroy() };
  } else {
    // Loaded only here, before anything is written: hosts without the site database install no driver.
    const Sqlite = await loadSqlite();
    mkdirSync(dirname(o.sqlitePath), { recursive: true });
    const translate: TranslateOptions = { dialect: "sqlite", busyTimeoutMs };
    let sqlite: SQLite.Database | undefined;
    try {
      // `timeout` is SQLite's busy timeout, set as the file opens: before the WAL switch and the
      // migrations, every statement of this process waits for another writer's lock.
      sqlite = new Sqlite(o.sqlitePath, { timeout: busyTimeoutMs });
      sqlite.pragma("journal_mode = WAL");
      sqlite.pragma("foreign_keys = ON");
    } catch (e) {
      sqlite?.close();
      throw await translateDbError(e, translate);
    }
    const db = new Kysely<Database>({ dialect: siteDialect(new SqliteDialect({ database: sqlite }), translate) });
    siteDb = { db, dialect: "sqlite", location: o.sqlitePath, close: () => db.destroy() };
  }
  try {
    await migrateToLatest(siteDb.db, siteDb.dialect);
  } catch (e) {
    await siteDb.close();
    throw e;
  }
  return siteDb;
}

