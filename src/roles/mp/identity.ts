/**
 * Who is calling the management point. Three ways in:
 *   - directly on the intranet with a client authentication certificate (seen in TLS, checked
 *     against the trusted client roots);
 *   - relayed by a CMG connection point: its own TLS client certificate is issued by the site CA
 *     and named `opencmg-cp:<fqdn>`, and the identity the gateway authenticated comes in the
 *     `x-opencmg-client-*` headers (src/gateway/protocol.ts `Header`);
 *   - directly, without a certificate, with the token a pending registration gave.
 * Identity headers are believed only on a connection point's connection: anyone else sending them
 * is trying to speak for another client, and is refused.
 */
import { X509Certificate } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { DetailedPeerCertificate, TLSSocket } from "node:tls";
import { ValidationError } from "../../errors.ts";
import { CONNECTION_POINT_CN_PREFIX, Header } from "../../wire/tunnel/protocol.ts";
import { describe } from "../../pki/cert.ts";
import { verifyClientChain, type ChainTrust } from "../../pki/verify.ts";
import type { ConnectionType } from "../../site/services/clients.ts";
import { MpError } from "./mp-error.ts";
import type { TokenKind } from "../../wire/tokens.ts";

// The CN prefix of connection point certificates the site CA issues (src/site/site-pki.ts).
export { CONNECTION_POINT_CN_PREFIX };

/** Headers that carry a relayed client identity: only a connection point may send them. */
export const IDENTITY_HEADERS = [Header.clientAuth, Header.clientThumbprint, Header.clientSubject, Header.clientSans, Header.clientToken, Header.clientTokenUse, Header.clientRoot] as const;
const IDENTITY_PREFIX = "x-opencmg-client-";

export type Caller =
  | {
      kind: "certificate";
      thumbprint: string;
      subject: string;
      sans: string[];
      connectionType: ConnectionType;
      /** Thumbprint of the root the gateway chained the certificate to (relayed callers only). */
      root?: string;
      /** "TLS" or "connection point opencmg-cp:<fqdn>": for logs. */
      via: string;
    }
  | { kind: "untrusted-certificate"; thumbprint: string; subject: string; detail: string }
  | { kind: "token"; token: string }
  /** A site-issued token (or a directory ID token) the gateway checked, with the key the client proved. */
  | { kind: "site-token"; type: TokenKind; id: string; jkt: string; via: string; use?: TokenUse }
  | { kind: "anonymous" };

/** A directory ID token's one-use key and expiry, as the gateway relayed them. */
export interface TokenUse {
  /** `jti:<jti>` or `sha256:<hash of the token>`. */
  key: string;
  expiresAt: Date;
}

export interface CallerTrust {
  /** The site CA: issues connection point certificates. */
  siteCaPem: string;
  /** Roots (and intermediates) client authentication certificates must chain to. */
  clients: Pick<ChainTrust, "roots" | "intermediates">;
}

interface PeerInfo {
  thumbprint: string;
  subject: string;
  sans: string[];
  /** The connection point's CN when the peer is one. */
  connectionPoint: string | undefined;
  /** Why the certificate is not a trusted client certificate (undefined: it is). */
  clientProblem: string | undefined;
}

const THUMBPRINT = /^[0-9A-F]{40}$/;

/**
 * Sorts CA certificates into self-signed roots and intermediates (an administrator gives "the
 * trusted roots" as one list; the chain check needs to know which ones end a chain).
 */
export function splitTrust(pems: string[]): { roots: string[]; intermediates: string[] } {
  const roots: string[] = [];
  const intermediates: string[] = [];
  for (const pem of pems) {
    for (const block of pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
      let c: X509Certificate;
      try {
        c = new X509Certificate(block);
      } catch (e) {
        throw new ValidationError("trustedClientRoots", "must be PEM certificates", `trustedClientRoots: not a readable certificate (${(e as Error).message})`);
      }
      if (!c.ca) throw new ValidationError("trustedClientRoots", "must be CA certificates", `trustedClientRoots: "${c.subject.replaceAll("\n", ", ")}" is not a CA certificate`);
      (c.checkIssued(c) && c.verify(c.publicKey) ? roots : intermediates).push(block);
    }
  }
  return { roots, intermediates };
}

/** Reads and judges a connection's client certificate once; keep-alive requests reuse the verdict. */
export class CallerIdentifier {
  private readonly peers = new WeakMap<TLSSocket, PeerInfo | null>();
  constructor(private readonly trust: CallerTrust) {}

