/**
 * The local provider as the CLI and the admin API run it: start a CMG's instances as processes
 * (bin/opencmg.mjs, so build first), see them running through the pid file, stop them.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { connect } from "node:net";
import { after, before, it } from "node:test";
import { ValidationError } from "../../../src/errors.ts";
import { localCmgStatus, localPidFile, startLocalCmg, stopLocalCmg, type RunningLocalCmg } from "../../../src/cmg/local-runner.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { until } from "../../helpers/until.ts";

let site: OpenedSite;
let dataDir: string;
let pki: TestPki;
let running: RunningLocalCmg | undefined;

before(async () => {
  pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  dataDir = tempDir();
  // Log options as `site serve --log-level warning --log-size-mb 3` gives them: its instances get them too.
  site = await openSite({ dataDir, logLevel: "warning", logSizeBytes: 3 * 1024 * 1024 });
  await initSite(site, { code: "P01", name: "E2E" });
});

after(async () => {
  await running?.stop();
  await site.close();
});

const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });

it("starts a local CMG's instances, shows them running, and stops them", async () => {
  const clientBase = await freePortRange(2);
  const tunnelBase = await freePortRange(2);
  await site.services.cmgs.create({
    name: "cmg1",
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    instances: 2,
    trustedRoots: [pki.root.certPem],
    deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: clientBase, tunnelPortBase: tunnelBase, metricsPortBase: 0 },
  });
  assert.deepEqual(localCmgStatus(dataDir, "cmg1"), { running: false, pid: null, pidFile: localPidFile(dataDir, "cmg1") });

  running = await startLocalCmg(site, "CMG1", { dataDir });
  assert.equal(running.view.name, "cmg1");
  assert.equal(running.pids().length, 2);
  for (const pid of running.pids()) {
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const at = args.indexOf("--log-level");
    assert.deepEqual(args.slice(at, at + 4), ["--log-level", "warning", "--log-size-mb", "3"], `instance ${pid} runs with the site's log options: ${args.join(" ")}`);
  }
  // Ready means each instance said it listens.
  assert.equal(await listening(clientBase), true);
  assert.equal(await listening(clientBase + 1), true);
  assert.deepEqual(localCmgStatus(dataDir, "cmg1"), { running: true, pid: process.pid, pidFile: localPidFile(dataDir, "cmg1") });

  await running.stop();
  running = undefined;
  assert.equal(existsSync(localPidFile(dataDir, "cmg1")), false);
  assert.equal(localCmgStatus(dataDir, "cmg1").running, false);
  assert.throws(() => stopLocalCmg(dataDir, "cmg1"), (e: unknown) => e instanceof ValidationError && e.field === "name");
});

it("stop removes the pid file a process that is gone left behind", async () => {
  // Above the kernel's largest pid_max (2^22): no process can have it, so nothing else gets signalled.
  const pid = 2 ** 22 + 1;
  const pidFile = localPidFile(dataDir, "gone");
  mkdirSync(dirname(pidFile), { recursive: true });
  writeFileSync(pidFile, String(pid));
  assert.equal(localCmgStatus(dataDir, "gone").running, false);
  assert.deepEqual(stopLocalCmg(dataDir, "gone"), { pid });
  assert.equal(existsSync(pidFile), false);
});

it("a restart the busy site database cannot record is logged and the instance runs anyway; the next one is recorded", async () => {
  await site.services.cmgs.remove("cmg1"); // the test certificate serves one CMG at a time
  await site.services.cmgs.create({
    name: "busy",
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    instances: 1,
    trustedRoots: [pki.root.certPem],
    deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: await freePortRange(1), tunnelPortBase: await freePortRange(1), metricsPortBase: 0 },
  });
  // As the CLI does: a site opened for each restart's write, here waiting at most 300 ms for the lock.
  const withSite = async (fn: (s: OpenedSite) => Promise<void>): Promise<void> => {
    const s = await openSite({ dataDir, busyTimeoutMs: 300 });
    try {
      await fn(s);
    } finally {
      await s.close();
    }
  };
  running = await startLocalCmg(site, "busy", { dataDir, withSite });
  const setupLog = (): string => readFileSync(join(dataDir, "logs", "CMGSetup.log"), "utf8");
  const [first] = running.pids();
  // Another writer holds the database's write lock for the whole restart.
  const lock = new Database(join(dataDir, "site.db"));
  try {
    lock.exec("BEGIN IMMEDIATE");
    process.kill(first!, "SIGKILL");
    const second = await until("a new instance process", () => running!.pids().find((p) => p !== first));
    await until("the failed write to be logged", () => (/Could not record the restart of instance 0 in the site database \(the site database is busy/.test(setupLog()) ? true : undefined));
    assert.deepEqual(running.pids(), [second], "the instance runs anyway");
  } finally {
    lock.exec("ROLLBACK");
    lock.close();
  }
  assert.equal((await site.services.cmgs.show("busy")).instances[0]!.restarts, 0);

  const [second] = running.pids();
  process.kill(second!, "SIGKILL");
  const inst = await until("the second restart to be recorded", async () => {
    const i = (await site.services.cmgs.show("busy")).instances[0]!;
    return i.restarts === 1 ? i : undefined;
  });
  assert.equal(inst.lastExit, "SIGKILL");
  await running.stop();
  running = undefined;
});

it("refuses a CMG of the external provider", async () => {
  const { createCa, issueCert } = await import("../../../src/pki/issue.ts");
  const root = await createCa({ commonName: "Ext Root" });
  const server = await issueCert({ issuer: root, commonName: "ext.contoso.test", dnsNames: ["ext.contoso.test"], usage: "server" });
  await site.services.cmgs.create({ name: "ext", serverCertPem: server.certPem, serverKeyPem: server.keyPem, provider: "external" });
  await assert.rejects(startLocalCmg(site, "ext", { dataDir }), (e: unknown) => e instanceof ValidationError && e.field === "provider");
  assert.equal(localCmgStatus(dataDir, "ext").running, false);
});
