/**
 * A CMG's certificates as files arrive (from the CLI's paths or an upload to the admin API):
 * the server authentication certificate as PEM with its key, or as a PFX with its password, split
 * into the certificate, its chain and its key; and CA files (one CA or a bundle each).
 * Takes the files' bytes, never paths.
 */
import { ValidationError } from "../errors.ts";
import { pemBlocks, toPem } from "../pki/pem.ts";
import { readPfx } from "../pki/pfx.ts";

/** A file's content and a name for messages (its path, or an upload's file name). */
export interface NamedFile {
  name: string;
  content: Buffer | string;
}

export interface ServerCertificateFiles {
  /** Certificate (PEM; more certificates after it are its chain) and private key (PEM). */
  cert?: NamedFile | undefined;
  key?: NamedFile | undefined;
  /** Or a PFX with its password. */
  pfx?: NamedFile | undefined;
  pfxPassword?: string | undefined;
}

/** What CmgsService.create takes as the server certificate. */
export interface ServerCertificatePems {
  certPem: string;
  keyPem: string;
  /** Certificates that came with it (the PEM file's later blocks, or the PFX's chain). */
  chainPem: string[];
}

function text(f: NamedFile): string {
  return typeof f.content === "string" ? f.content : f.content.toString("utf8");
}

function certificatesOf(field: string, f: NamedFile): string[] {
  const certs = pemBlocks(text(f)).filter((b) => b.label === "CERTIFICATE");
  if (certs.length === 0) throw new ValidationError(field, `${f.name} holds no PEM certificate`);
  return certs.map((b) => toPem(b.der, "CERTIFICATE"));
}

/**
 * The server authentication certificate, its chain and its key, from a PEM pair or a PFX.
 *
 * @example
 * const server = serverCertificateFromFiles({ pfx: { name: "cmg.pfx", content: bytes }, pfxPassword });
 * await site.services.cmgs.create({ name, serverCertPem: server.certPem, serverKeyPem: server.keyPem, serverChainPem: server.chainPem });
 */
export function serverCertificateFromFiles(f: ServerCertificateFiles, fields: { cert: string; key: string } = { cert: "serverCert", key: "serverKey" }): ServerCertificatePems {
  if (f.pfx) {
    if (f.cert || f.key) throw new ValidationError("serverPfx", "give either --server-pfx or --server-cert with --server-key, not both");
    if (f.pfxPassword === undefined) throw new ValidationError("pfxPassword", "give the PFX password on standard input with --pfx-password-stdin");
    const content = typeof f.pfx.content === "string" ? Buffer.from(f.pfx.content, "binary") : f.pfx.content;
    const pfx = readPfx(content, f.pfxPassword);
    return { certPem: pfx.certPem, keyPem: pfx.keyPem, chainPem: pfx.chainPem };
  }
  if (!f.cert) throw new ValidationError("serverCert", "give the server authentication certificate: --server-cert FILE --server-key FILE, or --server-pfx FILE");
  if (!f.key) throw new ValidationError("serverKey", "give the certificate's private key with --server-key FILE");
  const [certPem, ...chainPem] = certificatesOf(fields.cert, f.cert);
  return { certPem: certPem!, keyPem: text(f.key), chainPem };
}

/**
 * Every certificate of each file, as PEM (a file may hold one CA or a bundle); undefined when no
 * files were given.
 */
export function caCertificatesFromFiles(field: string, files: readonly NamedFile[] | undefined): string[] | undefined {
  return files?.flatMap((f) => certificatesOf(field, f));
}

/** A renewed certificate and key as they are (the service checks that they go together). */
export function renewalFromFiles(cert: NamedFile | undefined, key: NamedFile | undefined): { serverCertPem?: string; serverKeyPem?: string } {
  return { ...(cert ? { serverCertPem: text(cert) } : {}), ...(key ? { serverKeyPem: text(key) } : {}) };
}
