// The client-certificate verdict cache must never outlive what a verdict was reached under: new
// trusted roots (a new settings generation) or a new CRL mean checking again, on open connections
// too. Real TLS on loopback (an HTTPS server asking the authenticator), a real CRL cache fed by a
// loopback HTTP server; nothing is faked.
import assert from "node:assert/strict";
import { once } from "node:events";
import { X509Certificate } from "node:crypto";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { Agent, createServer, request, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { makeTestPki, type TestPki } from "../../../test/helpers/pki-fixtures.ts";
import { until } from "../../../test/helpers/until.ts";
import { CrlCache } from "../../pki/crl.ts";
import { createCa, createCrl, issueCert, type IssuedCert } from "../../pki/issue.ts";
import { TLS_POLICY } from "../../pki/tls-policy.ts";
import { MutualTlsAuthenticator, type ClientTrust } from "./client-cert.ts";

const HOUR = 3_600_000;
let pki: TestPki;
let crlServer: HttpServer;
/** What the loopback CRL server answers next for the issuing CA's CRL: each test sets its own. */
let serveCrl: () => string;

before(async () => {
  crlServer = createHttpServer((req, res) => {
    const body = req.url === "/intermediate.crl" ? serveCrl() : pki.crlFiles[req.url!];
    if (body === undefined) res.writeHead(404).end();
    else res.end(body);
  });
  crlServer.listen(0, "127.0.0.1");
  await once(crlServer, "listening");
  pki = await makeTestPki({ crlBaseUrl: `http://127.0.0.1:${(crlServer.address() as AddressInfo).port}` });
});
after(() => crlServer.close());

async function httpFetch(url: string): Promise<Buffer> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

/** An HTTPS server that answers each request with the authenticator's verdict (200, or 403 and the reason). */
async function gatewayLike(auth: MutualTlsAuthenticator): Promise<{ server: Server; port: number }> {
  const server = createServer({ cert: pki.server.certPem, key: pki.server.keyPem, requestCert: true, rejectUnauthorized: false, ...TLS_POLICY }, async (req, res) => {
    const v = await auth.authenticate(req);
    res.writeHead(v.ok ? 200 : 403).end(v.ok ? "ok" : v.reason);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, port: (server.address() as AddressInfo).port };
}

/** One GET; `agent` keeps the connection open between calls (the same TLS connection is reused). */
function get(port: number, agent: Agent | false, client: IssuedCert = pki.client): Promise<{ status: number; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/", servername: "cmg.opencmg.test", ca: pki.root.certPem, cert: client.certPem, key: client.keyPem, agent, ...TLS_POLICY }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("a CRL that gains the certificate's serial refuses it at once, on its open connection and on new ones", async () => {
  const now = Date.now();
  const before = await createCrl({ issuer: pki.intermediate, revoked: [], thisUpdate: new Date(now - HOUR), nextUpdate: new Date(now + HOUR) });
  const revokedNow = await createCrl({ issuer: pki.intermediate, revoked: [{ serialHex: pki.client.serialHex }], thisUpdate: new Date(now - HOUR), nextUpdate: new Date(now + 10 * HOUR) });
  // The CRL without the serial until the client is accepted, then the one with it.
  let published = before;
  serveCrl = () => published;
  // Background refreshes every second (the first CRL's refresh is due at once, minRefreshMs apart).
  const crls = new CrlCache({ fetch: httpFetch, refreshBeforeMs: HOUR, minRefreshMs: 1000 });
  const trust: ClientTrust = { generation: 1, trustedRoots: pki.trust.roots, intermediates: pki.trust.intermediates, crlCheck: true };
  // Verdicts may be reused for ten minutes: only the CRL's change can end this one in time.
  const auth = new MutualTlsAuthenticator({ trust: () => trust, revocation: crls, cacheMs: 600_000 });
  const { server, port } = await gatewayLike(auth);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const chain = [pki.client, pki.intermediate, pki.root].map((c) => new X509Certificate(c.certPem));
    assert.deepEqual(await crls.checkChain(chain), { ok: true }, "the first CRL does not list the client");
    const first = await get(port, agent);
    assert.deepEqual([first.status, first.body], [200, "ok"]);
    published = revokedNow;
    // Through the CRL cache's own check, which answers "revoked" only once the new CRL is in.
    await until("the new CRL taken in", async () => {
      const r = await crls.check(chain[0]!, chain[1]!);
      return !r.ok && r.reason === "revoked";
    });
    const sameConnection = await get(port, agent);
    assert.equal(sameConnection.reused, true, "the second request came on the first one's connection");
    assert.deepEqual([sameConnection.status, sameConnection.body], [403, "revoked"]);
    const newConnection = await get(port, false);
    assert.deepEqual([newConnection.status, newConnection.body], [403, "revoked"]);
  } finally {
    agent.destroy();
    server.close();
    crls.close();
  }
});

