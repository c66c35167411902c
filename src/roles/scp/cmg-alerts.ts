/**
 * Evaluates every CMG's alerts on the site's schedule (`alert-evaluation-interval`): the outbound
 * traffic over 14 days against its alert's warning and critical levels, and the server
 * authentication certificate's expiry (30 and 7 days before). A change raises one status message
 * (component SMS_CLOUD_SERVICES_MANAGER, the CMG's service FQDN as its server) and sets the CMG's
 * alert component status; the level raised is kept at the site, so a restart raises nothing twice.
 * With stop-on-critical, reaching critical calls the `stop` hook once.
 */
import type { LogSet } from "../../logs/cmtrace.ts";
import { LOG_FILES } from "../../logs/files.ts";
import type { CmgAlertsService } from "../../site/services/cmg-alerts.ts";
import type { CmgTrafficService } from "../../site/services/cmg-traffic.ts";
import type { CmgsService, CmgView } from "../../site/services/cmgs.ts";
import type { StatusService } from "../../site/services/status.ts";
import { StatusId } from "../../site/status-ids.ts";
import { every, type Schedule } from "../../schedule.ts";
import { alertComponentState, certificateWarning, trafficChange, type CertificateAlert, type TrafficLevel } from "./cmg-alert-rules.ts";

/** The component the CMG's alerts are raised by (CloudMgr.log's). */
export const CMG_ALERT_COMPONENT = LOG_FILES.cloudMgr.component;

export interface CmgAlertDeps {
  cmgs: Pick<CmgsService, "list">;
  traffic: Pick<CmgTrafficService, "outboundBytes">;
  alerts: Pick<CmgAlertsService, "states" | "setState">;
  status: Pick<StatusService, "raise" | "setComponent">;
  logs: LogSet;
  now: () => Date;
  /** Stops a CMG (stop-on-critical); resolves with what was done, for the status message. */
  stop?: (cmg: string) => Promise<string>;
}

export interface CmgAlertOutcome {
  cmg: string;
  traffic: TrafficLevel;
  outboundBytes: number;
  raised: number[];
}

const DAY_MS = 24 * 3600 * 1000;

export class CmgAlertEvaluator {
  constructor(private readonly deps: CmgAlertDeps) {}

  private get log() {
    return this.deps.logs.component(LOG_FILES.cloudMgr);
  }

  /** One evaluation of every CMG. A CMG that fails is logged and the others still run. */
  async evaluateAll(): Promise<CmgAlertOutcome[]> {
    const out: CmgAlertOutcome[] = [];
    for (const cmg of await this.deps.cmgs.list()) {
      try {
        out.push(await this.evaluate(cmg));
      } catch (e) {
        this.log.error(`Could not evaluate the alerts of CMG ${cmg.name}: ${(e as Error).message}`);
      }
    }
    return out;
  }

  private async evaluate(cmg: CmgView): Promise<CmgAlertOutcome> {
    const { alerts, status, now } = this.deps;
    const { name, serviceFqdn: server } = cmg;
    const t = cmg.deploy.trafficAlert;
    // Alerts stored before stop-on-critical existed lack it.
    const alert = t ? { ...t, stopOnCritical: t.stopOnCritical === true } : null;
    const states = await alerts.states(name);
    const raised: number[] = [];
    const raise = async (messageId: number, severity: "informational" | "warning" | "error", text: string, properties: Record<string, unknown>): Promise<void> => {
      await status.raise({ messageId, severity, component: CMG_ALERT_COMPONENT, server, text, properties: { cmg: name, ...properties } });
      raised.push(messageId);
    };

    // Traffic.
    const outboundBytes = await this.deps.traffic.outboundBytes(name);
    const previous = (states.find((s) => s.alert === "traffic")?.level ?? "ok") as TrafficLevel;
    const change = trafficChange(name, previous, outboundBytes, alert);
    let level = previous;
    if (change) {
      level = change.to;
      await alerts.setState(name, "traffic", change.to);
      await raise(change.messageId, change.severity, change.text, { level: change.to, previous: change.from, outboundBytes, thresholdGb: alert?.thresholdGb ?? null });
      if (change.stop) await this.stopOnCritical(name, server, raise);
    }

    // Server authentication certificate.
    const notAfter = new Date(cmg.serverCertificate.notAfter);
    const thumbprint = cmg.serverCertificate.thumbprint;
    const raisedFor: Partial<Record<CertificateAlert, string>> = {};
    for (const s of states) if (s.alert === "certificate-30d" || s.alert === "certificate-7d") raisedFor[s.alert] = s.subject;
    const warning = certificateWarning(name, { thumbprint, notAfter }, now(), raisedFor);
    if (warning) {
      for (const a of warning.settles) await alerts.setState(name, a, "raised", thumbprint);
      await raise(warning.messageId, warning.severity, warning.text, { thumbprint, notAfter: notAfter.toISOString() });
    }

    const { state, reason } = alertComponentState(level, Math.floor((notAfter.getTime() - now().getTime()) / DAY_MS));
    await status.setComponent(server, CMG_ALERT_COMPONENT, state, `CMG ${name}: ${reason}`);
    return { cmg: name, traffic: level, outboundBytes, raised };
  }

  private async stopOnCritical(name: string, server: string, raise: (id: number, sev: "informational" | "warning" | "error", text: string, p: Record<string, unknown>) => Promise<void>): Promise<void> {
    if (!this.deps.stop) {
      await raise(StatusId.CMG_STOPPED_ON_CRITICAL, "error", `CMG ${name}: its traffic alert asks to stop it at the critical level, but this site server cannot stop CMGs.`, {});
      return;
    }
    try {
      const done = await this.deps.stop(name);
      this.log.warn(`CMG ${name} reached its critical traffic level and is stopped (stop on critical): ${done}`);
      await raise(StatusId.CMG_STOPPED_ON_CRITICAL, "warning", `CMG ${name}: stopped because its outbound traffic reached the critical level (${done}). Start it again with opencmg cmg start ${name}.`, {});
    } catch (e) {
      await raise(StatusId.CMG_STOPPED_ON_CRITICAL, "error", `CMG ${name}: reached the critical traffic level but could not be stopped: ${(e as Error).message}`, {});
    }
  }
}

/**
 * Evaluates on a schedule whose interval (the site's `alert-evaluation-interval`) is read again
 * after every run, so `opencmg settings set` applies without a restart.
 *
 * @example
 * const s = scheduleCmgAlerts(evaluator, () => settings.durationMs("alert-evaluation-interval"), log);
 * await s.stop();
 */
export function scheduleCmgAlerts(evaluator: CmgAlertEvaluator, readIntervalMs: () => Promise<number | null>, log: { error(t: string): void }): Schedule {
  return every(readIntervalMs, async () => void (await evaluator.evaluateAll()), {
    onError: (e) => log.error(`CMG alert evaluation failed: ${e instanceof Error ? e.message : String(e)}`),
  });
}
