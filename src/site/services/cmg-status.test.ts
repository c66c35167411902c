import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { before, describe, it } from "node:test";
import { createCa } from "../../pki/issue.ts";
import type { CmgDeploySettings } from "./cmg-model.ts";
import { cmgStatus, instanceViews, STARTING_MS } from "./cmg-status.ts";

const DEPLOY: CmgDeploySettings = { listenHost: "127.0.0.1", publicHost: "cmg.contoso.test", instanceHost: "127.0.0.1", clientPortBase: 10443, tunnelPortBase: 10140, metricsPortBase: 0, trafficAlert: null };

describe("the status of a local CMG nothing runs", () => {
  let cert: X509Certificate;
  before(async () => {
    cert = new X509Certificate((await createCa({ commonName: "cmg.contoso.test" })).certPem);
  });
  const created = "2026-01-01T00:00:00.000Z";
  const at = (ms: number): number => Date.parse(created) + ms;
  const inst = instanceViews(1, DEPLOY, [], ["cp01.contoso.test"], at(0));

  it("is Provisioning while just created, then Error, naming what to start", () => {
    const early = cmgStatus(cert, ["cp01.contoso.test"], inst, at(1000), { state: "running", at: null, reason: null, name: "cmg1", supervised: false, createdAt: created });
    assert.equal(early.status, "Provisioning");
    assert.equal(early.reason, "no process runs the instances of cmg1: start the OpenCMG site service (opencmg-site) on the site server; it runs the instances of the CMGs with the local provider");
    const late = cmgStatus(cert, ["cp01.contoso.test"], inst, at(STARTING_MS + 1000), { state: "running", at: null, reason: null, name: "cmg1", supervised: false, createdAt: created });
    assert.deepEqual(late, { status: "Error", reason: early.reason });
  });

  it("is Starting just after a start, then Error", () => {
    const started = "2026-01-02T00:00:00.000Z";
    const run = { state: "running" as const, at: started, reason: "admin API", name: "cmg1", supervised: false, createdAt: created };
    const early = cmgStatus(cert, ["cp01.contoso.test"], inst, Date.parse(started) + 1000, run);
    assert.equal(early.status, "Starting");
    assert.match(early.reason, /^no process runs the instances of cmg1/);
    assert.equal(cmgStatus(cert, ["cp01.contoso.test"], inst, Date.parse(started) + STARTING_MS + 1000, run).status, "Error");
  });

  it("says a missing connection point too", () => {
    const s = cmgStatus(cert, [], inst, at(STARTING_MS + 1000), { state: "running", at: null, reason: null, name: "cmg1", supervised: false, createdAt: created });
    assert.equal(s.status, "Error");
    assert.match(s.reason, /; also, no CMG connection point is bound to it/);
  });

  it("is the connection points' status when a process runs them, or when not known here", () => {
    for (const supervised of [true, undefined]) {
      const s = cmgStatus(cert, ["cp01.contoso.test"], inst, at(STARTING_MS + 1000), { state: "running", at: null, reason: null, name: "cmg1", supervised, createdAt: created });
      assert.equal(s.status, "Provisioning");
      assert.match(s.reason, /^waiting for the connection point/);
    }
  });

  it("is Stopped when stopped, whatever runs it", () => {
    const s = cmgStatus(cert, ["cp01.contoso.test"], inst, at(STARTING_MS + 1000), { state: "stopped", at: created, reason: "admin API", name: "cmg1", supervised: false, createdAt: created });
    assert.equal(s.status, "Stopped");
  });
});
