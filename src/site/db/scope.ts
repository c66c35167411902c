/**
 * The transaction an audited change runs in (site/audited.ts), found by the services through
 * `ctx.db` without being passed along: while a change runs, every statement of the services of
 * that database, its audit record's included, goes to the one transaction; everywhere else `ctx.db`
 * is the database itself. Keyed by the database, so two sites opened in one process stay apart.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Kysely, Transaction } from "kysely";

interface Scope {
  root: Kysely<never>;
  tx: Transaction<never>;
}

const current = new AsyncLocalStorage<Scope>();

/** The transaction of the change running on `root` in this call chain, else `root` itself. */
export function ambientDb<DB>(root: Kysely<DB>): Kysely<DB> {
  const s = current.getStore();
  return s && s.root === (root as unknown as Kysely<never>) ? (s.tx as unknown as Kysely<DB>) : root;
}

/** Runs `fn` with `tx` as the ambient transaction of `root`. */
export function withAmbient<DB, T>(root: Kysely<DB>, tx: Transaction<DB>, fn: () => Promise<T>): Promise<T> {
  return current.run({ root: root as unknown as Kysely<never>, tx: tx as unknown as Transaction<never> }, fn);
}
