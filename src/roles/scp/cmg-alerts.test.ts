// The alert evaluation against a real site database with a clock the test moves: the traffic
// alert raised once per level and cleared when the traffic leaves the 14-day window, stop on
// critical called once (and a failed stop reported), the certificate warnings 30 and 7 days
// before expiry once each, the CMG's component status; and the alert settings' validation.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { NotFoundError, ValidationError } from "../../errors.ts";
import { createCa, issueCert } from "../../pki/issue.ts";
import { initSite, openSite, type OpenedSite } from "../../site/site.ts";
import { StatusId } from "../../site/status-ids.ts";
import { CMG_ALERT_COMPONENT, CmgAlertEvaluator } from "./cmg-alerts.ts";

const DAY = 24 * 3600 * 1000;
const SERVER = "cmga.contoso.test";

describe("CMG alert evaluation", () => {
  const dir = mkdtempSync(join(tmpdir(), "opencmg-alerts-"));
  const start = Date.now();
  let clock = start;
  let site: OpenedSite;
  const stops: string[] = [];
  let stopFails = false;
  let evaluator: CmgAlertEvaluator;

  const count = async (id: number): Promise<number> => (await site.services.status.messages({ messageId: id })).length;
  const componentState = async (): Promise<string | undefined> => (await site.services.status.components(SERVER)).find((c) => c.component === CMG_ALERT_COMPONENT)?.status;
  const send = (bytesToClients: number) => site.services.cmgTraffic.record("cmga", "cp01.contoso.test", [{ instance: 0, roleKind: "mp", requests: 1, failed: 0, bytesToClients, bytesFromClients: 10 }]);

  before(async () => {
    site = await openSite({ dataDir: dir, now: () => new Date(clock) });
    await initSite(site, { code: "P01", name: "Test" });
    const root = await createCa({ commonName: "Alert Test Root" });
    // Expires 40 days from now: no certificate warning yet.
    const server = await issueCert({ issuer: root, commonName: SERVER, dnsNames: [SERVER], usage: "server", notAfter: new Date(start + 40 * DAY) });
    await site.services.cmgs.create({ name: "cmga", serverCertPem: server.certPem, serverKeyPem: server.keyPem, trustedRoots: [root.certPem] });
    evaluator = new CmgAlertEvaluator({
      cmgs: site.services.cmgs,
      traffic: site.services.cmgTraffic,
      alerts: site.services.cmgAlerts,
      status: site.services.status,
      logs: site.logs,
      now: () => new Date(clock),
      stop: async (name) => {
        stops.push(name);
        if (stopFails) throw new Error("the supervisor is gone");
        return "stopped for the test";
      },
    });
  });
  after(async () => {
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses bad alert settings naming the field, and an unknown CMG", async () => {
    const alerts = site.services.cmgAlerts;
    const field = async (p: Parameters<typeof alerts.setTrafficAlert>[1], f: string) =>
      assert.rejects(alerts.setTrafficAlert("cmga", p), (e: unknown) => e instanceof ValidationError && e.field === f, f);
    await field({ warningPct: 10 }, "trafficAlertGb");
    await field({ thresholdGb: 0 }, "trafficAlert.thresholdGb");
    await field({ thresholdGb: "lots" }, "trafficAlert.thresholdGb");
    await field({ thresholdGb: 1, warningPct: 95, criticalPct: 90 }, "trafficAlert.warningPct");
    await field({ thresholdGb: 1, criticalPct: 101 }, "trafficAlert.criticalPct");
    await field({ thresholdGb: 1, warningPct: 12.5 }, "trafficAlert.warningPct");
    await assert.rejects(alerts.setTrafficAlert("nope", { thresholdGb: 1 }), NotFoundError);
    assert.equal(await alerts.trafficAlert("cmga"), null, "nothing half-written");
  });

  it("raises each traffic level once, stops the CMG once at critical, and clears when the traffic leaves the 14-day window", async () => {
    // 1000 bytes: fractional GB thresholds are allowed.
    assert.deepEqual(await site.services.cmgAlerts.setTrafficAlert("cmga", { thresholdGb: 0.000001, stopOnCritical: true }), { thresholdGb: 0.000001, warningPct: 50, criticalPct: 90, stopOnCritical: true });
    await evaluator.evaluateAll();
    assert.equal(await componentState(), "OK");

    await send(600);
    for (let k = 0; k < 3; k++) await evaluator.evaluateAll();
    assert.equal(await count(StatusId.CMG_TRAFFIC_WARNING), 1);
    assert.equal(await componentState(), "Warning");

    clock += DAY;
    await send(400);
    for (let k = 0; k < 3; k++) await evaluator.evaluateAll();
    assert.equal(await count(StatusId.CMG_TRAFFIC_CRITICAL), 1);
    assert.deepEqual(stops, ["cmga"], "stopped once");
    assert.equal(await count(StatusId.CMG_STOPPED_ON_CRITICAL), 1);
    assert.equal(await componentState(), "Critical");

    // The first day's 600 bytes leave the window: 400 bytes, 40%, below the warning level.
    clock += 13.5 * DAY;
    const [outcome] = await evaluator.evaluateAll();
    assert.equal(outcome!.outboundBytes, 400);
    assert.equal(outcome!.traffic, "ok");
    assert.equal(await count(StatusId.CMG_TRAFFIC_CLEARED), 1);
    await evaluator.evaluateAll();
    assert.equal(await count(StatusId.CMG_TRAFFIC_CLEARED), 1, "cleared once");
    assert.equal(await count(StatusId.CMG_TRAFFIC_WARNING), 1, "no warning on the way down from critical to ok");
  });

  it("a stop that fails is reported as an error status message", async () => {
    stopFails = true;
    await send(2000);
    await evaluator.evaluateAll();
    const m = (await site.services.status.messages({ messageId: StatusId.CMG_STOPPED_ON_CRITICAL })).at(-1)!;
    assert.equal(m.severity, "error");
    assert.match(m.text, /could not be stopped: the supervisor is gone/);
    // Removing the alert clears its level, once.
    await site.services.cmgAlerts.setTrafficAlert("cmga", null);
    await evaluator.evaluateAll();
    await evaluator.evaluateAll();
    assert.equal(await count(StatusId.CMG_TRAFFIC_CLEARED), 2);
    assert.match((await site.services.status.messages({ messageId: StatusId.CMG_TRAFFIC_CLEARED })).at(-1)!.text, /alert was removed/);
  });

  it("warns 30 and 7 days before the server certificate expires, once each", async () => {
    // The clock is 14.5 days on: 25.5 days left.
    await evaluator.evaluateAll();
    await evaluator.evaluateAll();
    assert.equal(await count(StatusId.CMG_CERT_EXPIRES_30_DAYS), 1);
    assert.equal(await count(StatusId.CMG_CERT_EXPIRES_7_DAYS), 0);
    assert.equal(await componentState(), "Warning");
    clock = start + 34 * DAY;
    await evaluator.evaluateAll();
    await evaluator.evaluateAll();
    assert.equal(await count(StatusId.CMG_CERT_EXPIRES_7_DAYS), 1);
    assert.equal(await count(StatusId.CMG_CERT_EXPIRES_30_DAYS), 1);
    const m = (await site.services.status.messages({ messageId: StatusId.CMG_CERT_EXPIRES_7_DAYS }))[0]!;
    assert.equal(m.server, SERVER);
    assert.match(m.text, /CMG cmga: the server authentication certificate \([0-9A-F]+\) expires on .*, in [56] day\(s\): renew it/);
  });
});
