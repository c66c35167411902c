/**
 * The certificate checks of a CMG: its server authentication certificate (at creation and on
 * renewal), the service FQDN it gives, and the trusted roots and intermediates for client
 * certificates.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { ValidationError } from "../../errors.ts";
import { describe, parseCertificates } from "../../pki/cert.ts";
import { isHostName } from "../validation.ts";
import type { CertInfo } from "./cmg-model.ts";

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const ANY_USAGE = "2.5.29.37.0";

export function certInfo(c: X509Certificate, withNames = false): CertInfo {
  const d = describe(c);
  return { subject: d.subject, thumbprint: d.thumbprint, notAfter: d.notAfter.toISOString(), ...(withNames ? { dnsNames: d.dnsNames } : {}) };
}

/** The service FQDN a server certificate gives (its first DNS name, else its CN). */
export function certFqdn(c: X509Certificate): string {
  const d = describe(c);
  return (d.dnsNames[0] ?? d.commonName).toLowerCase();
}

/** The certificate of `certPem` with `keyPem` checked to be its key. */
function certWithKey(certPem: string, keyPem: string, keyOf: string): X509Certificate {
  const [cert] = parseCertificates(certPem, "serverCert");
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new ValidationError("serverKey", "must be an unencrypted PEM private key");
  }
  if (!cert!.checkPrivateKey(key)) throw new ValidationError("serverKey", `does not belong to ${keyOf}`);
  return cert!;
}

/** A real certificate with its key, valid now, for server authentication. */
export function checkServerCertificate(certPem: string, keyPem: string, now: Date): X509Certificate {
  const cert = certWithKey(certPem, keyPem, "the server authentication certificate");
  if (new Date(cert.validTo) < now) throw new ValidationError("serverCert", `has expired (${cert.validTo}); renew it before creating the CMG`);
  if (new Date(cert.validFrom) > now) throw new ValidationError("serverCert", `is not valid yet (from ${cert.validFrom})`);
  const ekus = describe(cert).ekus;
  if (ekus.length > 0 && !ekus.includes(SERVER_AUTH) && !ekus.includes(ANY_USAGE)) throw new ValidationError("serverCert", "must carry the server authentication extended key usage");
  if (cert.ca) throw new ValidationError("serverCert", "must be a server certificate, not a CA");
  return cert;
}

/**
 * The service FQDN of a new CMG: the certificate's name, or for a wildcard certificate the
 * `requested` name with the * replaced by one label.
 */
export function serviceFqdnFor(cert: X509Certificate, requested: string | undefined): string {
  const subjectFqdn = certFqdn(cert);
  if (subjectFqdn.startsWith("*.")) {
    if (!requested) throw new ValidationError("serviceFqdn", `the certificate is a wildcard (${subjectFqdn}): give --service-fqdn with the * replaced by a host name`);
    const serviceFqdn = requested.toLowerCase();
    const suffix = subjectFqdn.slice(1);
    const head = serviceFqdn.slice(0, serviceFqdn.length - suffix.length);
    if (!serviceFqdn.endsWith(suffix) || head.length === 0 || head.includes(".") || head.includes("*") || !isHostName(serviceFqdn))
      throw new ValidationError("serviceFqdn", `must be ${subjectFqdn} with the * replaced by one host name label`);
    return serviceFqdn;
  }
  if (!isHostName(subjectFqdn)) throw new ValidationError("serverCert", `its subject (${subjectFqdn || "empty"}) is not a host name to serve`);
  if (requested && requested.toLowerCase() !== subjectFqdn) throw new ValidationError("serviceFqdn", `comes from the certificate (${subjectFqdn}); only a wildcard certificate takes --service-fqdn`);
  return subjectFqdn;
}

/** The name a server certificate is for, as written in it (first DNS name, else CN): case kept. */
function writtenName(c: X509Certificate): string {
  const d = describe(c);
  return d.dnsNames[0] ?? d.commonName;
}

/**
 * A renewed server certificate: checked as at creation (its key, validity, usage, not a CA) and
 * for the same service name, compared as written (the service name is case-sensitive): a
 * different name needs a new CMG. Returns its thumbprint.
 */
export function checkRenewal(certPem: string | undefined, keyPem: string | undefined, serviceFqdn: string, now: Date, currentCertPem?: string): string {
  if (!certPem || !keyPem) throw new ValidationError("serverCert", "renewing needs both the certificate and its key");
  const c = checkServerCertificate(certPem, keyPem, now);
  const name = writtenName(c);
  // The service FQDN as the current certificate writes it (a wildcard's * replaced by the service's label).
  const currentName = currentCertPem ? writtenName(new X509Certificate(currentCertPem)) : serviceFqdn;
  const service = currentName.startsWith("*.") ? serviceFqdn.split(".")[0] + currentName.slice(1) : currentName;
  const covers = (n: string): boolean => n === service || (n.startsWith("*.") && service.endsWith(n.slice(1)) && !service.slice(0, service.length - n.length + 1).includes("."));
  if (covers(name)) return describe(c).thumbprint;
  const sameIgnoringCase = covers(name.toLowerCase()) || name.toLowerCase() === service.toLowerCase() || (name.startsWith("*.") && service.toLowerCase().endsWith(name.slice(1).toLowerCase()));
  if (sameIgnoringCase) throw new ValidationError("serverCert", `is for ${name}, but the service name is ${service} and it is case-sensitive; a different service name needs a new CMG`);
  throw new ValidationError("serverCert", `is for ${name}, not the service ${service}: the service name cannot change; that needs a new CMG (create one with this certificate, then delete this one)`);
}

/** CA certificates (at most `max`), each a CA and not expired; returned as PEM. */
export function checkCaList(field: string, pems: string[], max: number, now: Date): string[] {
  if (pems.length > max) throw new ValidationError(field, `at most ${max} certificates (got ${pems.length})`);
  return pems.map((pem, i) => {
    const [c] = parseCertificates(pem, `${field}[${i}]`);
    if (!c!.ca) throw new ValidationError(`${field}[${i}]`, `must be a CA certificate; ${c!.subject.replace(/\n/g, ", ")} is not one`);
    if (new Date(c!.validTo) < now) throw new ValidationError(`${field}[${i}]`, `has expired (${c!.validTo})`);
    return c!.toString();
  });
}

/** Trusted roots for client certificates must be self-signed root CAs (already checked by checkCaList). */
export function requireSelfSigned(roots: readonly string[]): void {
  for (const [i, pem] of roots.entries()) {
    const c = new X509Certificate(pem);
    if (!c.checkIssued(c)) throw new ValidationError(`trustedRoots[${i}]`, "must be a self-signed root CA; put subordinate CAs in --intermediate");
  }
}
