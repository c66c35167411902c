/**
 * `opencmg cmg traffic NAME [--days 14]`: a CMG's traffic (the 14-day outbound total its alert
 * watches, the series per day, per instance, connection point and role kind), which `cmg show`
 * prints too.
 */
import type { Command } from "commander";
import type { CmgAlertState, TrafficAlertSettings } from "../../site/services/cmg-alerts.ts";
import { formatBytes, type CmgTrafficSummary } from "../../site/services/cmg-traffic.ts";
import type { CliContext } from "../context.ts";
import { keyValues, table } from "../output.ts";

const ROLE_KINDS: Record<string, string> = { mp: "management point", sup: "software update point", tunnel: "tunnel (TLS, framing, headers)", "-": "unknown role", "": "not broken down" };

/** "5 GB, warning at 50%, critical at 90% (now 12.3%: ok)" or "none". */
export function alertText(alert: TrafficAlertSettings | null, outbound14Days: number, states: readonly CmgAlertState[]): string {
  if (!alert) return "none";
  const pct = Math.round((outbound14Days / (alert.thresholdGb * 1e9)) * 1000) / 10;
  const level = states.find((s) => s.alert === "traffic")?.level ?? "ok";
  return `${alert.thresholdGb} GB over 14 days, warning at ${alert.warningPct}%, critical at ${alert.criticalPct}%${alert.stopOnCritical ? ", stop on critical" : ""} (now ${pct}%, last raised: ${level})`;
}

/** The 14-day total and the alert. */
function trafficLines(t: CmgTrafficSummary, alert: TrafficAlertSettings | null, states: readonly CmgAlertState[]): Record<string, string> {
  return {
    "outbound, 14 days": `${formatBytes(t.outbound14Days)} to devices (${t.total.requests} requests, ${formatBytes(t.total.bytesFromClients)} from devices)`,
    "traffic alert": alertText(alert, t.outbound14Days, states),
  };
}

const cols = (t: { requests: number; failed: number; bytesToClients: number; bytesFromClients: number }) => ({
  requests: t.requests,
  failed: t.failed,
  toDevices: formatBytes(t.bytesToClients),
  fromDevices: formatBytes(t.bytesFromClients),
});
const COLS = ["requests", "failed", "toDevices", "fromDevices"];

export function trafficText(t: CmgTrafficSummary, alert: TrafficAlertSettings | null, states: readonly CmgAlertState[]): string {
  return (
    keyValues({
      cmg: t.cmg,
      ...trafficLines(t, alert, states),
      [`last ${t.days} day(s)`]: `${formatBytes(t.total.bytesToClients)} to devices, ${formatBytes(t.total.bytesFromClients)} from devices, ${t.total.requests} requests (${t.total.failed} failed)`,
    }) +
    "\nPer day (UTC):\n" +
    table(t.perDay.map((d) => ({ day: d.day, ...cols(d) })), ["day", ...COLS]) +
    "\nPer instance:\n" +
    table(t.byInstance.map((i) => ({ instance: i.instance ?? "(before breakdown)", ...cols(i) })), ["instance", ...COLS]) +
    "\nPer connection point:\n" +
    table(t.byConnectionPoint.map((c) => ({ connectionPoint: c.connectionPoint, ...cols(c) })), ["connectionPoint", ...COLS]) +
    "\nPer role kind:\n" +
    table(t.byRoleKind.map((k) => ({ roleKind: ROLE_KINDS[k.roleKind] ?? k.roleKind, ...cols(k) })), ["roleKind", ...COLS])
  );
}

export function registerCmgTraffic(cmg: Command, ctx: CliContext): void {
  cmg
    .command("traffic <name>")
    .description("a CMG's traffic: 14-day outbound total, per day, per instance, connection point and role kind")
    .option("--days <n>", "days to show, today included (1-90)", "14")
    .action(async (name: string, o: { days: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const t = await s.services.cmgTraffic.summary(name, o.days);
        const alert = await s.services.cmgAlerts.trafficAlert(name);
        const states = await s.services.cmgAlerts.states(name);
        ctx.print(cmd, { ...t, alert, alertStates: states }, () => trafficText(t, alert, states));
      });
    });
}
