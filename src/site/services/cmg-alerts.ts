/**
 * A CMG's alerts (document 004, wizard step 10, and "Modify": alerts can change at any time):
 * the outbound traffic threshold over 14 days with its warning and critical percentages and the
 * stop-on-critical option, and the state each alert was last raised in, so that the evaluation
 * (src/roles/scp/cmg-alerts.ts) raises a message once per crossing and survives restarts.
 */
import { LOG_FILES } from "../../logs/files.ts";
import { NotFoundError, ValidationError } from "../../errors.ts";
import { check } from "../validation.ts";
import { trafficAlertSchema, type CmgDeploySettings, type TrafficAlertInput, type TrafficAlertSettings } from "./cmg-model.ts";
import { iso, type ServiceContext } from "./context.ts";

export type { TrafficAlertInput, TrafficAlertSettings } from "./cmg-model.ts";

/** The alerts whose state is kept. */
export type CmgAlertKind = "traffic" | "certificate-30d" | "certificate-7d";

export interface CmgAlertState {
  alert: CmgAlertKind;
  /** traffic: "ok", "warning" or "critical"; a certificate alert: "raised". */
  level: string;
  /** The certificate's thumbprint for a certificate alert; "" for traffic. */
  subject: string;
  changedAt: string;
}

/** A change of the traffic alert: what is given replaces, the rest stays (or takes its default). */
export interface TrafficAlertPatch {
  thresholdGb?: number | string | undefined;
  warningPct?: number | string | undefined;
  criticalPct?: number | string | undefined;
  stopOnCritical?: boolean | undefined;
}

export class CmgAlertsService {
  constructor(private readonly ctx: ServiceContext) {}

  private async row(name: string): Promise<{ name: string; settings: string }> {
    const r = await this.ctx.db.selectFrom("cmgs").select(["name", "settings"]).where("name", "=", name.toLowerCase()).executeTakeFirst();
    if (!r) throw new NotFoundError("name", `CMG ${name}`);
    return r;
  }

  /** The CMG's traffic alert, or null when it has none. */
  async trafficAlert(name: string): Promise<TrafficAlertSettings | null> {
    const deploy = JSON.parse((await this.row(name)).settings) as CmgDeploySettings;
    return deploy.trafficAlert ? { ...deploy.trafficAlert, stopOnCritical: deploy.trafficAlert.stopOnCritical === true } : null;
  }

  /**
   * Sets, changes or (null) removes the traffic alert. A new alert needs `thresholdGb`; the
   * percentages default to 50 and 90. The state raised so far stays: the next evaluation compares
   * the traffic with the new levels and raises (or clears) only what changed.
   */
  async setTrafficAlert(name: string, patch: TrafficAlertPatch | null): Promise<TrafficAlertSettings | null> {
    const r = await this.row(name);
    const deploy = JSON.parse(r.settings) as CmgDeploySettings;
    let next: TrafficAlertSettings | null = null;
    if (patch) {
      const current = deploy.trafficAlert;
      if (!current && patch.thresholdGb === undefined) throw new ValidationError("trafficAlertGb", "the CMG has no traffic alert yet: give its threshold in GB (--traffic-alert-gb N)");
      const given = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as TrafficAlertInput;
      next = check("trafficAlert", trafficAlertSchema, { ...(current ?? {}), ...given });
    }
    await this.ctx.db
      .updateTable("cmgs")
      .set({ settings: JSON.stringify({ ...deploy, trafficAlert: next }), updated_at: iso(this.ctx.now()) })
      .where("name", "=", r.name)
      .execute();
    this.ctx.logs
      .component(LOG_FILES.cloudMgr)
      .info(
        next
          ? `Traffic alert of ${r.name}: ${next.thresholdGb} GB over 14 days, warning at ${next.warningPct}%, critical at ${next.criticalPct}%${next.stopOnCritical ? ", the CMG stops at critical" : ""}.`
          : `Traffic alert of ${r.name} removed.`,
      );
    return next;
  }

  async states(name: string): Promise<CmgAlertState[]> {
    const rows = await this.ctx.db.selectFrom("cmg_alerts").selectAll().where("cmg_name", "=", name.toLowerCase()).orderBy("alert").execute();
    return rows.map((r) => ({ alert: r.alert as CmgAlertKind, level: r.level, subject: r.subject, changedAt: r.changed_at }));
  }

  async setState(name: string, alert: CmgAlertKind, level: string, subject = ""): Promise<void> {
    const cmg_name = name.toLowerCase();
    const changed_at = iso(this.ctx.now());
    await this.ctx.db
      .insertInto("cmg_alerts")
      .values({ cmg_name, alert, level, subject, changed_at })
      .onConflict((oc) => oc.columns(["cmg_name", "alert"]).doUpdateSet({ level, subject, changed_at }))
      .execute();
  }
}
