/**
 * The few facts of an X.509 certificate the gateway needs per new client certificate that
 * node:crypto's X509Certificate does not give on every supported Node version (outer signature
 * algorithm, validity as Dates, EKU OIDs, CRL distribution point URLs, the subject's DER), read
 * by walking the DER once. A full @peculiar/x509 parse costs about a millisecond per certificate,
 * and the old check parsed the same certificate up to ten times: a reconnect storm after a
 * restart paid that for every device. Anything this reader does not understand throws, and the
 * callers then fall back to the full parse, so an odd certificate is judged as before.
 */

/** One DER element: its tag, where its contents start and where it ends (exclusive). */
interface Tlv {
  tag: number;
  /** Where the element's tag is. */
  at: number;
  start: number;
  end: number;
}

export interface CertificateFacts {
  /** OID of the outer signatureAlgorithm, e.g. "1.2.840.10045.4.3.2". */
  signatureOid: string;
  notBefore: Date;
  notAfter: Date;
  /** The subject Name, DER (a SEQUENCE). */
  subjectDer: Uint8Array;
  /** Extension values (the OCTET STRING's contents) by OID; the first of a repeated OID. */
  extensions: Map<string, Uint8Array>;
}

export const EXT = { keyUsage: "2.5.29.15", basicConstraints: "2.5.29.19", extKeyUsage: "2.5.29.37", crlDistributionPoints: "2.5.29.31" } as const;

