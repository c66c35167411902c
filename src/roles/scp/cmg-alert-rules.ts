/**
 * The rules of a CMG's alerts, without I/O: the level its outbound traffic over 14 days is at, what
 * a change of level raises (once per crossing, a message on clearing too), the certificate expiry
 * warnings (30 and 7 days before, once each per certificate), and the component status they add up to.
 */
import type { ComponentState, StatusSeverity } from "../../site/model.ts";
import type { TrafficAlertSettings } from "../../site/services/cmg-alerts.ts";
import { formatBytes } from "../../site/services/cmg-traffic.ts";
import { StatusId } from "../../site/status-ids.ts";

export type TrafficLevel = "ok" | "warning" | "critical";

const GB = 1e9;
const DAY_MS = 24 * 3600 * 1000;

/** Percent of the threshold the traffic is at (one decimal). */
export function percentOf(bytes: number, alert: TrafficAlertSettings): number {
  return Math.round((bytes / (alert.thresholdGb * GB)) * 1000) / 10;
}

/** The level reached: at or above a percentage counts as reached. */
export function trafficLevel(bytes: number, alert: TrafficAlertSettings | null): TrafficLevel {
  if (!alert) return "ok";
  const pct = (bytes / (alert.thresholdGb * GB)) * 100;
  if (pct >= alert.criticalPct) return "critical";
  if (pct >= alert.warningPct) return "warning";
  return "ok";
}

export interface AlertMessage {
  messageId: number;
  severity: StatusSeverity;
  text: string;
}

export interface TrafficChange extends AlertMessage {
  from: TrafficLevel;
  to: TrafficLevel;
  /** The alert asks for the CMG to be stopped (it just reached critical with stop-on-critical). */
  stop: boolean;
}

/**
 * What changed since the level last raised (`previous`, "ok" when none was): null when the level
 * is the same, so a level is raised once however many evaluations find it.
 */
export function trafficChange(cmg: string, previous: TrafficLevel, bytes: number, alert: TrafficAlertSettings | null): TrafficChange | null {
  const to = trafficLevel(bytes, alert);
  if (to === previous) return null;
  const used = alert ? `${formatBytes(bytes)} over the last 14 days, ${percentOf(bytes, alert)}% of the ${alert.thresholdGb} GB threshold` : "";
  if (!alert) return { from: previous, to, stop: false, messageId: StatusId.CMG_TRAFFIC_CLEARED, severity: "informational", text: `CMG ${cmg}: the traffic alert was removed; its ${previous} level is cleared.` };
  if (to === "critical") {
    return {
      from: previous,
      to,
      stop: alert.stopOnCritical,
      messageId: StatusId.CMG_TRAFFIC_CRITICAL,
      severity: "error",
      text: `CMG ${cmg}: outbound data transfer reached the critical level (${alert.criticalPct}%): ${used}.${alert.stopOnCritical ? " The CMG is stopped, as its alert asks." : ""}`,
    };
  }
  if (to === "warning") {
    const why = previous === "critical" ? `fell below the critical level (${alert.criticalPct}%) and stays above the warning level (${alert.warningPct}%)` : `reached the warning level (${alert.warningPct}%)`;
    return { from: previous, to, stop: false, messageId: StatusId.CMG_TRAFFIC_WARNING, severity: "warning", text: `CMG ${cmg}: outbound data transfer ${why}: ${used}.` };
  }
  return { from: previous, to, stop: false, messageId: StatusId.CMG_TRAFFIC_CLEARED, severity: "informational", text: `CMG ${cmg}: outbound data transfer is back below the warning level (${alert.warningPct}%): ${used}. The ${previous} alert is cleared.` };
}

export type CertificateAlert = "certificate-30d" | "certificate-7d";

export interface CertificateWarning extends AlertMessage {
  /** The alerts this warning settles for this certificate (a 7-day warning settles the 30-day one too). */
  settles: CertificateAlert[];
}

/**
 * The expiry warning due for the server certificate `thumbprint`, given the thumbprints each
 * warning was last raised for: the 7-day one when 7 days or fewer are left, else the 30-day one
 * when 30 or fewer are; none when already raised for this certificate (a renewed one starts over).
 */
export function certificateWarning(cmg: string, cert: { thumbprint: string; notAfter: Date }, now: Date, raisedFor: Partial<Record<CertificateAlert, string>>): CertificateWarning | null {
  const left = cert.notAfter.getTime() - now.getTime();
  const days = Math.max(0, Math.floor(left / DAY_MS));
  const when = left <= 0 ? `expired on ${cert.notAfter.toISOString()}` : `expires on ${cert.notAfter.toISOString()}, in ${days} day(s)`;
  const renew = `renew it with the same service name (opencmg cmg update ${cmg} --server-cert FILE --server-key FILE)`;
  if (left <= 7 * DAY_MS) {
    if (raisedFor["certificate-7d"] === cert.thumbprint) return null;
    return { messageId: StatusId.CMG_CERT_EXPIRES_7_DAYS, severity: "warning", settles: ["certificate-7d", "certificate-30d"], text: `CMG ${cmg}: the server authentication certificate (${cert.thumbprint}) ${when}: ${renew}.` };
  }
  if (left <= 30 * DAY_MS) {
    if (raisedFor["certificate-30d"] === cert.thumbprint) return null;
    return { messageId: StatusId.CMG_CERT_EXPIRES_30_DAYS, severity: "warning", settles: ["certificate-30d"], text: `CMG ${cmg}: the server authentication certificate (${cert.thumbprint}) ${when}: ${renew}.` };
  }
  return null;
}

/** The CMG's alert component status: the worst of its traffic level and its certificate's expiry. */
export function alertComponentState(traffic: TrafficLevel, certificateDaysLeft: number): { state: ComponentState; reason: string } {
  const reasons: string[] = [];
  if (traffic !== "ok") reasons.push(`outbound traffic over 14 days is at the ${traffic} level`);
  if (certificateDaysLeft <= 30) reasons.push(certificateDaysLeft <= 0 ? "the server authentication certificate expired" : `the server authentication certificate expires in ${certificateDaysLeft} day(s)`);
  const state: ComponentState = traffic === "critical" ? "Critical" : reasons.length > 0 ? "Warning" : "OK";
  return { state, reason: reasons.length > 0 ? reasons.join("; ") : "outbound traffic and the server certificate are within their alert levels" };
}
