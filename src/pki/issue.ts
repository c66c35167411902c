/**
 * Issues certificates: root and intermediate CAs, TLS server and client certificates, and CRLs.
 * Used by the site (its own CA for tunnel certificates), by the CLI and by every test that needs
 * real certificates. Keys are ECDSA P-256 made with WebCrypto; @peculiar/x509 builds the DER.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate as NodeCert, createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import { isIP } from "node:net";
import { ValidationError } from "../errors.ts";
import { thumbprintOf } from "./cert.ts";
import { toPem } from "./pem.ts";

export interface CertKeyPem {
  certPem: string;
  keyPem: string;
}

export interface IssuedCert extends CertKeyPem {
  /** Serial number as uppercase hex, as node:crypto's X509Certificate#serialNumber writes it. */
  serialHex: string;
  /** SHA-1 of the DER, uppercase hex without separators (the platform's "thumbprint"). */
  thumbprint: string;
}

export type CertUsage = "server" | "client" | "server+client" | "none";

// Passed explicitly to every @peculiar/x509 call instead of relying on its global provider.
const crypto = webcrypto as unknown as Crypto;
const DAY = 86_400_000;
// Backdate notBefore a little so a certificate issued now is valid on a peer whose clock lags.
const SKEW = 5 * 60_000;
const EC_KEY: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };

/**
 * A root CA (self-signed), or an intermediate CA when `issuer` is given.
 *
 * @example
 * const root = await createCa({ commonName: "Contoso Root CA" });
 * const sub = await createCa({ commonName: "Contoso Issuing CA", issuer: root, crlUrl: "http://127.0.0.1:8080/root.crl" });
 */
export async function createCa(o: {
  commonName: string;
  issuer?: CertKeyPem;
  notBefore?: Date;
  notAfter?: Date;
  crlUrl?: string;
}): Promise<IssuedCert> {
  const keys = await generateKeys();
  const notBefore = o.notBefore ?? new Date(Date.now() - SKEW);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
  ];
  if (o.crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([o.crlUrl]));
  const common = {
    serialNumber: newSerial(),
    subject: nameOf(o.commonName),
    notBefore,
    notAfter: o.notAfter ?? new Date(notBefore.getTime() + 10 * 365 * DAY),
    publicKey: keys.publicKey,
  };
  let cert: x509.X509Certificate;
  if (o.issuer) {
    const signer = await loadIssuer(o.issuer);
    extensions.push(signer.aki);
    cert = await x509.X509CertificateGenerator.create(
      { ...common, issuer: signer.cert.subjectName, extensions, signingKey: signer.key, signingAlgorithm: signer.alg },
      crypto,
    );
  } else {
    extensions.push(new x509.AuthorityKeyIdentifierExtension(skiOf(extensions)));
    cert = await x509.X509CertificateGenerator.create(
      { ...common, issuer: common.subject, extensions, signingKey: keys.privateKey, signingAlgorithm: signingAlg(keys.privateKey) },
      crypto,
    );
  }
  return finish(cert, keys.privateKey);
}

/**
 * A leaf certificate signed by `issuer`: TLS server, TLS client, both, or "none" (which carries
 * only the code-signing EKU, so tests have a certificate of the wrong usage).
 *
 * @example
 * const server = await issueCert({ issuer: ca, commonName: "cmg.contoso.test", dnsNames: ["cmg.contoso.test"], ipAddresses: ["127.0.0.1"], usage: "server" });
 * const client = await issueCert({ issuer: ca, commonName: "PC-001", usage: "client", crlUrl: "http://127.0.0.1:8080/sub.crl" });
 */
export async function issueCert(o: {
  issuer: CertKeyPem;
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: CertUsage;
  notBefore?: Date;
  notAfter?: Date;
  crlUrl?: string;
}): Promise<IssuedCert> {
  const signer = await loadIssuer(o.issuer);
  const keys = await generateKeys();
  const notBefore = o.notBefore ?? new Date(Date.now() - SKEW);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(ekusFor(o.usage), false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    signer.aki,
  ];
  const sans = subjectAltNames(o.dnsNames ?? [], o.ipAddresses ?? []);
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));
  if (o.crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([o.crlUrl]));
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: newSerial(),
      subject: nameOf(o.commonName),
      issuer: signer.cert.subjectName,
      notBefore,
      notAfter: o.notAfter ?? new Date(notBefore.getTime() + 365 * DAY),
      publicKey: keys.publicKey,
      signingKey: signer.key,
      signingAlgorithm: signer.alg,
      extensions,
    },
    crypto,
  );
  return finish(cert, keys.privateKey);
}

