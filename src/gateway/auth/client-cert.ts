/**
 * Client authentication at the gateway, and nothing else. One interface, `ClientAuthenticator`;
 * the router picks an authenticator by the URL's scheme segment (`CCM_Proxy_MutualAuth` ->
 * client certificates) and never looks inside. Site-issued tokens (`CCM_Proxy_ServerAuth`) will
 * be a second implementation registered beside this one, with no change to routing.
 *
 * The client listener accepts any client certificate during the TLS handshake
 * (`rejectUnauthorized: false`) so that the checks happen here, in order, and a refusal can say
 * exactly which one failed: no certificate, untrusted chain, expired / not yet valid, wrong usage,
 * revoked, CRL unavailable.
 */
import type { X509Certificate } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest, Http2Session } from "node:http2";
import type { TLSSocket } from "node:tls";
import { certThumbprint, subjectText, thumbprintOf, validityOf } from "../../pki/cert.ts";
import type { CrlResult } from "../../pki/crl.ts";
import { verifyClientChain, type ChainFailure, type ClientCertPolicy } from "../../pki/verify.ts";
import type { ClientIdentity } from "../../wire/tunnel/headers.ts";

export type { ClientIdentity } from "../../wire/tunnel/headers.ts";

/** Why the client-certificate authenticator refuses a request. */
export type RefusalReason = "no_certificate" | ChainFailure | "revoked" | "crl_unavailable";

/** A refusal: the status and reason code the client gets, and what the log line says. */
export interface AuthRefusal {
  ok: false;
  /**
   * 403 for client certificates; a token authenticator may answer 401, 429 (one client's share of
   * a bounded resource is used up) or 503 (the instance's is).
   */
  status: 401 | 403 | 429 | 503;
  /** Stable code, in the response body and `x-opencmg-reason` (RefusalReason for client certificates). */
  reason: string;
  /** Finer cause where one reason has several fixes (body `cause` and `x-opencmg-cause`; src/wire/refusals.ts). */
  cause?: string;
  /** Which check failed, for the log line. */
  check: string;
  /** Details for the log line only (names, dates, URLs). */
  detail: string;
  /** Extra response headers (e.g. `www-authenticate` for tokens). */
  headers?: Record<string, string>;
}

/** `headers`: response headers for the client on success too (a token authenticator's fresh nonce). */
export type AuthVerdict = { ok: true; identity: ClientIdentity; headers?: Record<string, string> } | AuthRefusal;

/** A client request on the client listener, HTTP/1.1 or HTTP/2. */
export type ClientRequest = IncomingMessage | Http2ServerRequest;

/**
 * Decides who a client is, or why it is refused. Implementations must be cheap on repeated calls
 * from the same connection (the gateway calls it for every request), and should answer a
 * repeated call synchronously: a plain verdict spares the request a promise and a microtask.
 *
 * @example
 * const v = await auth.authenticate(req);
 * if (!v.ok) return refuse(res, v.status, v.reason, v.check, v.detail);
 */
export interface ClientAuthenticator {
  readonly method: ClientIdentity["method"];
  authenticate(req: ClientRequest): AuthVerdict | Promise<AuthVerdict>;
}

/** The part of the instance's settings client-certificate checks depend on. */
export interface ClientTrust {
  /** Changes whenever the settings change; cached verdicts of older generations are discarded. */
  generation: number;
  trustedRoots: string[];
  intermediates: string[];
  crlCheck: boolean;
  /** Stricter client certificate rules of this CMG (settings), if any. */
  policy?: ClientCertPolicy;
}

/** Revocation checking (src/pki/crl.ts CrlCache fits). */
export interface RevocationChecker {
  checkChain(chain: X509Certificate[]): Promise<CrlResult>;
  /** Changes whenever the revocation data changes (a new CRL): verdicts of older versions are checked again. */
  readonly version: number;
}

