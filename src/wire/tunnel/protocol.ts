/**
 * What crosses the tunnel between a gateway instance and a connection point (docs/protocol.md
 * says the same in prose). Both sides import this file, so a name or a limit changes in one place.
 *
 * The connection point dials the instance and opens TLS (ALPN `opencmg/1`, one id per version it
 * speaks); then the roles flip: the connection point is the HTTP/2 *server* and the gateway the
 * HTTP/2 *client*. The gateway opens one long-lived control stream (`POST /.opencmg/v1/control`,
 * for the version the TLS handshake chose) on which both sides exchange
 * NDJSON messages, and one stream per client request.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import type { Readable } from "node:stream";
import { z } from "zod";
import { ValidationError } from "../../errors.ts";

/** The newest tunnel protocol version this release speaks: the one it offers first. */
export const PROTOCOL_VERSION = 1;
/**
 * The oldest tunnel protocol version this release still speaks. During an upgrade the new
 * release's connection points and instances meet the previous release's (docs/operations.md,
 * "Upgrade"), so this is never above what the previous release speaks: 0.1.0 speaks version 1
 * only. test/e2e/release/upgrade.test.ts runs a 0.1.0 instance and connection point against this
 * tree; raising this (or changing what version 1 means) fails it.
 */
export const MIN_PROTOCOL_VERSION = 1;
/** The versions this release speaks, newest first (the order they are offered and chosen in). */
export const PROTOCOL_VERSIONS: readonly number[] = Array.from({ length: PROTOCOL_VERSION - MIN_PROTOCOL_VERSION + 1 }, (_, i) => PROTOCOL_VERSION - i);
/** ALPN protocol id of the tunnel's TLS for a version: "reverse HTTP/2, OpenCMG protocol N". */
export const tunnelAlpn = (version: number): string => `opencmg/${version}`;
/** Path of the control stream the gateway opens on every tunnel, for a version. */
export const controlPath = (version: number): string => `/.opencmg/v${version}/control`;
/** Every ALPN id this release accepts, newest first: the instance (TLS server) picks the first the connection point offers too. */
export const TUNNEL_ALPNS: readonly string[] = PROTOCOL_VERSIONS.map(tunnelAlpn);
/** ALPN id and control path of the newest version. */
export const TUNNEL_ALPN = tunnelAlpn(PROTOCOL_VERSION);
export const CONTROL_PATH = controlPath(PROTOCOL_VERSION);

/** The version a negotiated ALPN id names, when this release speaks it; null otherwise. */
export function alpnVersion(alpn: string | false | null | undefined): number | null {
  return typeof alpn === "string" ? (PROTOCOL_VERSIONS.find((v) => tunnelAlpn(v) === alpn) ?? null) : null;
}
/** Instance i of a CMG listens for connection points on 10140 + i unless told otherwise. */
export const DEFAULT_TUNNEL_PORT_BASE = 10140;
/** Worker processes of one instance a `workers` message may name. */
export const MAX_WORKER_ENDPOINTS = 64;
/** Longest NDJSON line accepted on the control stream (a settings message with 6 CA certificates and a large URL map fits easily). */
export const MAX_CONTROL_LINE = 4 * 1024 * 1024;

/** Header names on tunnel streams. Lower case: HTTP/2 requires it. */
export const Header = {
  /** Control stream request and response: the protocol version the side speaks. */
  protocol: "opencmg-protocol",
  /** Control stream request: the gateway instance's name. */
  instance: "opencmg-instance",
  /** Request streams: the role ID the client addressed (`/CCM_Proxy_*Auth/<roleId>/...`). */
  role: "opencmg-role",
  /** Request streams: the gateway's request id, for matching log lines on both sides. */
  requestId: "opencmg-request-id",
  /** Response from the connection point when it refuses or fails: a reason code (see TunnelErrorCode). */
  error: "opencmg-error",
  /** Response from the connection point when the backend failed: the NetCode (12002, 12029, ...). */
  netCode: "opencmg-net-code",
  /** Authenticated client identity, added by the gateway, relayed to the management point. */
  clientAuth: "x-opencmg-client-auth",
  clientThumbprint: "x-opencmg-client-thumbprint",
  clientSubject: "x-opencmg-client-subject",
  clientSans: "x-opencmg-client-sans",
  /** Token identities only: `<type> <id>` (client GUID:..., bulk <token ID>, oidc <issuer> <device>), percent-encoded. */
  clientToken: "x-opencmg-client-token",
  /** Directory ID tokens only: `<exp seconds> <jti:... or sha256:...>`, so the site lets each register once. */
  clientTokenUse: "x-opencmg-client-token-use",
  /** Thumbprint of the trusted root the client certificate chained to. */
  clientRoot: "x-opencmg-client-root",
} as const;

