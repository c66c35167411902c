/**
 * Opens the site database: SQLite in the data folder by default (embedded, zero set-up), or
 * PostgreSQL when a `postgres://` URL is given. Migrations run on open.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import SQLite from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect } from "kysely";
import pg from "pg";
import { ValidationError } from "../../errors.ts";
import { migrateToLatest } from "./migrations/index.ts";
import type { Database } from "./schema.ts";

export type Dialect = "sqlite" | "postgres";

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
}

export async function openDatabase(o: OpenDbOptions): Promise<SiteDb> {
  const url = o.databaseUrl;
  let siteDb: SiteDb;
  if (url) {
    if (!/^postgres(ql)?:\/\//.test(url)) {
      throw new ValidationError("database", "must be a postgres:// or postgresql:// URL (leave it out to use the embedded SQLite database)");
    }
    // 20: BIGINT counts come back as strings by default; our ids fit in a JS number.
    pg.types.setTypeParser(20, (v) => Number(v));
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    siteDb = { db, dialect: "postgres", location: redactUrl(url), close: () => db.destroy() };
  } else {
    mkdirSync(dirname(o.sqlitePath), { recursive: true });
    const sqlite = new SQLite(o.sqlitePath);
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("foreign_keys = ON");
    sqlite.pragma("busy_timeout = 5000");
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
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
