// The traffic alert raises once per crossing (up to warning, up to critical, back down), clears
// with a message of its own, and the certificate warnings come once each per certificate.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StatusId } from "../../site/status-ids.ts";
import { alertComponentState, certificateWarning, trafficChange, trafficLevel, type TrafficLevel } from "./cmg-alert-rules.ts";

const alert = { thresholdGb: 1, warningPct: 50, criticalPct: 90, stopOnCritical: false };
const GB = 1e9;

/** Feeds a series of 14-day totals through the rules as the evaluator does, keeping the level raised. */
function run(series: number[], a: typeof alert | null = alert): { level: TrafficLevel; raised: number[] } {
  let level: TrafficLevel = "ok";
  const raised: number[] = [];
  for (const bytes of series) {
    const c = trafficChange("cmg1", level, bytes, a);
    if (c) {
      level = c.to;
      raised.push(c.messageId);
    }
  }
  return { level, raised };
}

describe("traffic alert rules", () => {
  it("levels: at or above a percentage counts as reached; fractional thresholds work", () => {
    assert.equal(trafficLevel(0.49 * GB, alert), "ok");
    assert.equal(trafficLevel(0.5 * GB, alert), "warning");
    assert.equal(trafficLevel(0.9 * GB, alert), "critical");
    assert.equal(trafficLevel(5 * GB, null), "ok");
    const tiny = { ...alert, thresholdGb: 0.000001 }; // 1000 bytes
    assert.equal(trafficLevel(499, tiny), "ok");
    assert.equal(trafficLevel(500, tiny), "warning");
    assert.equal(trafficLevel(900, tiny), "critical");
  });

  it("raises the warning once however many evaluations find it, then critical once, then clears once", () => {
    const r = run([0, 0.6 * GB, 0.7 * GB, 0.8 * GB, 0.95 * GB, 1.2 * GB, 1.2 * GB, 0.1 * GB, 0.1 * GB]);
    assert.deepEqual(r.raised, [StatusId.CMG_TRAFFIC_WARNING, StatusId.CMG_TRAFFIC_CRITICAL, StatusId.CMG_TRAFFIC_CLEARED]);
    assert.equal(r.level, "ok");
  });

  it("straight to critical raises critical only; critical to warning is a warning of its own", () => {
    assert.deepEqual(run([0.95 * GB]).raised, [StatusId.CMG_TRAFFIC_CRITICAL]);
    const down = run([0.95 * GB, 0.6 * GB]);
    assert.deepEqual(down.raised, [StatusId.CMG_TRAFFIC_CRITICAL, StatusId.CMG_TRAFFIC_WARNING]);
    assert.equal(down.level, "warning");
    assert.match(trafficChange("cmg1", "critical", 0.6 * GB, alert)!.text, /fell below the critical level \(90%\)/);
  });

  it("messages carry the severity, the level and the numbers", () => {
    const w = trafficChange("cmg1", "ok", 0.6 * GB, alert)!;
    assert.equal(w.severity, "warning");
    assert.match(w.text, /CMG cmg1: outbound data transfer reached the warning level \(50%\): 600\.00 MB over the last 14 days, 60% of the 1 GB threshold/);
    const c = trafficChange("cmg1", "warning", 0.95 * GB, alert)!;
    assert.equal(c.severity, "error");
    assert.equal(c.stop, false);
    const cleared = trafficChange("cmg1", "critical", 0, alert)!;
    assert.equal(cleared.severity, "informational");
    assert.match(cleared.text, /back below the warning level \(50%\).*The critical alert is cleared/);
  });

  it("stop-on-critical asks for a stop only on the crossing into critical", () => {
    const a = { ...alert, stopOnCritical: true };
    assert.equal(trafficChange("cmg1", "ok", 0.95 * GB, a)!.stop, true);
    assert.equal(trafficChange("cmg1", "warning", 0.95 * GB, a)!.stop, true);
    assert.equal(trafficChange("cmg1", "critical", 0.95 * GB, a), null);
    assert.equal(trafficChange("cmg1", "ok", 0.6 * GB, a)!.stop, false);
  });

  it("a removed alert clears a raised level once, and raises nothing when none was raised", () => {
    const c = trafficChange("cmg1", "warning", 5 * GB, null)!;
    assert.equal(c.messageId, StatusId.CMG_TRAFFIC_CLEARED);
    assert.match(c.text, /alert was removed/);
    assert.equal(trafficChange("cmg1", "ok", 5 * GB, null), null);
  });
});

describe("certificate expiry warnings", () => {
  const now = new Date("2026-12-01T00:00:00Z");
  const inDays = (d: number) => new Date(now.getTime() + d * 24 * 3600 * 1000);

  it("nothing with more than 30 days left", () => {
    assert.equal(certificateWarning("cmg1", { thumbprint: "A", notAfter: inDays(31) }, now, {}), null);
  });

  it("30 days before, once; 7 days before, once; a renewed certificate starts over", () => {
    const raised: Record<string, string> = {};
    const step = (thumbprint: string, days: number): number | undefined => {
      const w = certificateWarning("cmg1", { thumbprint, notAfter: inDays(days) }, now, raised);
      if (!w) return undefined;
      for (const s of w.settles) raised[s] = thumbprint;
      return w.messageId;
    };
    assert.equal(step("A", 30), StatusId.CMG_CERT_EXPIRES_30_DAYS);
    assert.equal(step("A", 20), undefined);
    assert.equal(step("A", 7), StatusId.CMG_CERT_EXPIRES_7_DAYS);
    assert.equal(step("A", 3), undefined);
    assert.equal(step("B", 25), StatusId.CMG_CERT_EXPIRES_30_DAYS, "a new certificate is warned about again");
  });

  it("a certificate with 5 days left gets the 7-day warning only, which settles the 30-day one", () => {
    const w = certificateWarning("cmg1", { thumbprint: "A", notAfter: inDays(5) }, now, {})!;
    assert.equal(w.messageId, StatusId.CMG_CERT_EXPIRES_7_DAYS);
    assert.deepEqual(w.settles.sort(), ["certificate-30d", "certificate-7d"]);
    assert.match(w.text, /in 5 day\(s\).*opencmg cmg update cmg1 --server-cert/);
  });
});

describe("alert component status", () => {
  it("is the worst of traffic and certificate", () => {
    assert.equal(alertComponentState("ok", 100).state, "OK");
    assert.equal(alertComponentState("warning", 100).state, "Warning");
    assert.equal(alertComponentState("ok", 20).state, "Warning");
    assert.equal(alertComponentState("critical", 20).state, "Critical");
    assert.match(alertComponentState("critical", 20).reason, /critical level; the server authentication certificate expires in 20 day/);
  });
});
