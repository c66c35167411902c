/**
 * The 11488 transitions on SQLite and PostgreSQL, with the real checker going through a real
 * Squid (the proxy configured on the service connection point's server, with its proxy account)
 * to loopback stand-ins for the catalog's names.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { selectEndpoints } from "../../../src/endpoints/catalog.ts";
import { onPort, type CheckTarget } from "../../../src/endpoints/checker.ts";
import { parseLines } from "../../../src/logs/cmtrace.ts";
import type { OpenedSite } from "../../../src/site/site.ts";
import { StatusId } from "../../../src/site/status-ids.ts";
import { forEachDatabase } from "../../helpers/databases.ts";
import { refusingPort, startInternet, type Internet } from "../../helpers/internet.ts";
import { openTestSite } from "../../helpers/site.ts";
import { startSquid, type TestSquid } from "../../helpers/squid.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EndpointMonitor, SERVICE_CONNECTOR, scheduleFromEnv, siteUsage } from "../../../src/roles/scp/endpoint-monitor.ts";
import { LOG_FILES } from "../../../src/logs/files.ts";
import { endpointMonitor } from "../../../src/app/role-deps.ts";

const SCP = "scp01.contoso.com";
const AUTH = { username: "svc-proxy", password: "Pr0xy-Secret" };
/** Every concrete host the service connection point needs (wildcards are not testable). */
const HOSTS = [...new Set(selectEndpoints({ roles: ["service-connection-point"], cloud: "public" }).endpoints.filter((e) => !e.wildcard).map((e) => e.host))];

let internet: Internet;
let squid: TestSquid;
let refused: number;
/** Hosts whose targets go to a port where nothing listens. */
let broken = new Set<string>();

const mapTarget = (t: CheckTarget): CheckTarget =>
  onPort(t, broken.has(t.host) ? refused : t.scheme === "https" ? internet.httpsPort : internet.httpPort);

before(async () => {
  internet = await startInternet({ names: [...HOSTS, "localhost"] });
  internet.route("/", (_req, res) => {
    res.writeHead(200, { "content-length": 0 });
    res.end();
  });
  internet.route("/fwlink/", (_req, res) => {
    res.writeHead(302, { location: "https://go.microsoft.com/", "content-length": 0 });
    res.end();
  });
  refused = await refusingPort();
  squid = await startSquid({ hosts: internet.hosts(), auth: AUTH });
});

after(async () => {
  await squid?.stop();
  await internet?.stop();
});

async function scpSite(db: Parameters<typeof openTestSite>[0]): Promise<OpenedSite> {
  const site = await openTestSite(db);
  await site.services.servers.add({ fqdn: SCP });
  await site.services.accounts.add("svc-proxy", AUTH.username, AUTH.password);
  await site.services.proxies.set(SCP, { host: squid.host, port: squid.port, account: "svc-proxy" });
  await site.services.roles.add(SCP, "service-connection-point");
  return site;
}

function monitorFor(site: OpenedSite, extra: { reminderMs?: number } = {}): EndpointMonitor {
  return endpointMonitor(site, { mapTarget, ca: [internet.ca.certPem], stageTimeoutMs: 5000, ...extra });
}

