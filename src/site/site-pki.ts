/**
 * The site's own CA (created at `site init`) and the certificates it issues for the site's internal
 * links: connection point <-> gateway tunnels, connection point -> management point. Kept in
 * `<data>/pki/`, keys mode 0600; a certificate is issued again when it nears its end.
 */
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCa, issueCert, type CertKeyPem, type CertUsage } from "../pki/issue.ts";
import { CONNECTION_POINT_CN_PREFIX } from "../wire/tunnel/protocol.ts";

const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

export class SitePki {
  readonly dir: string;
  constructor(dataDir: string) {
    this.dir = join(dataDir, "pki");
  }

  private read(base: string): CertKeyPem | undefined {
    const cert = join(this.dir, `${base}.pem`);
    const key = join(this.dir, `${base}.key`);
    if (!existsSync(cert) || !existsSync(key)) return undefined;
    return { certPem: readFileSync(cert, "utf8"), keyPem: readFileSync(key, "utf8") };
  }

  private write(base: string, pair: CertKeyPem): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(this.dir, `${base}.key`), pair.keyPem, { mode: 0o600 });
    writeFileSync(join(this.dir, `${base}.pem`), pair.certPem, { mode: 0o644 });
  }

  /** Creates the site CA when missing (never replaces one: every issued certificate hangs off it). */
  async ensureCa(siteCode: string): Promise<CertKeyPem> {
    const have = this.read("site-ca");
    if (have) return have;
    const ca = await createCa({ commonName: `OpenCMG Site CA ${siteCode}`, notAfter: new Date(Date.now() + 10 * 365 * 24 * 3600 * 1000) });
    this.write("site-ca", ca);
    return { certPem: ca.certPem, keyPem: ca.keyPem };
  }

  ca(): CertKeyPem {
    const have = this.read("site-ca");
    if (!have) throw new Error(`the site CA is missing from ${this.dir}: run \`opencmg site init\``);
    return have;
  }

  get caPem(): string {
    return this.ca().certPem;
  }

  /**
   * A certificate issued by the site CA for `commonName`, reused while valid for 30 more days.
   * `base` names the files (e.g. `cp-cmgcp01.contoso.com`).
   */
  async issue(base: string, o: { commonName: string; usage: CertUsage; dnsNames?: string[]; ipAddresses?: string[] }, renew = false): Promise<CertKeyPem> {
    const have = renew ? undefined : this.read(base);
    if (have) {
      const c = new X509Certificate(have.certPem);
      const san = (c.subjectAltName ?? "").split(", ");
      const wanted = [...(o.dnsNames ?? []).map((n) => `DNS:${n}`), ...(o.ipAddresses ?? []).map((ip) => `IP Address:${ip}`)];
      const stillGood = new Date(c.validTo).getTime() - Date.now() > RENEW_BEFORE_MS && wanted.every((w) => san.includes(w));
      if (stillGood) return have;
    }
    const issued = await issueCert({ issuer: this.ca(), commonName: o.commonName, usage: o.usage, dnsNames: o.dnsNames ?? [], ipAddresses: o.ipAddresses ?? [], notAfter: new Date(Date.now() + 365 * 24 * 3600 * 1000) });
    const pair = { certPem: issued.certPem, keyPem: issued.keyPem };
    this.write(base, pair);
    return pair;
  }

  /**
   * The tunnel client certificate of the connection point on `fqdn` (CN `opencmg-cp:<fqdn>`), with
   * a new key. `renew`: a new one even while the one on file is good (it was revoked).
   */
  connectionPointCert(fqdn: string, renew = false): Promise<CertKeyPem> {
    return this.issue(`cp-${fqdn}`, { commonName: `${CONNECTION_POINT_CN_PREFIX}${fqdn}`, usage: "client", dnsNames: [fqdn] }, renew);
  }

  /** The certificate a CMG's tunnel listeners present to connection points. */
  gatewayTunnelCert(cmgName: string, hosts: string[]): Promise<CertKeyPem> {
    const ips = hosts.filter((h) => /^[\d.]+$|:/.test(h));
    const dns = hosts.filter((h) => !ips.includes(h));
    return this.issue(`cmg-${cmgName}-tunnel`, { commonName: `opencmg-gw:${cmgName}`, usage: "server", dnsNames: dns, ipAddresses: ips });
  }
}
