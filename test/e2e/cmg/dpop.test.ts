/**
 * Proofs of possession and token lifetimes as an attacker tries them, with real processes: a site
 * made with the CLI, `mp serve`, `cmg start` (two instance processes) and `connection-point
 * serve`. A device installed with a bulk token (`client install` as the binary) is managed
 * through both instances by the client agent, which gets each instance's DPoP nonce and retries
 * once with it. Then, with the device's own key and client token (as if both were stolen): a proof
 * used at instance 0 and replayed there and at instance 1, proofs naming another host or `http`,
 * the client token with `Bearer`, a proof issued in the future, and client tokens signed with the
 * site's real signing key that claim an `iat` 5 minutes ahead or a 100-year `exp`. Each is refused
 * with its reason code, a CMGHttpHandler.log line, and (for the tokens) `client diagnose` naming
 * the check.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { decodeJwt, decodeProtectedHeader, importPKCS8, SignJWT } from "jose";
import { Agent, request } from "undici";
import { ClientAgent } from "../../../src/client/agent.ts";
import { clientStatus } from "../../../src/client/folder.ts";
import { loadOrCreateTokenKey, makeProof, type TokenKey } from "../../../src/client/token-key.ts";
import { openSite } from "../../../src/site/site.ts";
import { GATEWAY_REFUSALS } from "../../../src/wire/refusals.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { runCli, type CliResult } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePort, freePortRange } from "../../helpers/ports.ts";
import { until } from "../../helpers/until.ts";

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
const ENV = { ...process.env, OPENCMG_DATA: "", OPENCMG_CLIENT_DIR: "" };

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

/** The CMG's service FQDN (the server certificate's name): both instances answer to it. */
const SERVICE = "https://cmg.contoso.test";

let root: string;
let data: string;
let pki: TestPki;
let mpRole: string;
let clientPort: number;
let device: string;
let key: TokenKey;
let clientToken: string;
let http: Agent;
const procs: { cp?: ReturnType<typeof start>; cmg?: ReturnType<typeof start>; mp?: ReturnType<typeof start> } = {};
const file = (name: string, text: string): string => (writeFileSync(join(root, name), text), join(root, name));
const instanceUrl = (i: number): string => `https://127.0.0.1:${clientPort + i}`;
const policyPath = (): string => `/CCM_Proxy_ServerAuth/${mpRole}/SMS_MP/v1/policy`;

async function mustSucceed(args: string[]): Promise<CliResult> {
  const r = await runCli(["--data", data, ...args]);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r;
}

interface Answer {
  status: number;
  reason: string | undefined;
  nonce: string | undefined;
  wwwAuthenticate: string | undefined;
}

/** One request to instance `i` as an attacker writes it: any scheme, any token, any proof. */
async function send(i: number, o: { token: string; proof?: string; scheme?: string; path?: string }): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `${o.scheme ?? "DPoP"} ${o.token}` };
  if (o.proof) headers.dpop = o.proof;
  const res = await request(`${instanceUrl(i)}${o.path ?? policyPath()}`, { dispatcher: http, headers });
  await res.body.dump();
  const h = (n: string) => (typeof res.headers[n] === "string" ? (res.headers[n] as string) : undefined);
  return { status: res.statusCode, reason: h("x-opencmg-reason"), nonce: h("dpop-nonce"), wwwAuthenticate: h("www-authenticate") };
}

/** The nonce instance `i` hands out (it answers a proof without one with `use_dpop_nonce`). */
async function nonceOf(i: number): Promise<string | undefined> {
  return (await send(i, { token: clientToken, proof: await makeProof(key, "GET", `${instanceUrl(i)}${policyPath()}`, clientToken) })).nonce;
}

const logText = (): string => {
  try {
    return readFileSync(join(data, "logs", "CMGHttpHandler.log"), "utf8");
  } catch {
    return "";
  }
};

