/**
 * The audit log: every administrative change, who made it (an admin token's name, or the local
 * user for the CLI), through what, on which object, and the object before and after, with secrets
 * redacted. Written by the wrapper in `site/audited.ts`, never by the services themselves.
 */
import { sql } from "kysely";
import { z } from "zod";
import { LOG_FILES } from "../../logs/files.ts";
import { check } from "../validation.ts";
import type { AdminRole } from "./admin-roles.ts";
import { iso, type ServiceContext } from "./context.ts";

/** Who is acting, and through what: "api" (an admin token, or a console session) or "cli". */
export interface Actor {
  name: string;
  via: string;
  /** A read-only actor may not change anything. */
  readOnly?: boolean | undefined;
  /** The security role of an admin API identity (the CLI's local user has none: it holds the data folder). */
  role?: AdminRole | undefined;
}

export interface AuditEntry {
  id: number;
  time: string;
  actor: string;
  via: string;
  /** service.method, e.g. proxies.set */
  action: string;
  /** The object changed, e.g. server/scp01.contoso.com/proxy */
  object: string;
  before: unknown;
  after: unknown;
}

export interface AuditRecord {
  actor: Actor;
  action: string;
  object: string;
  before: unknown;
  after: unknown;
}

export interface AuditFilter {
  since?: string | undefined;
  until?: string | undefined;
  actor?: string | undefined;
  /** Entries of this action (`proxies.set`), or of every action of a service (`proxies`). */
  action?: string | undefined;
  /** Entries whose object starts with this. */
  object?: string | undefined;
  limit?: number | undefined;
  /** Entries older than this id (the `nextCursor` of the previous page). */
  cursor?: number | undefined;
}

export interface AuditPage {
  items: AuditEntry[];
  /** The cursor of the next (older) page; null on the last one. */
  nextCursor: number | null;
}

/** An entry as stored. */
interface AuditRow {
  time: string;
  actor: string;
  via: string;
  action: string;
  object: string;
  before_json: string | null;
  after_json: string | null;
}

export const REDACTED = "[redacted]";
/** Field names whose values are secrets, whatever object they are in. */
const SECRET_FIELD = /(password|passphrase|secret|token|private|pfx|^key$|keypem$|credentials?$)/i;
const PRIVATE_KEY_PEM = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/** A deep copy of `value` with every secret replaced by "[redacted]". */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 32) return REDACTED;
  if (typeof value === "string") return PRIVATE_KEY_PEM.test(value) ? REDACTED : value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === "object") {
    if (Buffer.isBuffer(value) || value instanceof Uint8Array) return REDACTED;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_FIELD.test(k) && v !== null && v !== undefined && typeof v !== "boolean" ? REDACTED : redact(v, depth + 1);
    return out;
  }
  return value;
}

const isoTime = z.iso.datetime({ offset: true, error: "must be an ISO-8601 time, e.g. 2026-12-01T08:00:00Z" });
const json = (v: unknown): string | null => (v === undefined || v === null ? null : JSON.stringify(redact(v)));

export class AuditService {
  constructor(private readonly ctx: ServiceContext) {}

  /**
   * Writes one entry through `ctx.db`: inside an audited change (site/audited.ts) that is the
   * change's own transaction, so an entry the database refuses fails the change and rolls it back.
   */
  async record(r: AuditRecord): Promise<void> {
    const row = this.#row(r);
    try {
      await this.ctx.db.insertInto("audit_log").values(row).execute();
    } catch (e) {
      this.#log(row, e, "the change is rolled back");
      throw e;
    }
  }

  /**
   * Writes the entry of an action that already happened and is not one transaction (a
   * synchronisation, a rule run): when the database refuses it, the entry goes to smsprov.log.
   */
  async recordAfter(r: AuditRecord): Promise<void> {
    const row = this.#row(r);
    try {
      await this.ctx.db.insertInto("audit_log").values(row).execute();
    } catch (e) {
      this.#log(row, e, "the action was done");
    }
  }

  #row(r: AuditRecord): AuditRow {
    return { time: iso(this.ctx.now()), actor: r.actor.name, via: r.actor.via, action: r.action, object: r.object, before_json: json(r.before), after_json: json(r.after) };
  }

  #log(row: AuditRow, e: unknown, outcome: string): void {
    this.ctx.logs
      .component(LOG_FILES.smsprov)
      .error(`Audit entry not stored, ${outcome} (${e instanceof Error ? e.message : String(e)}): ${row.time} ${row.actor} via ${row.via} ${row.action} ${row.object} before ${row.before_json ?? "null"} after ${row.after_json ?? "null"}`);
  }

  /** Newest first, a page at a time. */
  async list(f: AuditFilter = {}): Promise<AuditPage> {
    const limit = f.limit ?? 100;
    let q = this.ctx.db.selectFrom("audit_log").selectAll();
    if (f.since !== undefined) q = q.where("time", ">=", new Date(check("since", isoTime, f.since)).toISOString());
    if (f.until !== undefined) q = q.where("time", "<", new Date(check("until", isoTime, f.until)).toISOString());
    if (f.actor !== undefined) q = q.where("actor", "=", f.actor);
    if (f.action !== undefined) {
      const a = f.action;
      q = a.includes(".") ? q.where("action", "=", a) : q.where(sql<string>`substr(action, 1, ${a.length + 1})`, "=", `${a}.`);
    }
    if (f.object !== undefined) q = q.where(sql<string>`substr(object, 1, ${f.object.length})`, "=", f.object);
    if (f.cursor !== undefined) q = q.where("id", "<", f.cursor);
    const rows = await q.orderBy("id", "desc").limit(limit + 1).execute();
    const items = rows.slice(0, limit).map((r) => ({
      id: r.id,
      time: r.time,
      actor: r.actor,
      via: r.via,
      action: r.action,
      object: r.object,
      before: r.before_json === null ? null : (JSON.parse(r.before_json) as unknown),
      after: r.after_json === null ? null : (JSON.parse(r.after_json) as unknown),
    }));
    return { items, nextCursor: rows.length > limit ? items[items.length - 1]!.id : null };
  }
}
