/**
 * Versioned migrations, applied in name order at start-up (kysely's Migrator keeps the record).
 * A migration gets the dialect so that the few differences (auto-increment ids) stay here.
 */
import { Migrator, type Kysely, type Migration, type MigrationProvider } from "kysely";
import { OpenCmgError } from "../../../errors.ts";
import type { Dialect } from "../connect.ts";
import { m0001Site } from "./0001_site.ts";

export type MigrationFactory = (dialect: Dialect) => Migration;

/** Every migration, by name. New ones are appended; names are never reused. */
export const MIGRATIONS: Record<string, MigrationFactory> = {
  "0001_site": m0001Site,
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
