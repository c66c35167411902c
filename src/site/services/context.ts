import type { Kysely, Transaction } from "kysely";
import type { LogSet } from "../../logs/cmtrace.ts";
import type { Database } from "../db/schema.ts";
import type { SiteKey } from "../secrets.ts";

/** What every site service is given: nothing global, everything passed in. */
export interface ServiceContext {
  db: Kysely<Database>;
  /** Opens and seals account secrets; absent where no secret is ever needed. */
  key: SiteKey | undefined;
  logs: LogSet;
  now: () => Date;
}

export type Db = Kysely<Database> | Transaction<Database>;

export const iso = (d: Date): string => d.toISOString();
