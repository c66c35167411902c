import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/**
 * What the kubernetes provider last saw of a CMG in its cluster: the revision it applied, the
 * StatefulSet's replicas and ready replicas, whether its objects exist, and the last failure. The
 * CMG's status follows it; a delete waits until its objects are gone.
 */
export function m0019CmgClusterState(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("cmg_cluster_state")
        .addColumn("cmg_name", "text", (c) => c.primaryKey())
        // The CMG's revision the objects were applied at (text: a millisecond time past 32 bits).
        .addColumn("applied_revision", "text", (c) => c.notNull())
        .addColumn("replicas", "integer", (c) => c.notNull())
        .addColumn("ready_replicas", "integer", (c) => c.notNull())
        // 1 while the CMG's objects exist in the cluster.
        .addColumn("objects", "integer", (c) => c.notNull())
        // The last failure to apply or read ("" when the last call succeeded).
        .addColumn("error", "text", (c) => c.notNull())
        .addColumn("observed_at", "text", (c) => c.notNull())
        .execute();
    },
  };
}
