/**
 * Versioned migrations, applied in name order at start-up (kysely's Migrator keeps the record).
 * A migration gets the dialect so that the few differences (auto-increment ids) stay here.
 */
import { Migrator, type Kysely, type Migration, type MigrationProvider } from "kysely";
import { OpenCmgError } from "../../../errors.ts";
import type { Dialect } from "../connect.ts";
import { m0001Site } from "./0001_site.ts";
import { m0002Sup } from "./0002_sup.ts";
import { m0003Cmg } from "./0003_cmg.ts";
import { m0004Clients } from "./0004_clients.ts";

export type MigrationFactory = (dialect: Dialect) => Migration;

/** Every migration, by name. New ones are appended; names are never reused. */
export const MIGRATIONS: Record<string, MigrationFactory> = {
  "0001_site": m0001Site,
  "0002_sup": m0002Sup,
  "0003_cmg": m0003Cmg,
  "0004_clients": m0004Clients,
};

export async function migrateToLatest(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const provider: MigrationProvider = {
    getMigrations: async () => Object.fromEntries(Object.entries(MIGRATIONS).map(([k, f]) => [k, f(dialect)])),
  };
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "unknown";
    throw new OpenCmgError("internal", "MIGRATION_FAILED", `database migration ${failed} failed: ${String((error as Error).message ?? error)}`, { cause: error });
  }
}