/** Prefixes of header names a client may never send: the gateway removes them before relaying. */
export const RESERVED_HEADER_PREFIXES = ["x-opencmg-", "opencmg-"] as const;

/** Reason codes the connection point puts in `opencmg-error`. */
export type TunnelErrorCode = "unknown_role" | "role_not_allowed" | "no_backend" | "backend_unreachable" | "backend_timeout" | "bad_request" | "bad_path";

/** Which kind of site role a relayed URL reaches (the site model has its own, longer `RoleKind`). */
export type BackendKind = "mp" | "sup";

/** One entry of the URL map: a management point or software update point reachable through the CMG. */
export interface RouteEntry {
  kind: BackendKind;
  /** The role's "allow Configuration Manager cloud management gateway traffic" switch. */
  allowCmgTraffic: boolean;
  /** Largest request body accepted for this role, bytes; the instance's default for the kind when absent. */
  maxBodyBytes?: number;
}

/**
 * Everything an instance enforces that is not in its start-up configuration. Issued and signed by
 * the site (signed-settings.ts); connection points carry the signed document.
 */
export interface CmgSettings {
  /**
   * A counter the site keeps per CMG and raises with every change of the document (never a clock).
   * An instance applies a document only when its revision is higher than what it has, so several
   * connection points pushing at once (or a stale one) cannot roll it back.
   */
  revision: number;
  /** The CMG the document is for: an instance refuses a document of another CMG. */
  cmg: string;
  /**
   * The site's settings-signing keys in force (public): the instance trusts these for the next
   * document. A rotation announces the new key in a document the old key signed too.
   */
  settingsKeys: PublicJwk[];
  /** The connection points admitted to this CMG: only these may hold a tunnel. */
  connectionPoints: AdmittedConnectionPoint[];
  /** Trusted root CAs for client certificates, PEM, at most 2. */
  trustedRoots: string[];
  /** Intermediate CAs that may complete a client chain, PEM, at most 4. */
  intermediates: string[];
  /** Verify client certificate revocation (CRL). */
  crlCheck: boolean;
  /** roleId -> route. */
  urlMap: Record<string, RouteEntry>;
  /**
   * Client certificate rules of this CMG, stricter than the defaults only (absent: the defaults,
   * RSA keys of 2048 bits at least; SHA-1 and MD5 signatures are always refused). pki/verify.ts.
   */
  clientCertPolicy?: { minRsaBits?: number };
  /** Site-issued tokens (`/CCM_Proxy_ServerAuth/`): absent, every token is refused. */
  tokens?: TokenTrust;
  /**
   * The server authentication certificate (PEM, its chain after it) and its private key, as the
   * site has them now: a renewal reaches running instances with the next settings, for new
   * handshakes (established connections keep theirs). Absent: the start-up file's. A secret:
   * never logged, never echoed in a reply.
   */
  serverCert?: { certPem: string; keyPem: string };
}

/** What the site's CMG records give; the site adds the CMG name, its keys and the admitted connection points before signing. */
export type CmgSettingsBase = Omit<CmgSettings, "cmg" | "settingsKeys" | "connectionPoints">;

/** A connection point the site admits: its server FQDN and its tunnel certificate (serial, SHA-256 of its public key). */
export interface AdmittedConnectionPoint {
  name: string;
  /** Serial number, uppercase hex. */
  serial: string;
  /** SHA-256 of the certificate's SubjectPublicKeyInfo (DER), base64url. */
  spki: string;
}

/** Connection point certificates listed at most (several servers, each with a renewed certificate beside the old one). */
export const MAX_ADMITTED_CONNECTION_POINTS = 256;
export const MAX_SETTINGS_KEYS = 4;