  /**
   * The caller of `req`. Throws MpError 403 `forged_identity` when identity headers come from
   * anyone but a connection point, and 401 `client_identity_required` when a connection point
   * relays a request without a usable identity.
   */
  identify(req: IncomingMessage): Caller {
    const peer = this.peer(req.socket as TLSSocket);
    const relayed = Object.keys(req.headers).some((h) => h.startsWith(IDENTITY_PREFIX));
    if (peer?.connectionPoint) {
      if (!relayed) throw new MpError(401, "client_identity_required", `the connection point ${peer.connectionPoint} relayed a request without a client identity`);
      return relayedCaller(req.headers, peer.connectionPoint);
    }
    if (relayed) {
      const who = peer ? `a client certificate "${peer.subject}" (${peer.thumbprint}) that is not a connection point's` : "no client certificate";
      throw new MpError(403, "forged_identity", `client identity headers are accepted only from a CMG connection point; this connection has ${who}`);
    }
    if (peer) {
      if (peer.clientProblem) return { kind: "untrusted-certificate", thumbprint: peer.thumbprint, subject: peer.subject, detail: peer.clientProblem };
      return { kind: "certificate", thumbprint: peer.thumbprint, subject: peer.subject, sans: peer.sans, connectionType: "intranet", via: "TLS" };
    }
    const auth = req.headers.authorization;
    const m = typeof auth === "string" ? /^Bearer\s+([A-Za-z0-9_-]{16,256})\s*$/.exec(auth) : null;
    if (m) return { kind: "token", token: m[1]! };
    return { kind: "anonymous" };
  }

  private peer(socket: TLSSocket): PeerInfo | undefined {
    if (typeof socket.getPeerCertificate !== "function") return undefined;
    const cached = this.peers.get(socket);
    if (cached !== undefined) return cached ?? undefined;
    const info = this.readPeer(socket);
    this.peers.set(socket, info ?? null);
    return info;
  }

  private readPeer(socket: TLSSocket): PeerInfo | undefined {
    const detailed = socket.getPeerCertificate(true) as DetailedPeerCertificate | Record<string, never>;
    if (!detailed || !("raw" in detailed) || !detailed.raw) return undefined;
    const leaf = new X509Certificate(detailed.raw);
    // Certificates the client sent along with its own: they may complete a chain, never end one.
    const sent: string[] = [];
    for (let c = detailed.issuerCertificate; c && c.raw && !c.raw.equals(detailed.raw) && sent.length < 8; c = c.issuerCertificate) {
      sent.push(new X509Certificate(c.raw).toString());
      if (c.issuerCertificate === c) break;
    }
    const summary = describe(leaf);
    const info: PeerInfo = {
      thumbprint: summary.thumbprint,
      subject: summary.subject,
      sans: leaf.subjectAltName ? leaf.subjectAltName.split(", ") : [],
      connectionPoint: undefined,
      clientProblem: undefined,
    };
    if (summary.commonName.startsWith(CONNECTION_POINT_CN_PREFIX)) {
      const r = verifyClientChain(leaf, { roots: [this.trust.siteCaPem], intermediates: [] });
      if (r.ok) {
        info.connectionPoint = summary.commonName;
        return info;
      }
    }
    const r = verifyClientChain(leaf, { roots: this.trust.clients.roots, intermediates: [...this.trust.clients.intermediates, ...sent] });
    if (!r.ok) info.clientProblem = `${r.reason}: ${r.detail}`;
    return info;
  }
}

function headerText(h: IncomingHttpHeaders, name: string): string {
  const v = h[name];
  return Array.isArray(v) ? v.join(", ") : (v ?? "");
}

function decoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function relayedCaller(h: IncomingHttpHeaders, connectionPoint: string): Caller {
  const method = headerText(h, Header.clientAuth);
  if (method === "token") return tokenCaller(h, connectionPoint);
  const thumbprint = headerText(h, Header.clientThumbprint).toUpperCase();
  if (method !== "mtls") throw new MpError(401, "client_identity_required", `the connection point ${connectionPoint} relayed a client authenticated by "${method || "nothing"}"; this management point accepts client certificates (mtls)`);
  if (!THUMBPRINT.test(thumbprint)) throw new MpError(401, "client_identity_required", `the connection point ${connectionPoint} relayed no valid client certificate thumbprint`);
  const sans = decoded(headerText(h, Header.clientSans));
  return {
    kind: "certificate",
    thumbprint,
    subject: decoded(headerText(h, Header.clientSubject)),
    sans: sans ? sans.split(", ") : [],
    connectionType: "internet",
    ...(THUMBPRINT.test(headerText(h, Header.clientRoot).toUpperCase()) ? { root: headerText(h, Header.clientRoot).toUpperCase() } : {}),
    via: `connection point ${connectionPoint}`,
  };
}

/** A token identity relayed by a connection point: `x-opencmg-client-token: <type> <id>`, the key thumbprint. */
function tokenCaller(h: IncomingHttpHeaders, connectionPoint: string): Caller {
  const [type, ...rest] = decoded(headerText(h, Header.clientToken)).split(" ");
  const id = rest.join(" ");
  const jkt = headerText(h, Header.clientThumbprint);
  if ((type !== "client" && type !== "bulk" && type !== "oidc") || !id || !/^[A-Za-z0-9_-]{43}$/.test(jkt)) {
    throw new MpError(401, "client_identity_required", `the connection point ${connectionPoint} relayed a token identity without a token type, ID or key thumbprint`);
  }
  const use = /^(\d{1,12}) ((?:jti|sha256):[\x21-\x7e]{1,128})$/.exec(decoded(headerText(h, Header.clientTokenUse)));
  return { kind: "site-token", type, id, jkt, via: `connection point ${connectionPoint}`, ...(use ? { use: { key: use[2]!, expiresAt: new Date(Number(use[1]) * 1000) } } : {}) };
}
