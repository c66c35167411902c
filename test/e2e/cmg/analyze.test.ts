/**
 * Why a device cannot connect, with real processes: a site made with the CLI, `mp serve`,
 * `cmg start` (two instance processes) and `connection-point serve`; `cmg analyze` and the client
 * agent (`client run --once`, `client status`, `client diagnose`) run as the binary. For each
 * refusal of the gateway, both name the check that refused and the reason code the gateway
 * answered with; with a good certificate every check passes and both exit 0.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { issueCert } from "../../../src/pki/issue.ts";
import { GATEWAY_REFUSALS } from "../../../src/wire/refusals.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { startCrlServer, type CrlServer } from "../../helpers/cmg-backend.ts";
import { tempDir } from "../../helpers/databases.ts";
import { forgeClientCert, makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePort, freePortRange } from "../../helpers/ports.ts";
import { until } from "../../helpers/until.ts";
import { runCli, type CliResult } from "../../helpers/cli.ts";
import { clientStatus } from "../../../src/client/folder.ts";
import { openSite } from "../../../src/site/site.ts";
import { startSiteServer } from "../../../src/app/site-server.ts";

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}
interface Check {
  check: string;
  status: "pass" | "fail" | "skip";
  reason?: string;
  cause?: string;
  fix?: string;
}
interface Analysis {
  ok: boolean;
  checks: Check[];
}
interface Diagnosis {
  ok: boolean;
  checks: Check[];
  refusedBy: { reason: string; cause?: string; check: string; fix: string; byGateway: boolean } | null;
}

const children = new Set<ChildProcess>();
const ENV = { ...process.env, OPENCMG_DATA: "", OPENCMG_CLIENT_DIR: "" };

/** The binary, to its end; asynchronous, so this process keeps serving the CRLs meanwhile. */
function run(args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [OPENCMG_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: ENV });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A long-running command of the binary. */
function start(args: string[]): { child: ChildProcess; out: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [OPENCMG_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: ENV });
  children.add(child);
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => (children.delete(child), r(code))));
  return { child, out: () => out, exit };
}

async function stop(p: { child: ChildProcess; exit: Promise<number | null> }): Promise<void> {
  if (p.child.exitCode === null) p.child.kill("SIGTERM");
  await p.exit;
}

