/**
 * Reading what the wizard needs from a certificate file in the browser: the PEM blocks, and the
 * subject's common name and DNS names (they fill Service name and Service FQDN, as in document
 * 004). The site checks the certificate itself again; this only pre-fills the form.
 */

export interface PemBlocks {
  certificates: string[];
  privateKey: string | undefined;
}

export function pemBlocks(text: string): PemBlocks {
  const blocks = text.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g) ?? [];
  return {
    certificates: blocks.filter((b) => b.startsWith("-----BEGIN CERTIFICATE-----")).map((b) => b + "\n"),
    privateKey: blocks.find((b) => /-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(b))?.concat("\n"),
  };
}

interface Der {
  tag: number;
  start: number;
  end: number;
}

function readTlv(b: Uint8Array, at: number): Der {
  const tag = b[at]!;
  let len = b[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p + i]!;
    p += n;
  }
  return { tag, start: p, end: p + len };
}

function children(b: Uint8Array, d: Der): Der[] {
  const out: Der[] = [];
  for (let p = d.start; p < d.end; ) {
    const c = readTlv(b, p);
    out.push(c);
    p = c.end;
  }
  return out;
}

const text = (b: Uint8Array, d: Der): string => new TextDecoder().decode(b.slice(d.start, d.end));

/** The DER bytes of a PEM certificate's first block. */
function derOf(pem: string): Uint8Array {
  const b64 = (pem.match(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/)?.[1] ?? pem.replace(/-----[^-]+-----/g, "")).replace(/\s+/g, "");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** Attribute types of a subject as people write them (2.5.4.x). */
const SUBJECT_ATTRIBUTES: Record<string, string> = { "85.4.3": "CN", "85.4.6": "C", "85.4.7": "L", "85.4.8": "ST", "85.4.10": "O", "85.4.11": "OU" };

/** The subject's attributes in order, as [type, value]. */
function subjectOf(b: Uint8Array, subject: Der): [string, string][] {
  const out: [string, string][] = [];
  for (const rdn of children(b, subject))
    for (const atv of children(b, rdn)) {
      const [oid, value] = children(b, atv);
      if (!oid || !value) continue;
      const type = SUBJECT_ATTRIBUTES[Array.from(b.slice(oid.start, oid.end)).join(".")];
      if (type) out.push([type, text(b, value)]);
    }
  return out;
}

/** The fields of the certificate's TBS part, and where the subject is. */
function tbsFields(b: Uint8Array): { f: Der[]; subject: Der } {
  const cert = readTlv(b, 0);
  const tbs = children(b, cert)[0]!;
  const f = children(b, tbs);
  const i = f[0]!.tag === 0xa0 ? 1 : 0; // [0] version is optional
  return { f, subject: f[i + 4]! };
}

/**
 * The subject of the first certificate in `pem` as one line ("CN=Contoso Root CA, O=Contoso"),
 * for lists of chosen CA files; "" when it cannot be read (the site then names the file's fault).
 */
export function certificateSubject(pem: string): string {
  try {
    const b = derOf(pem);
    return subjectOf(b, tbsFields(b).subject)
      .map(([t, v]) => `${t}=${v}`)
      .join(", ");
  } catch {
    return "";
  }
}

/** Subject CN and subjectAltName DNS names of the first certificate in `pem`. */
export function certificateNames(pem: string): { commonName: string | undefined; dnsNames: string[] } {
  const b = derOf(pem);
  const { f, subject } = tbsFields(b);
  const commonName = subjectOf(b, subject).filter(([t]) => t === "CN").pop()?.[1];
  const dnsNames: string[] = [];
  const ext = f.find((x) => x.tag === 0xa3);
  if (ext) {
    for (const e of children(b, children(b, ext)[0]!)) {
      const parts = children(b, e);
      // 2.5.29.17 subjectAltName
      if (Array.from(b.slice(parts[0]!.start, parts[0]!.end)).join(".") !== "85.29.17") continue;
      const octets = parts[parts.length - 1]!;
      const names = readTlv(b, octets.start);
      for (const n of children(b, names)) if (n.tag === 0x82) dnsNames.push(text(b, n));
    }
  }
  return { commonName, dnsNames };
}

export async function readFileText(f: File): Promise<string> {
  return f.text();
}

export async function readFileBase64(f: File): Promise<string> {
  const bytes = new Uint8Array(await f.arrayBuffer());
  let s = "";
  for (const x of bytes) s += String.fromCharCode(x);
  return btoa(s);
}

/**
 * The SHA-1 thumbprint of the first certificate in `pem` as the documents show it (hex, upper
 * case); "" where the browser offers no digest (a console served over plain HTTP to another host).
 */
export async function certificateThumbprint(pem: string): Promise<string> {
  try {
    if (!globalThis.crypto?.subtle) return "";
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", new Uint8Array(derOf(pem))));
    return Array.from(digest, (x) => x.toString(16).padStart(2, "0")).join("").toUpperCase();
  } catch {
    return "";
  }
}
