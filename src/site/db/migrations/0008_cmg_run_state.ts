import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/**
 * A CMG's run state as the administrator set it (running, stopped, deleting) with when and why,
 * so a stopped CMG stays stopped across restarts of the processes that run it; and the root CA a
 * client's certificate chained to when it last registered through a CMG (the lockout check of
 * `cmg update`).
 */
export function m0008CmgRunState(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("cmgs").addColumn("run_state", "text", (c) => c.notNull().defaultTo("running")).execute();
      await db.schema.alterTable("cmgs").addColumn("run_state_at", "text").execute();
      await db.schema.alterTable("cmgs").addColumn("run_state_reason", "text").execute();
      await db.schema.alterTable("clients").addColumn("root_thumbprint", "text").execute();
    },
  };
}
