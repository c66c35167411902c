/**
 * PEM text <-> DER bytes. Small on purpose: every other file of the toolkit reads and writes PEM,
 * and the labels matter (Node's TLS accepts "X509 CRL" but not the "CRL" some libraries write).
 */

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

export interface PemBlock {
  label: string;
  der: Buffer;
}

/**
 * Every PEM block in `text`, in order (text between blocks, such as OpenSSL's "Bag Attributes"
 * lines, is skipped).
 *
 * @example
 * const certs = pemBlocks(bundle).filter((b) => b.label === "CERTIFICATE");
 */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    out.push({ label: m[1]!, der: Buffer.from(m[2]!.replace(/[^A-Za-z0-9+/=]/g, ""), "base64") });
  }
  return out;
}

/**
 * DER bytes as PEM with 64-character lines and a trailing newline.
 *
 * @example
 * toPem(crlDer, "X509 CRL") // "-----BEGIN X509 CRL-----\n...\n-----END X509 CRL-----\n"
 */
export function toPem(der: Uint8Array | ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** True when the bytes look like PEM text rather than DER (DER always starts with a SEQUENCE tag). */
export function looksLikePem(data: Buffer | string): boolean {
  const head = typeof data === "string" ? data.slice(0, 4096) : data.subarray(0, 4096).toString("latin1");
  return head.includes("-----BEGIN ");
}
