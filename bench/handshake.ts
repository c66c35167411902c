/**
 * What checking a NEW client certificate costs the gateway (issue "capacity", reconnect storm):
 * after a restart every device's certificate is new to the process, so this is the cost a storm
 * pays per device. Old and new checks in the same run, on the same certificates:
 *
 *   npx tsx bench/handshake.ts [--n 400] [--rounds 3] [--revoked 1000] [--conc 8] [--no-tls]
 *
 * 1. The check alone, in this process: the client-certificate authenticator (chain to the test
 *    PKI's roots through its intermediate, validity, key and signature strength, clientAuth EKU,
 *    CRL revocation on, the CRL holding `--revoked` serials) on N distinct P-256 device
 *    certificates, each through a fresh authenticator (nothing cached but what a process keeps
 *    across certificates). "old" is the check as it was (bench/handshake/legacy/, a copy), "new"
 *    is src/. Rounds alternate old and new; CPU from process.cpuUsage.
 * 2. Real TLS (unless --no-tls): an HTTPS server in this process (requestCert, the product's TLS
 *    policy) that runs the authenticator on each request; a client process makes N new TLS
 *    connections (no session reuse), one GET each. Server CPU per handshake and handshakes/s for
 *    TLS alone (no check), old and new.
 */
import { X509Certificate } from "node:crypto";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { createCrl, issueCert, type IssuedCert } from "../src/pki/issue.ts";
import { TLS_POLICY } from "../src/pki/tls-policy.ts";
import { CrlCache } from "../src/pki/crl.ts";
import { MutualTlsAuthenticator, type ClientRequest } from "../src/gateway/auth/client-cert.ts";
import * as legacyAuth from "./handshake/legacy/client-cert.ts";
import * as legacyCrl from "./handshake/legacy/crl.ts";
import { makeTestPki } from "../test/helpers/pki-fixtures.ts";
import { arg, Child } from "./lib/child.ts";

const N = Number(arg("n", "400"));
const ROUNDS = Number(arg("rounds", "3"));
const REVOKED = Number(arg("revoked", "1000"));
const CONC = Number(arg("conc", "8"));
const TLS = !process.argv.includes("--no-tls");
const DAY = 86_400_000;

interface Auth {
  authenticate(req: ClientRequest): unknown;
}
type Impl = "old" | "new";

const pki = await makeTestPki({ crlBaseUrl: "http://127.0.0.1:1" });
const crl = await createCrl({
  issuer: pki.intermediate,
  revoked: [{ serialHex: pki.revokedClient.serialHex }, ...Array.from({ length: REVOKED }, (_, i) => ({ serialHex: (0x100000 + i).toString(16) }))],
  nextUpdate: new Date(Date.now() + DAY),
});
const files: Record<string, string> = { [pki.crlUrls.intermediate!]: crl, [pki.crlUrls.root!]: pki.crls.root };
const fetchCrl = async (url: string): Promise<string> => files[url]!;
const trust = { generation: 1, trustedRoots: pki.trust.roots, intermediates: pki.trust.intermediates, crlCheck: true };

process.stdout.write(`issuing ${N} device certificates (P-256)... `);
const ids: IssuedCert[] = [];
for (let i = 0; i < N; i++) ids.push(await issueCert({ issuer: pki.intermediate, commonName: `PC-${String(i).padStart(6, "0")}`, usage: "client", crlUrl: pki.crlUrls.intermediate! }));
const ders = ids.map((c) => new X509Certificate(c.certPem).raw);
console.log("done");

/** A fresh authenticator of one implementation, its CRL already downloaded (as after the first device). */
async function authenticator(impl: Impl): Promise<{ auth: Auth; close(): void }> {
  const crls = impl === "old" ? new legacyCrl.CrlCache({ fetch: fetchCrl }) : new CrlCache({ fetch: fetchCrl });
  const auth =
    impl === "old"
      ? new legacyAuth.MutualTlsAuthenticator({ trust: () => trust, revocation: crls as legacyCrl.CrlCache })
      : new MutualTlsAuthenticator({ trust: () => trust, revocation: crls as CrlCache });
  const warm = await auth.authenticate(fakeRequest(new X509Certificate(pki.client.certPem).raw));
  if (!(warm as { ok: boolean }).ok) throw new Error(`${impl}: the test client is refused: ${JSON.stringify(warm)}`);
  return { auth, close: () => crls.close() };
}