const json = <T>(r: Ran, what: string): T => {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`${what}: no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
};

let root: string;
let data: string;
let pki: TestPki;
let crl: CrlServer;
let mpRole: string;
let closedRole: string;
let cmgUrl: string;
let clientTemplate: string;
const procs: { cp?: ReturnType<typeof start>; cmg?: ReturnType<typeof start>; mp?: ReturnType<typeof start> } = {};
const file = (name: string, text: string): string => (writeFileSync(join(root, name), text), join(root, name));
const site = (args: string[]): Promise<Ran> => run(["--data", data, ...args]);

/** Set-up commands run in this process (same code as the binary, without a process start each). */
async function mustSucceed(args: string[]): Promise<CliResult> {
  const r = await runCli(["--data", data, ...args]);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r;
}

const analyze = async (cert?: { certPem: string; keyPem: string }, tag = "x"): Promise<{ code: number | null; a: Analysis }> => {
  const args = ["cmg", "analyze", "cmg1", "--json"];
  if (cert) args.push("--cert", file(`${tag}.pem`, cert.certPem), "--key", file(`${tag}.key`, cert.keyPem));
  const r = await site(args);
  return { code: r.code, a: json<Analysis>(r, "cmg analyze") };
};

/** A copy of the installed client, its certificate replaced (or removed, or its CMG URL changed). */
function clientWith(tag: string, o: { cert?: { certPem: string; keyPem: string } | null; mpUrl?: string }): string {
  const dir = join(root, `client-${tag}`);
  cpSync(clientTemplate, dir, { recursive: true });
  if (o.cert === null) rmSync(join(dir, "client.pem"));
  else if (o.cert) {
    writeFileSync(join(dir, "client.pem"), o.cert.certPem);
    writeFileSync(join(dir, "client.key"), o.cert.keyPem, { mode: 0o600 });
  }
  if (o.mpUrl) {
    // As if installed with that URL: the only CMG the client knows.
    const config = JSON.parse(readFileSync(join(dir, "client.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(dir, "client.json"), JSON.stringify({ ...config, bootstrapMp: o.mpUrl }));
    const state = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(dir, "state.json"), JSON.stringify({ ...state, candidates: [] }));
  }
  return dir;
}

/** The name of an instance's check of one kind (the CMG has instances 0 and 1; the one open management point). */
const checkName = (kind: "tunnels" | "location request", i: number): string =>
  kind === "tunnels" ? `instance ${i} tunnels` : `location request via instance ${i} to management point ${mpRole}`;

/**
 * One check of `kind` per instance, looked up by name: a missing check is `undefined` here, so
 * `perInstance(...).every(...)` cannot hold for a list that came out empty or renamed.
 */
const perInstance = (a: Analysis, kind: "tunnels" | "location request"): (Check | undefined)[] => [0, 1].map((i) => a.checks.find((c) => c.check === checkName(kind, i)));

/** Asserts that each instance has its check of `kind` with this status and reason. */
function assertPerInstance(a: Analysis, kind: "tunnels" | "location request", status: Check["status"], reason: string): void {
  assert.deepEqual(
    perInstance(a, kind).map((c) => c && { check: c.check, status: c.status, reason: c.reason }),
    [0, 1].map((i) => ({ check: checkName(kind, i), status, reason })),
    JSON.stringify(a.checks.map((c) => [c.check, c.status, c.reason])),
  );
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The client fails its cycle, records the refusal, and `client diagnose` names the check. */
async function clientRefused(dir: string, reason: string, cause?: string, o: { text?: boolean } = {}): Promise<Diagnosis> {
  const cycle = await run(["client", "run", "--once", "--client-dir", dir]);
  assert.equal(cycle.code, 1, cycle.stdout + cycle.stderr);
  assert.match(cycle.stderr, new RegExp(`the CMG refused the client: \\d{3} ${reason}`));
  const status = clientStatus(dir);
  assert.equal(status.lastRefusal?.reason, reason, JSON.stringify(status));
  assert.equal(status.lastRefusal?.byGateway, true);
  assert.equal(status.lastRefusal?.check, GATEWAY_REFUSALS[reason]!.check);
  if (o.text) {
    const shown = await run(["client", "status", "--client-dir", dir]);
    assert.match(shown.stdout, new RegExp(`^last refusal +\\S+ by the CMG: \\d{3} ${reason}`, "m"));
    const text = await run(["client", "diagnose", "--client-dir", dir]);
    assert.equal(text.code, 1);
    assert.match(text.stdout, new RegExp(`Refused by the CMG's ${escape(GATEWAY_REFUSALS[reason]!.check)} check \\(${reason}`));
  }
  const r = await run(["client", "diagnose", "--client-dir", dir, "--json"]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const d = json<Diagnosis>(r, "client diagnose");
  assert.equal(d.ok, false);
  assert.equal(d.refusedBy?.reason, reason, JSON.stringify(d));
  assert.equal(d.refusedBy?.byGateway, true);
  assert.equal(d.refusedBy?.check, GATEWAY_REFUSALS[reason]!.check);
  if (cause) assert.equal(d.refusedBy?.cause, cause);
  assert.ok(d.refusedBy!.fix.length > 0);
  return d;
}

/**
 * A certificate the device's own TLS library may refuse to present, depending on OpenSSL's default
 * security level (SHA-1, RSA-1024): then the CMG never sees it. Either way the device's own check
 * and `client diagnose` name the gateway check that refuses it.
 */