/** What each refusal reason means in a log line: the check that failed. */
export const CHECK_NAMES: Record<RefusalReason, string> = {
  no_certificate: "client certificate presence check: the client sent no certificate",
  untrusted_chain: "certificate chain check: the certificate does not chain to a trusted root through the configured intermediates",
  expired: "validity check: a certificate of the chain has expired",
  not_yet_valid: "validity check: a certificate of the chain is not yet valid",
  weak_signature: "signature strength check: a certificate of the chain is signed with SHA-1 or weaker",
  weak_key: "key strength check: a certificate of the chain has an RSA key under 2048 bits or an uncommon curve",
  wrong_usage: "usage check: the certificate does not allow client authentication",
  revoked: "revocation check: the certificate is revoked",
  crl_unavailable: "revocation check: no usable CRL (checking is on, so the request fails closed)",
};

interface Cached {
  verdict: AuthVerdict;
  generation: number;
  /** The revocation data's version when the check started (-1 with revocation checking off). */
  revocation: number;
  expires: number;
}

export interface MutualTlsOptions {
  /** The trust in force, or null before any settings arrived (then every client is refused as untrusted). */
  trust: () => ClientTrust | null;
  revocation: RevocationChecker;
  /** How long a verdict is reused (default 60 s). Never past the expiry of a certificate of its chain. */
  cacheMs?: number;
  /** Verdicts kept by thumbprint (default 20,000; least recently used dropped first). */
  maxCacheEntries?: number;
  now?: () => number;
}

/**
 * Client certificates (mutual TLS). Verdicts are cached per connection (the connection's
 * certificate cannot change: the listener disables renegotiation) and per certificate thumbprint,
 * so a device opening several connections is checked once. A verdict holds only for the trust
 * settings' generation and the revocation data's version it was reached under (new roots or a
 * new CRL mean checking again: a verdict that outlived a revocation would let a revoked device
 * in), for `cacheMs`, and never past the first expiry on its chain. Failed CRL downloads are
 * never cached here (CrlCache has its own short back-off).
 *
 * @example
 * const auth = new MutualTlsAuthenticator({ trust: () => store.trust(), revocation: new CrlCache({ fetch }) });
 */
export class MutualTlsAuthenticator implements ClientAuthenticator {
  readonly method = "mtls" as const;
  private readonly byConnection = new WeakMap<object, Cached>();
  private readonly byThumbprint = new Map<string, Cached>();
  /** Checks under way, so a burst of requests with a new certificate runs the checks once. */
  private readonly pending = new Map<string, Promise<{ verdict: AuthVerdict; validUntil: number }>>();
  private readonly cacheMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(private readonly options: MutualTlsOptions) {
    this.cacheMs = options.cacheMs ?? 60_000;
    this.maxEntries = options.maxCacheEntries ?? 20_000;
    this.now = options.now ?? Date.now;
  }

  /** Synchronous for a connection or certificate already checked (the common case). */
  authenticate(req: ClientRequest): AuthVerdict | Promise<AuthVerdict> {
    const trust = this.options.trust();
    const generation = trust?.generation ?? -1;
    const revocation = trust?.crlCheck ? this.options.revocation.version : -1;
    const now = this.now();
    const conn = connectionOf(req);
    const hit = this.byConnection.get(conn);
    if (hit && hit.generation === generation && hit.revocation === revocation && hit.expires > now) return hit.verdict;

    const socket = req.socket as TLSSocket;
    const leaf = typeof socket.getPeerX509Certificate === "function" ? socket.getPeerX509Certificate() : undefined;
    if (!leaf) return refusal("no_certificate", "the TLS handshake carried no client certificate");

    const thumbprint = thumbprintOf(leaf.raw);
    const known = this.byThumbprint.get(thumbprint);
    if (known && known.generation === generation && known.revocation === revocation && known.expires > now) {
      this.byConnection.set(conn, known);
      this.remember(thumbprint, known);
      return known.verdict;
    }

    return this.checkAndRemember(conn, leaf, thumbprint, trust, generation, revocation, now);
  }