/** Refused with `reason` (401 unless told), and a gateway log line names it. */
async function refused(answer: Promise<Answer>, reason: string, status = 401): Promise<void> {
  const before = logText().split(`refused with ${status} ${reason}`).length;
  const a = await answer;
  assert.deepEqual({ status: a.status, reason: a.reason }, { status, reason });
  assert.ok(GATEWAY_REFUSALS[reason], `${reason} is in the refusal table`);
  await until(`a CMGHttpHandler.log line for ${reason}`, () => logText().split(`refused with ${status} ${reason}`).length > before);
}

/** A client token signed with the site's real current signing key, with the device's claims and `change` applied. */
async function forged(change: (claims: Record<string, unknown>) => Record<string, unknown>): Promise<string> {
  const site = await openSite({ dataDir: data });
  try {
    const header = decodeProtectedHeader(clientToken);
    const row = await site.ctx.db.selectFrom("token_signing_keys").select(["kid", "alg", "private_key"]).where("kid", "=", String(header.kid)).executeTakeFirstOrThrow();
    const signer = await importPKCS8(site.ctx.key!.open(row.private_key, `token-signing-key:${row.kid}`), row.alg);
    return await new SignJWT(change({ ...decodeJwt(clientToken) }))
      .setProtectedHeader({ alg: row.alg, kid: row.kid, typ: String(header.typ) })
      .sign(signer);
  } finally {
    await site.close();
  }
}

/** A copy of the device whose client token is `token`: its cycle fails, and status and diagnose name the gateway's check. */
async function deviceRefused(tag: string, token: string, reason: string): Promise<void> {
  const dir = join(root, `device-${tag}`);
  cpSync(device, dir, { recursive: true });
  writeFileSync(join(dir, "client-token"), token + "\n", { mode: 0o600 });
  const cycle = await run(["client", "run", "--once", "--client-dir", dir]);
  assert.equal(cycle.code, 1, cycle.stdout + cycle.stderr);
  assert.match(cycle.stderr, new RegExp(`401 ${reason}`));
  const status = clientStatus(dir);
  assert.equal(status.lastRefusal?.reason, reason, JSON.stringify(status.lastRefusal));
  assert.equal(status.lastRefusal?.byGateway, true);
  assert.equal(status.lastRefusal?.check, GATEWAY_REFUSALS[reason]!.check);
  const diagnosed = await run(["client", "diagnose", "--client-dir", dir, "--json"]);
  const d = JSON.parse(diagnosed.stdout) as { refusedBy: { reason: string; check: string } | null };
  assert.equal(d.refusedBy?.reason, reason, diagnosed.stdout);
  assert.equal(d.refusedBy?.check, GATEWAY_REFUSALS[reason]!.check);
}

