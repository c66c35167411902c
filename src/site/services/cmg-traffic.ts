/**
 * A CMG's traffic as its connection points report it (every `traffic-report-interval`): requests
 * and bytes to and from the devices, per instance, connection point and role kind, and what
 * `cmg traffic`, `cmg show`, the admin API and the traffic alert read: the totals over a number of
 * days, the series per day (UTC), and the breakdowns.
 */
import { z } from "zod";
import { NotFoundError } from "../../errors.ts";
import { writeTransaction } from "../db/transaction.ts";
import { check } from "../validation.ts";
import { iso, type ServiceContext } from "./context.ts";

/** The traffic alert's window, as the documents give it. */
export const ALERT_WINDOW_DAYS = 14;
const DAY_MS = 24 * 3600 * 1000;

export interface TrafficTotals {
  requests: number;
  /** Requests refused by the connection point or not answered by the role. */
  failed: number;
  /** Bytes to the devices: the gateway's outbound traffic. */
  bytesToClients: number;
  /** Bytes from the devices. */
  bytesFromClients: number;
}

/** One line of a connection point's report. */
export interface TrafficRecord extends TrafficTotals {
  /** Instance index (null when the connection point could not tell). */
  instance: number | null;
  /** "mp", "sup", "-" (a role not in the URL map), "tunnel" (TLS, HTTP/2 framing and headers, keep-alives). */
  roleKind: string;
}

export interface CmgTrafficSummary {
  cmg: string;
  days: number;
  /** Start of the first day shown (UTC midnight) and the time of the summary. */
  from: string;
  to: string;
  total: TrafficTotals;
  /** Bytes to the devices over the last 14 days, what the traffic alert compares with its threshold. */
  outbound14Days: number;
  /** Every day of the range, oldest first, days without traffic included. */
  perDay: ({ day: string } & TrafficTotals)[];
  /** null: rows reported before the breakdown existed. */
  byInstance: ({ instance: number | null } & TrafficTotals)[];
  byConnectionPoint: ({ connectionPoint: string } & TrafficTotals)[];
  /** "" is traffic reported before the breakdown existed. */
  byRoleKind: ({ roleKind: string } & TrafficTotals)[];
  /**
   * Every day of the range per role kind that moved something in the range (oldest first, then by
   * kind; days without traffic included as zeros): the console's 14-day chart per role.
   */
  perDayByRoleKind: ({ day: string; roleKind: string } & TrafficTotals)[];
}

export const trafficDays = z.coerce
  .number({ error: "must be a whole number of days from 1 to 90" })
  .int("must be a whole number of days from 1 to 90")
  .min(1, "must be at least 1 day")
  .max(90, "must be at most 90 days");

