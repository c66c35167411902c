/**
 * Loads a database driver on first use. The drivers are optional dependencies of the release
 * archive (better-sqlite3 is a native module compiled on install): a gateway, connection point or
 * software update point host installs without them, and only a command that opens the site
 * database asks for one, by name, with the command that installs it.
 */
import type BetterSqlite3 from "better-sqlite3";
import type Pg from "pg";
import { OpenCmgError } from "../../errors.ts";

export type DriverName = "better-sqlite3" | "pg";

/** The driver a command needs is not installed on this host. */
export class DriverMissingError extends OpenCmgError {
  readonly driver: DriverName;
  constructor(driver: DriverName, what: string, options?: { cause?: unknown }) {
    super("internal", "DRIVER_MISSING", `${what} needs ${driver}, which is not installed on this host: npm install ${driver} (in the folder OpenCMG is installed in, or npm install -g ${driver} next to a global install); see docs/operations.md, "Install from the release archive"`, options);
    this.driver = driver;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), driver: this.driver };
  }
}

/** True when `e` says the module `name` itself could not be found (not one of its own imports). */
function isMissing(e: unknown, name: string): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  if (err?.code !== "ERR_MODULE_NOT_FOUND" && err?.code !== "MODULE_NOT_FOUND") return false;
  return String(err.message).includes(`'${name}'`);
}

export async function loadSqlite(): Promise<typeof BetterSqlite3> {
  try {
    return (await import("better-sqlite3")).default;
  } catch (e) {
    if (isMissing(e, "better-sqlite3")) throw new DriverMissingError("better-sqlite3", "the embedded (SQLite) site database", { cause: e });
    throw e;
  }
}

export async function loadPg(): Promise<typeof Pg> {
  try {
    return (await import("pg")).default;
  } catch (e) {
    if (isMissing(e, "pg")) throw new DriverMissingError("pg", "a PostgreSQL site database", { cause: e });
    throw e;
  }
}
