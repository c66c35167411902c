/**
 * The site's "Clients check the certificate revocation list (CRL) for site systems": before a
 * client sends anything over a new TLS connection to a management point or a CMG, each certificate
 * of the server's chain that names a CRL distribution point is checked against its issuer's CRL
 * (the gateway's CrlCache, src/pki/crl.ts, which verifies the CRL's signature). A revoked server
 * certificate, or a published CRL that cannot be had (fail closed, as the documents say: with the
 * check on, the CRL must be reachable), makes the client refuse that site system. A certificate
 * that names no distribution point has no published CRL and is not checked. An administrator who
 * publishes no CRL turns the setting off.
 */
import { X509Certificate } from "node:crypto";
import type { DetailedPeerCertificate, TLSSocket } from "node:tls";
import { request } from "undici";
import { OpenCmgError } from "../errors.ts";
import { crlUrls } from "../pki/cert.ts";
import { CrlCache } from "../pki/crl.ts";

/** Why the client refused a site system's server certificate (logged and kept as the refusal's reason). */
export type ServerCertRefusal = "SERVER_CERT_REVOKED" | "SERVER_CERT_CRL_UNAVAILABLE";

/** The client refused a site system: its server certificate is revoked, or its published CRL cannot be had. */
export class ServerCertRefusedError extends OpenCmgError {
  constructor(
    readonly refusal: ServerCertRefusal,
    readonly host: string,
    readonly detail: string,
  ) {
    super(
      "unauthorized",
      refusal,
      refusal === "SERVER_CERT_REVOKED"
        ? `${refusal}: refused ${host}: its server certificate is revoked: ${detail}`
        : `${refusal}: refused ${host}: the CRL its server certificate names cannot be had (the site's "Clients check the certificate revocation list (CRL) for site systems" is on): ${detail}`,
    );
  }
}

/** Downloads a CRL over HTTP(S) (a distribution point the client reaches directly). */
async function fetchCrl(url: string): Promise<Buffer> {
  if (!/^https?:\/\//i.test(url)) throw new Error(`${url}: only http and https distribution points are fetched`);
  const res = await request(url, { method: "GET", signal: AbortSignal.timeout(15_000) });
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`HTTP ${res.statusCode}`);
  }
  return Buffer.from(await res.body.arrayBuffer());
}

/** The server's chain, leaf first: what it sent, completed with the issuer from `trusted` when it sent the leaf only. */
export function serverChain(presented: DetailedPeerCertificate | undefined, trusted: string[]): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let c: DetailedPeerCertificate | undefined = presented;
  const seen = new Set<string>();
  while (c && c.raw && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    chain.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  const last = chain[chain.length - 1];
  if (last && !last.checkIssued(last)) {
    const issuer = trusted.map((p) => new X509Certificate(p)).find((ca) => last.checkIssued(ca) && last.verify(ca.publicKey));
    if (issuer) chain.push(issuer);
  }
  return chain;
}

/** Checks site systems' server certificates against their issuers' CRLs (one cache per client process). */
export class ServerCrlCheck {
  private readonly crls = new CrlCache({ fetch: fetchCrl });

  /** Throws ServerCertRefusedError when a certificate of `chain` (leaf first) is revoked or its named CRL cannot be had. */
  async check(host: string, chain: X509Certificate[]): Promise<void> {
    for (let i = 0; i + 1 < chain.length; i++) {
      const cert = chain[i]!;
      if (crlUrls(cert).length === 0) continue; // no CRL published for it
      const r = await this.crls.check(cert, chain[i + 1]!);
      if (r.ok) continue;
      throw new ServerCertRefusedError(r.reason === "revoked" ? "SERVER_CERT_REVOKED" : "SERVER_CERT_CRL_UNAVAILABLE", host, r.detail);
    }
  }

  close(): void {
    this.crls.close();
  }
}
