/**
 * PFX (PKCS#12) files: how admins hand over the gateway's server authentication certificate.
 *
 * Node has no PKCS#12 parser. We run the `openssl pkcs12` command (OpenSSL 3 is a dependency of
 * the machine anyway) rather than add node-forge: OpenSSL reads every PFX variant Windows and
 * other CAs write (AES/PBES2 and, through its legacy provider, RC2/3DES) with maintained code,
 * and it keeps npm dependencies down. The password reaches OpenSSL through an environment
 * variable of the child only (`-passin env:`), never on a command line (visible in `ps`) and
 * never in a log.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { spawnSync } from "node:child_process";
import { OpenCmgError, ValidationError } from "../errors.ts";
import { pemBlocks, toPem } from "./pem.ts";

export interface PfxContent {
  /** The certificate that matches the private key. */
  certPem: string;
  /** The private key as PKCS#8 PEM, unencrypted. */
  keyPem: string;
  /** The other certificates of the file, issuer of the leaf first when they form a chain. */
  chainPem: string[];
}

const PASS_VAR = "OPENCMG_PFX_PASS";

/**
 * Opens a PFX file.
 * Throws ValidationError("pfxPassword") for a wrong password, ValidationError("pfxFile") for a
 * file that is not a PFX or holds no key with its certificate.
 *
 * @example
 * const { certPem, keyPem, chainPem } = readPfx(readFileSync("cmg.pfx"), password);
 */
export function readPfx(buf: Buffer, password: string): PfxContent {
  let r = openssl(["pkcs12", "-nodes", "-passin", `env:${PASS_VAR}`], buf, password);
  // Older PFX files (RC2-40, as some Windows exports) need OpenSSL 3's legacy provider.
  if (r.status !== 0 && /unsupported|RC2|legacy/i.test(r.stderr)) {
    r = openssl(["pkcs12", "-legacy", "-nodes", "-passin", `env:${PASS_VAR}`], buf, password);
  }
  if (r.status !== 0) {
    if (/mac verify|invalid password|bad decrypt/i.test(r.stderr)) {
      throw new ValidationError("pfxPassword", "the password does not open the PFX file");
    }
    throw new ValidationError("pfxFile", "must be a PFX (PKCS#12) file", `pfxFile: not a readable PFX file (${firstLine(r.stderr)})`);
  }
  const blocks = pemBlocks(r.stdout.toString("utf8"));
  const keyBlock = blocks.find((b) => b.label === "PRIVATE KEY" || b.label.endsWith(" PRIVATE KEY"));
  if (!keyBlock) throw new ValidationError("pfxFile", "must hold a private key", "pfxFile: the PFX file holds no private key");
  const key = createPrivateKey({ key: toPem(keyBlock.der, keyBlock.label), format: "pem" });
  const certs = blocks.filter((b) => b.label === "CERTIFICATE").map((b) => new X509Certificate(b.der));
  const leaf = certs.find((c) => c.checkPrivateKey(key));
  if (!leaf) throw new ValidationError("pfxFile", "must hold the certificate of its key", "pfxFile: no certificate in the PFX file matches its private key");
  return {
    certPem: leaf.toString(),
    keyPem: pkcs8Pem(key),
    chainPem: chainOrder(leaf, certs.filter((c) => c !== leaf)).map((c) => c.toString()),
  };
}

/**
 * Writes a PFX file (tests, and `opencmg` commands that hand certificates to people).
 * `legacy` writes the old RC2/3DES encryption some older systems still produce.
 *
 * @example
 * const pfx = writePfx({ certPem, keyPem, chainPem: [subPem], password: "s3cret" });
 */
export function writePfx(o: { certPem: string; keyPem: string; chainPem?: string[]; password: string; legacy?: boolean }): Buffer {
  const input = [o.keyPem, o.certPem, ...(o.chainPem ?? [])].map((p) => p.trim() + "\n").join("");
  const args = ["pkcs12", "-export", ...(o.legacy ? ["-legacy"] : []), "-passout", `env:${PASS_VAR}`];
  const r = openssl(args, Buffer.from(input), o.password);
  if (r.status !== 0) throw new OpenCmgError("internal", "PFX_EXPORT", `openssl could not write the PFX file: ${firstLine(r.stderr)}`);
  return r.stdout;
}

function openssl(args: string[], input: Buffer, password: string): { status: number | null; stdout: Buffer; stderr: string } {
  // A minimal environment: the password variable and PATH, nothing else of ours leaks in.
  const r = spawnSync("openssl", args, {
    input,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", [PASS_VAR]: password },
    maxBuffer: 16 * 1024 * 1024,
    timeout: 30_000,
  });
  if (r.error) throw new OpenCmgError("internal", "OPENSSL_MISSING", `cannot run openssl to read PFX files: ${r.error.message}`, { cause: r.error });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString("utf8") };
}

/** Orders certificates issuer-first from the leaf upwards; those outside the chain follow. */
function chainOrder(leaf: X509Certificate, rest: X509Certificate[]): X509Certificate[] {
  const out: X509Certificate[] = [];
  const left = [...rest];
  let current = leaf;
  for (;;) {
    const i = left.findIndex((c) => current.checkIssued(c) && !c.raw.equals(current.raw));
    if (i < 0) break;
    current = left.splice(i, 1)[0]!;
    out.push(current);
  }
  return [...out, ...left];
}

function pkcs8Pem(key: KeyObject): string {
  return key.export({ type: "pkcs8", format: "pem" }).toString();
}

function firstLine(text: string): string {
  return text.split("\n").find((l) => l.trim() !== "")?.trim() ?? "unknown error";
}
