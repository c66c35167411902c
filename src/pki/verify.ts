/**
 * Client certificate chain check, independent of TLS. The gateway lets TLS accept any client
 * certificate (rejectUnauthorized: false) and then calls this, so it can log *why* a client was
 * refused (the platform's logs name the reason) and pick up new trusted roots without restarting
 * its TLS server.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate, type KeyObject } from "node:crypto";
import { factsOf, hasClientAuthEku, parseCertificates, validityOf } from "./cert.ts";
import { SIGNATURE_HASHES } from "./der.ts";

export type ChainFailure = "untrusted_chain" | "expired" | "not_yet_valid" | "weak_signature" | "weak_key" | "wrong_usage";

export type ChainResult =
  | { ok: true; /** leaf first, trusted root last */ chain: X509Certificate[] }
  | { ok: false; reason: ChainFailure; detail: string; /** Finer cause where one reason has several fixes. */ cause?: "rsa_below_policy" };

export interface ChainTrust {
  /** Trusted root CA certificates (PEM; a string may hold several). */
  roots: string[];
  /** Intermediate CA certificates that may complete a chain (PEM); not trusted by themselves. */
  intermediates: string[];
  /** Time of the check; defaults to now. */
  at?: Date;
  /** Stricter key rules than the defaults (a CMG's settings); never weaker. */
  policy?: ClientCertPolicy;
}

/**
 * What a CMG may tighten in the client certificate check. Only stricter than the defaults: RSA
 * keys shorter than MIN_RSA_BITS and SHA-1/MD5 signatures are refused whatever it says (there is
 * no safe reason to accept them, so no switch for them exists).
 */
export interface ClientCertPolicy {
  /** Shortest RSA key accepted on the chain, at least MIN_RSA_BITS. */
  minRsaBits?: number;
}

// Longest chain searched: leaf + intermediates + root. The product allows 4 intermediates.
const MAX_DEPTH = 8;

/**
 * Signature hashes refused on any certificate below the trust anchor: SHA-1 and older have
 * practical collisions, so a certificate signed with them can be forged.
 */
const WEAK_HASHES = new Set(["SHA-1", "MD5", "MD4", "MD2"]);
/** RSA keys shorter than this are refused (NIST SP 800-131A: 2048 bits since 2014). */
export const MIN_RSA_BITS = 2048;
/** EC curves accepted (those TLS 1.3 and the platform's CAs use). */
const CURVES = new Set(["prime256v1", "secp384r1", "secp521r1"]);

/**
 * Checks a client certificate: a signature path up to a trusted root (each issuer a CA allowed
 * to sign certificates, path length constraints honoured), every certificate of the path within
 * its validity period at `at`, no weak signature below the root (SHA-1, MD5) and no weak key
 * (RSA under 2048 bits, an uncommon curve) on the path, and the clientAuth usage on the leaf.
 * Failures are reported in that order.
 *
 * @example
 * const r = verifyClientChain(socket.getPeerX509Certificate()!, { roots: [rootPem], intermediates: [subPem] });
 * if (!r.ok) log.warn(`client certificate refused: ${r.reason} (${r.detail})`);
 */
export function verifyClientChain(leaf: Buffer | X509Certificate, trust: ChainTrust): ChainResult {
  const cert = leaf instanceof X509Certificate ? leaf : new X509Certificate(leaf);
  const anchors = compiledTrust(trust.roots, trust.intermediates);
  const chain = buildPath([cert], anchors);
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
  const weak = weakness(chain, Math.max(MIN_RSA_BITS, trust.policy?.minRsaBits ?? MIN_RSA_BITS));
  if (weak) return { ok: false, ...weak };
  if (!hasClientAuthEku(cert)) {
    return { ok: false, reason: "wrong_usage", detail: `"${subjectOf(cert)}" does not allow client authentication (no clientAuth EKU)` };
  }
  return { ok: true, chain };
}

/**
 * A configured CA, read once per trust configuration: what the path search asks of it on every
 * handshake (may it sign certificates, its path length constraint, its key) costs nothing then.
 */
interface Anchor {
  cert: X509Certificate;
  /** A CA (basicConstraints) whose key usage, if any, includes keyCertSign. */
  mayIssue: boolean;
  pathLength: number | undefined;
  publicKey: KeyObject;
  /** Signature checks of configured CAs by this one, by the subject's certificate object. */
  signed: WeakMap<X509Certificate, boolean>;
}

interface Anchors {
  roots: Anchor[];
  /** Roots first: the shortest path wins when an intermediate is also listed as a root. */
  candidates: Anchor[];
}

// Trust configurations read, by their PEM text (a gateway has one at a time; a few more while
// settings change, or in tests). Bounded, oldest dropped first.
const compiled = new Map<string, Anchors>();
const MAX_COMPILED = 16;

