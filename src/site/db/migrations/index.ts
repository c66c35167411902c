/**
 * Versioned migrations, applied in name order at start-up (kysely's Migrator keeps the record).
 * A migration gets the dialect so that the few differences (auto-increment ids) stay here.
 *
 * Several processes may open a fresh site at once (commands started together, `site serve`):
 * one migrates while the others wait, then find nothing left to do. SQLite: the whole run is one
 * `BEGIN IMMEDIATE` transaction (kysely runs SQLite migrations without a transaction or lock).
 * PostgreSQL: a session advisory lock around the run (kysely's own lock comes only after it has
 * created its tables, which two processes could otherwise race on).
 */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from "kysely";
import { OpenCmgError } from "../../../errors.ts";
import type { Dialect } from "../dialect.ts";
import { m0001Site } from "./0001_site.ts";
import { m0002Sup } from "./0002_sup.ts";
import { m0003Cmg } from "./0003_cmg.ts";
import { m0004Clients } from "./0004_clients.ts";
import { m0005CmgRestarts } from "./0005_cmg_restarts.ts";
import { m0006CmgClientPolicy } from "./0006_cmg_client_policy.ts";
import { m0007SiteSettings } from "./0007_site_settings.ts";
import { m0009CmgTrafficAlerts } from "./0009_cmg_traffic_alerts.ts";
import { m0011AdminAudit } from "./0011_admin_audit.ts";
import { m0010Tokens } from "./0010_tokens.ts";
import { m0008CmgRunState } from "./0008_cmg_run_state.ts";
import { m0013DeviceTrust } from "./0013_device_trust.ts";
import { m0014ClientMessages } from "./0014_client_messages.ts";
import { m0012SettingsTrust } from "./0012_settings_trust.ts";
import { m0016JoinTokens } from "./0016_join_tokens.ts";
import { m0017AdminRoles } from "./0017_admin_roles.ts";
import { m0019CmgClusterState } from "./0019_cmg_cluster_state.ts";
import { m0020AdrLifecycle } from "./0020_adr_lifecycle.ts";
import { m0021SiteClientCommunication } from "./0021_site_client_communication.ts";

export type MigrationFactory = (dialect: Dialect) => Migration;

/** Every migration, by name. New ones are appended; names are never reused. */
export const MIGRATIONS: Record<string, MigrationFactory> = {
  "0001_site": m0001Site,
  "0002_sup": m0002Sup,
  "0003_cmg": m0003Cmg,
  "0004_clients": m0004Clients,
  "0005_cmg_restarts": m0005CmgRestarts,
  "0006_cmg_client_policy": m0006CmgClientPolicy,
  "0007_site_settings": m0007SiteSettings,
  "0009_cmg_traffic_alerts": m0009CmgTrafficAlerts,
  "0011_admin_audit": m0011AdminAudit,
  "0010_tokens": m0010Tokens,
  "0008_cmg_run_state": m0008CmgRunState,
  "0013_device_trust": m0013DeviceTrust,
  "0014_client_messages": m0014ClientMessages,
  "0012_settings_trust": m0012SettingsTrust,
  "0016_join_tokens": m0016JoinTokens,
  "0017_admin_roles": m0017AdminRoles,
  "0019_cmg_cluster_state": m0019CmgClusterState,
  "0020_adr_lifecycle": m0020AdrLifecycle,
  "0021_site_client_communication": m0021SiteClientCommunication,
};

/** Any advisory lock key of our own; the same in every process. */
const PG_MIGRATION_LOCK = 0x6f636d67; // "ocmg"

/** True when every migration is already recorded (the usual case: no lock taken). */
async function upToDate(db: Kysely<any>): Promise<boolean> {
  try {
    const rows = await db.selectFrom("kysely_migration").select("name").execute();
    const done = new Set(rows.map((r: { name: string }) => r.name));
    return Object.keys(MIGRATIONS).every((n) => done.has(n));
  } catch {
    return false; // no migration table yet
  }
}

export async function migrateToLatest(db: Kysely<any>, dialect: Dialect): Promise<void> {
  if (await upToDate(db)) return;
  if (dialect === "sqlite") {
    await sql`begin immediate`.execute(db);
    try {
      await runMigrator(db, dialect);
      await sql`commit`.execute(db);
    } catch (e) {
      await sql`rollback`.execute(db).catch(() => undefined);
      throw e;
    }
    return;
  }
  await db.connection().execute(async (lockConn) => {
    await sql`select pg_advisory_lock(${sql.lit(PG_MIGRATION_LOCK)})`.execute(lockConn);
    try {
      await runMigrator(db, dialect);
    } finally {
      await sql`select pg_advisory_unlock(${sql.lit(PG_MIGRATION_LOCK)})`.execute(lockConn);
    }
  });
}

async function runMigrator(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const provider: MigrationProvider = {
    getMigrations: async () => Object.fromEntries(Object.entries(MIGRATIONS).map(([k, f]) => [k, f(dialect)])),
  };
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "unknown";
    throw new OpenCmgError("internal", "MIGRATION_FAILED", `database migration ${failed} failed: ${String((error as Error).message ?? error)}`, { cause: error });
  }
}