test("new trusted roots refuse a certificate accepted under the old ones, on its open connection and on new ones", async () => {
  const crls = new CrlCache({ fetch: httpFetch });
  let trust: ClientTrust = { generation: 1, trustedRoots: pki.trust.roots, intermediates: pki.trust.intermediates, crlCheck: false };
  const auth = new MutualTlsAuthenticator({ trust: () => trust, revocation: crls, cacheMs: 600_000 });
  const { server, port } = await gatewayLike(auth);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    assert.equal((await get(port, agent)).status, 200);
    // The client's root (through the intermediate) is no longer trusted; the second root still is.
    trust = { generation: 2, trustedRoots: [pki.root2.certPem], intermediates: pki.trust.intermediates, crlCheck: false };
    const sameConnection = await get(port, agent);
    assert.equal(sameConnection.reused, true);
    assert.deepEqual([sameConnection.status, sameConnection.body], [403, "untrusted_chain"]);
    const newConnection = await get(port, false);
    assert.deepEqual([newConnection.status, newConnection.body], [403, "untrusted_chain"]);
  } finally {
    agent.destroy();
    server.close();
    crls.close();
  }
});

test("an acceptance ends when an intermediate of its chain expires, though the leaf is valid longer", async () => {
  const t0 = Date.now();
  const shortSub = await createCa({ commonName: "Issuing CA, one hour left", issuer: pki.root, notAfter: new Date(t0 + HOUR) });
  const client = await issueCert({ issuer: shortSub, commonName: "PC-LONG", usage: "client", notAfter: new Date(t0 + 300 * 24 * HOUR) });
  let clock = t0;
  const crls = new CrlCache({ fetch: httpFetch });
  const trust: ClientTrust = { generation: 1, trustedRoots: [pki.root.certPem], intermediates: [shortSub.certPem], crlCheck: false };
  const auth = new MutualTlsAuthenticator({ trust: () => trust, revocation: crls, cacheMs: 10 * HOUR, now: () => clock });
  const { server, port } = await gatewayLike(auth);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    assert.equal((await get(port, agent, client)).status, 200);
    clock = t0 + HOUR + 60_000;
    const sameConnection = await get(port, agent, client);
    assert.equal(sameConnection.reused, true);
    assert.deepEqual([sameConnection.status, sameConnection.body], [403, "expired"]);
  } finally {
    agent.destroy();
    server.close();
    crls.close();
  }
});

test("the verdict cache is bounded by entries and drops the least recently used first", async () => {
  const [a, b, c] = await Promise.all(["PC-A", "PC-B", "PC-C"].map((commonName) => issueCert({ issuer: pki.intermediate, commonName, usage: "client" })));
  const crls = new CrlCache({ fetch: httpFetch });
  const trust: ClientTrust = { generation: 1, trustedRoots: pki.trust.roots, intermediates: pki.trust.intermediates, crlCheck: false };
  const auth = new MutualTlsAuthenticator({ trust: () => trust, revocation: crls, cacheMs: 600_000, maxCacheEntries: 2 });
  const { server, port } = await gatewayLike(auth);
  try {
    for (const client of [a!, b!, a!, c!]) assert.equal((await get(port, false, client)).status, 200);
    // A probe of what is cached, not a real change (those come with a new generation): the issuing
    // CA's chain is no longer trusted, so only a cached verdict still answers 200.
    trust.trustedRoots = [pki.root2.certPem];
    assert.equal((await get(port, false, a!)).status, 200, "A, used again before C came, stays cached");
    assert.equal((await get(port, false, c!)).status, 200, "C, the newest, is cached");
    assert.equal((await get(port, false, b!)).status, 403, "B, the least recently used, was dropped");
  } finally {
    server.close();
    crls.close();
  }
});