function read(b: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new Error("DER: truncated element");
  const tag = b[at]!;
  // High tag numbers (0x1f) do not occur in the parts of a certificate read here.
  if ((tag & 0x1f) === 0x1f) throw new Error("DER: high tag number");
  let len = b[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error("DER: indefinite or oversized length");
    if (start + n > limit) throw new Error("DER: truncated length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new Error("DER: element runs past its container");
  return { tag, at, start, end };
}

/** The elements directly inside a constructed element. */
function children(b: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = read(b, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

function expect(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new Error(`DER: ${what} expected`);
  return t;
}

function oid(b: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x06 || t.end === t.start) throw new Error("DER: OID expected");
  const arcs: number[] = [];
  let v = 0;
  for (let i = t.start; i < t.end; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if (!(b[i]! & 0x80)) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join(".");
}

const UTC = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;
const GENERALIZED = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;

/** UTCTime (years 50-99 are 19xx, RFC 5280) or GeneralizedTime, in the only forms RFC 5280 allows. */
function time(b: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(b.buffer, b.byteOffset + t.start, t.end - t.start).toString("latin1");
  const m = t.tag === 0x17 ? UTC.exec(s) : t.tag === 0x18 ? GENERALIZED.exec(s) : null;
  if (!m) throw new Error("DER: time in an unexpected form");
  const year = t.tag === 0x17 ? (Number(m[1]) < 50 ? 2000 : 1900) + Number(m[1]) : Number(m[1]);
  const d = new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  // Date.UTC rolls over (month 13, second 61): such a certificate goes to the full parser.
  if (d.getUTCMonth() !== Number(m[2]) - 1 || d.getUTCSeconds() !== Number(m[6])) throw new Error("DER: invalid time");
  if (year < 100) d.setUTCFullYear(year);
  return d;
}

/**
 * Reads a certificate's facts. Throws on anything unexpected (the caller falls back).
 *
 * @example
 * certificateFacts(peer.raw).notAfter // 2027-12-07T04:12:17.000Z
 */
export function certificateFacts(der: Uint8Array): CertificateFacts {
  const cert = expect(read(der, 0, der.length), 0x30, "Certificate");
  const [tbs, sigAlg] = children(der, cert);
  const tbsParts = children(der, expect(tbs, 0x30, "TBSCertificate"));
  let i = tbsParts[0]?.tag === 0xa0 ? 1 : 0; // [0] version
  expect(tbsParts[i++], 0x02, "serialNumber");
  expect(tbsParts[i++], 0x30, "signature");
  expect(tbsParts[i++], 0x30, "issuer");
  const [notBefore, notAfter] = children(der, expect(tbsParts[i++], 0x30, "validity"));
  const subject = expect(tbsParts[i++], 0x30, "subject");
  expect(tbsParts[i++], 0x30, "subjectPublicKeyInfo");
  const extensions = new Map<string, Uint8Array>();
  for (; i < tbsParts.length; i++) {
    const t = tbsParts[i]!;
    if (t.tag !== 0xa3) continue; // issuerUniqueID [1], subjectUniqueID [2]
    const [list] = children(der, t);
    for (const ext of children(der, expect(list, 0x30, "Extensions"))) {
      const parts = children(der, expect(ext, 0x30, "Extension"));
      const id = oid(der, parts[0]!);
      const value = expect(parts.at(-1), 0x04, "extnValue");
      if (!extensions.has(id)) extensions.set(id, der.subarray(value.start, value.end));
    }
  }
  const [sigOid] = children(der, expect(sigAlg, 0x30, "signatureAlgorithm"));
  return {
    signatureOid: oid(der, sigOid!),
    notBefore: time(der, notBefore!),
    notAfter: time(der, notAfter!),
    subjectDer: der.subarray(subject.at, subject.end),
    extensions,
  };
}

/** EKU OIDs of an extKeyUsage extension value. */
export function ekuOids(value: Uint8Array): string[] {
  const seq = expect(read(value, 0, value.length), 0x30, "ExtKeyUsageSyntax");
  return children(value, seq).map((t) => oid(value, t));
}

/**
 * URIs of the full names of CRL distribution points (relative names and CRL issuers are not used
 * by the CAs this product deals with; src/pki/cert.ts crlUrls says the same).
 */
export function crlDistributionUrls(value: Uint8Array): string[] {
  const urls: string[] = [];
  const seq = expect(read(value, 0, value.length), 0x30, "CRLDistributionPoints");
  for (const dp of children(value, seq)) {
    for (const field of children(value, expect(dp, 0x30, "DistributionPoint"))) {
      if (field.tag !== 0xa0) continue; // distributionPoint [0]
      for (const name of children(value, field)) {
        if (name.tag !== 0xa0) continue; // fullName [0]; nameRelativeToCRLIssuer [1] is not used
        for (const general of children(value, name)) {
          // uniformResourceIdentifier [6] IA5String
          if (general.tag === 0x86) urls.push(Buffer.from(value.buffer, value.byteOffset + general.start, general.end - general.start).toString("latin1"));
        }
      }
    }
  }
  return urls;
}

/** Signature hashes by signature algorithm OID; an OID not listed (RSA-PSS, unknown) goes to the full parser. */
export const SIGNATURE_HASHES: ReadonlyMap<string, string | undefined> = new Map([
  ["1.2.840.113549.1.1.2", "MD2"],
  ["1.2.840.113549.1.1.3", "MD4"],
  ["1.2.840.113549.1.1.4", "MD5"],
  ["1.2.840.113549.1.1.5", "SHA-1"],
  ["1.3.14.3.2.29", "SHA-1"],
  ["1.2.840.10045.4.1", "SHA-1"],
  ["1.2.840.10040.4.3", "SHA-1"],
  ["1.2.840.113549.1.1.14", "SHA-224"],
  ["1.2.840.113549.1.1.11", "SHA-256"],
  ["1.2.840.113549.1.1.12", "SHA-384"],
  ["1.2.840.113549.1.1.13", "SHA-512"],
  ["1.2.840.10045.4.3.1", "SHA-224"],
  ["1.2.840.10045.4.3.2", "SHA-256"],
  ["1.2.840.10045.4.3.3", "SHA-384"],
  ["1.2.840.10045.4.3.4", "SHA-512"],
  // Ed25519 and Ed448 sign without a separate hash.
  ["1.3.101.112", undefined],
  ["1.3.101.113", undefined],
]);