/** A public JSON Web Key (RFC 7517) as the instances get it: never a private member. */
export interface PublicJwk {
  kty: "EC" | "OKP" | "RSA";
  kid: string;
  alg?: string | undefined;
  use?: "sig" | undefined;
  crv?: string | undefined;
  x?: string | undefined;
  y?: string | undefined;
  n?: string | undefined;
  e?: string | undefined;
}

/** What the token authenticator of an instance checks tokens against (src/gateway/auth/token.ts). */
export interface TokenTrust {
  /** `iss` of site-issued tokens (`opencmg-site:<code>`). */
  issuer: string;
  /** `aud` a token must name to be used at this CMG (`opencmg-cmg:<name>`). */
  audience: string;
  /** The site's token signing keys in force: the current one and, after a rotation, the previous one. */
  keys: PublicJwk[];
  /** Client IDs an administrator blocked: their client tokens are refused at once. */
  blocked: string[];
  /**
   * Where devices reach this CMG, as origins (`https://host[:port]`): a proof of possession's
   * `htu` must name one of them (RFC 9449 section 4.3). `cmg`: the CMG's service name(s), every
   * instance accepts them; `instances[i]`: instance i's own client URL, accepted by instance i only.
   */
  origins: TokenOrigins;
  /** Directory sign-in: ID tokens of this OpenID Connect issuer may register a device. */
  oidc?: { issuer: string; audience: string; deviceClaim: string; keys: PublicJwk[] };
}

export interface TokenOrigins {
  cmg: string[];
  instances: string[];
}

export const MAX_TOKEN_KEYS = 4;
/** A CMG has 16 instances at most, and a service name or two. */
export const MAX_CMG_ORIGINS = 4;
export const MAX_INSTANCE_ORIGINS = 16;
/** A directory publishes a handful of keys; more is a broken or hostile JWKS. */
export const MAX_OIDC_KEYS = 16;
/** Blocked client IDs pushed at most (about 45 bytes each: well within MAX_CONTROL_LINE). */
export const MAX_BLOCKED_CLIENTS = 50_000;

export const MAX_TRUSTED_ROOTS = 2;
export const MAX_INTERMEDIATES = 4;
/** Role IDs are what the site database gives (digits in the platform); kept to URL-safe characters. */
export const ROLE_ID = /^[A-Za-z0-9._~-]{1,128}$/;

const routeEntrySchema = z.object({
  kind: z.enum(["mp", "sup"]),
  allowCmgTraffic: z.boolean(),
  maxBodyBytes: z.number().int().nonnegative().optional(),
});

const b64url = z.string().regex(/^[A-Za-z0-9_-]{1,2048}$/);
export const publicJwkSchema = z
  .object({
    kty: z.enum(["EC", "OKP", "RSA"]),
    kid: z.string().min(1).max(128),
    alg: z.string().max(16).optional(),
    use: z.literal("sig").optional(),
    crv: z.enum(["P-256", "P-384", "Ed25519"]).optional(),
    x: b64url.optional(),
    y: b64url.optional(),
    n: b64url.optional(),
    e: b64url.optional(),
  })
  // strict: a private member (`d`, `p`, ...) is refused, so a private key can never travel.
  .strict();

/** `https://host[:port]` exactly as URL#origin writes it (lower case, no default port, no path). */
const httpsOrigin = z
  .string()
  .max(300)
  .refine((o) => {
    try {
      const u = new URL(o);
      return u.protocol === "https:" && u.origin === o;
    } catch {
      return false;
    }
  }, "must be an https origin (https://host[:port], lower case, no path)");

const tokenTrustSchema = z
  .object({
    issuer: z.string().min(1).max(256),
    audience: z.string().min(1).max(256),
    keys: z.array(publicJwkSchema).max(MAX_TOKEN_KEYS),
    blocked: z.array(z.string().max(64)).max(MAX_BLOCKED_CLIENTS),
    origins: z.object({ cmg: z.array(httpsOrigin).min(1).max(MAX_CMG_ORIGINS), instances: z.array(httpsOrigin).max(MAX_INSTANCE_ORIGINS) }).strict(),
    oidc: z
      .object({ issuer: z.string().url().max(512), audience: z.string().min(1).max(256), deviceClaim: z.string().min(1).max(64), keys: z.array(publicJwkSchema).max(MAX_OIDC_KEYS) })
      .strict()
      .optional(),
  })
  .strict();

