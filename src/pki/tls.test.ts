// Real TLS handshakes on loopback with the generated certificates: proves they work with Node's
// (OpenSSL's) TLS, the way the gateway uses it, and that Node's `crl` option takes our CRL PEM.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import * as tls from "node:tls";
import { makeTestPki, type TestPki } from "../../test/helpers/pki-fixtures.ts";
import type { CertKeyPem } from "./issue.ts";
import { verifyClientChain } from "./verify.ts";

let pki: TestPki;
before(async () => {
  pki = await makeTestPki({ serverName: "cmg.contoso.test" });
});

interface Seen {
  authorized: boolean;
  error: string | undefined;
  verified: string;
}

/** Starts a server, connects once with `client`, and reports what the server saw. */
async function handshake(client: CertKeyPem, crl?: string[]): Promise<Seen> {
  const server = tls.createServer({
    key: pki.server.keyPem,
    cert: pki.server.certPem,
    ca: [...pki.trust.roots, ...pki.trust.intermediates],
    requestCert: true,
    rejectUnauthorized: false,
    ...(crl ? { crl } : {}),
  });
  const seen = new Promise<Seen>((resolve) => {
    server.once("secureConnection", (socket: tls.TLSSocket) => {
      const peer = socket.getPeerX509Certificate();
      const r = peer ? verifyClientChain(peer, pki.trust) : null;
      resolve({
        authorized: socket.authorized,
        error: socket.authorizationError?.toString(),
        verified: r ? (r.ok ? "ok" : r.reason) : "no certificate",
      });
      socket.end("bye");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  try {
    const { port } = server.address() as AddressInfo;
    const socket = tls.connect({ host: "127.0.0.1", port, servername: "cmg.contoso.test", ca: [pki.root.certPem], key: client.keyPem, cert: client.certPem });
    socket.on("error", () => {});
    await once(socket, "secureConnect"); // the client verified the server certificate (ca + name)
    const result = await seen;
    socket.destroy();
    return result;
  } finally {
    server.close();
  }
}

test("a generated client certificate authenticates over TLS (socket.authorized)", async () => {
  assert.deepEqual(await handshake(pki.client), { authorized: true, error: undefined, verified: "ok" });
  assert.deepEqual(await handshake(pki.clientViaRoot2), { authorized: true, error: undefined, verified: "ok" });
});

test("TLS marks untrusted and expired clients unauthorized; verifyClientChain agrees", async () => {
  const untrusted = await handshake(pki.untrustedClient);
  assert.equal(untrusted.authorized, false);
  assert.equal(untrusted.verified, "untrusted_chain");
  const expired = await handshake(pki.expiredClient);
  assert.deepEqual(expired, { authorized: false, error: "CERT_HAS_EXPIRED", verified: "expired" });
});

test("Node's `crl` option accepts our CRL PEM: the revoked client is refused, the others pass", async () => {
  const crl = [pki.crls.root, pki.crls.intermediate];
  assert.deepEqual(await handshake(pki.revokedClient, crl), { authorized: false, error: "CERT_REVOKED", verified: "ok" });
  assert.equal((await handshake(pki.client, crl)).authorized, true);
  // With any CRL loaded, OpenSSL wants one for every CA of the chain (CRL_CHECK_ALL): root2 has none.
  assert.equal((await handshake(pki.clientViaRoot2, crl)).error, "UNABLE_TO_GET_CRL");
});
