/**
 * Reading certificates: PEM bundles into node:crypto X509Certificate objects, and a plain summary
 * of one certificate for logs, the admin API and validation (subject, names, usages, CRL URLs).
 * Node does not expose EKU OIDs reliably by name or CRL distribution points at all, so those
 * come from one DER walk (der.ts), or from @peculiar/x509 where that walk cannot read a certificate.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate, createHash } from "node:crypto";
import { ValidationError } from "../errors.ts";
import { certificateFacts, crlDistributionUrls, ekuOids, EXT, type CertificateFacts } from "./der.ts";
import { looksLikePem, pemBlocks } from "./pem.ts";

export const EKU = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  codeSigning: "1.3.6.1.5.5.7.3.3",
  any: "2.5.29.37.0",
} as const;

export interface CertSummary {
  /** Subject as RFC 4514 text, e.g. "CN=cmg.contoso.test, O=Contoso". */
  subject: string;
  /** First CN of the subject ("" when there is none). */
  commonName: string;
  /** DNS names of the subject alternative name extension. */
  dnsNames: string[];
  /** SHA-1 of the DER, uppercase hex. */
  thumbprint: string;
  /** Serial number, uppercase hex. */
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  /** Extended key usage OIDs; empty when the certificate has no EKU extension. */
  ekus: string[];
  /** HTTP(S)/LDAP URLs of the CRL distribution points. */
  crlUrls: string[];
}

/**
 * Every certificate in a PEM bundle (or one DER certificate), in order.
 * Throws ValidationError(field) when the input holds no readable certificate.
 *
 * @example
 * const [leaf, ...chain] = parseCertificates(readFileSync("server.pem", "utf8"));
 */
export function parseCertificates(input: string | Buffer, field = "certificate"): X509Certificate[] {
  try {
    if (!looksLikePem(input)) return [new X509Certificate(typeof input === "string" ? Buffer.from(input, "latin1") : input)];
    const text = typeof input === "string" ? input : input.toString("utf8");
    const certs = pemBlocks(text)
      .filter((b) => b.label === "CERTIFICATE" || b.label === "TRUSTED CERTIFICATE")
      .map((b) => new X509Certificate(b.der));
    if (certs.length === 0) throw new Error("no CERTIFICATE block");
    return certs;
  } catch (err) {
    throw new ValidationError(field, "must be a PEM or DER X.509 certificate", `${field}: not a readable certificate (${(err as Error).message})`);
  }
}

/**
 * A plain summary of a certificate.
 *
 * @example
 * const { commonName, thumbprint, notAfter } = describe(new X509Certificate(pem));
 */
export function describe(cert: X509Certificate): CertSummary {
  const p = new x509.X509Certificate(cert.raw);
  const san = p.getExtension(x509.SubjectAlternativeNameExtension);
  return {
    subject: p.subject,
    commonName: p.subjectName.getField("CN")[0] ?? "",
    dnsNames: san ? san.names.items.filter((n) => n.type === "dns").map((n) => n.value) : [],
    thumbprint: thumbprintOf(cert.raw),
    serialHex: cert.serialNumber.toUpperCase(),
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    isCa: cert.ca,
    ekus: ekusOf(p),
    crlUrls: crlUrlsOf(p),
  };
}

/**
 * The subject as RFC 4514 text, as `describe` gives it, without parsing the whole certificate.
 *
 * @example
 * subjectText(peer) // "CN=PC-001"
 */
export function subjectText(cert: X509Certificate): string {
  // One CN of plain characters (what device certificates carry): node:crypto's text is already the
  // RFC 4514 text, nothing to escape or order. Anything else goes through the parser.
  const plain = /^CN=[A-Za-z0-9][A-Za-z0-9._-]*$/.exec(cert.subject);
  if (plain) return plain[0];
  return fromFacts(cert, (f) => new x509.Name(Uint8Array.from(f.subjectDer)).toString()) ?? new x509.X509Certificate(cert.raw).subject;
}

/**
 * True when the certificate may authenticate a TLS client: its EKU lists clientAuth or
 * anyExtendedKeyUsage, or it has no EKU extension (RFC 5280: no EKU means no restriction; the
 * platform and OpenSSL agree).
 *
 * @example
 * if (!hasClientAuthEku(peer)) reject("wrong_usage");
 */
