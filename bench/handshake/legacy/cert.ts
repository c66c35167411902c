/**
 * Reading certificates: PEM bundles into node:crypto X509Certificate objects, and a plain summary
 * of one certificate for logs, the admin API and validation (subject, names, usages, CRL URLs).
 * Node does not expose EKU OIDs reliably by name or CRL distribution points at all, so those
 * come from @peculiar/x509.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate, createHash } from "node:crypto";
import { ValidationError } from "../../../src/errors.ts";
import { looksLikePem, pemBlocks } from "../../../src/pki/pem.ts";

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
 * True when the certificate may authenticate a TLS client: its EKU lists clientAuth or
 * anyExtendedKeyUsage, or it has no EKU extension (RFC 5280: no EKU means no restriction; the
 * platform and OpenSSL agree).
 *
 * @example
 * if (!hasClientAuthEku(peer)) reject("wrong_usage");
 */
export function hasClientAuthEku(cert: X509Certificate): boolean {
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
  return crlUrlsOf(new x509.X509Certificate(cert.raw));
}

/** notBefore/notAfter as Dates (Node 20's X509Certificate only gives strings). */
export function validityOf(cert: X509Certificate): { notBefore: Date; notAfter: Date } {
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