before(async () => {
  root = tempDir("opencmg-dpop-");
  data = join(root, "data");
  pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  http = new Agent({ connect: { ca: pki.root.certPem } });
  const rootFile = file("root.pem", pki.root.certPem);
  await mustSucceed(["site", "init"]);
  await mustSucceed(["server", "add", "mp01.contoso.test"]);
  await mustSucceed(["server", "add", "cp01.contoso.test"]);
  let mpPort = await freePort();
  mpRole = String((await mustSucceed(["role", "add", "mp01.contoso.test", "management-point", "--allow-cmg-traffic", "--internal-url", `https://127.0.0.1:${mpPort}`, "--json"])).json<{ id: number }>().id);
  for (let attempt = 1; ; attempt++) {
    const mp = start(["--data", data, "mp", "serve", "--server", "mp01.contoso.test", "--listen", `127.0.0.1:${mpPort}`, "--trusted-root", rootFile]);
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
    clientPort = await freePortRange(2);
    const tunnelPort = await freePortRange(2);
    await mustSucceed(["cmg", "create", "cmg1", "--server-cert", serverCert, "--server-key", serverKey, "--instances", "2", "--trusted-root", rootFile, "--no-crl-check",
      "--listen-host", "127.0.0.1", "--public-host", "127.0.0.1", "--client-port", String(clientPort), "--tunnel-port", String(tunnelPort), "--metrics-port", "0"]);
    const cmg = start(["--data", data, "cmg", "start", "cmg1"]);
    await until("the instances to listen", () => /Ctrl-C stops them/.test(cmg.out()) || cmg.child.exitCode !== null);
    if (cmg.child.exitCode === null) {
      procs.cmg = cmg;
      break;
    }
    if (!/EADDRINUSE/.test(cmg.out()) || attempt === 5) assert.fail(`cmg start exited: ${cmg.out()}`);
    await mustSucceed(["cmg", "delete", "cmg1"]);
  }
  await mustSucceed(["role", "add", "cp01.contoso.test", "cmg-connection-point", "--cmg", "cmg1"]);
  procs.cp = start(["--data", data, "connection-point", "serve", "--server", "cp01.contoso.test", "--report-interval", "1"]);
  await until("the CMG to be Ready", async () => (await mustSucceed(["cmg", "show", "cmg1", "--json"])).json<{ status: string }>().status === "Ready");

  const bulk = (await mustSucceed(["token", "create-bulk", "--lifetime", "60", "--json"])).json<{ token: string }>().token;
  device = join(root, "device");
  const installed = await run(["client", "install", "--mp", `${instanceUrl(0)}/CCM_Proxy_ServerAuth/${mpRole}`, "--token", bulk, "--ca", rootFile, "--name", "PC-DPOP", "--client-dir", device, "--json"]);
  assert.equal(installed.code, 0, installed.stderr);
  key = await loadOrCreateTokenKey(join(device, "token-key.pem"));
  clientToken = readFileSync(join(device, "client-token"), "utf8").trim();
});

after(async () => {
  for (const p of [procs.cp, procs.cmg, procs.mp]) if (p) await stop(p);
  for (const c of children) c.kill("SIGKILL");
  await http?.close();
  rmSync(root, { recursive: true, force: true });
});

it("the client agent cycles through both instances: it gets each instance's nonce and goes on with it", async () => {
  const state = JSON.parse(readFileSync(join(device, "state.json"), "utf8")) as { candidates: { type: string; url: string }[] };
  const urls = state.candidates.map((c) => c.url).sort();
  assert.deepEqual(urls, [0, 1].map((i) => `${instanceUrl(i)}/CCM_Proxy_ServerAuth/${mpRole}`), "the location answer names both instances");
  for (const order of [urls, [...urls].reverse()]) {
    // Instance 0 first, then instance 1 first: the agent pings both and works through the first.
    writeFileSync(join(device, "state.json"), JSON.stringify({ ...state, candidates: order.map((url) => ({ type: "Internet", url })), mpInUse: order[0] }));
    const agent = new ClientAgent({ dir: device });
    try {
      const cycle = await agent.cycle();
      assert.deepEqual(cycle.errors, []);
      assert.equal(cycle.mp, order[0]);
      // The next cycle goes on with the nonces it has (and the candidates of the location answer).
      assert.deepEqual((await agent.cycle()).errors, []);
    } finally {
      await agent.close();
    }
  }
  assert.equal(clientStatus(device).lastRefusal, null, "a nonce asked for is not a refusal the device keeps");
});

it("a proof used at instance 0 is refused when replayed there or at instance 1, even naming the CMG's service name", async () => {
  const proof = await makeProof(key, "GET", `${SERVICE}${policyPath()}`, clientToken, await nonceOf(0));
  assert.equal((await send(0, { token: clientToken, proof })).status, 200, "first use at instance 0");
  await refused(send(1, { token: clientToken, proof }), "use_dpop_nonce");
  await refused(send(0, { token: clientToken, proof }), "proof_replayed");
  // Instance 1 hands out its own nonce with the challenge (RFC 9449 section 8).
  const challenge = await send(1, { token: clientToken, proof });
  assert.match(challenge.wwwAuthenticate ?? "", /^DPoP .*error="use_dpop_nonce"/);
  assert.ok(challenge.nonce && challenge.nonce !== (await nonceOf(0)), "each instance has nonces of its own");
  // A proof for instance 0's own URL is no good at instance 1 whatever its nonce.
  await refused(send(1, { token: clientToken, proof: await makeProof(key, "GET", `${instanceUrl(0)}${policyPath()}`, clientToken, await nonceOf(1)) }), "proof_wrong_url");
});

