import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/** A CMG's client certificate policy: the smallest RSA key it accepts (2048 bits at least, always). */
export function m0006CmgClientPolicy(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("cmgs").addColumn("min_rsa_bits", "integer", (c) => c.notNull().defaultTo(2048)).execute();
    },
  };
}