forEachDatabase("the endpoint monitor", (db) => {
  const sites: OpenedSite[] = [];
  after(async () => {
    for (const s of sites) await s.close();
  });

  test("failing -> 11488 + Critical; the same failures again -> no second 11488; a changed set -> 11488; recovered -> OK + 11489", async () => {
    const site = await scpSite(db);
    sites.push(site);
    const monitor = monitorFor(site);
    const status = site.services.status;
    const messages = async (id: number) => status.messages({ component: SERVICE_CONNECTOR, messageId: id });
    const component = async () => (await status.components(SCP)).find((c) => c.component === SERVICE_CONNECTOR);

    broken = new Set(["go.microsoft.com"]);
    const first = (await monitor.runOnce())!;
    assert.equal(first.transition, "raised", JSON.stringify(first.report.results.filter((r) => r.result !== "pass" && r.result !== "not-testable")));
    // go.microsoft.com is in the catalog as https and http, and as the fwlink URL: all three fail.
    assert.deepEqual(
      first.failing.map((f) => [new URL(f.url).hostname, new URL(f.url).protocol, f.stage, f.code]),
      [["go.microsoft.com", "http:", "connect", 12029], ["go.microsoft.com", "https:", "connect", 12029], ["go.microsoft.com", "https:", "connect", 12029]],
    );
    let raised = await messages(StatusId.ENDPOINTS_UNREACHABLE);
    assert.equal(raised.length, 1);
    assert.equal(raised[0]!.severity, "error");
    assert.equal(raised[0]!.server, SCP);
    assert.match(raised[0]!.text, /https:\/\/go\.microsoft\.com:\d+\/ \(error 12029 at the connect stage\)/);
    assert.match(raised[0]!.text, /proxy 127\.0\.0\.1:\d+ as svc-proxy/);
    assert.doesNotMatch(raised[0]!.text, new RegExp(AUTH.password));
    assert.equal((await component())?.status, "Critical");
    // The check went through the server's proxy with its account.
    assert.ok((await squid.accessEntries()).some((e) => e.user === AUTH.username && e.method === "CONNECT"));

    const second = (await monitor.runOnce())!;
    assert.equal(second.transition, "unchanged");
    assert.equal((await messages(StatusId.ENDPOINTS_UNREACHABLE)).length, 1, "no second 11488 for the same failures");
    assert.equal((await component())?.status, "Critical");

    broken = new Set(["go.microsoft.com", "download.microsoft.com"]);
    const third = (await monitor.runOnce())!;
    assert.equal(third.transition, "raised");
    raised = await messages(StatusId.ENDPOINTS_UNREACHABLE);
    assert.equal(raised.length, 2);
    assert.match(raised[1]!.text, /download\.microsoft\.com/);

    broken = new Set();
    const fourth = (await monitor.runOnce())!;
    assert.equal(fourth.transition, "recovered");
    assert.equal((await component())?.status, "OK");
    const back = await messages(StatusId.ENDPOINTS_REACHABLE);
    assert.equal(back.length, 1);
    assert.equal(back[0]!.severity, "informational");

    const fifth = (await monitor.runOnce())!;
    assert.equal(fifth.transition, "ok");
    assert.equal((await messages(StatusId.ENDPOINTS_REACHABLE)).length, 1, "no 11489 without a failure before it");
    assert.equal((await messages(StatusId.ENDPOINTS_UNREACHABLE)).length, 2);

    const lines = parseLines(readFileSync(join(site.logs.dir, LOG_FILES.endpointCheck.file), "utf8"));
    assert.ok(lines.every((l) => l.component === SERVICE_CONNECTOR));
    assert.ok(lines.some((l) => l.type === 3 && /go\.microsoft\.com.*12029/.test(l.text)));
    assert.ok(!lines.some((l) => l.text.includes(AUTH.password)));
  });

  test("an unchanged failing set is raised again after the reminder period; a second monitor shares the state", async () => {
    const site = await scpSite(db);
    sites.push(site);
    broken = new Set(["aka.ms"]);
    assert.equal((await monitorFor(site).runOnce())!.transition, "raised");
    // A new monitor (a restarted site process) reads the state from the database.
    assert.equal((await monitorFor(site).runOnce())!.transition, "unchanged");
    assert.equal((await monitorFor(site, { reminderMs: 1 }).runOnce())!.transition, "raised");
    assert.equal((await site.services.status.messages({ messageId: StatusId.ENDPOINTS_UNREACHABLE })).length, 2);
    broken = new Set();
  });

  test("no service connection point: nothing to check, nothing raised", async () => {
    const site = await openTestSite(db);
    sites.push(site);
    assert.equal(await monitorFor(site).runOnce(), undefined);
    assert.equal((await site.services.status.messages({ component: SERVICE_CONNECTOR })).length, 0);
    const usage = await siteUsage(site.services);
    assert.equal(usage.scpServer, undefined);
  });

  test("the schedule runs the check and stops on stop()", async () => {
    const site = await scpSite(db);
    sites.push(site);
    broken = new Set(["aka.ms"]);
    const monitor = endpointMonitor(site, { mapTarget, ca: [internet.ca.certPem], stageTimeoutMs: 5000, firstRunDelayMs: 1, intervalMs: 3_600_000 });
    monitor.start();
    // Bounded wait for the first scheduled run to be recorded.
    for (let i = 0; i < 200 && (await site.services.status.messages({ messageId: StatusId.ENDPOINTS_UNREACHABLE })).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    await monitor.stop();
    assert.equal((await site.services.status.messages({ messageId: StatusId.ENDPOINTS_UNREACHABLE })).length, 1);
    broken = new Set();
  });
});

describe("scheduleFromEnv", () => {
  test("seconds, 0 for off, errors name the variable", () => {
    assert.deepEqual(scheduleFromEnv(undefined), {});
    assert.deepEqual(scheduleFromEnv("900"), { intervalMs: 900_000 });
    assert.equal(scheduleFromEnv("0"), false);
    assert.throws(() => scheduleFromEnv("soon"), /OPENCMG_ENDPOINT_CHECK_INTERVAL/);
  });
});