it("a proof whose htu names another host, port or scheme is refused", async () => {
  const htus = [`https://evil.example:9999${policyPath()}`, `http://127.0.0.1:${clientPort}${policyPath()}`, `https://127.0.0.1:${clientPort + 7}${policyPath()}`, `http://cmg.contoso.test${policyPath()}`];
  const answers: { htu: string; status: number; reason: string | undefined }[] = [];
  for (const htu of htus) {
    const a = await send(0, { token: clientToken, proof: await makeProof(key, "GET", htu, clientToken, await nonceOf(0)) });
    answers.push({ htu, status: a.status, reason: a.reason });
  }
  // All at once, so that a failure shows what each one got.
  assert.deepEqual(answers, htus.map((htu) => ({ htu, status: 401, reason: "proof_wrong_url" })));
  await refused(send(0, { token: clientToken, proof: await makeProof(key, "GET", htus[0]!, clientToken, await nonceOf(0)) }), "proof_wrong_url");
  // Query and fragment are not part of the comparison (RFC 9449 section 4.3).
  assert.equal((await send(0, { token: clientToken, proof: await makeProof(key, "GET", `${instanceUrl(0)}${policyPath()}?x=1#f`, clientToken, await nonceOf(0)) })).status, 200);
});

it("a client token (bound to the device's key) with the Bearer scheme is refused, even with a valid proof", async () => {
  await refused(send(0, { scheme: "Bearer", token: clientToken, proof: await makeProof(key, "GET", `${instanceUrl(0)}${policyPath()}`, clientToken, await nonceOf(0)) }), "bound_token_as_bearer");
});

it("a proof issued 5 minutes in the future is refused", async () => {
  const { createHash, randomUUID } = await import("node:crypto");
  const later = Math.floor(Date.now() / 1000) + 300;
  const proof = await new SignJWT({ htm: "GET", htu: `${instanceUrl(0)}${policyPath()}`, ath: createHash("sha256").update(clientToken).digest("base64url"), nonce: await nonceOf(0) })
    .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: key.publicJwk })
    .setIssuedAt(later)
    .setJti(randomUUID())
    .sign(key.privateKey);
  await refused(send(0, { token: clientToken, proof }), "proof_not_fresh");
});

const proofFor = async (i: number, token: string): Promise<string> => makeProof(key, "GET", `${instanceUrl(i)}${policyPath()}`, token, await nonceOf(i));

it("a client token signed with the site's real key whose iat is 5 minutes ahead is refused at both instances, and the device is told why", async () => {
  const now = Math.floor(Date.now() / 1000);
  const ahead = await forged((c) => ({ ...c, iat: now + 300, nbf: now - 10, exp: now + 300 + 3600 }));
  for (const i of [0, 1]) await refused(send(i, { token: ahead, proof: await proofFor(i, ahead) }), "issued_in_future");
  await deviceRefused("ahead", ahead, "issued_in_future");
});

it("a client token signed with the site's real key with a 100-year exp is refused at both instances, and the device is told why", async () => {
  const now = Math.floor(Date.now() / 1000);
  const century = await forged((c) => ({ ...c, iat: now, nbf: now, exp: now + 100 * 365 * 86_400 }));
  for (const i of [0, 1]) await refused(send(i, { token: century, proof: await proofFor(i, century) }), "lifetime_too_long");
  await deviceRefused("century", century, "lifetime_too_long");
});