export const admittedConnectionPointSchema = z
  .object({
    name: z.string().min(1).max(253),
    serial: z.string().regex(/^[0-9A-F]{1,64}$/, "must be the serial number in uppercase hex"),
    spki: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be the base64url SHA-256 of the public key"),
  })
  .strict();

const settingsSchema = z.object({
  // A safe integer: above 2^53-1 two revisions can compare equal.
  revision: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  cmg: z.string().min(1).max(63),
  settingsKeys: z.array(publicJwkSchema).min(1).max(MAX_SETTINGS_KEYS),
  connectionPoints: z.array(admittedConnectionPointSchema).max(MAX_ADMITTED_CONNECTION_POINTS),
  trustedRoots: z.array(z.string()).max(MAX_TRUSTED_ROOTS),
  intermediates: z.array(z.string()).max(MAX_INTERMEDIATES),
  crlCheck: z.boolean(),
  urlMap: z.record(z.string().regex(ROLE_ID), routeEntrySchema),
  clientCertPolicy: z.object({ minRsaBits: z.number().int().min(2048).max(16384).optional() }).strict().optional(),
  tokens: tokenTrustSchema.optional(),
  serverCert: z.object({ certPem: z.string().max(64 * 1024), keyPem: z.string().max(64 * 1024) }).strict().optional(),
}).strict();

/**
 * Checks settings (shape, limits, and that every trusted certificate is a readable CA
 * certificate). Both sides call it: the connection point before pushing, the gateway on receipt.
 * Throws ValidationError naming the field.
 *
 * @example
 * const s = parseSettings(JSON.parse(line).settings);
 */
export function parseSettings(input: unknown): CmgSettings {
  const r = settingsSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = `settings.${issue.path.join(".")}`;
    throw new ValidationError(field, issue.message, `${field}: ${issue.message}`);
  }
  const s = r.data as CmgSettings;
  for (const [field, pems] of [["trustedRoots", s.trustedRoots], ["intermediates", s.intermediates]] as const) {
    pems.forEach((pem, i) => {
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(pem);
      } catch {
        throw new ValidationError(`settings.${field}.${i}`, "must be a PEM certificate");
      }
      if (!cert.ca) throw new ValidationError(`settings.${field}.${i}`, "must be a CA certificate");
    });
  }
  if (s.serverCert) {
    // The messages name the field only: the key must never reach a log or a reply.
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(s.serverCert.certPem);
    } catch {
      throw new ValidationError("settings.serverCert.certPem", "must be a PEM certificate");
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(s.serverCert.keyPem);
    } catch {
      throw new ValidationError("settings.serverCert.keyPem", "must be an unencrypted PEM private key");
    }
    let ok = false;
    try {
      ok = cert.checkPrivateKey(key);
    } catch {
      // A key of another type than the certificate's: not its key either.
    }
    if (!ok) throw new ValidationError("settings.serverCert.keyPem", "must be the certificate's private key");
  }
  return s;
}

/** Control messages from the connection point to the gateway. */
export type ConnectorMessage =
  | { type: "hello"; protocol: number; connectionPoint: string }
  /** The site's signed settings, as the site issued them (signed-settings.ts); the instance verifies them. */
  | { type: "settings"; document: unknown };

/** Control messages from the gateway to the connection point. */
export type GatewayMessage =
  | { type: "hello"; protocol: number; instance: string; revision: number | null }
  | { type: "settings-applied"; revision: number }
  | { type: "settings-ignored"; revision: number; current: number }
  | { type: "settings-rejected"; revision: number; error: string }
  /** Sent on every tunnel whenever the instance applies new settings, whichever connection point sent them. */
  | { type: "settings-in-force"; revision: number }
  /**
   * The instance runs several worker processes, each with tunnels of its own: `ports[w]` is worker
   * w's tunnel port on the host the connection point dialled (`worker`: the one that sends it). A
   * connection point dials every worker; one that does not know the message ignores it.
   */
  | { type: "workers"; worker: number; ports: number[] };

const connectorMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("hello"), protocol: z.number().int(), connectionPoint: z.string().max(255) }),
  z.object({ type: z.literal("settings"), document: z.unknown() }).strict(),
]);

const gatewayMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("hello"), protocol: z.number().int(), instance: z.string().max(255), revision: z.number().nullable() }),
  z.object({ type: z.literal("settings-applied"), revision: z.number() }),
  z.object({ type: z.literal("settings-ignored"), revision: z.number(), current: z.number() }),
  z.object({ type: z.literal("settings-rejected"), revision: z.number(), error: z.string() }),
  z.object({ type: z.literal("settings-in-force"), revision: z.number() }),
  z.object({ type: z.literal("workers"), worker: z.number().int().min(0).max(MAX_WORKER_ENDPOINTS - 1), ports: z.array(z.number().int().min(0).max(65535)).min(1).max(MAX_WORKER_ENDPOINTS) }),
]);

/**
 * A control message from a connection point. Unknown message types are returned as null (a newer
 * connection point may send more; the gateway ignores what it does not know).
 */
export function parseConnectorMessage(line: string): ConnectorMessage | null {
  const json = JSON.parse(line) as { type?: unknown };
  if (json.type !== "hello" && json.type !== "settings") return null;
  // The document is checked by the instance (signature, CMG, revision), not here.
  return connectorMessageSchema.parse(json) as ConnectorMessage;
}

/** A control message from a gateway; unknown types are returned as null. */
export function parseGatewayMessage(line: string): GatewayMessage | null {
  const json = JSON.parse(line) as { type?: unknown };
  const known = ["hello", "settings-applied", "settings-ignored", "settings-rejected", "settings-in-force", "workers"];
  if (typeof json.type !== "string" || !known.includes(json.type)) return null;
  return gatewayMessageSchema.parse(json) as GatewayMessage;
}

/** One NDJSON line. */
export function encodeMessage(m: ConnectorMessage | GatewayMessage): string {
  return JSON.stringify(m) + "\n";
}

/**
 * Splits a byte stream into lines. Refuses a line longer than `maxLine` (the peer is broken or
 * hostile; the caller closes the stream).
 *
 * @example
 * const lines = new LineSplitter();
 * stream.on("data", (chunk) => { for (const line of lines.push(chunk)) handle(line); });
 */
export class LineSplitter {
  private buffered: Buffer[] = [];
  private size = 0;
  constructor(private readonly maxLine = MAX_CONTROL_LINE) {}

  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const part = chunk.subarray(start, nl);
      const line = this.size > 0 ? Buffer.concat([...this.buffered, part]).toString("utf8") : part.toString("utf8");
      this.buffered = [];
      this.size = 0;
      if (line.trim() !== "") lines.push(line);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.size += rest.length;
      if (this.size > this.maxLine) throw new Error(`control line longer than ${this.maxLine} bytes`);
      this.buffered.push(rest);
    }
    return lines;
  }
}

/**
 * Reads a control stream line by line (both ends of a tunnel do): `onLine` for each non-empty
 * line, in order, until it returns false; `onBroken` when a line is over the limit.
 *
 * @example
 * readControlLines(control, (line) => handle(parseConnectorMessage(line)), (err) => session.destroy());
 */
export function readControlLines(stream: Readable, onLine: (line: string) => boolean | void, onBroken: (err: Error) => void): void {
  const lines = new LineSplitter();
  stream.on("data", (chunk: Buffer) => {
    let batch: string[];
    try {
      batch = lines.push(chunk);
    } catch (err) {
      onBroken(err as Error);
      return;
    }
    for (const line of batch) if (onLine(line) === false) return;
  });
}

/** The CN prefix of the tunnel certificates the site CA issues to connection points: `opencmg-cp:<fqdn>`. */
export const CONNECTION_POINT_CN_PREFIX = "opencmg-cp:";

/**
 * A connection point's name from its tunnel certificate's CN: the server FQDN after the prefix, the
 * name the connection point gives itself, so both ends' logs, status and metrics
 * (`connection_point` label) name it alike.
 *
 * @example
 * connectionPointName("opencmg-cp:cp01.contoso.com"); // "cp01.contoso.com"
 */
export function connectionPointName(commonName: string): string {
  return commonName.startsWith(CONNECTION_POINT_CN_PREFIX) ? commonName.slice(CONNECTION_POINT_CN_PREFIX.length) : commonName;
}