/** Human size in powers of 1000, as the threshold's GB: 1.23 GB, 4.6 MB, 456.0 KB, 12 bytes. */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} KB`;
  return `${n} bytes`;
}

const zero = (): TrafficTotals => ({ requests: 0, failed: 0, bytesToClients: 0, bytesFromClients: 0 });

function add(a: TrafficTotals, r: { requests: number | string; failed: number | string; bytes_out: number | string; bytes_in: number | string }): void {
  a.requests += Number(r.requests);
  a.failed += Number(r.failed);
  a.bytesToClients += Number(r.bytes_out);
  a.bytesFromClients += Number(r.bytes_in);
}

export class CmgTrafficService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Writes one report of `connectionPoint` (one row per instance and role kind that moved something). */
  async record(cmgInput: string, connectionPoint: string, rows: readonly TrafficRecord[]): Promise<void> {
    const cmg = cmgInput.toLowerCase();
    const period_end = iso(this.ctx.now());
    const values = rows
      .filter((r) => r.requests || r.failed || r.bytesToClients || r.bytesFromClients)
      .map((r) => ({ cmg_name: cmg, connection_point: connectionPoint, period_end, instance: r.instance, role_kind: r.roleKind, requests: r.requests, failed: r.failed, bytes_out: r.bytesToClients, bytes_in: r.bytesFromClients }));
    if (values.length === 0) return;
    await writeTransaction(this.ctx.db, async (tx) => {
      await tx.insertInto("cmg_traffic").values(values).execute();
    });
  }

  /** Bytes to the devices over the last `days` days (default the alert's 14). */
  async outboundBytes(cmgInput: string, days = ALERT_WINDOW_DAYS): Promise<number> {
    const since = iso(new Date(this.ctx.now().getTime() - days * DAY_MS));
    const r = await this.ctx.db
      .selectFrom("cmg_traffic")
      .select((eb) => eb.fn.sum<number | string | null>("bytes_out").as("out"))
      .where("cmg_name", "=", cmgInput.toLowerCase())
      .where("period_end", ">=", since)
      .executeTakeFirst();
    return Number(r?.out ?? 0);
  }

  /** Totals, series per day and breakdowns over the last `days` UTC days (today included). */
  async summary(cmgInput: string, daysInput: number | string = ALERT_WINDOW_DAYS): Promise<CmgTrafficSummary> {
    const cmg = cmgInput.toLowerCase();
    const days = check("days", trafficDays, daysInput);
    if (!(await this.ctx.db.selectFrom("cmgs").select("name").where("name", "=", cmg).executeTakeFirst())) throw new NotFoundError("name", `CMG ${cmgInput}`);
    const now = this.ctx.now();
    const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    const from = new Date(today - (days - 1) * DAY_MS);
    // Summed in the database per day, connection point, instance and kind: a few rows, whatever the report interval.
    const rows = await this.ctx.db
      .selectFrom("cmg_traffic")
      .select((eb) => [
        eb.fn<string>("substr", ["period_end", eb.val(1), eb.val(10)]).as("day"),
        "connection_point",
        "instance",
        "role_kind",
        eb.fn.sum<number | string>("requests").as("requests"),
        eb.fn.sum<number | string>("failed").as("failed"),
        eb.fn.sum<number | string>("bytes_out").as("bytes_out"),
        eb.fn.sum<number | string>("bytes_in").as("bytes_in"),
      ])
      .where("cmg_name", "=", cmg)
      .where("period_end", ">=", iso(from))
      .groupBy(["day", "connection_point", "instance", "role_kind"])
      .execute();

    const total = zero();
    const perDay = new Map<string, TrafficTotals>();
    for (let t = from.getTime(); t <= today; t += DAY_MS) perDay.set(iso(new Date(t)).slice(0, 10), zero());
    const byInstance = new Map<number | null, TrafficTotals>();
    const byCp = new Map<string, TrafficTotals>();
    const byKind = new Map<string, TrafficTotals>();
    const bucket = <K>(m: Map<K, TrafficTotals>, k: K): TrafficTotals => {
      let v = m.get(k);
      if (!v) m.set(k, (v = zero()));
      return v;
    };
    const perDayKind = new Map<string, TrafficTotals>();
    const dayKind = (day: string, kind: string) => `${day}\u0000${kind}`;
    for (const r of rows) {
      add(total, r);
      add(bucket(perDayKind, dayKind(r.day, r.role_kind)), r);
      add(bucket(perDay, r.day), r);
      add(bucket(byInstance, r.instance === null ? null : Number(r.instance)), r);
      add(bucket(byCp, r.connection_point), r);
      add(bucket(byKind, r.role_kind), r);
    }
    return {
      cmg,
      days,
      from: iso(from),
      to: iso(now),
      total,
      outbound14Days: await this.outboundBytes(cmg),
      perDay: [...perDay].sort(([a], [b]) => a.localeCompare(b)).map(([day, t]) => ({ day, ...t })),
      byInstance: [...byInstance].sort(([a], [b]) => (a ?? -1) - (b ?? -1)).map(([instance, t]) => ({ instance, ...t })),
      byConnectionPoint: [...byCp].sort(([a], [b]) => a.localeCompare(b)).map(([connectionPoint, t]) => ({ connectionPoint, ...t })),
      byRoleKind: [...byKind].sort(([a], [b]) => a.localeCompare(b)).map(([roleKind, t]) => ({ roleKind, ...t })),
      perDayByRoleKind: [...perDay.keys()].sort().flatMap((day) => [...byKind.keys()].sort().map((roleKind) => ({ day, roleKind, ...(perDayKind.get(dayKind(day, roleKind)) ?? zero()) }))),
    };
  }
}
