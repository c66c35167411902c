import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";
import { withId } from "./helpers.ts";

/** Cloud management gateways, their instances, and the traffic their connection points report. */
export function m0003Cmg(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("cmgs")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("service_fqdn", "text", (c) => c.notNull())
        .addColumn("service_name", "text", (c) => c.notNull())
        .addColumn("cloud", "text", (c) => c.notNull())
        .addColumn("provider", "text", (c) => c.notNull())
        .addColumn("region", "text", (c) => c.notNull())
        .addColumn("resource_group", "text", (c) => c.notNull())
        .addColumn("instances", "integer", (c) => c.notNull())
        .addColumn("crl_check", "integer", (c) => c.notNull())
        .addColumn("server_cert", "text", (c) => c.notNull())
        .addColumn("server_key", "text", (c) => c.notNull()) // sealed with the site key
        .addColumn("trusted_roots", "text", (c) => c.notNull())
        .addColumn("intermediates", "text", (c) => c.notNull())
        .addColumn("settings", "text", (c) => c.notNull()) // JSON: ports, hosts, traffic alert
        .addColumn("revision", "bigint", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("cmg_tunnels")
        .addColumn("cmg_name", "text", (c) => c.notNull())
        .addColumn("instance", "integer", (c) => c.notNull())
        .addColumn("connection_point", "text", (c) => c.notNull())
        .addColumn("connected", "integer", (c) => c.notNull())
        .addColumn("detail", "text", (c) => c.notNull())
        .addColumn("reported_at", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("cmg_tunnels_pk", ["cmg_name", "instance", "connection_point"])
        .execute();
      await withId(db.schema.createTable("cmg_traffic"), dialect)
        .addColumn("cmg_name", "text", (c) => c.notNull())
        .addColumn("connection_point", "text", (c) => c.notNull())
        .addColumn("period_end", "text", (c) => c.notNull())
        .addColumn("requests", "bigint", (c) => c.notNull())
        .addColumn("bytes_in", "bigint", (c) => c.notNull())
        .addColumn("bytes_out", "bigint", (c) => c.notNull())
        .execute();
    },
  };
}