async function clientRefusedWeak(dir: string, reason: string): Promise<void> {
  const r = await run(["client", "diagnose", "--client-dir", dir, "--json"]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const d = json<Diagnosis>(r, "client diagnose");
  assert.equal(d.checks[0]!.status, "fail");
  assert.equal(d.checks[0]!.reason, reason);
  assert.equal(d.refusedBy?.reason, reason, JSON.stringify(d));
  assert.equal(d.refusedBy?.check, GATEWAY_REFUSALS[reason]!.check);
}

/** `cmg analyze` fails; the client certificate check and the location requests name the reason. */
async function analyzeRefuses(tag: string, cert: { certPem: string; keyPem: string }, reason: string, cause?: string): Promise<void> {
  const { code, a } = await analyze(cert, tag);
  assert.equal(code, 1, JSON.stringify(a));
  assert.equal(a.ok, false);
  const certCheck = a.checks.find((c) => c.check.startsWith("client certificate") && c.status === "fail");
  assert.equal(certCheck?.reason, reason, JSON.stringify(a.checks));
  if (cause) assert.equal(certCheck?.cause, cause);
  const located = a.checks.filter((c) => c.check.startsWith("location request"));
  assert.equal(located.length, 2, "one per instance");
  for (const l of located) {
    assert.equal(l.status, "fail");
    assert.equal(l.reason, reason, "the gateway refused with the same reason");
    if (cause) assert.equal(l.cause, cause);
  }
}

before(async () => {
  root = tempDir("opencmg-analyze-");
  data = join(root, "data");
  crl = await startCrlServer();
  pki = await makeTestPki({ serverName: "cmg.contoso.test", crlBaseUrl: crl.base });
  crl.files = pki.crlFiles;
  const rootFile = file("root.pem", pki.root.certPem);
  const subFile = file("sub.pem", pki.intermediate.certPem);
  await mustSucceed(["site", "init"]);
  await mustSucceed(["server", "add", "mp01.contoso.test"]);
  await mustSucceed(["server", "add", "mp02.contoso.test"]);
  await mustSucceed(["server", "add", "cp01.contoso.test"]);
  let mpPort = await freePort();
  mpRole = String(json<{ id: number }>(await mustSucceed(["role", "add", "mp01.contoso.test", "management-point", "--allow-cmg-traffic", "--internal-url", `https://127.0.0.1:${mpPort}`, "--json"]), "role add").id);
  closedRole = String(json<{ id: number }>(await mustSucceed(["role", "add", "mp02.contoso.test", "management-point", "--no-allow-cmg-traffic", "--internal-url", `https://127.0.0.1:${mpPort}`, "--json"]), "role add").id);
  // Ports free a moment ago may be taken by another test file before a process binds them: tried again on others.
  for (let attempt = 1; ; attempt++) {
    const mp = start(["--data", data, "mp", "serve", "--server", "mp01.contoso.test", "--listen", `127.0.0.1:${mpPort}`, "--trusted-root", rootFile, "--trusted-root", subFile]);
    await until("the MP to serve", () => /serving https/.test(mp.out()) || mp.child.exitCode !== null);
    if (mp.child.exitCode === null) {
      procs.mp = mp;
      break;
    }
    if (!/EADDRINUSE/.test(mp.out()) || attempt === 5) assert.fail(`mp serve exited: ${mp.out()}`);
    mpPort = await freePort();
    await mustSucceed(["role", "set", "mp01.contoso.test", "management-point", "--internal-url", `https://127.0.0.1:${mpPort}`]);
  }
  const serverCert = file("server.pem", pki.server.certPem);
  const serverKey = file("server.key", pki.server.keyPem);
  for (let attempt = 1; ; attempt++) {
    const clientPort = await freePortRange(2);
    const tunnelPort = await freePortRange(2);
    // Revocation checking stays on (the default): the CRL server of this test publishes the CRLs.
    await mustSucceed(["cmg", "create", "cmg1", "--server-cert", serverCert, "--server-key", serverKey, "--instances", "2", "--trusted-root", rootFile, "--intermediate", subFile,
      "--listen-host", "127.0.0.1", "--public-host", "127.0.0.1", "--client-port", String(clientPort), "--tunnel-port", String(tunnelPort), "--metrics-port", "0"]);
    const cmg = start(["--data", data, "cmg", "start", "cmg1"]);
    await until("the instances to listen", () => /Ctrl-C stops them/.test(cmg.out()) || cmg.child.exitCode !== null);
    if (cmg.child.exitCode === null) {
      procs.cmg = cmg;
      cmgUrl = `https://127.0.0.1:${clientPort}`;
      break;
    }
    if (!/EADDRINUSE/.test(cmg.out()) || attempt === 5) assert.fail(`cmg start exited: ${cmg.out()}`);
    await mustSucceed(["cmg", "delete", "cmg1"]);
  }
  await mustSucceed(["role", "add", "cp01.contoso.test", "cmg-connection-point", "--cmg", "cmg1"]);
});

after(async () => {
  for (const p of [procs.cp, procs.cmg, procs.mp]) if (p) await stop(p);
  for (const c of children) c.kill("SIGKILL");
  await crl?.close();
  rmSync(root, { recursive: true, force: true });
});

it("before a connection point configures the instances: not_configured, and no tunnel", async () => {
  const { code, a } = await analyze(pki.client, "good");
  assert.equal(code, 1);
  assertPerInstance(a, "location request", "fail", "not_configured");
  assertPerInstance(a, "tunnels", "fail", "no_connection_point");
});

it("all checks pass with a good certificate: cmg analyze and client diagnose exit 0", async () => {
  procs.cp = start(["--data", data, "connection-point", "serve", "--server", "cp01.contoso.test", "--report-interval", "1"]);
  await until("the CMG to be Ready", async () => (await mustSucceed(["cmg", "show", "cmg1", "--json"])).json<{ status: string }>().status === "Ready");
  const { code, a } = await analyze(pki.client, "good");
  assert.equal(code, 0, JSON.stringify(a.checks.filter((c) => c.status !== "pass")));
  assert.equal(a.ok, true);
  assert.deepEqual(a.checks.filter((c) => c.status !== "pass"), []);
  assert.equal(a.checks.filter((c) => c.check.startsWith("location request")).length, 2);
  const text = await site(["cmg", "analyze", "cmg1", "--cert", join(root, "good.pem"), "--key", join(root, "good.key")]);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /^PASS {2}instance 1 tunnels: connected from cp01\.contoso\.test/m);
  assert.match(text.stdout, /CMG cmg1: \d+ passed, 0 failed, 0 not checked\./);

  clientTemplate = join(root, "client");
  const install = await run(["client", "install", "--mp", `${cmgUrl}/CCM_Proxy_MutualAuth/${mpRole}`, "--always-internet", "--cert", join(root, "good.pem"), "--key", join(root, "good.key"), "--ca", join(root, "root.pem"), "--client-dir", clientTemplate, "--name", "PC-001"]);
  assert.equal(install.code, 0, install.stderr);
  const d = await run(["client", "diagnose", "--client-dir", clientTemplate, "--json"]);
  assert.equal(d.code, 0, d.stdout + d.stderr);
  const diagnosis = json<Diagnosis>(d, "client diagnose");
  assert.equal(diagnosis.refusedBy, null);
  assert.ok(diagnosis.checks.some((c) => c.check.startsWith("CMG ") && c.status === "pass"));
});

