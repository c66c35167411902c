import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { X509Certificate } from "node:crypto";
import { makeTestPki, type TestPki } from "../../test/helpers/pki-fixtures.ts";
import { CrlCache, parseCrl } from "./crl.ts";
import { createCrl } from "./issue.ts";
import { pemBlocks } from "./pem.ts";
import { verifyClientChain } from "./verify.ts";

const DAY = 86_400_000;
let pki: TestPki;
let server: Server;
let base: string;
/** What the loopback CRL server answers, by path; tests change it. */
let files: Record<string, string | Buffer> = {};
let hits: Record<string, number> = {};

before(async () => {
  server = createServer((req, res) => {
    hits[req.url!] = (hits[req.url!] ?? 0) + 1;
    const body = files[req.url!];
    if (body === undefined) res.writeHead(404).end();
    else res.end(body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  pki = await makeTestPki({ crlBaseUrl: base });
});
after(() => server.close());

function reset(): void {
  files = { ...pki.crlFiles };
  hits = {};
}

/** The injected download: plain fetch to the loopback server, as the gateway's direct route would. */
async function httpFetch(url: string): Promise<Buffer> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

const cert = (pem: string): X509Certificate => new X509Certificate(pem);

test("a valid client passes, the revoked client is revoked", async () => {
  reset();
  const crls = new CrlCache({ fetch: httpFetch });
  try {
    assert.deepEqual(await crls.check(cert(pki.client.certPem), cert(pki.intermediate.certPem)), { ok: true });
    const r = await crls.check(cert(pki.revokedClient.certPem), cert(pki.intermediate.certPem));
    assert.equal(r.ok ? "ok" : r.reason, "revoked");
    assert.match(!r.ok ? r.detail : "", new RegExp(pki.revokedClient.serialHex));
    assert.equal(hits["/intermediate.crl"], 1, "one download serves both checks");
  } finally {
    crls.close();
  }
});

test("checkChain checks the intermediate against the root CRL too", async () => {
  reset();
  const crls = new CrlCache({ fetch: httpFetch });
  try {
    const v = verifyClientChain(cert(pki.client.certPem), pki.trust);
    assert.ok(v.ok);
    assert.deepEqual(await crls.checkChain(v.chain), { ok: true });
    assert.deepEqual(hits, { "/intermediate.crl": 1, "/root.crl": 1 });

    // Now the root revokes the intermediate.
    files["/root.crl"] = await createCrl({ issuer: pki.root, revoked: [{ serialHex: pki.intermediate.serialHex }], nextUpdate: new Date(Date.now() + DAY) });
    const fresh = new CrlCache({ fetch: httpFetch });
    const r = await fresh.checkChain(v.chain);
    fresh.close();
    assert.equal(!r.ok && r.reason, "revoked");
  } finally {
    crls.close();
  }
});

test("a DER CRL and a PEM labelled CRL are read too", async () => {
  reset();
  const der = pemBlocks(pki.crls.intermediate)[0]!.der;
  files["/intermediate.crl"] = der;
  const crls = new CrlCache({ fetch: httpFetch });
  const r = await crls.check(cert(pki.revokedClient.certPem), cert(pki.intermediate.certPem));
  crls.close();
  assert.equal(!r.ok && r.reason, "revoked");
  assert.equal(parseCrl(pki.crls.intermediate.replaceAll("X509 CRL", "CRL")).entries.length, 1);
});

test("fails closed: no CDP, unreachable CRL, HTTP 404, garbage, wrong signer, expired CRL", async () => {
  reset();
  const crls = new CrlCache({ fetch: httpFetch, failureBackoffMs: 0 });
  const client = cert(pki.client.certPem);
  const issuer = cert(pki.intermediate.certPem);
  const unavailable = async (c = client, i = issuer): Promise<string> => {
    const r = await crls.check(c, i);
    assert.equal(r.ok ? "ok" : r.reason, "crl_unavailable");
    return r.ok ? "" : r.detail;
  };
  try {
    assert.match(await unavailable(cert(pki.clientViaRoot2.certPem), cert(pki.root2.certPem)), /no CRL distribution point/);

    delete files["/intermediate.crl"];
    assert.match(await unavailable(), /HTTP 404/);

    files["/intermediate.crl"] = "not a crl";
    assert.match(await unavailable(), /neither PEM nor DER|not a CRL/);

    files["/intermediate.crl"] = await createCrl({ issuer: pki.root, revoked: [], nextUpdate: new Date(Date.now() + DAY) });
    assert.match(await unavailable(), /issued by/);

    files["/intermediate.crl"] = await createCrl({
      issuer: pki.intermediate,
      revoked: [],
      thisUpdate: new Date(Date.now() - 2 * DAY),
      nextUpdate: new Date(Date.now() - DAY),
    });
    assert.match(await unavailable(), /expired/);

    // A CRL from the right name but another key (a CA re-created with the same name).
    const { createCa } = await import("./issue.ts");
    const impostor = await createCa({ commonName: "OpenCMG Test Issuing CA", issuer: pki.root });
    files["/intermediate.crl"] = await createCrl({ issuer: impostor, revoked: [], nextUpdate: new Date(Date.now() + DAY) });
    assert.match(await unavailable(), /signature does not verify/);
  } finally {
    crls.close();
  }
});

test("a fetch that throws is crl_unavailable, and is not repeated within the back-off", async () => {
  let calls = 0;
  const crls = new CrlCache({
    fetch: async () => {
      calls++;
      throw new Error("connect ECONNREFUSED");
    },
  });
  const r1 = await crls.check(cert(pki.client.certPem), cert(pki.intermediate.certPem));
  const r2 = await crls.check(cert(pki.client.certPem), cert(pki.intermediate.certPem));
  crls.close();
  assert.match(!r1.ok ? r1.detail : "", /ECONNREFUSED/);
  assert.equal(!r2.ok && r2.reason, "crl_unavailable");
  assert.equal(calls, 1);
});

test("concurrent checks share one download", async () => {
  reset();
  const crls = new CrlCache({ fetch: httpFetch });
  const results = await Promise.all(Array.from({ length: 10 }, () => crls.check(cert(pki.client.certPem), cert(pki.intermediate.certPem))));
  crls.close();
  assert.ok(results.every((r) => r.ok));
  assert.equal(hits["/intermediate.crl"], 1);
});

test("the cached CRL answers until its nextUpdate, then is downloaded again", async () => {
  reset();
  let now = new Date();
  const crls = new CrlCache({ fetch: httpFetch, now: () => now });
  try {
    const check = () => crls.check(cert(pki.client.certPem), cert(pki.intermediate.certPem));
    assert.ok((await check()).ok);
    now = new Date(now.getTime() + 6 * DAY);
    assert.ok((await check()).ok);
    assert.equal(hits["/intermediate.crl"], 1);

    // Past nextUpdate (7 days): the CA publishes a new CRL that revokes the valid client too.
    files["/intermediate.crl"] = await createCrl({
      issuer: pki.intermediate,
      revoked: [{ serialHex: pki.client.serialHex }],
      thisUpdate: new Date(now.getTime() + DAY),
      nextUpdate: new Date(now.getTime() + 14 * DAY),
    });
    now = new Date(now.getTime() + 1.5 * DAY);
    const r = await check();
    assert.equal(!r.ok && r.reason, "revoked");
    assert.equal(hits["/intermediate.crl"], 2);
  } finally {
    crls.close();
  }
});

test("a CRL near its nextUpdate is refreshed in the background", async () => {
  // First download: a CRL with 10 s to live, refreshed 9.5 s before its nextUpdate, so the
  // refresh runs ~0.5 s later. Every later download: the 7-day CRL listing the revoked client.
  const short = await createCrl({ issuer: pki.intermediate, revoked: [], thisUpdate: new Date(Date.now() - 10_000), nextUpdate: new Date(Date.now() + 10_000) });
  const calls: string[] = [];
  const stored: string[] = [];
  const log = { file: "", component: "", info: (t: string) => void stored.push(t), warn() {}, error() {} };
  const crls = new CrlCache({
    fetch: async (url) => {
      calls.push(url);
      return calls.length === 1 ? short : pki.crls.intermediate;
    },
    log,
    refreshBeforeMs: 9_500,
    minRefreshMs: 0,
  });
  try {
    assert.ok((await crls.check(cert(pki.revokedClient.certPem), cert(pki.intermediate.certPem))).ok);
    // Bounded wait for the refresh to download and store the new CRL (no check triggers it).
    for (let i = 0; i < 100 && stored.length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(stored.length, 2);
    const r = await crls.check(cert(pki.revokedClient.certPem), cert(pki.intermediate.certPem));
    assert.equal(!r.ok && r.reason, "revoked");
    assert.equal(calls.length, 2, "the refreshed CRL (valid 7 days) answers; no further downloads");
  } finally {
    crls.close();
  }
});

test("close() stops background refreshes", async () => {
  reset();
  // Refresh due ~0.5 s after the download; close() comes first, then we wait past that time.
  files["/intermediate.crl"] = await createCrl({ issuer: pki.intermediate, revoked: [], thisUpdate: new Date(Date.now() - 60_000), nextUpdate: new Date(Date.now() + 60_000) });
  const crls = new CrlCache({ fetch: httpFetch, refreshBeforeMs: 59_500, minRefreshMs: 0 });
  assert.ok((await crls.check(cert(pki.client.certPem), cert(pki.intermediate.certPem))).ok);
  crls.close();
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(hits["/intermediate.crl"], 1);
});
