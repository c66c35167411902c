/**
 * How the admin API and the console listen: TLS by default, with a certificate the site CA issues
 * for the site server's names (renewed before it ends), or one the administrator gives (PEM files or
 * a PFX). Plain HTTP only on a loopback address and only when asked: the admin token and the
 * console's session cookie must never cross a network in clear.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import { ValidationError } from "../errors.ts";
import { readPfx } from "../pki/pfx.ts";
import { TLS_POLICY } from "../pki/tls-policy.ts";
import type { OpenedSite } from "../site/site.ts";
import { SitePki } from "../site/site-pki.ts";

/** What `site serve` listens with. */
export type AdminTransport =
  /** Plain HTTP: loopback addresses only (`--insecure-http`). */
  | { kind: "http" }
  /** A certificate from the site CA for the site server's FQDN, `names` and the listen address. */
  | { kind: "site-ca"; names?: string[] }
  /** The administrator's certificate (with its chain, leaf first) and key, PEM files. */
  | { kind: "files"; certFile: string; keyFile: string }
  /** The administrator's certificate and key as a PFX file. */
  | { kind: "pfx"; pfxFile: string; password: string };

/** What the HTTPS listener presents, and what a client trusts to check it. */
export interface AdminTlsMaterial {
  certPem: string;
  keyPem: string;
  /** The names in the certificate (the console's URL uses the first). */
  names: string[];
  /** The site CA's certificate file, when the site CA issued the certificate: what browsers and the CLI trust. */
  caFile?: string;
}

/** The file base of the admin API's certificate in `<data>/pki/`. */
export const ADMIN_CERT_BASE = "site-api";

/** 127.0.0.0/8, ::1 (and its IPv4-mapped form) and localhost: addresses no other machine reaches. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith("127.");
}

const WILDCARD = new Set(["0.0.0.0", "::", "[::]", ""]);

/** Throws unless plain HTTP on `host` stays on this machine. */
export function requireLoopbackForHttp(host: string): void {
  if (!isLoopback(host)) {
    throw new ValidationError(
      "insecure-http",
      "plain HTTP listens on a loopback address only",
      `insecure-http: plain HTTP listens on a loopback address only (127.0.0.1, ::1), not ${JSON.stringify(host)}: the admin token and the console's session would cross the network in clear. Leave out --insecure-http to listen with TLS.`,
    );
  }
}

/**
 * The names the site CA's certificate carries: the site server's FQDN (the one recorded with
 * `server add --site-server`, else this host's name), the names given, the listen address when it
 * is one, and the loopback names (the CLI and health checks on the host itself).
 */
export async function siteServerNames(site: OpenedSite, given: string[], listenHost: string): Promise<string[]> {
  const top = await site.services.sites.requireTop();
  const recorded = (await site.services.servers.list()).find((s) => s.isSiteServer && s.siteCode === top.code)?.fqdn;
  const listen = WILDCARD.has(listenHost) ? [] : [listenHost.replace(/^\[|\]$/g, "")];
  const names = [recorded ?? hostname(), ...given, ...listen, "localhost", "127.0.0.1"].map((n) => n.trim().toLowerCase()).filter((n) => n !== "");
  return [...new Set(names)];
}

/** Issues (or reuses while it has 30 days left) the site CA's certificate for the admin API. */
async function fromSiteCa(site: OpenedSite, names: string[]): Promise<AdminTlsMaterial> {
  const pki = new SitePki(site.paths.data);
  const ipAddresses = names.filter((n) => isIP(n) !== 0);
  const dnsNames = names.filter((n) => isIP(n) === 0);
  const pair = await pki.issue(ADMIN_CERT_BASE, { commonName: names[0]!, usage: "server", dnsNames, ipAddresses });
  return { certPem: pair.certPem, keyPem: pair.keyPem, names, caFile: join(pki.dir, "site-ca.pem") };
}

function readFileFor(field: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ValidationError(field, "must be a readable file", `${field}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Checks a given certificate and key: a certificate in force, a key that matches it. */
function checked(certPem: string, keyPem: string, certField: string, keyField: string): AdminTlsMaterial {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certPem);
  } catch {
    throw new ValidationError(certField, "must hold a PEM certificate", `${certField}: holds no PEM certificate`);
  }
  const now = Date.now();
  if (new Date(leaf.validTo).getTime() <= now) throw new ValidationError(certField, "must be in force", `${certField}: the certificate ended on ${new Date(leaf.validTo).toISOString()}`);
  if (new Date(leaf.validFrom).getTime() > now) throw new ValidationError(certField, "must be in force", `${certField}: the certificate starts on ${new Date(leaf.validFrom).toISOString()}`);
  let matches = false;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    throw new ValidationError(keyField, "must hold a PEM private key", `${keyField}: holds no unencrypted PEM private key`);
  }
  if (!matches) throw new ValidationError(keyField, "must be the certificate's key", `${keyField}: the key does not match the certificate`);
  const names = (leaf.subjectAltName ?? "")
    .split(", ")
    .map((s) => s.replace(/^(DNS|IP Address):/, ""))
    .filter((s) => s !== "");
  return { certPem, keyPem, names };
}

/**
 * The certificate and key the admin API presents now (called at start and on each renewal check):
 * the site CA's is issued again when it nears its end or lacks a name; given files are read again,
 * so a certificate the administrator replaced in place is taken up without a restart.
 */
export async function loadAdminTls(site: OpenedSite, t: Exclude<AdminTransport, { kind: "http" }>, listenHost: string): Promise<AdminTlsMaterial> {
  switch (t.kind) {
    case "site-ca":
      return fromSiteCa(site, await siteServerNames(site, t.names ?? [], listenHost));
    case "files":
      return checked(readFileFor("tls-cert", t.certFile).toString("utf8"), readFileFor("tls-key", t.keyFile).toString("utf8"), "tls-cert", "tls-key");
    case "pfx": {
      const p = readPfx(readFileFor("tls-pfx", t.pfxFile), t.password);
      return checked([p.certPem, ...p.chainPem].join(""), p.keyPem, "tls-pfx", "tls-pfx");
    }
  }
}

/** The options of the HTTPS listener (and of each renewed context): the product's TLS policy. */
export function httpsOptions(m: AdminTlsMaterial): { key: string; cert: string } & typeof TLS_POLICY {
  return { ...TLS_POLICY, key: m.keyPem, cert: m.certPem };
}