  /**
   * `revocation` is the version read before the check starts: a CRL taken in during the check
   * makes the verdict stale at once (checked again next time), never the other way round.
   */
  private async checkAndRemember(conn: object, leaf: X509Certificate, thumbprint: string, trust: ClientTrust | null, generation: number, revocation: number, now: number): Promise<AuthVerdict> {
    const key = `${generation}:${revocation}:${thumbprint}`;
    let running = this.pending.get(key);
    if (!running) {
      running = this.check(leaf, thumbprint, trust).finally(() => this.pending.delete(key));
      this.pending.set(key, running);
    }
    const { verdict, validUntil } = await running;
    if (verdict.ok || verdict.reason !== "crl_unavailable") {
      const entry: Cached = { verdict, generation, revocation, expires: Math.min(now + this.cacheMs, validUntil) };
      this.byConnection.set(conn, entry);
      this.remember(thumbprint, entry);
    }
    return verdict;
  }

  /** The verdict, and until when an acceptance may be reused: the first expiry on the chain (a refusal: no such bound). */
  private async check(leaf: X509Certificate, thumbprint: string, trust: ClientTrust | null): Promise<{ verdict: AuthVerdict; validUntil: number }> {
    const refused = (v: AuthVerdict) => ({ verdict: v, validUntil: Infinity });
    if (!trust) return refused(refusal("untrusted_chain", "no trusted roots are configured yet (no connection point has sent settings)"));
    const chain = verifyClientChain(leaf, { roots: trust.trustedRoots, intermediates: trust.intermediates, at: new Date(this.now()), ...(trust.policy ? { policy: trust.policy } : {}) });
    if (!chain.ok) return refused(refusal(chain.reason, chain.detail, chain.cause));
    if (trust.crlCheck) {
      const r = await this.options.revocation.checkChain(chain.chain);
      if (!r.ok) return refused(refusal(r.reason, r.detail, r.reason === "crl_unavailable" ? r.cause : undefined));
    }
    return {
      verdict: {
        ok: true,
        identity: { method: "mtls", thumbprint, subject: subjectText(leaf), sans: splitSans(leaf.subjectAltName), root: certThumbprint(chain.chain.at(-1)!) },
      },
      // An intermediate that expires before the leaf ends the acceptance with it.
      validUntil: Math.min(...chain.chain.map((c) => validityOf(c).notAfter.getTime())),
    };
  }

  private remember(thumbprint: string, entry: Cached): void {
    this.byThumbprint.delete(thumbprint);
    this.byThumbprint.set(thumbprint, entry);
    if (this.byThumbprint.size > this.maxEntries) {
      const oldest = this.byThumbprint.keys().next().value;
      if (oldest !== undefined) this.byThumbprint.delete(oldest);
    }
  }
}

function refusal(reason: RefusalReason, detail: string, cause?: string): AuthRefusal {
  return { ok: false, status: 403, reason, check: CHECK_NAMES[reason], detail, ...(cause !== undefined ? { cause } : {}) };
}

/**
 * The object that stands for the client's connection: the HTTP/2 session, or the TLS socket of
 * an HTTP/1.1 connection (Http2ServerRequest#socket is a per-stream proxy, so it cannot be the key).
 */
function connectionOf(req: ClientRequest): object {
  const stream = (req as Http2ServerRequest).stream as { session?: Http2Session } | undefined;
  return stream?.session ?? req.socket;
}

/** Node writes SANs as `DNS:a, IP Address:1.2.3.4`; quoted values (with commas) stay whole. */
function splitSans(value: string | undefined): string[] {
  if (!value) return [];
  const out: string[] = [];
  for (const m of value.matchAll(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g)) {
    const s = m[0].trim();
    if (s) out.push(s);
  }
  return out;
}