function compiledTrust(rootPems: string[], intermediatePems: string[]): Anchors {
  // The PEM text itself is the key, so changed roots can never find an older configuration's entry.
  const key = `${rootPems.join("\n")}\u0000${intermediatePems.join("\n")}`;
  let a = compiled.get(key);
  if (!a) {
    const roots = rootPems.flatMap((p) => parseCertificates(p, "roots")).map(anchorOf);
    const intermediates = intermediatePems.flatMap((p) => parseCertificates(p, "intermediates")).map(anchorOf);
    a = { roots, candidates: [...roots, ...intermediates] };
    compiled.set(key, a);
    if (compiled.size > MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
  }
  return a;
}

function anchorOf(cert: X509Certificate): Anchor {
  const p = new x509.X509Certificate(cert.raw);
  const ku = p.getExtension(x509.KeyUsagesExtension);
  return {
    cert,
    mayIssue: cert.ca && !(ku && !(ku.usages & x509.KeyUsageFlags.keyCertSign)),
    pathLength: p.getExtension(x509.BasicConstraintsExtension)?.pathLength,
    publicKey: cert.publicKey,
    signed: new WeakMap(),
  };
}

/**
 * Depth-first search for a path from `path[0]` to a root. Tries every candidate issuer (two CAs
 * may share a name, e.g. a renewed CA with a new key) and returns the first complete path.
 */
function buildPath(path: X509Certificate[], anchors: Anchors): X509Certificate[] | null {
  const current = path[path.length - 1]!;
  if (anchors.roots.some((r) => r.cert === current || r.cert.raw.equals(current.raw))) return path;
  if (path.length >= MAX_DEPTH) return null;
  for (const candidate of anchors.candidates) {
    if (path.some((c) => c === candidate.cert || c.raw.equals(candidate.cert.raw))) continue;
    if (!issued(candidate, current, path.length - 1)) continue;
    const found = buildPath([...path, candidate.cert], anchors);
    if (found) return found;
  }
  return null;
}

/**
 * True when `issuer` signed `subject` and may sign certificates: names (and key ids) match, the
 * signature verifies, the issuer is a CA with keyCertSign, and its path length constraint allows
 * `below` intermediate CAs under it.
 */
function issued(issuer: Anchor, subject: X509Certificate, below: number): boolean {
  if (!issuer.mayIssue || !subject.checkIssued(issuer.cert)) return false;
  if (issuer.pathLength !== undefined && below > issuer.pathLength) return false;
  // One configured CA signing another is checked once per configuration, not per handshake.
  const known = issuer.signed.get(subject);
  if (known !== undefined) return known;
  let ok = false;
  try {
    ok = subject.verify(issuer.publicKey);
  } catch {
    ok = false;
  }
  issuer.signed.set(subject, ok);
  return ok;
}

/** The first weak signature or key of a verified path (leaf first, trust anchor last). */
function weakness(chain: X509Certificate[], minRsaBits: number): Weakness | undefined {
  for (const [i, c] of chain.entries()) {
    // The trust anchor's own signature proves nothing: it is trusted by configuration.
    const weak = certificateWeakness(c, { minRsaBits, checkSignature: i < chain.length - 1 });
    if (weak) return weak;
  }
  return undefined;
}

/** A weak signature or key, and why. */
export interface Weakness {
  reason: "weak_signature" | "weak_key";
  detail: string;
  cause?: "rsa_below_policy";
}

/**
 * The gateway's strength rules for one certificate: no SHA-1/MD5 signature (unless
 * `checkSignature` is false, for a trust anchor), no RSA key under `minRsaBits` (at least
 * MIN_RSA_BITS), no uncommon curve. A device can check its own certificate with it.
 *
 * @example
 * certificateWeakness(leaf) // { reason: "weak_key", detail: "\"CN=PC\" has a 1024-bit RSA key; ..." }
 */
export function certificateWeakness(c: X509Certificate, o: { minRsaBits?: number; checkSignature?: boolean } = {}): Weakness | undefined {
  const minRsaBits = Math.max(MIN_RSA_BITS, o.minRsaBits ?? MIN_RSA_BITS);
  if (o.checkSignature !== false) {
    const hash = signatureHashOf(c);
    if (hash && WEAK_HASHES.has(hash)) return { reason: "weak_signature", detail: `"${subjectOf(c)}" is signed with ${hash}; reissue it with SHA-256 or better` };
  }
  const key = keyOf(c);
  const details = key.asymmetricKeyDetails ?? {};
  if ((key.asymmetricKeyType === "rsa" || key.asymmetricKeyType === "rsa-pss") && (details.modulusLength ?? 0) < minRsaBits) {
    const bits = details.modulusLength ?? 0;
    // Strong enough by the built-in floor, refused by the CMG's stricter policy: a different fix.
    const cause = bits >= MIN_RSA_BITS ? { cause: "rsa_below_policy" as const } : {};
    return { reason: "weak_key", detail: `"${subjectOf(c)}" has a ${details.modulusLength ?? "?"}-bit RSA key; at least ${minRsaBits} bits are needed`, ...cause };
  }
  if (key.asymmetricKeyType === "ec" && !CURVES.has(details.namedCurve ?? "")) {
    return { reason: "weak_key", detail: `"${subjectOf(c)}" has an EC key on ${details.namedCurve ?? "an unknown curve"}; P-256, P-384 or P-521 is needed` };
  }
  return undefined;
}

// A configured CA's key is looked at on every handshake whose chain it is on: read it once.
const keys = new WeakMap<X509Certificate, KeyObject>();
function keyOf(c: X509Certificate): KeyObject {
  let k = keys.get(c);
  if (!k) keys.set(c, (k = c.publicKey));
  return k;
}

function signatureHashOf(c: X509Certificate): string | undefined {
  const oid = factsOf(c)?.signatureOid;
  if (oid !== undefined && SIGNATURE_HASHES.has(oid)) return SIGNATURE_HASHES.get(oid);
  // RSA-PSS (the hash is in its parameters), an unknown algorithm, or a certificate the DER walk
  // cannot read: the full parse decides.
  try {
    const alg = new x509.X509Certificate(c.raw).signatureAlgorithm as { hash?: { name?: string } };
    return alg.hash?.name?.toUpperCase();
  } catch {
    return undefined;
  }
}

function subjectOf(c: X509Certificate): string {
  return c.subject.replaceAll("\n", ", ");
}

function issuerOf(c: X509Certificate): string {
  return c.issuer.replaceAll("\n", ", ");
}