/**
 * A CRL signed by `issuer`, as PEM labelled "X509 CRL" (the label Node's TLS `crl` option and
 * OpenSSL accept; @peculiar/x509 writes "CRL", which they reject).
 *
 * @example
 * const crlPem = await createCrl({ issuer: ca, revoked: [{ serialHex: client.serialHex }], nextUpdate: new Date(Date.now() + 86_400_000) });
 */
export async function createCrl(o: {
  issuer: CertKeyPem;
  revoked: { serialHex: string; date?: Date }[];
  thisUpdate?: Date;
  nextUpdate: Date;
}): Promise<string> {
  const signer = await loadIssuer(o.issuer);
  const thisUpdate = o.thisUpdate ?? new Date(Date.now() - SKEW);
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: signer.cert.subjectName,
      thisUpdate,
      nextUpdate: o.nextUpdate,
      // Entry reason "keyCompromise": the library drops reason 0 ("unspecified") and would then
      // write an empty entry-extensions SEQUENCE; a real reason keeps the DER strictly valid.
      entries: o.revoked.map((r) => ({
        serialNumber: r.serialHex,
        revocationDate: r.date ?? thisUpdate,
        reason: x509.X509CrlReason.keyCompromise,
      })),
      // CRL number (RFC 5280 requires one): seconds since 1970, so later CRLs have larger numbers.
      extensions: [signer.aki, new x509.Extension("2.5.29.20", false, derInteger(Math.floor(thisUpdate.getTime() / 1000)))],
      signingKey: signer.key,
      signingAlgorithm: signer.alg,
    },
    crypto,
  );
  return toPem(crl.rawData, "X509 CRL");
}

interface Signer {
  cert: x509.X509Certificate;
  key: CryptoKey;
  alg: Algorithm | EcdsaParams;
  aki: x509.AuthorityKeyIdentifierExtension;
}

/** Loads an issuer's certificate and key and checks they belong together. */
async function loadIssuer(issuer: CertKeyPem): Promise<Signer> {
  let nodeCert: NodeCert;
  let keyObject: ReturnType<typeof createPrivateKey>;
  try {
    nodeCert = new NodeCert(issuer.certPem);
    keyObject = createPrivateKey(issuer.keyPem);
  } catch (err) {
    throw new ValidationError("issuer", "the issuer certificate and key must be readable PEM", `issuer: ${(err as Error).message}`);
  }
  if (!nodeCert.ca) throw new ValidationError("issuer", "the issuer certificate is not a CA certificate");
  if (!nodeCert.checkPrivateKey(keyObject)) throw new ValidationError("issuer", "the key does not belong to the issuer certificate");

  const cert = new x509.X509Certificate(nodeCert.raw);
  const pkcs8 = keyObject.export({ type: "pkcs8", format: "der" });
  let importAlg: EcKeyImportParams | RsaHashedImportParams;
  if (keyObject.asymmetricKeyType === "ec") {
    const curve = { prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521" }[keyObject.asymmetricKeyDetails?.namedCurve ?? ""];
    if (!curve) throw new ValidationError("issuer", "the issuer key uses an unsupported curve");
    importAlg = { name: "ECDSA", namedCurve: curve };
  } else if (keyObject.asymmetricKeyType === "rsa") {
    importAlg = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  } else {
    throw new ValidationError("issuer", "the issuer key must be an ECDSA or RSA key");
  }
  const key = await crypto.subtle.importKey("pkcs8", Uint8Array.from(pkcs8), importAlg, false, ["sign"]);
  // The issuer's own subject key id, copied as is, so chain builders match the two exactly.
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const aki = ski
    ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
    : await x509.AuthorityKeyIdentifierExtension.create(cert.publicKey, false, crypto);
  return { cert, key, alg: signingAlg(key), aki };
}

function signingAlg(key: CryptoKey): Algorithm | EcdsaParams {
  if (key.algorithm.name !== "ECDSA") return key.algorithm;
  const curve = (key.algorithm as EcKeyAlgorithm).namedCurve;
  return { name: "ECDSA", hash: curve === "P-384" ? "SHA-384" : curve === "P-521" ? "SHA-512" : "SHA-256" };
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"]);
}

async function finish(cert: x509.X509Certificate, privateKey: CryptoKey): Promise<IssuedCert> {
  const der = new Uint8Array(cert.rawData);
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", privateKey);
  return {
    certPem: toPem(der, "CERTIFICATE"),
    keyPem: toPem(pkcs8, "PRIVATE KEY"),
    serialHex: new NodeCert(der).serialNumber.toUpperCase(),
    thumbprint: thumbprintOf(der),
  };
}

/** 16 random bytes, first byte 0x01..0x7F: positive, and exactly 16 bytes once DER-encoded. */
function newSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f || 0x01;
  return b.toString("hex");
}

