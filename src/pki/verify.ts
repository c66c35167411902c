/**
 * Client certificate chain check, independent of TLS. The gateway lets TLS accept any client
 * certificate (rejectUnauthorized: false) and then calls this, so it can log *why* a client was
 * refused (the platform's logs name the reason) and pick up new trusted roots without restarting
 * its TLS server.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate } from "node:crypto";
import { hasClientAuthEku, parseCertificates, validityOf } from "./cert.ts";

export type ChainFailure = "untrusted_chain" | "expired" | "not_yet_valid" | "wrong_usage";

export type ChainResult =
  | { ok: true; /** leaf first, trusted root last */ chain: X509Certificate[] }
  | { ok: false; reason: ChainFailure; detail: string };

export interface ChainTrust {
  /** Trusted root CA certificates (PEM; a string may hold several). */
  roots: string[];
  /** Intermediate CA certificates that may complete a chain (PEM); not trusted by themselves. */
  intermediates: string[];
  /** Time of the check; defaults to now. */
  at?: Date;
}

// Longest chain searched: leaf + intermediates + root. The product allows 4 intermediates.
const MAX_DEPTH = 8;

/**
 * Checks a client certificate: a signature path up to a trusted root (each issuer a CA allowed
 * to sign certificates, path length constraints honoured), every certificate of the path within
 * its validity period at `at`, and the clientAuth usage on the leaf. Failures are reported in
 * that order.
 *
 * @example
 * const r = verifyClientChain(socket.getPeerX509Certificate()!, { roots: [rootPem], intermediates: [subPem] });
 * if (!r.ok) log.warn(`client certificate refused: ${r.reason} (${r.detail})`);
 */
export function verifyClientChain(leaf: Buffer | X509Certificate, trust: ChainTrust): ChainResult {
  const cert = leaf instanceof X509Certificate ? leaf : new X509Certificate(leaf);
  const roots = trust.roots.flatMap((p) => parseCertificates(p, "roots"));
  const intermediates = trust.intermediates.flatMap((p) => parseCertificates(p, "intermediates"));
  const chain = buildPath([cert], roots, intermediates);
  if (!chain) {
    return { ok: false, reason: "untrusted_chain", detail: `no chain from "${subjectOf(cert)}" to a trusted root (issuer "${issuerOf(cert)}")` };
  }
  const at = trust.at ?? new Date();
  for (const c of chain) {
    const { notBefore, notAfter } = validityOf(c);
    if (at.getTime() > notAfter.getTime()) {
      return { ok: false, reason: "expired", detail: `"${subjectOf(c)}" expired on ${notAfter.toISOString()}` };
    }
    if (at.getTime() < notBefore.getTime()) {
      return { ok: false, reason: "not_yet_valid", detail: `"${subjectOf(c)}" is valid from ${notBefore.toISOString()}` };
    }
  }
  if (!hasClientAuthEku(cert)) {
    return { ok: false, reason: "wrong_usage", detail: `"${subjectOf(cert)}" does not allow client authentication (no clientAuth EKU)` };
  }
  return { ok: true, chain };
}

/**
 * Depth-first search for a path from `path[0]` to a root. Tries every candidate issuer (two CAs
 * may share a name, e.g. a renewed CA with a new key) and returns the first complete path.
 */
function buildPath(path: X509Certificate[], roots: X509Certificate[], intermediates: X509Certificate[]): X509Certificate[] | null {
  const current = path[path.length - 1]!;
  if (roots.some((r) => r.raw.equals(current.raw))) return path;
  if (path.length >= MAX_DEPTH) return null;
  // Roots first: the shortest path wins when an intermediate is also listed as a root.
  for (const candidate of [...roots, ...intermediates]) {
    if (path.some((c) => c.raw.equals(candidate.raw))) continue;
    if (!issued(candidate, current, path.length - 1)) continue;
    const found = buildPath([...path, candidate], roots, intermediates);
    if (found) return found;
  }
  return null;
}

/**
 * True when `issuer` signed `subject` and may sign certificates: names (and key ids) match, the
 * signature verifies, the issuer is a CA with keyCertSign, and its path length constraint allows
 * `below` intermediate CAs under it.
 */
function issued(issuer: X509Certificate, subject: X509Certificate, below: number): boolean {
  if (!issuer.ca || !subject.checkIssued(issuer)) return false;
  const p = new x509.X509Certificate(issuer.raw);
  const ku = p.getExtension(x509.KeyUsagesExtension);
  if (ku && !(ku.usages & x509.KeyUsageFlags.keyCertSign)) return false;
  const pathLength = p.getExtension(x509.BasicConstraintsExtension)?.pathLength;
  if (pathLength !== undefined && below > pathLength) return false;
  try {
    return subject.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function subjectOf(c: X509Certificate): string {
  return c.subject.replaceAll("\n", ", ");
}

function issuerOf(c: X509Certificate): string {
  return c.issuer.replaceAll("\n", ", ");
}
