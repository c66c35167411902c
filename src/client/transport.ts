/**
 * HTTPS to management points, directly or through a CMG, with the client's certificate (mutual
 * TLS) and the roots it trusts. Network failures become NetError (12002, 12029, 12175, ...);
 * refusals become MpRefusedError with the MP's reason code.
 */
import type { LookupFunction } from "node:net";
import type { TLSSocket } from "node:tls";
import { Agent, buildConnector, request } from "undici";
import { ServerCertRefusedError, ServerCrlCheck, serverChain } from "./server-crl.ts";
import { NetError, OpenCmgError } from "../errors.ts";
import { ServiceAddresses, type Resolver } from "./addresses.ts";
import { toNetError } from "../egress/errors.ts";
import type { MpErrorAnswer, MpReason } from "../wire/mp.ts";
import { MP_PATHS } from "../wire/mp.ts";
import { REFUSAL_HEADERS } from "../wire/refusals.ts";
import { NONCE_HEADER, TOKEN_SCHEME, USE_DPOP_NONCE } from "../wire/tokens.ts";
import type { RecordedRefusal } from "./store.ts";
import { makeProof, type TokenKey } from "./token-key.ts";
import { TlsSessions } from "./tls-sessions.ts";

export interface ClientTls {
  certPem?: string | undefined;
  keyPem?: string | undefined;
  /** Trusted roots for MP and CMG server certificates; the system's roots when absent. */
  ca?: string[] | undefined;
}

/** A management point (or the CMG in front of it) answered with a refusal. */
export class MpRefusedError extends OpenCmgError {
  constructor(
    readonly status: number,
    readonly reason: MpReason | string,
    readonly url: string,
    message: string,
    /** Retry-After of a 429 or 503, in seconds: when the same request may succeed. */
    readonly retryAfterSeconds?: number,
  ) {
    super(status === 401 || status === 403 ? "unauthorized" : "net", reason, `${url} refused the request: ${status} ${reason}: ${message}`);
  }
  /** Retrying the same request can never succeed (the request itself is wrong). */
  get permanent(): boolean {
    return this.status === 400 || this.status === 413 || this.status === 415 || this.status === 422;
  }
}

/**
 * The CMG itself refused the request (its answer carries `x-opencmg-reason`): a check at the
 * gateway failed (client certificate, role, tunnel), and the request never reached the management
 * point. The reason codes and what to do about them are in src/wire/refusals.ts.
 */
export class GatewayRefusedError extends MpRefusedError {
  constructor(
    status: number,
    reason: string,
    /** Finer cause (`x-opencmg-cause`), e.g. no_crl_distribution_point. */
    readonly refusalCause: string | undefined,
    url: string,
    message: string,
    retryAfterSeconds?: number,
  ) {
    super(status, reason, url, message, retryAfterSeconds);
    this.message = `the CMG refused the request to ${url}: ${status} ${reason}${refusalCause ? ` (${refusalCause})` : ""}: ${message}`;
  }
}

/** Retry-After (RFC 9110: seconds or an HTTP date) in whole seconds, at most a day; undefined when absent or unreadable. */
export function retryAfterSeconds(value: string | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const t = value.trim();
  const s = /^\d{1,9}$/.test(t) ? Number(t) : Math.ceil((Date.parse(t) - now) / 1000);
  return Number.isFinite(s) ? Math.min(Math.max(s, 0), 86_400) : undefined;
}

/** `https://mp01.contoso.com` + `/SMS_MP/v1/policy`, keeping a path prefix such as `/CCM_Proxy_MutualAuth/16777217`. */
export function mpEndpoint(mpUrl: string, path: string): string {
  return mpUrl.replace(/\/+$/, "") + path;
}

/**
 * Another instance may serve the request: this one could not be reached (refused, timed out, cut
 * off) or the CMG instance answered 503 (draining, or no connection point behind it).
 */
function failsOver(e: unknown): boolean {
  return e instanceof NetError || (e instanceof GatewayRefusedError && e.status === 503);
}

/** A lookup that always answers `address`: the URL keeps the service name (TLS servername, Host, proofs' htu). */
function pinnedLookup(address: string): LookupFunction {
  const family = address.includes(":") ? 6 : 4;
  return ((_host: string, opts: { all?: boolean }, cb: (err: Error | null, a: string | { address: string; family: number }[], f?: number) => void) => {
    if (opts?.all) cb(null, [{ address, family }]);
    else cb(null, address, family);
  }) as unknown as LookupFunction;
}

