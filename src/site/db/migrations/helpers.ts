import { sql, type CreateTableBuilder } from "kysely";
import type { Dialect } from "../dialect.ts";

/** Adds an auto-increment integer primary key `id` in the dialect's own way. */
export function withId<T extends string>(t: CreateTableBuilder<T, never>, dialect: Dialect): CreateTableBuilder<T, "id"> {
  return dialect === "postgres"
    ? t.addColumn("id", "serial", (c) => c.primaryKey())
    : t.addColumn("id", "integer", (c) => c.primaryKey().autoIncrement());
}

export const nowText = sql`CURRENT_TIMESTAMP`;