function nameOf(commonName: string): x509.JsonName {
  // JSON form, not "CN=..." text, so commas or equals signs in the name need no escaping.
  return [{ CN: [commonName] }];
}

function skiOf(extensions: x509.Extension[]): string {
  return extensions.find((e): e is x509.SubjectKeyIdentifierExtension => e instanceof x509.SubjectKeyIdentifierExtension)!.keyId;
}

function ekusFor(usage: CertUsage): string[] {
  switch (usage) {
    case "server":
      return [x509.ExtendedKeyUsage.serverAuth];
    case "client":
      return [x509.ExtendedKeyUsage.clientAuth];
    case "server+client":
      return [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
    case "none":
      return [x509.ExtendedKeyUsage.codeSigning];
  }
}

function subjectAltNames(dnsNames: string[], ipAddresses: string[]): x509.JsonGeneralNames {
  for (const ip of ipAddresses) {
    if (isIP(ip) === 0) throw new ValidationError("ipAddresses", "must be IPv4 or IPv6 addresses", `ipAddresses: "${ip}" is not an IP address`);
  }
  return [...dnsNames.map((value) => ({ type: "dns" as const, value })), ...ipAddresses.map((value) => ({ type: "ip" as const, value }))];
}

/** DER INTEGER for a non-negative safe integer. */
function derInteger(n: number): Uint8Array<ArrayBuffer> {
  let hex = n.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  if (parseInt(hex.slice(0, 2), 16) > 0x7f) hex = "00" + hex;
  const body = Buffer.from(hex, "hex");
  return new Uint8Array([0x02, body.length, ...body]);
}

/**
 * A key pair made here and a PKCS#10 request for it (CN `commonName`): what a joining host sends
 * to the site, keeping its private key.
 *
 * @example
 * const { keyPem, csrPem } = await createCsr("cp1.contoso.local");
 */
export async function createCsr(commonName: string): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await generateKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: nameOf(commonName), keys, signingAlgorithm: signingAlg(keys.privateKey) }, crypto);
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { keyPem: toPem(pkcs8, "PRIVATE KEY"), csrPem: csr.toString("pem") };
}

/** The public key of a PKCS#10 request whose signature proves its holder has the private key. */
export async function verifiedCsrKey(csrPem: string): Promise<x509.PublicKey> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new ValidationError("csr", "must be a PEM certificate request (PKCS#10)", `csr: ${(err as Error).message}`);
  }
  if (!(await csr.verify(crypto))) throw new ValidationError("csr", "its signature does not verify: it was not made with the key it carries");
  return csr.publicKey;
}

/**
 * A leaf certificate signed by `issuer` for a key held elsewhere (`publicKey`: from a verified
 * request, or a certificate's SubjectPublicKeyInfo as DER). Returns the certificate only.
 */
export async function issueCertForKey(o: {
  issuer: CertKeyPem;
  publicKey: x509.PublicKey | BufferSource;
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: CertUsage;
  notAfter?: Date;
}): Promise<{ certPem: string; serialHex: string }> {
  const signer = await loadIssuer(o.issuer);
  const publicKey = o.publicKey instanceof x509.PublicKey ? o.publicKey : new x509.PublicKey(o.publicKey);
  const notBefore = new Date(Date.now() - SKEW);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(ekusFor(o.usage), false),
    await x509.SubjectKeyIdentifierExtension.create(publicKey, false, crypto),
    signer.aki,
  ];
  const sans = subjectAltNames(o.dnsNames ?? [], o.ipAddresses ?? []);
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));
  const cert = await x509.X509CertificateGenerator.create(
    { serialNumber: newSerial(), subject: nameOf(o.commonName), issuer: signer.cert.subjectName, notBefore, notAfter: o.notAfter ?? new Date(notBefore.getTime() + 365 * DAY), publicKey, signingKey: signer.key, signingAlgorithm: signer.alg, extensions },
    crypto,
  );
  const der = new Uint8Array(cert.rawData);
  return { certPem: toPem(der, "CERTIFICATE"), serialHex: new NodeCert(der).serialNumber.toUpperCase() };
}
