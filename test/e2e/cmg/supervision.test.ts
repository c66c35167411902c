/**
 * `opencmg cmg start` as a real process supervising its instances: an instance that dies is
 * restarted (and the supervisor does not exit meanwhile), the restart is in the site database
 * (a warning status message, the restart count in `cmg show --json`), and instances never
 * outlive their supervisor, even one killed with SIGKILL.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, it } from "node:test";
import type { CmgView } from "../../../src/site/services/cmgs.ts";
import { initSite, openSite } from "../../../src/site/site.ts";
import { StatusId } from "../../../src/site/status-ids.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { childrenOf } from "../../helpers/proc.ts";
import { until } from "../../helpers/until.ts";

/** Data folders, each with one local-provider CMG of one instance (one service FQDN per CMG). */
const dataDirs: Record<string, string> = {};
const started: ChildProcess[] = [];

before(async () => {
  const pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  for (const name of ["restart", "orphans"]) {
    const dataDir = (dataDirs[name] = tempDir());
    const site = await openSite({ dataDir });
    try {
      await initSite(site, { code: "P01", name: "E2E" });
      await site.services.cmgs.create({
        name,
        serverCertPem: pki.server.certPem,
        serverKeyPem: pki.server.keyPem,
        instances: 1,
        trustedRoots: [pki.root.certPem],
        deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: await freePortRange(1), tunnelPortBase: await freePortRange(1), metricsPortBase: 0 },
      });
    } finally {
      await site.close();
    }
  }
});

after(() => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};

/** Starts `opencmg cmg start NAME` and resolves once it says its instances run. */
async function cmgStart(name: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [OPENCMG_BIN, "--data", dataDirs[name]!, "cmg", "start", name], { stdio: ["ignore", "ignore", "pipe"] });
  started.push(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  await until(`cmg start ${name} to run its instances (stderr so far: ${err})`, () => (/Ctrl-C stops them/.test(err) ? true : child.exitCode !== null ? assert.fail(`cmg start exited ${child.exitCode}: ${err}`) : undefined));
  return child;
}

it("restarts an instance that died, and keeps running meanwhile", async () => {
  const sup = await cmgStart("restart");
  const [first] = await until("the instance process", () => {
    const c = childrenOf(sup.pid!);
    return c.length === 1 ? c : undefined;
  });
  const show = (): CmgView => JSON.parse(execFileSync(process.execPath, [OPENCMG_BIN, "--data", dataDirs.restart!, "cmg", "show", "restart", "--json"], { encoding: "utf8" })) as CmgView;
  assert.equal(show().instances[0]!.restarts, 0, "no restart yet");
  assert.equal(show().instances[0]!.lastRestartAt, null);
  process.kill(first!, "SIGKILL");
  const second = await until("a new instance process", () => childrenOf(sup.pid!).find((p) => p !== first));
  assert.equal(sup.exitCode, null, "the supervisor is still running");
  assert.ok(alive(second));

  // The restart is recorded shortly after the new process starts (a write of its own, off the restart's path).
  const inst = await until("cmg show to count the restart", () => {
    const i = show().instances[0]!;
    return i.restarts === 1 ? i : undefined;
  }, 20_000);
  assert.equal(inst.lastExit, "SIGKILL");
  assert.ok(inst.lastRestartAt && Date.now() - Date.parse(inst.lastRestartAt) < 60_000, `last restart time ${inst.lastRestartAt}`);
  const site = await openSite({ dataDir: dataDirs.restart! });
  try {
    const msgs = await site.services.status.messages({ messageId: StatusId.CMG_INSTANCE_RESTARTED });
    assert.equal(msgs.length, 1, JSON.stringify(msgs));
    assert.equal(msgs[0]!.severity, "warning");
    assert.equal(msgs[0]!.component, "CMGSetup");
    assert.match(msgs[0]!.text, /instance 0 exited \(SIGKILL\)/);
    assert.deepEqual(msgs[0]!.properties, { cmg: "restart", instance: 0, exit: "SIGKILL" });
  } finally {
    await site.close();
  }
  const setupLog = readFileSync(`${dataDirs.restart!}/logs/CMGSetup.log`, "utf8");
  assert.match(setupLog, /Instance 0 exited \(SIGKILL\); restarting in \d+ ms/);
  assert.match(setupLog, /Instance 0 restarted \(restart 1/);
  sup.kill("SIGTERM");
  await until("cmg start to exit on SIGTERM", () => (sup.exitCode !== null || sup.signalCode !== null ? true : undefined));
  await until("the instance to stop with it", () => (alive(second) ? undefined : true));
});

it("instances exit when their supervisor is killed with SIGKILL", async () => {
  const sup = await cmgStart("orphans");
  const [instance] = await until("the instance process", () => {
    const c = childrenOf(sup.pid!);
    return c.length === 1 ? c : undefined;
  });
  sup.kill("SIGKILL");
  await until("the orphaned instance to exit", () => (alive(instance!) ? undefined : true));
});
