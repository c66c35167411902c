/**
 * Connectivity checks started over the admin API: each run's record, so whoever started it (or
 * the console) reads its per-endpoint results when it ends. Running the check is the service
 * connection point's (roles/scp/endpoint-monitor.ts); this keeps the record.
 */
import { NotFoundError } from "../../errors.ts";
import { iso, type ServiceContext } from "./context.ts";

export type EndpointCheckState = "running" | "done" | "failed";

export interface EndpointCheckRecord {
  id: number;
  state: EndpointCheckState;
  requestedBy: string;
  /** The server the check goes out from (the service connection point's), once known. */
  server: string | null;
  request: Record<string, unknown>;
  /** The report (every endpoint with its stages) and what the site made of it, when done. */
  result: unknown;
  /** Why it did not finish, when failed: { code, message }. */
  error: { code: string | number; message: string } | null;
  startedAt: string;
  finishedAt: string | null;
}

/** Runs still marked running when a site process starts are from a process that ended. */
const ABANDONED = { code: "CHECK_ABANDONED", message: "the site process running this check stopped before it finished" };

export class EndpointChecksService {
  constructor(private readonly ctx: ServiceContext) {}

  async start(requestedBy: string, server: string | null, request: Record<string, unknown>): Promise<EndpointCheckRecord> {
    const row = await this.ctx.db
      .insertInto("endpoint_checks")
      .values({ state: "running", requested_by: requestedBy, server, request: JSON.stringify(request), result: null, error: null, started_at: iso(this.ctx.now()), finished_at: null })
      .returning(["id"])
      .executeTakeFirstOrThrow();
    return this.get(row.id);
  }

  async finish(id: number, result: unknown): Promise<void> {
    await this.ctx.db.updateTable("endpoint_checks").set({ state: "done", result: JSON.stringify(result), finished_at: iso(this.ctx.now()) }).where("id", "=", id).execute();
  }

  async fail(id: number, error: { code: string | number; message: string }): Promise<void> {
    await this.ctx.db.updateTable("endpoint_checks").set({ state: "failed", error: JSON.stringify(error), finished_at: iso(this.ctx.now()) }).where("id", "=", id).execute();
  }

  /** Marks runs left running by a process that ended (called when a site server starts). */
  async abandonRunning(): Promise<void> {
    await this.ctx.db.updateTable("endpoint_checks").set({ state: "failed", error: JSON.stringify(ABANDONED), finished_at: iso(this.ctx.now()) }).where("state", "=", "running").execute();
  }

  async get(id: number): Promise<EndpointCheckRecord> {
    const r = await this.ctx.db.selectFrom("endpoint_checks").selectAll().where("id", "=", id).executeTakeFirst();
    if (!r) throw new NotFoundError("id", `connectivity check ${id}`);
    return {
      id: r.id,
      state: r.state as EndpointCheckState,
      requestedBy: r.requested_by,
      server: r.server,
      request: JSON.parse(r.request) as Record<string, unknown>,
      result: r.result === null ? null : (JSON.parse(r.result) as unknown),
      error: r.error === null ? null : (JSON.parse(r.error) as EndpointCheckRecord["error"]),
      startedAt: r.started_at,
      finishedAt: r.finished_at,
    };
  }

  /** The newest runs first, without their results. */
  async list(limit = 50): Promise<Omit<EndpointCheckRecord, "result">[]> {
    const rows = await this.ctx.db.selectFrom("endpoint_checks").select(["id"]).orderBy("id", "desc").limit(limit).execute();
    const all = await Promise.all(rows.map((r) => this.get(r.id)));
    return all.map(({ result: _r, ...rest }) => rest);
  }
}
