import { z } from "zod";
import type { Selectable } from "kysely";
import type { ComponentState, ComponentStatus, StatusMessage, StatusSeverity, StatusSource } from "../model.ts";
import type { StatusMessagesTable } from "../db/schema.ts";
import { checkObject } from "../validation.ts";
import { iso, type ServiceContext } from "./context.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { writeTransaction } from "../db/transaction.ts";
import { newSource, topics } from "../../observe/channels.ts";

/** The status service as a publisher on `topics.siteStatus` (one for every site in the process: listeners only refresh). */
const STATUS_SOURCE = newSource("site", "status");

export interface RaiseInput {
  messageId: number;
  severity: StatusSeverity;
  component: string;
  server: string;
  text: string;
  properties?: Record<string, unknown>;
  /**
   * A device's message: stored as source "client" with its ID, at the time the site received it;
   * the time the client claimed is kept apart. Without it, the message is the site's own.
   */
  client?: { id: string; claimedTime: string };
  /** When given, a second message with the same key is ignored (idempotent uploads). */
  dedupeKey?: string;
  /** The site's own messages only: when it happened (default now). */
  time?: string;
}

const raiseSchema = z.object({
  messageId: z.number().int().min(0, "must be 0 or more").max(2 ** 31 - 1, "must fit in 32 bits"),
  severity: z.enum(["informational", "warning", "error"], { error: "must be informational, warning or error" }),
  component: z.string().min(1, "must not be empty").max(128, "must be at most 128 characters"),
  server: z.string().min(1, "must not be empty").max(253, "must be at most 253 characters"),
  text: z.string().max(8192, "must be at most 8192 characters"),
  properties: z.record(z.string(), z.unknown()).optional(),
  client: z.strictObject({ id: z.string().min(1).max(64), claimedTime: z.string().datetime({ offset: true, error: "must be an ISO-8601 time" }) }).optional(),
  dedupeKey: z.string().max(512).optional(),
  time: z.string().datetime({ offset: true, error: "must be an ISO-8601 time" }).optional(),
});

export interface MessageFilter {
  component?: string | undefined;
  messageId?: number | undefined;
  source?: StatusSource | undefined;
  /** Only the messages this client uploaded. */
  clientId?: string | undefined;
  limit?: number | undefined;
}

/** A page of the API's status message view: newest first, filtered. */
export interface MessagePageFilter {
  component?: string | undefined;
  server?: string | undefined;
  severity?: StatusSeverity | undefined;
  messageId?: number | undefined;
  /** The site's own messages or the devices'. */
  source?: StatusSource | undefined;
  clientId?: string | undefined;
  /** From this time (inclusive) ... */
  since?: string | undefined;
  /** ... to this time (exclusive), ISO-8601. */
  until?: string | undefined;
  limit?: number | undefined;
  /** Messages older than this id: the `nextCursor` of the previous page. */
  cursor?: number | undefined;
}

export interface MessagePage {
  items: StatusMessage[];
  /** The cursor of the next (older) page; null on the last one. */
  nextCursor: number | null;
}

const TYPE = { informational: "info", warning: "warn", error: "error" } as const;

function toMessage(r: Selectable<StatusMessagesTable>): StatusMessage {
  return {
    id: r.id,
    messageId: r.message_id,
    severity: r.severity as StatusSeverity,
    component: r.component,
    server: r.server,
    time: r.time,
    text: r.text,
    properties: JSON.parse(r.properties) as Record<string, unknown>,
    source: r.source === "site" ? "site" : "client",
    clientId: r.client_id,
    claimedTime: r.claimed_time,
  };
}