/** A CMG's token URL (`/CCM_Proxy_ServerAuth/<roleId>`): the client authenticates there with its token. */
export function isTokenUrl(url: string): boolean {
  return url.includes(`/${TOKEN_SCHEME}/`);
}

/** The token URL of a CMG's mutual-TLS URL (`.../CCM_Proxy_MutualAuth/<roleId>` -> `.../CCM_Proxy_ServerAuth/<roleId>`); other URLs as they are. */
export function tokenUrlOf(url: string): string {
  return url.replace(/\/CCM_Proxy_MutualAuth\/([^/]+)\/?$/, `/${TOKEN_SCHEME}/$1`);
}

export class MpTransport {
  private readonly agent: Agent;
  /**
   * Connects without the client certificate, for token URLs (null when the client has none: the
   * agent above already connects without). A certificate client whose site turned "Use PKI client
   * certificate when available" off authenticates there with its client token only.
   */
  private readonly bareAgent: Agent | null;
  private readonly bareOptions: Record<string, unknown>;
  /** One agent per address of a service name, when spreading across them. */
  private readonly pinned = new Map<string, Agent>();
  private readonly connectOptions: Record<string, unknown>;
  /**
   * TLS sessions, kept for the transport's life so that a reconnect (an instance restarted)
   * resumes: one store with the client certificate, one without, never mixed (a session resumes
   * the identity it was made with).
   */
  private readonly sessions = { cert: new TlsSessions(), bare: new TlsSessions() };
  /**
   * The site's "Clients check the certificate revocation list (CRL) for site systems" as the
   * client's policy has it (on until a policy says otherwise): checked on each new connection.
   */
  checkCrl = true;
  private readonly crl = new ServerCrlCheck();
  /** Every address of a service name, in this client's order (null: requests go as they are). */
  readonly addresses: ServiceAddresses | null;
  /** The address that served the last request to a service name with several (null: none, or not spread). */
  lastAddress: string | null = null;
  private token: string | undefined;
  private proven: { token: string; key: TokenKey } | undefined;
  /**
   * The last DPoP nonce each origin handed out (RFC 9449 section 8): each CMG instance makes its
   * own, so it is kept per origin and put in the next proof for that origin.
   */
  private readonly nonces = new Map<string, string>();
  /** The last refusal a ping got (the CMG answered, but not with a management point's answer). */
  lastRefusal: MpRefusedError | undefined;
  constructor(
    tls: ClientTls,
    private readonly o: {
      token?: string | undefined;
      timeoutMs?: number | undefined;
      /** Called for every refusal, also the ones `ping` swallows, so the agent can say why. */
      onRefusal?: ((e: MpRefusedError) => void) | undefined;
      /**
       * Spread across every address of a service name: `key` (the client ID) picks this client's
       * preferred address, the others are its failover order. Absent: the system picks.
       */
      spread?: { key: string; resolver?: Resolver | undefined } | undefined;
      /** Called when the client refuses a site system's server certificate (revoked, or its CRL cannot be had). */
      onServerCertRefused?: ((e: ServerCertRefusedError) => void) | undefined;
      /** Called when a request moves from an address to the next one. */
      onFailover?: ((host: string, address: string, e: Error) => void) | undefined;
    } = {},
  ) {
    this.token = o.token;
    this.connectOptions = {
      ...(tls.certPem && tls.keyPem ? { cert: tls.certPem, key: tls.keyPem } : {}),
      ...(tls.ca ? { ca: tls.ca } : {}),
      timeout: o.timeoutMs ?? 30_000,
    };
    this.agent = new Agent({ connect: this.connector(this.connectOptions, this.sessions.cert), keepAliveTimeout: 10_000 });
    const { cert: _c, key: _k, ...bare } = this.connectOptions;
    this.bareOptions = bare;
    this.bareAgent = tls.certPem && tls.keyPem ? new Agent({ connect: this.connector(bare, this.sessions.bare), keepAliveTimeout: 10_000 }) : null;
    this.addresses = o.spread ? new ServiceAddresses(o.spread.key, o.spread.resolver) : null;
  }

  /** The agent that connects to `address` only, by IP, with the URL's name as TLS servername. */
  private agentFor(address: string, bare: boolean): Agent {
    const key = `${bare ? "bare" : "cert"}@${address}`;
    let a = this.pinned.get(key);
    if (!a) {
      a = new Agent({ connect: this.connector({ ...(bare ? this.bareOptions : this.connectOptions), lookup: pinnedLookup(address) }, bare ? this.sessions.bare : this.sessions.cert), keepAliveTimeout: 10_000 });
      this.pinned.set(key, a);
    }
    return a;
  }

