/**
 * Software updates the software update point synchronised: their metadata and content files, as
 * the site database keeps them. The SUP's sync writes them, its server and the ADRs read them.
 */
import { writeTransaction } from "../db/transaction.ts";
import type { ServiceContext } from "./context.ts";

export interface SoftwareUpdateFile {
  name: string;
  url: string;
  size: number;
  sha256: string;
}

export interface SoftwareUpdate {
  id: string;
  title: string;
  classification: string;
  product: string;
  releaseDate: string;
  files: SoftwareUpdateFile[];
}

export class UpdatesService {
  constructor(private readonly ctx: Pick<ServiceContext, "db" | "now">) {}

  /** Newest first. */
  async list(): Promise<SoftwareUpdate[]> {
    const rows = await this.ctx.db.selectFrom("updates").selectAll().orderBy("release_date", "desc").execute();
    return rows.map((r) => ({ id: r.update_id, title: r.title, classification: r.classification, product: r.product, releaseDate: r.release_date, files: JSON.parse(r.files) as SoftwareUpdateFile[] }));
  }

  /** The content files an update lists; none for an unknown update. */
  async filesOf(updateId: string): Promise<SoftwareUpdateFile[]> {
    const row = await this.ctx.db.selectFrom("updates").select("files").where("update_id", "=", updateId).executeTakeFirst();
    return row ? (JSON.parse(row.files) as SoftwareUpdateFile[]) : [];
  }

  /** Stores a synchronised catalog (known updates are refreshed); returns how many are new. */
  async store(updates: readonly SoftwareUpdate[], source: string): Promise<number> {
    const now = this.ctx.now().toISOString();
    return writeTransaction(this.ctx.db, async (tx) => {
      const known = new Set((await tx.selectFrom("updates").select("update_id").execute()).map((r) => r.update_id));
      let added = 0;
      for (const u of updates) {
        const row = { title: u.title, classification: u.classification, product: u.product, release_date: u.releaseDate, files: JSON.stringify(u.files), synced_from: source, synced_at: now };
        if (known.has(u.id)) await tx.updateTable("updates").set(row).where("update_id", "=", u.id).execute();
        else {
          await tx.insertInto("updates").values({ update_id: u.id, ...row }).execute();
          added++;
        }
      }
      return added;
    });
  }
}