/** Status messages and component status: how the site tells administrators what happened. */
export class StatusService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Records a status message; returns it, or undefined when its dedupe key was already seen. */
  async raise(input: RaiseInput): Promise<StatusMessage | undefined> {
    const m = checkObject(raiseSchema, input);
    const row = {
      message_id: m.messageId,
      severity: m.severity,
      component: m.component,
      server: m.server,
      // A device's clock (or its author) may claim any time: the row's time is when it arrived.
      time: m.client ? iso(this.ctx.now()) : (m.time ?? iso(this.ctx.now())),
      text: m.text,
      properties: JSON.stringify(m.properties ?? {}),
      source: m.client ? "client" : "site",
      client_id: m.client?.id ?? null,
      claimed_time: m.client?.claimedTime ?? null,
      dedupe_key: m.dedupeKey ?? null,
    } as const;
    const inserted = await this.ctx.db
      .insertInto("status_messages")
      .values(row)
      .onConflict((oc) => oc.column("dedupe_key").doNothing())
      .returning(["id"])
      .executeTakeFirst();
    if (!inserted) return undefined;
    this.ctx.logs.component(LOG_FILES.statmgr)[TYPE[m.severity]](`Status message ${m.messageId} from ${m.component} on ${m.server}${m.client ? ` (client ${m.client.id})` : ""}: ${m.text}`);
    if (topics.siteStatus.active) topics.siteStatus.publish({ source: STATUS_SOURCE, what: "message", server: m.server, component: m.component });
    return { id: inserted.id, messageId: m.messageId, severity: m.severity, component: m.component, server: m.server, time: row.time, text: m.text, properties: m.properties ?? {}, source: row.source, clientId: row.client_id, claimedTime: row.claimed_time };
  }

  async messages(filter: MessageFilter = {}): Promise<StatusMessage[]> {
    let q = this.ctx.db.selectFrom("status_messages").selectAll();
    if (filter.component) q = q.where("component", "=", filter.component);
    if (filter.messageId !== undefined) q = q.where("message_id", "=", filter.messageId);
    if (filter.source) q = q.where("source", "=", filter.source);
    if (filter.clientId) q = q.where("client_id", "=", filter.clientId);
    const rows = await q.orderBy("id", "desc").limit(Math.min(filter.limit ?? 1000, 100_000)).execute();
    return rows.reverse().map(toMessage);
  }

  /** Newest first, a page at a time (the admin API's and the console's view). */
  async page(f: MessagePageFilter = {}): Promise<MessagePage> {
    const limit = f.limit ?? 100;
    let q = this.ctx.db.selectFrom("status_messages").selectAll();
    if (f.component) q = q.where("component", "=", f.component);
    if (f.server) q = q.where("server", "=", f.server);
    if (f.severity) q = q.where("severity", "=", f.severity);
    if (f.messageId !== undefined) q = q.where("message_id", "=", f.messageId);
    if (f.source) q = q.where("source", "=", f.source);
    if (f.clientId) q = q.where("client_id", "=", f.clientId);
    // Times are stored as UTC ISO-8601 text, so text order is time order.
    if (f.since !== undefined) q = q.where("time", ">=", new Date(f.since).toISOString());
    if (f.until !== undefined) q = q.where("time", "<", new Date(f.until).toISOString());
    if (f.cursor !== undefined) q = q.where("id", "<", f.cursor);
    const rows = await q.orderBy("id", "desc").limit(limit + 1).execute();
    const items = rows.slice(0, limit).map(toMessage);
    return { items, nextCursor: rows.length > limit ? items[items.length - 1]!.id : null };
  }

  /** The newest message of `component` on `server` with one of `messageIds` (from the site itself). */
  async latest(component: string, server: string, messageIds: readonly number[]): Promise<StatusMessage | undefined> {
    const r = await this.ctx.db
      .selectFrom("status_messages")
      .selectAll()
      .where("component", "=", component)
      .where("server", "=", server)
      .where("source", "=", "site")
      .where("message_id", "in", [...messageIds])
      .orderBy("id", "desc")
      .limit(1)
      .executeTakeFirst();
    return r ? toMessage(r) : undefined;
  }

  /** How many messages `clientId` uploaded that arrived at `since` or later (its count per day). */
  async clientCountSince(clientId: string, since: Date): Promise<number> {
    const r = await this.ctx.db
      .selectFrom("status_messages")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("client_id", "=", clientId)
      .where("time", ">=", iso(since))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /**
   * Deletes the messages older than `before`, `batchSize` rows per statement, so that other
   * writers get the database between batches (a site with millions of aged rows does not hold
   * the write lock for the whole run). Returns how many were deleted; stops between batches when
   * `signal` aborts.
   */
  async deleteOlderThan(before: Date, o: { batchSize?: number; signal?: AbortSignal } = {}): Promise<number> {
    const batch = o.batchSize ?? 1000;
    const cutoff = iso(before);
    let deleted = 0;
    while (!o.signal?.aborted) {
      const ids = (await this.ctx.db.selectFrom("status_messages").select("id").where("time", "<", cutoff).orderBy("id").limit(batch).execute()).map((r) => r.id);
      if (ids.length === 0) break;
      const r = await this.ctx.db.deleteFrom("status_messages").where("id", "in", ids).executeTakeFirst();
      deleted += Number(r.numDeletedRows);
      if (ids.length < batch) break;
    }
    return deleted;
  }

  /** Sets a component's status on a server; returns the previous state (undefined if none). */
  async setComponent(server: string, component: string, status: ComponentState, reason: string): Promise<ComponentState | undefined> {
    const prev = await writeTransaction(this.ctx.db, async (tx) => {
      const prev = await tx.selectFrom("component_status").select("status").where("server", "=", server).where("component", "=", component).executeTakeFirst();
      const updated_at = iso(this.ctx.now());
      if (prev) await tx.updateTable("component_status").set({ status, reason, updated_at }).where("server", "=", server).where("component", "=", component).execute();
      else await tx.insertInto("component_status").values({ server, component, status, reason, updated_at }).execute();
      if (prev?.status !== status)
        this.ctx.logs.component(LOG_FILES.statmgr)[status === "OK" ? "info" : status === "Warning" ? "warn" : "error"](`Component ${component} on ${server} is now ${status}: ${reason}`);
      return prev?.status as ComponentState | undefined;
    });
    if (prev !== status && topics.siteStatus.active) topics.siteStatus.publish({ source: STATUS_SOURCE, what: "component", server, component });
    return prev;
  }

  async components(server?: string): Promise<ComponentStatus[]> {
    let q = this.ctx.db.selectFrom("component_status").selectAll();
    if (server) q = q.where("server", "=", server);
    const rows = await q.orderBy("server").orderBy("component").execute();
    return rows.map((r) => ({ server: r.server, component: r.component, status: r.status as ComponentState, reason: r.reason, updatedAt: r.updated_at }));
  }
}