  /** True when a request to `url` goes without the client certificate: a token URL, with a client token to prove. */
  private bare(url: string): boolean {
    return this.bareAgent !== null && this.proven !== undefined && isTokenUrl(url);
  }

  /**
   * Connects as undici would, then, when CRL checking is on and the connection is TLS, checks the
   * server's certificates before the connection carries a request.
   */
  private connector(options: Record<string, unknown>, sessions: TlsSessions): buildConnector.connector {
    const connect = sessions.connector(options as buildConnector.BuildOptions);
    const trusted = (options.ca as string[] | undefined) ?? [];
    return (opts, cb) =>
      connect(opts, (err, socket) => {
        if (err || !socket || !this.checkCrl || opts.protocol !== "https:") return err ? cb(err, null) : cb(null, socket!);
        const presented = sessions.presented(TlsSessions.nameOf(opts, options as buildConnector.BuildOptions), socket as TLSSocket);
        // Fails closed: a connection whose server certificate is not known is not checked as clean.
        const checked = presented?.raw
          ? this.crl.check(opts.hostname, serverChain(presented, trusted))
          : Promise.reject(new ServerCertRefusedError("SERVER_CERT_CRL_UNAVAILABLE", opts.hostname, "the server's certificate is not known for this connection"));
        checked.then(
          () => cb(null, socket),
          (e: unknown) => {
            socket.destroy();
            if (e instanceof ServerCertRefusedError) this.o.onServerCertRefused?.(e);
            cb(e as Error, null);
          },
        );
      });
  }

  /** A new client cycle: service names are resolved again and each starts at the client's preferred address. */
  newCycle(): void {
    this.addresses?.newCycle();
    this.lastAddress = null;
  }

  /**
   * One JSON request. Throws MpRefusedError for a non-2xx answer, NetError when the MP cannot be
   * reached.
   *
   * @example
   * const loc = await t.call<LocationAnswer>("https://mp01.contoso.com", MP_PATHS.location);
   */
  async call<T>(mpUrl: string, path: string, o: { method?: "GET" | "POST"; body?: unknown; timeoutMs?: number } = {}): Promise<T> {
    const url = mpEndpoint(mpUrl, path);
    const host = new URL(url).hostname;
    const addresses = this.addresses ? await this.addresses.candidates(host) : null;
    try {
      const bare = this.bare(url);
      if (!addresses) return await this.withNonce<T>(url, o, bare ? this.bareAgent! : this.agent, new URL(url).origin);
      // Each address in this client's order: the next when one cannot serve (a status upload
      // sent twice is acknowledged as a duplicate, so a retry elsewhere is safe).
      for (const [i, address] of addresses.entries()) {
        try {
          const r = await this.withNonce<T>(url, o, this.agentFor(address, bare), `${new URL(url).origin}@${address}`);
          this.addresses!.worked(address);
          this.lastAddress = address;
          return r;
        } catch (e) {
          if (!failsOver(e) || i === addresses.length - 1) throw e;
          this.addresses!.failed(address);
          this.o.onFailover?.(host, address, e as Error);
        }
      }
      throw new Error("unreachable: no address tried");
    } catch (e) {
      if (e instanceof MpRefusedError) this.o.onRefusal?.(e);
      throw e;
    }
  }

  private async withNonce<T>(url: string, o: { method?: "GET" | "POST"; body?: unknown; timeoutMs?: number }, dispatcher: Agent, nonceKey: string): Promise<T> {
    const nonce = this.nonces.get(nonceKey);
    try {
      return await this.once<T>(url, o, dispatcher, nonceKey);
    } catch (e) {
      // The instance asks for its nonce (none yet, or one of another instance or an older window):
      // once more with the one it just handed out; a second refusal is the answer.
      if (this.proven && e instanceof GatewayRefusedError && e.reason === USE_DPOP_NONCE && this.nonces.get(nonceKey) !== nonce) return await this.once<T>(url, o, dispatcher, nonceKey);
      throw e;
    }
  }