export function hasClientAuthEku(cert: X509Certificate): boolean {
  const fast = fromFacts(cert, (f) => {
    const eku = f.extensions.get(EXT.extKeyUsage);
    if (!eku) return true;
    const ekus = ekuOids(eku);
    return ekus.includes(EKU.clientAuth) || ekus.includes(EKU.any);
  });
  if (fast !== undefined) return fast;
  const p = new x509.X509Certificate(cert.raw);
  if (!p.getExtension(x509.ExtendedKeyUsageExtension)) return true;
  const ekus = ekusOf(p);
  return ekus.includes(EKU.clientAuth) || ekus.includes(EKU.any);
}

/**
 * CRL distribution point URLs of a certificate (full names of type URI only; relative names and
 * CRL issuers are not used by the CAs this product deals with).
 *
 * @example
 * crlUrls(clientCert) // ["http://pki.contoso.test/sub.crl"]
 */
export function crlUrls(cert: X509Certificate): string[] {
  const fast = fromFacts(cert, (f) => {
    const cdp = f.extensions.get(EXT.crlDistributionPoints);
    return cdp ? crlDistributionUrls(cdp) : [];
  });
  if (fast !== undefined) return fast;
  return crlUrlsOf(new x509.X509Certificate(cert.raw));
}

/** notBefore/notAfter as Dates (Node 20's X509Certificate only gives strings). */
export function validityOf(cert: X509Certificate): { notBefore: Date; notAfter: Date } {
  const fast = fromFacts(cert, (f) => ({ notBefore: new Date(f.notBefore), notAfter: new Date(f.notAfter) }));
  if (fast !== undefined) return fast;
  const p = new x509.X509Certificate(cert.raw);
  return { notBefore: p.notBefore, notAfter: p.notAfter };
}

/**
 * SHA-1 of a certificate's DER as uppercase hex: what the platform calls a thumbprint.
 *
 * @example
 * thumbprintOf(new X509Certificate(pem).raw) // "9E58A5C6...0FD0C4"
 */
export function thumbprintOf(der: Uint8Array): string {
  return createHash("sha1").update(der).digest("hex").toUpperCase();
}

// One DER walk per certificate object (a handshake's check asks several questions of one leaf).
const factsByCert = new WeakMap<X509Certificate, CertificateFacts | null>();

/**
 * The facts of one DER walk, memoised per certificate object; null when the walk cannot read the
 * certificate (the callers then use the full parse, so nothing is judged differently).
 */
export function factsOf(cert: X509Certificate): CertificateFacts | null {
  let f = factsByCert.get(cert);
  if (f === undefined) {
    try {
      f = certificateFacts(cert.raw);
    } catch {
      f = null;
    }
    factsByCert.set(cert, f);
  }
  return f;
}

/** `read(facts)`, or undefined when the walk or `read` cannot read the certificate. */
function fromFacts<T>(cert: X509Certificate, read: (f: CertificateFacts) => T): T | undefined {
  const f = factsOf(cert);
  if (!f) return undefined;
  try {
    return read(f);
  } catch {
    return undefined;
  }
}

const thumbprints = new WeakMap<X509Certificate, string>();

/**
 * thumbprintOf(cert.raw), remembered per certificate object (a configured CA's is asked for on
 * every check).
 */
export function certThumbprint(cert: X509Certificate): string {
  let t = thumbprints.get(cert);
  if (t === undefined) thumbprints.set(cert, (t = thumbprintOf(cert.raw)));
  return t;
}

function ekusOf(p: x509.X509Certificate): string[] {
  const ext = p.getExtension(x509.ExtendedKeyUsageExtension);
  // Array.from: the library returns an Array subclass, and map() would keep that class.
  return ext ? Array.from(ext.usages, String) : [];
}

function crlUrlsOf(p: x509.X509Certificate): string[] {
  const ext = p.getExtension(x509.CRLDistributionPointsExtension);
  if (!ext) return [];
  const urls: string[] = [];
  for (const dp of ext.distributionPoints) {
    for (const name of dp.distributionPoint?.fullName ?? []) {
      if (name.uniformResourceIdentifier) urls.push(name.uniformResourceIdentifier);
    }
  }
  return urls;
}