it("the admin API serves the same analysis: POST /api/v1/cmgs/:name/analyze with the certificate in the body", async () => {
  const opened = await openSite({ dataDir: data });
  const server = await startSiteServer({ site: opened, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false });
  try {
    const token = readFileSync(join(data, "admin.token"), "utf8").trim();
    const post = (body: unknown) =>
      fetch(`${server.url}/api/v1/cmgs/cmg1/analyze`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    const good = await post({ clientCertPem: pki.client.certPem, clientKeyPem: pki.client.keyPem });
    assert.equal(good.status, 200);
    const a = (await good.json()) as Analysis;
    assert.equal(a.ok, true, JSON.stringify(a.checks.filter((c) => c.status !== "pass")));
    assert.equal(a.checks.filter((c) => c.check.startsWith("location request") && c.status === "pass").length, 2);
    const bad = await post({ clientCertPem: pki.untrustedClient.certPem, clientKeyPem: pki.untrustedClient.keyPem });
    const refused = (await bad.json()) as Analysis;
    assert.equal(refused.ok, false);
    assert.ok(refused.checks.some((c) => c.check.startsWith("location request") && c.reason === "untrusted_chain"));
    assert.ok(!JSON.stringify(refused).includes("PRIVATE KEY"), "the key never comes back");
    const half = await post({ clientCertPem: pki.client.certPem });
    assert.equal(half.status, 400);
    assert.equal(((await half.json()) as { error: { field: string } }).error.field, "clientKey");
  } finally {
    await server.close();
    await opened.close();
  }
});

it("no client certificate: cmg analyze cannot make the location request; the client is told no_certificate", async () => {
  const { code, a } = await analyze(undefined);
  assert.equal(code, 0, "nothing failed, two checks were not made");
  const located = a.checks.filter((c) => c.check.startsWith("location request"));
  assert.ok(located.length === 2 && located.every((c) => c.status === "skip" && c.reason === "no_certificate"), JSON.stringify(located));
  const d = await clientRefused(clientWith("nocert", { cert: null }), "no_certificate");
  assert.equal(d.checks[0]!.status, "fail", "the device's own check sees the missing certificate too");
});

/** Name, certificate, reason, cause, and whether the device's own TLS library may refuse to send it. */
const certCases: [string, () => Promise<{ certPem: string; keyPem: string }>, string, string?, "local"?][] = [
  ["untrusted_chain", async () => pki.untrustedClient, "untrusted_chain"],
  ["expired", async () => pki.expiredClient, "expired"],
  ["not_yet_valid", async () => pki.notYetValidClient, "not_yet_valid"],
  ["wrong_usage", async () => pki.wrongUsageClient, "wrong_usage"],
  ["weak_signature", () => forgeClientCert(pki.intermediate, { hash: "SHA-1", key: { name: "ECDSA", namedCurve: "P-256" } }), "weak_signature", undefined, "local"],
  ["weak_key", () => forgeClientCert(pki.intermediate, { hash: "SHA-256", key: { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" } }), "weak_key", undefined, "local"],
  ["revoked", async () => pki.revokedClient, "revoked"],
  ["no CRL distribution point", () => issueCert({ issuer: pki.intermediate, commonName: "PC-NO-CDP", usage: "client" }), "crl_unavailable", "no_crl_distribution_point"],
  ["CRL not reachable", () => issueCert({ issuer: pki.intermediate, commonName: "PC-LOST-CRL", usage: "client", crlUrl: `${crl.base}/gone.crl` }), "crl_unavailable", "crl_unreachable"],
];

for (const [name, make, reason, cause, local] of certCases) {
  it(`${name}: cmg analyze and client diagnose name the ${reason} check`, async () => {
    const cert = await make();
    const tag = name.replaceAll(" ", "-");
    const dir = clientWith(tag, { cert });
    await Promise.all([analyzeRefuses(tag, cert, reason, cause), local ? clientRefusedWeak(dir, reason) : clientRefused(dir, reason, cause, { text: reason === "untrusted_chain" })]);
  });
}

it("role_not_allowed, unknown_role and bad_path: client diagnose names the check", async () => {
  await clientRefused(clientWith("closed", { mpUrl: `${cmgUrl}/CCM_Proxy_MutualAuth/${closedRole}` }), "role_not_allowed");
  await clientRefused(clientWith("unknown", { mpUrl: `${cmgUrl}/CCM_Proxy_MutualAuth/99999999` }), "unknown_role");
  await clientRefused(clientWith("badpath", { mpUrl: `${cmgUrl}/CCM_Proxy_MutualAuth/${mpRole}/a%2Fb` }), "bad_path");
});

it("an RSA key under the CMG's smallest RSA key setting: weak_key, cause rsa_below_policy", async () => {
  const cert = await forgeClientCert(pki.intermediate, { hash: "SHA-256", key: { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" } });
  await mustSucceed(["cmg", "update", "cmg1", "--min-rsa-bits", "3072"]);
  // The connection point pushes the change on its next look at the site.
  await until("the instances to apply the policy", async () => {
    const r = await runCli(["--data", data, "cmg", "analyze", "cmg1", "--json", "--cert", file("rsa2048.pem", cert.certPem), "--key", file("rsa2048.key", cert.keyPem)]);
    return perInstance(r.json<Analysis>(), "location request").every((c) => c?.reason === "weak_key");
  });
  const dir = clientWith("rsa2048", { cert });
  await Promise.all([analyzeRefuses("rsa2048", cert, "weak_key", "rsa_below_policy"), clientRefused(dir, "weak_key", "rsa_below_policy")]);
});

it("no connection point connected: the tunnels check fails and the gateway answers no_connection_point", async () => {
  await stop(procs.cp!);
  procs.cp = undefined;
  // The instances notice the closed tunnels as their sockets close: waited for, never assumed.
  await until("the instances to have no tunnel", async () => {
    const r = await runCli(["--data", data, "cmg", "analyze", "cmg1", "--json", "--cert", join(root, "good.pem"), "--key", join(root, "good.key")]);
    return perInstance(r.json<Analysis>(), "location request").every((c) => c?.reason === "no_connection_point");
  });
  const { code, a } = await analyze(pki.client, "good");
  assert.equal(code, 1);
  assertPerInstance(a, "tunnels", "fail", "no_connection_point");
  assertPerInstance(a, "location request", "fail", "no_connection_point");
  assert.equal(a.checks.find((c) => c.check === "client certificate chain")?.status, "pass", "the certificate itself is fine");
  await clientRefused(clientWith("nocp", {}), "no_connection_point");
});