  /** One request; DPoP nonces are kept per `nonceKey` (an origin, or an origin at one address: each instance makes its own). */
  private async once<T>(url: string, o: { method?: "GET" | "POST"; body?: unknown; timeoutMs?: number }, dispatcher: Agent, nonceKey: string): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (o.body !== undefined) headers["content-type"] = "application/json";
    const method = o.method ?? (o.body === undefined ? "GET" : "POST");
    // A certificate client sends its token only where it authenticates with it (a token URL).
    if (this.proven && (this.bareAgent === null || isTokenUrl(url))) {
      headers.authorization = `DPoP ${this.proven.token}`;
      headers.dpop = await makeProof(this.proven.key, method, url, this.proven.token, this.nonces.get(nonceKey));
    } else if (this.token) headers.authorization = `Bearer ${this.token}`;
    let status: number;
    let text: string;
    let gatewayReason: string | undefined;
    let gatewayCause: string | undefined;
    let retryAfter: number | undefined;
    try {
      const res = await request(url, {
        dispatcher,
        method,
        headers,
        body: o.body === undefined ? undefined : JSON.stringify(o.body),
        signal: AbortSignal.timeout(o.timeoutMs ?? this.o.timeoutMs ?? 30_000),
      });
      status = res.statusCode;
      gatewayReason = headerValue(res.headers[REFUSAL_HEADERS.reason]);
      gatewayCause = headerValue(res.headers[REFUSAL_HEADERS.cause]);
      const nonce = nonceValue(res.headers[NONCE_HEADER]);
      if (nonce !== undefined) this.nonces.set(nonceKey, nonce);
      const ra = res.headers["retry-after"];
      retryAfter = retryAfterSeconds(Array.isArray(ra) ? ra[0] : ra, Date.now());
      text = await res.body.text();
    } catch (e) {
      if (e instanceof ServerCertRefusedError) throw e;
      throw toNetError(e, { route: { mode: "direct" }, targetHost: new URL(url).host });
    }
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (status < 200 || status > 299) {
      const e = (json ?? {}) as Partial<MpErrorAnswer>;
      const message = e.message ?? (text.slice(0, 200) || "no reason given");
      // Reported by `call` once it is the answer (not a nonce asked for, not when another instance serves the request).
      throw gatewayReason ? new GatewayRefusedError(status, gatewayReason, gatewayCause, url, message, retryAfter) : new MpRefusedError(status, e.error ?? `http_${status}`, url, message, retryAfter);
    }
    return json as T;
  }

  /** From now on, authenticate with this registration token (a client without certificate). */
  useToken(token: string): void {
    this.token = token;
  }

  /**
   * From now on, send this token with a proof of possession made with `key` on every request (a
   * bulk registration token or ID token at registration, the client token after it).
   */
  useProvenToken(token: string, key: TokenKey): void {
    this.proven = { token, key };
  }

  /** Stops sending the proven token (a certificate client back on its certificate). */
  dropProvenToken(): void {
    this.proven = undefined;
  }

  /** True when a management point answers at `mpUrl` within `timeoutMs`. */
  async ping(mpUrl: string, timeoutMs: number): Promise<boolean> {
    try {
      await this.call(mpUrl, MP_PATHS.ping, { timeoutMs });
      this.lastRefusal = undefined;
      return true;
    } catch (e) {
      // A gateway that refuses the client (a blocked client, a token it does not take) answers
      // too, but the client cannot go on through it: kept so the agent can say why.
      if (e instanceof MpRefusedError) this.lastRefusal = e;
      return false;
    }
  }

  /** True when anything answers HTTP at `url` within `timeoutMs` (the internal probe). */
  async reachable(url: string, timeoutMs: number): Promise<boolean> {
    try {
      const res = await request(url, { dispatcher: this.agent, method: "GET", signal: AbortSignal.timeout(timeoutMs) });
      await res.body.dump();
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.crl.close();
    await Promise.all([this.agent.close(), ...(this.bareAgent ? [this.bareAgent.close()] : []), ...[...this.pinned.values()].map((a) => a.close())]);
  }
}

/** A nonce as RFC 9449 section 8 allows it (NQCHAR), of a sane length; anything else is ignored. */
function nonceValue(v: string | string[] | undefined): string | undefined {
  const one = Array.isArray(v) ? v[0] : v;
  return one !== undefined && /^[\x21\x23-\x5B\x5D-\x7E]{1,256}$/.test(one) ? one : undefined;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  const one = Array.isArray(v) ? v[0] : v;
  // Codes only: anything else is not the gateway's answer and is not shown as one.
  return one !== undefined && /^[a-z0-9_]{1,64}$/.test(one) ? one : undefined;
}

/** A refusal as state.json keeps it: codes and the answer's short message, never a secret. */
export function recordRefusal(e: MpRefusedError, at: Date): RecordedRefusal {
  const gateway = e instanceof GatewayRefusedError;
  return {
    at: at.toISOString(),
    url: e.url,
    status: e.status,
    reason: String(e.reason),
    ...(gateway && e.refusalCause ? { cause: e.refusalCause } : {}),
    byGateway: gateway,
    message: e.message,
  };
}
