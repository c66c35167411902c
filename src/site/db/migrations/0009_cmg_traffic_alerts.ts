import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/**
 * A CMG's traffic broken down per instance and role kind (rows written before this have no
 * instance and the kind ""), and the state of its alerts, so that each is raised once per crossing.
 */
export function m0009CmgTrafficAlerts(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("cmg_traffic").addColumn("instance", "integer").execute();
      await db.schema.alterTable("cmg_traffic").addColumn("role_kind", "text", (c) => c.notNull().defaultTo("")).execute();
      await db.schema.alterTable("cmg_traffic").addColumn("failed", "bigint", (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.createIndex("cmg_traffic_cmg_period").on("cmg_traffic").columns(["cmg_name", "period_end"]).execute();
      await db.schema
        .createTable("cmg_alerts")
        .addColumn("cmg_name", "text", (c) => c.notNull())
        // "traffic", "certificate-30d", "certificate-7d"
        .addColumn("alert", "text", (c) => c.notNull())
        // traffic: "ok" | "warning" | "critical"; certificate: "raised"
        .addColumn("level", "text", (c) => c.notNull())
        // What the level is about: the certificate's thumbprint (a renewed one starts over); "" for traffic.
        .addColumn("subject", "text", (c) => c.notNull())
        .addColumn("changed_at", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("cmg_alerts_pk", ["cmg_name", "alert"])
        .execute();
    },
  };
}
