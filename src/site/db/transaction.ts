/**
 * Write transactions of the site services. Keep them short: read, check, write, nothing else
 * inside (no network, no file work), since every other writer of the site waits meanwhile.
 *
 * - SQLite: the transaction begins with `BEGIN IMMEDIATE` (see driver.ts), so writers queue on
 *   the write lock for up to the busy timeout instead of failing.
 * - PostgreSQL: SERIALIZABLE, so checks such as "one site server per site" hold under concurrent
 *   writers; a serialization failure (40001) or deadlock (40P01) runs the whole transaction again,
 *   and so does a unique-key race (23505): the second run sees the other writer's row and fails
 *   with the service's own "already exists" error.
 *
 * Inside an audited change (site/db/scope.ts) a write transaction is part of the change's one
 * transaction: it neither begins nor commits on its own, so the change and its audit record commit
 * or roll back together.
 */
import { DatabaseBusyError } from "../../errors.ts";
import type { Kysely, Transaction } from "kysely";
import { ambientDb, withAmbient } from "./scope.ts";
import { dbErrorCode, DEFAULT_BUSY_TIMEOUT_MS, RETRYABLE_PG_CODES, UniqueViolationError } from "./driver.ts";

/** Runs of one transaction before giving up; each failed run means another writer committed. */
const MAX_ATTEMPTS = 50;

export async function writeTransaction<DB, T>(db: Kysely<DB>, fn: (tx: Transaction<DB>) => Promise<T>): Promise<T> {
  // Already in one (a service called inside a change, or a service's own nested call): join it.
  const joined = db.isTransaction ? db : ambientDb(db);
  if (joined.isTransaction) return fn(joined as Transaction<DB>);
  let uniqueRetries = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      // SQLite ignores the isolation level: BEGIN IMMEDIATE makes its transactions serial anyway.
      return await db.transaction().setIsolationLevel("serializable").execute(fn);
    } catch (e) {
      const code = dbErrorCode(e);
      const retryable = code !== undefined && RETRYABLE_PG_CODES.has(code);
      if (retryable && attempt < MAX_ATTEMPTS) {
        await backoff(attempt);
        continue;
      }
      if (retryable) throw new DatabaseBusyError(DEFAULT_BUSY_TIMEOUT_MS, "concurrent writers", { cause: e });
      // Once more so the service's own check reports the duplicate in its own words.
      if (e instanceof UniqueViolationError && uniqueRetries++ < 1) continue;
      throw e;
    }
  }
}

/**
 * Runs `fn` in one write transaction that the services of `db` find as their `ctx.db` (and join
 * with their own write transactions) until it ends: all it writes commits together, or nothing.
 */
export function scopedTransaction<DB, T>(db: Kysely<DB>, fn: () => Promise<T>): Promise<T> {
  return writeTransaction(db, (tx) => withAmbient(db, tx, fn));
}

/** A short random pause, growing with the attempt, so colliding writers spread out. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(200, 5 * 2 ** Math.min(attempt, 6));
  return new Promise((r) => setTimeout(r, ms));
}
