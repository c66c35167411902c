/**
 * A real `opencmg site serve` runs the local-provider CMGs created over its API: create, scale,
 * stop, start and delete take effect with no `opencmg cmg start` in a shell; `cmg start` run
 * meanwhile leaves the instances to it; SIGTERM stops them with it. Without a process that runs
 * them (`site serve --no-local-cmgs`), the CMG's status names what to start.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { initSite, openSite } from "../../../src/site/site.ts";
import { apiClient } from "../../helpers/api.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { runCli } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { answers, freePortRange } from "../../helpers/ports.ts";
import { childrenOf } from "../../helpers/proc.ts";
import { startSiteServe, type SiteServe } from "../../helpers/site-serve.ts";
import { until } from "../../helpers/until.ts";

const started: ChildProcess[] = [];
let pki: TestPki;

before(async () => {
  pki = await makeTestPki({ serverName: "cmg.contoso.test" });
});

after(() => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

async function newSite(): Promise<{ data: string; token: string }> {
  const data = tempDir();
  const site = await openSite({ dataDir: data });
  try {
    const { adminToken } = await initSite(site, { code: "P01", name: "E2E" });
    return { data, token: adminToken };
  } finally {
    await site.close();
  }
}

/** `opencmg site serve` on a free port (test/helpers/site-serve.ts), killed after the tests if still running. */
async function siteServe(data: string, extra: string[] = []): Promise<SiteServe> {
  const serve = await startSiteServe(data, extra);
  started.push(serve.child);
  return serve;
}

function createBody(name: string, client: number, tunnel: number, instances = 1): Record<string, unknown> {
  return {
    name,
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    trustedRoots: [pki.root.certPem],
    instances,
    provider: "local",
    deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: client, tunnelPortBase: tunnel, metricsPortBase: 0 },
  };
}

it("runs the instances of a CMG created, scaled, stopped, started and deleted over its API, and stops them on SIGTERM", async () => {
  const { data, token } = await newSite();
  const serve = await siteServe(data);
  const api = apiClient(serve.url, token);
  const client = await freePortRange(2);
  const tunnel = await freePortRange(2);

  const created = await api("POST", "/api/v1/cmgs", createBody("cmg1", client, tunnel));
  assert.equal(created.status, 201, created.text);
  await until("instance 0 to answer on its client port", () => answers(client));
  const [instance0] = await until("one instance process under site serve", () => {
    const c = childrenOf(serve.child.pid!);
    return c.length === 1 ? c : undefined;
  });

  // `cmg start` while site serve runs them: it says who runs them and exits, starting nothing more.
  const again = await runCli(["--data", data, "cmg", "start", "cmg1"]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout + again.stderr, new RegExp(`the process that runs its instances here \\(${serve.child.pid}\\) starts them`));
  assert.deepEqual(childrenOf(serve.child.pid!), [instance0], "no second instance process");

  const scaled = await api("PATCH", "/api/v1/cmgs/cmg1", { instances: 2 });
  assert.equal(scaled.status, 200, scaled.text);
  await until("instance 1 to answer after the scale-up", () => answers(client + 1));

  assert.equal((await api("POST", "/api/v1/cmgs/cmg1/stop")).status, 200);
  await until("both instances to stop", async () => !(await answers(client)) && !(await answers(client + 1)));
  await until("no instance process left", () => childrenOf(serve.child.pid!).length === 0);

  assert.equal((await api("POST", "/api/v1/cmgs/cmg1/start")).status, 200);
  await until("both instances to answer after the start", async () => (await answers(client)) && (await answers(client + 1)));

  const deleted = await api("DELETE", "/api/v1/cmgs/cmg1");
  assert.equal(deleted.status, 200, deleted.text);
  assert.equal(deleted.body.deleted, "cmg1");
  await until("the instances to stop after the delete", async () => !(await answers(client)) && !(await answers(client + 1)));
  assert.equal(existsSync(join(data, "cmg", "cmg1")), false, "start-up bundle and keys removed");

  // A CMG created again runs again, then SIGTERM stops the site and its instances, exit code 0.
  assert.equal((await api("POST", "/api/v1/cmgs", createBody("cmg2", client, tunnel))).status, 201);
  await until("cmg2's instance to answer", () => answers(client));
  serve.child.kill("SIGTERM");
  const code = await until("site serve to exit", () => serve.child.exitCode ?? undefined);
  assert.equal(code, 0, serve.stderr());
  assert.match(serve.stderr(), /OpenCMG site stopped \(SIGTERM\)\n$/);
  assert.equal(await answers(client), false, "the instance stopped with the site");
  assert.equal(existsSync(join(data, "cmg", "cmg2", "start.pid")), false, "its pid file removed");
});

it("leaves a CMG that `cmg start` runs to it, and takes it over once that ends", async () => {
  const { data } = await newSite();
  const client = await freePortRange(1);
  const tunnel = await freePortRange(1);
  const site = await openSite({ dataDir: data });
  try {
    await site.services.cmgs.create(createBody("cmg1", client, tunnel) as unknown as Parameters<typeof site.services.cmgs.create>[0]);
  } finally {
    await site.close();
  }
  const cmgStart = spawn(process.execPath, [OPENCMG_BIN, "--data", data, "cmg", "start", "cmg1"], { stdio: ["ignore", "ignore", "pipe"] });
  started.push(cmgStart);
  let err = "";
  cmgStart.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  await until(`cmg start to run the instance (${err})`, () => /Ctrl-C stops them/.test(err));
  const serve = await siteServe(data);
  // Its scans see the CMG and leave it: still one instance, under cmg start.
  await until("site serve to leave cmg1 to cmg start", async () => {
    const { readFileSync } = await import("node:fs");
    return /CMG cmg1 is left to the process that runs it already/.test(readFileSync(join(data, "logs", "CMGSetup.log"), "utf8"));
  });
  assert.equal(childrenOf(serve.child.pid!).length, 0);
  assert.equal(childrenOf(cmgStart.pid!).length, 1);
  cmgStart.kill("SIGTERM");
  await until("cmg start to exit", () => cmgStart.exitCode !== null);
  await until("site serve to take the CMG over", () => childrenOf(serve.child.pid!).length === 1);
  await until("the instance to answer again", () => answers(client));
  serve.child.kill("SIGTERM");
  await until("site serve to exit", () => serve.child.exitCode !== null);
});

it("says what to start when nothing runs a local CMG's instances", async () => {
  const { data, token } = await newSite();
  const serve = await siteServe(data, ["--no-local-cmgs"]);
  const api = apiClient(serve.url, token);
  const created = await api("POST", "/api/v1/cmgs", createBody("cmg1", await freePortRange(1), await freePortRange(1)));
  assert.equal(created.status, 201, created.text);
  const shown = await api("GET", "/api/v1/cmgs/cmg1");
  // Just created: Provisioning (the status turns Error once the start-up window passes), with the reason either way.
  assert.equal(shown.body.status, "Provisioning");
  assert.match(shown.body.statusReason, /^no process runs the instances of \S+: start the OpenCMG site service \(opencmg-site\) on the site server; it runs the instances of the CMGs with the local provider/);
  // Read in the console too: which service to start, no shell command line.
  assert.doesNotMatch(shown.body.statusReason, /`/);
  serve.child.kill("SIGTERM");
  await until("site serve to exit", () => serve.child.exitCode !== null);
});
