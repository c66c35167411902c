import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/** Restarts of a CMG's instances by the supervisor that runs them (`opencmg cmg start`). */
export function m0005CmgRestarts(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("cmg_instance_restarts")
        .addColumn("cmg_name", "text", (c) => c.notNull())
        .addColumn("instance", "integer", (c) => c.notNull())
        .addColumn("restarts", "integer", (c) => c.notNull())
        .addColumn("last_restart_at", "text", (c) => c.notNull())
        // How the instance last exited: its exit code or the signal's name.
        .addColumn("last_exit", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("cmg_instance_restarts_pk", ["cmg_name", "instance"])
        .execute();
    },
  };
}
