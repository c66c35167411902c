/**
 * A ready-made PKI for tests: trusted roots, an intermediate, a server certificate, client
 * certificates for every verdict the gateway can reach, the site's own CA with a tunnel client
 * certificate, and the CRLs to serve.
 *
 * CRL URLs are parameterised because the caller serves the CRLs itself on loopback: start an
 * HTTP server first, pass its base URL, then answer `GET <path>` with `pki.crlFiles[path]`.
 *
 *   const pki = await makeTestPki({ crlBaseUrl: `http://127.0.0.1:${port}` });
 *   // server: (req, res) => res.end(pki.crlFiles[req.url!])
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { createCa, createCrl, issueCert, type IssuedCert } from "../../src/pki/issue.ts";

export interface TestPki {
  /** Trusted root; issues the intermediate and the server certificate. */
  root: IssuedCert;
  /** Second trusted root (the product allows two). */
  root2: IssuedCert;
  /** Intermediate under `root`; its CDP points at `root`'s CRL. */
  intermediate: IssuedCert;
  /** TLS server certificate for `serverName`, 127.0.0.1 and ::1, issued by `root`. */
  server: IssuedCert;
  /** Valid client certificate issued by `intermediate`. */
  client: IssuedCert;
  /** Valid client certificate issued directly by `root2`. */
  clientViaRoot2: IssuedCert;
  expiredClient: IssuedCert;
  notYetValidClient: IssuedCert;
  /** Carries only the code-signing EKU. */
  wrongUsageClient: IssuedCert;
  /** Listed on `intermediate`'s CRL. */
  revokedClient: IssuedCert;
  /** A root nobody trusts, and a client certificate it issued. */
  untrustedRoot: IssuedCert;
  untrustedClient: IssuedCert;
  /** The site's own CA, and the tunnel client certificate of a connection point it issued. */
  siteCa: IssuedCert;
  tunnelClient: IssuedCert;
  /** What a gateway is configured to trust for clients (PEM). */
  trust: { roots: string[]; intermediates: string[] };
  /** CRL URLs written into the certificates (undefined without `crlBaseUrl`). */
  crlUrls: { root?: string; intermediate?: string; site?: string };
  /** CRL PEM text by URL path: "/root.crl", "/intermediate.crl", "/site.crl". */
  crlFiles: Record<string, string>;
  /** The CRLs, also as PEM (Node's TLS `crl` option takes them as they are). */
  crls: { root: string; intermediate: string; site: string };
}

const DAY = 86_400_000;

/**
 * Builds the test PKI (about a dozen ECDSA keys; fast).
 *
 * @example
 * const pki = await makeTestPki({ serverName: "cmg.contoso.test", crlBaseUrl: "http://127.0.0.1:41234" });
 */
export async function makeTestPki(o: { serverName?: string; crlBaseUrl?: string } = {}): Promise<TestPki> {
  const now = new Date();
  const serverName = o.serverName ?? "cmg.opencmg.test";
  const base = o.crlBaseUrl?.replace(/\/+$/, "");
  const crlUrls = base ? { root: `${base}/root.crl`, intermediate: `${base}/intermediate.crl`, site: `${base}/site.crl` } : {};
  const withCdp = (url: string | undefined) => (url ? { crlUrl: url } : {});

  const root = await createCa({ commonName: "OpenCMG Test Root CA" });
  const root2 = await createCa({ commonName: "OpenCMG Test Root CA 2" });
  const intermediate = await createCa({ commonName: "OpenCMG Test Issuing CA", issuer: root, ...withCdp(crlUrls.root) });
  const untrustedRoot = await createCa({ commonName: "Untrusted Root CA" });
  const siteCa = await createCa({ commonName: "OpenCMG Site CA" });

  const client = (commonName: string, extra: Partial<Parameters<typeof issueCert>[0]> = {}) =>
    issueCert({ issuer: intermediate, commonName, usage: "client", ...withCdp(crlUrls.intermediate), ...extra });

  const server = await issueCert({ issuer: root, commonName: serverName, dnsNames: [serverName], ipAddresses: ["127.0.0.1", "::1"], usage: "server" });
  const revokedClient = await client("PC-REVOKED");
  const pki = {
    root,
    root2,
    intermediate,
    server,
    client: await client("PC-001"),
    clientViaRoot2: await issueCert({ issuer: root2, commonName: "PC-ROOT2", usage: "client" }),
    expiredClient: await client("PC-EXPIRED", { notBefore: new Date(now.getTime() - 30 * DAY), notAfter: new Date(now.getTime() - DAY) }),
    notYetValidClient: await client("PC-FUTURE", { notBefore: new Date(now.getTime() + DAY), notAfter: new Date(now.getTime() + 30 * DAY) }),
    wrongUsageClient: await client("PC-CODESIGN", { usage: "none" }),
    revokedClient,
    untrustedRoot,
    untrustedClient: await issueCert({ issuer: untrustedRoot, commonName: "PC-UNTRUSTED", usage: "client" }),
    siteCa,
    tunnelClient: await issueCert({ issuer: siteCa, commonName: "CMG connection point", usage: "client", ...withCdp(crlUrls.site) }),
    trust: { roots: [root.certPem, root2.certPem], intermediates: [intermediate.certPem] },
    crlUrls,
  };
  const nextUpdate = new Date(now.getTime() + 7 * DAY);
  const thisUpdate = new Date(now.getTime() - 60_000);
  const crls = {
    root: await createCrl({ issuer: root, revoked: [], thisUpdate, nextUpdate }),
    intermediate: await createCrl({ issuer: intermediate, revoked: [{ serialHex: revokedClient.serialHex }], thisUpdate, nextUpdate }),
    site: await createCrl({ issuer: siteCa, revoked: [], thisUpdate, nextUpdate }),
  };
  return { ...pki, crls, crlFiles: { "/root.crl": crls.root, "/intermediate.crl": crls.intermediate, "/site.crl": crls.site } };
}

/**
 * A client certificate with the key and signature hash a test picks (SHA-1, RSA-1024: what the
 * product must refuse and `issueCert` will not make), signed by `issuer` (a P-256 CA).
 */
export async function forgeClientCert(issuer: { certPem: string; keyPem: string }, o: { hash: string; key: EcKeyGenParams | RsaHashedKeyGenParams }): Promise<{ certPem: string; keyPem: string }> {
  const crypto = webcrypto as unknown as Crypto;
  const issuerCert = new x509.X509Certificate(issuer.certPem);
  const signingKey = await crypto.subtle.importKey("pkcs8", new Uint8Array(x509.PemConverter.decodeFirst(issuer.keyPem)), { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const keys = (await crypto.subtle.generateKey(o.key, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: "5a1a",
      subject: "CN=sha1-pc",
      issuer: issuerCert.subjectName,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      publicKey: keys.publicKey,
      signingKey,
      signingAlgorithm: { name: "ECDSA", hash: o.hash },
      extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
    },
    crypto,
  );
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { certPem: cert.toString("pem"), keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END PRIVATE KEY-----\n` };
}