/** What the authenticator reads of a request: the peer certificate, a new object per call as TLS gives it. */
function fakeRequest(der: Buffer): ClientRequest {
  return { socket: { getPeerX509Certificate: () => new X509Certificate(der) } } as unknown as ClientRequest;
}

async function checkRound(impl: Impl): Promise<{ cpuUs: number; wallMs: number }> {
  const { auth, close } = await authenticator(impl);
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  for (const der of ders) {
    const v = (await auth.authenticate(fakeRequest(der))) as { ok: boolean };
    if (!v.ok) throw new Error(`${impl}: a device certificate was refused: ${JSON.stringify(v)}`);
  }
  const cpu = process.cpuUsage(t0);
  const wallMs = performance.now() - w0;
  close();
  return { cpuUs: (cpu.user + cpu.system) / N, wallMs };
}

const fmt = (x: number, d = 0): string => x.toFixed(d);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`\n1. The check alone (in process), ${N} new certificates per round, CRL with ${REVOKED + 1} serials, ${ROUNDS} rounds`);
const check: Record<Impl, { cpuUs: number; perS: number }[]> = { old: [], new: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const impl of ["old", "new"] as const) {
    const x = await checkRound(impl);
    check[impl].push({ cpuUs: x.cpuUs, perS: (N * 1000) / x.wallMs });
    console.log(`  round ${r + 1} ${impl}: ${fmt(x.cpuUs)} µs CPU per certificate, ${fmt((N * 1000) / x.wallMs)} checks/s`);
  }
}
const oldUs = median(check.old.map((x) => x.cpuUs));
const newUs = median(check.new.map((x) => x.cpuUs));
console.log(`  median: old ${fmt(oldUs)} µs, new ${fmt(newUs)} µs per new certificate; old/new = ${fmt(oldUs / newUs, 1)}x`);

if (TLS) {
  console.log(`\n2. Real TLS handshakes (server in this process, clients in another), ${N} new connections per row, ${CONC} at a time`);
  const clients = Child.node(join(import.meta.dirname, "handshake", "clients.ts"), [], { name: "handshake clients", stdin: "ignore", stdout: "inherit", ipc: true });
  await clients.message("ready", 60_000);
  const row = async (what: "tls only" | Impl): Promise<{ cpuUs: number; perS: number }> => {
    const a = what === "tls only" ? null : await authenticator(what);
    const server: Server = createServer({ cert: pki.server.certPem, key: pki.server.keyPem, ca: [...pki.trust.roots, ...pki.trust.intermediates], requestCert: true, rejectUnauthorized: false, ...TLS_POLICY }, async (req, res) => {
      const v = a ? ((await a.auth.authenticate(req)) as { ok: boolean }) : { ok: true };
      res.writeHead(v.ok ? 200 : 403).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const t0 = process.cpuUsage();
    const done = clients.message<{ type: string; ok: number; refused: number; failed: number; ms: number }>("done", 600_000);
    clients.send({ type: "run", port, ca: pki.root.certPem, ids: ids.map((c) => ({ certPem: c.certPem, keyPem: c.keyPem })), conc: CONC });
    const r = await done;
    const cpu = process.cpuUsage(t0);
    server.close();
    a?.close();
    if (r.ok !== N) throw new Error(`${what}: ${r.ok} of ${N} connections got 200 (${r.refused} refused, ${r.failed} failed)`);
    const out = { cpuUs: (cpu.user + cpu.system) / N, perS: (N * 1000) / r.ms };
    console.log(`  ${what.padEnd(8)}: ${fmt(out.cpuUs)} µs server CPU per handshake, ${fmt(out.perS)} handshakes/s`);
    return out;
  };
  const tlsOnly = await row("tls only");
  const o = await row("old");
  const n = await row("new");
  console.log(`  server CPU per new-certificate handshake: old ${fmt(o.cpuUs)} µs, new ${fmt(n.cpuUs)} µs (TLS alone ${fmt(tlsOnly.cpuUs)} µs); old/new = ${fmt(o.cpuUs / n.cpuUs, 1)}x`);
  console.log(`  handshakes/s: old ${fmt(o.perS)}, new ${fmt(n.perS)}, TLS alone ${fmt(tlsOnly.perS)}`);
  clients.send({ type: "exit" });
}
console.log(`\nload average ${(await import("node:os")).loadavg().map((x) => x.toFixed(2)).join(" ")}`);
process.exit(0);
