/**
 * The client agent: installs (registers and makes a first location request), then keeps the device
 * managed. Each cycle decides whether the device is currently on the intranet (an on-premises
 * management point answers, or the configured internal probe does) or on the internet, picks a
 * management point accordingly (an intranet MP; the CMG, as an internet MP, on the internet or when
 * always-on-internet is set), makes a location request at start and every location interval,
 * fetches policy, and uploads the queued status messages until each is acknowledged.
 *
 * Logs in `<client dir>/logs/`: ClientIDManagerStartup.log (registration), LocationServices.log
 * (location and intranet/internet decisions), PolicyAgent.log, CcmMessaging.log (uploads),
 * CcmExec.log (the agent itself).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { LogSet, type ComponentLog } from "../logs/cmtrace.ts";
import { LOG_FILES } from "../logs/files.ts";
import { OpenCmgError } from "../errors.ts";
import { CLIENT_TOKEN_RENEW_AFTER_MS } from "../wire/tokens.ts";
import { loadOrCreateTokenKey, tokenTimes, type TokenKey } from "./token-key.ts";
import { MP_PATHS, type ClientTokenAnswer, type LocationAnswer, type MpCandidate, type PolicyAnswer, type RegisterAnswer, type StatusUploadAnswer } from "../wire/mp.ts";
import { makeBindProof } from "../wire/key-proof.ts";
import { DEFAULT_CLIENT_SETTINGS, type ClientSettings } from "../wire/mp.ts";
import { checkUrl, describeCandidates, errorText } from "./mp-url.ts";
import { decideNetwork, type NetworkDecision } from "./network.ts";
import { StatusQueue } from "./queue.ts";
import { ClientStore, type ClientConfig, type ClientConnectionType, type ClientState, type RecordedRefusal } from "./store.ts";
import { isTokenUrl, MpRefusedError, MpTransport, recordRefusal, tokenUrlOf } from "./transport.ts";
import { mpTypeOf } from "./mp-url.ts";
import type { Resolver } from "./addresses.ts";
import { explainRefusal } from "../wire/refusals.ts";

export { installClient, type InstallOptions, type InstallResult } from "./install.ts";
export { clientCandidates, clientStatus, queueStatus, queueStatusCopies, type ClientStatusView } from "./folder.ts";
export { mpTypeOf } from "./mp-url.ts";

const MINUTE = 60_000;

/** The network decision once a management point answered. */
type Reached = NetworkDecision & { mp: string };

export interface AgentOptions {
  dir: string;
  /** Overrides the internal probe given at install. */
  internalProbe?: string | undefined;
  /** Overrides the location interval of the client settings (default 24 h). */
  locationIntervalMs?: number | undefined;
  /** How often `run` checks intranet/internet again (default 5 min). */
  checkIntervalMs?: number | undefined;
  /** How long an MP or the probe has to answer the intranet check (default 3 s). */
  probeTimeoutMs?: number | undefined;
  requestTimeoutMs?: number | undefined;
  /** A client token older than this is renewed (default 30 days). */
  tokenRenewAfterMs?: number | undefined;
  /** Status messages per upload (default 100). */
  batchSize?: number | undefined;
  /** Upload retry back-off: first delay and cap (default 2 s, 5 min). */
  retryBaseMs?: number | undefined;
  retryMaxMs?: number | undefined;
  now?: (() => Date) | undefined;
  onEvent?: ((e: AgentEvent) => void) | undefined;
  /** Resolves a service name to every address (default the system's, dns.lookup all); `client run --resolve`. */
  resolver?: Resolver | undefined;
}

export type AgentEvent =
  | { type: "network"; connectionType: ClientConnectionType; mp: string | null }
  | { type: "location"; mps: MpCandidate[] }
  | { type: "policy" }
  | { type: "token-renewed"; expiresAt: string }
  | { type: "uploaded"; acknowledged: number; duplicates: number; queued: number }
  | { type: "upload-failed"; error: string; queued: number }
  | { type: "cycle"; report: CycleReport };

export interface CycleReport {
  connectionType: ClientConnectionType;
  mp: string | null;
  located: boolean;
  policy: boolean;
  uploaded: number;
  /** Messages still queued after the cycle. */
  queued: number;
  uploadFailed: boolean;
  /** The management point asked to wait this long before uploading again (429 Retry-After); null otherwise. */
  uploadRetryAfterMs: number | null;
  /** The address of the management point's (or CMG's) name that served the cycle's last request, when the name has several; null otherwise. */
  address: string | null;
  errors: string[];
}

/**
 * @example
 * const agent = new ClientAgent({ dir });
 * await agent.cycle();            // `client run --once`
 * await agent.run(abort.signal);  // `client run`
 * await agent.close();
 */
export class ClientAgent {
  private readonly store: ClientStore;
  private readonly queue: StatusQueue;
  private readonly logs: LogSet;
  private readonly log: { location: ComponentLog; policy: ComponentLog; messaging: ComponentLog; exec: ComponentLog };
  private readonly transport: MpTransport;
  private readonly now: () => Date;
  private started = false;
  /** Refusals met during the current cycle (also those of intranet/internet pings). */
  private refusals: RecordedRefusal[] = [];
  /** The last site system the client refused this cycle for its server certificate (CRL check). */
  private certRefused: Error | undefined;

  constructor(private readonly o: AgentOptions) {
    this.store = new ClientStore(o.dir);
    const config = this.store.config();
    this.now = o.now ?? (() => new Date());
    this.queue = new StatusQueue(this.store.paths.queue, this.now);
    this.logs = new LogSet({ dir: this.store.paths.logs, now: this.now });
    this.log = {
      location: this.logs.component(LOG_FILES.locationServices),
      policy: this.logs.component(LOG_FILES.policyAgent),
      messaging: this.logs.component(LOG_FILES.ccmMessaging),
      exec: this.logs.component(LOG_FILES.ccmExec),
    };
    if (o.internalProbe) checkUrl("internalProbe", o.internalProbe);
    // A client that moved off its certificate (installed again at the token URL) no longer presents it.
    const { certPem, keyPem, ...trust } = this.store.tls();
    const tls = config.hasCertificate && certPem && keyPem ? { certPem, keyPem, ...trust } : trust;
    this.transport = new MpTransport(tls, {
      token: config.hasCertificate || config.tokenAuth ? undefined : this.store.token(),
      timeoutMs: o.requestTimeoutMs,
      onRefusal: (e) => this.refusals.push(recordRefusal(e, this.now())),
      // Each client prefers one instance of the CMG's service name by its ID: clients spread across them.
      spread: { key: config.clientId, resolver: o.resolver },
      onFailover: (host, address, e) => this.log.location.warn(`${host} at ${address} cannot serve the client (${errorText(e)}); trying its next address.`),
      onServerCertRefused: (e) => {
        this.certRefused = e;
        this.log.location.error(`Refused site system ${e.host}: ${e.message}`);
      },
    });
    this.applyCommunication(this.store.state().policy);
  }

  /** The site's Client Computer Communication settings from the last policy (absent: on). */
  private applyCommunication(p: ClientSettings | null): void {
    const check = p?.clientsCheckCrl ?? true;
    if (check !== this.transport.checkCrl) this.log.location.info(`Checking the CRL of site systems' server certificates is ${check ? "on" : "off"} (the site's "Clients check the certificate revocation list (CRL) for site systems").`);
    this.transport.checkCrl = check;
  }

  /** A certificate client that authenticates with its client token through a CMG (the site's PKI setting off). */
  private certificateByToken = false;

  /**
   * The site turned "Use PKI client certificate (client authentication capability) when available"
   * off, and this certificate client holds a client token to authenticate with instead. On the
   * intranet it still presents its certificate: a management point knows intranet clients by it.
   */
  private pkiOff(c: ClientConfig): boolean {
    return c.hasCertificate && !c.tokenAuth && this.store.state().policy?.usePkiClientCertificate === false && this.store.clientToken() !== undefined;
  }

  /** The client token and its key, loaded once (token clients only). */
  private tokenKey: TokenKey | undefined;
  private async tokenReady(c: ClientConfig): Promise<void> {
    const byToken = c.tokenAuth || this.pkiOff(c);
    if (!c.tokenAuth && byToken !== this.certificateByToken) {
      this.certificateByToken = byToken;
      this.log.exec.info(
        byToken
          ? `The site turned "Use PKI client certificate (client authentication capability) when available" off: through a CMG this client authenticates with its client token (/CCM_Proxy_ServerAuth/), not its certificate.`
          : `This client authenticates with its PKI client certificate (mutual TLS) again.`,
      );
      if (!byToken) {
        this.transport.dropProvenToken();
        this.tokenKey = undefined;
      }
    }
    if (!byToken || this.tokenKey) return;
    const token = this.store.clientToken();
    if (!token) throw new OpenCmgError("not_found", "NO_CLIENT_TOKEN", `no client token in ${this.store.dir}: install again with --token or --id-token`);
    this.tokenKey = await loadOrCreateTokenKey(this.store.paths.tokenKey);
    this.transport.useProvenToken(token, this.tokenKey);
  }

  /**
   * Renews the client token through management point `mp` when it is older than the renewal age
   * (`force`: now). The new token is written (0600) before it is used.
   */
  async renewToken(mp: string, force = false): Promise<{ renewed: boolean; expiresAt: string }> {
    const c = this.store.config();
    await this.tokenReady(c);
    const current = this.store.clientToken();
    if (!(c.tokenAuth || this.certificateByToken) || !current || !this.tokenKey) throw new OpenCmgError("validation", "NOT_A_TOKEN_CLIENT", "this client authenticates with a certificate, not a client token");
    const { issuedAt, expiresAt } = tokenTimes(current);
    const age = this.now().getTime() - issuedAt.getTime();
    if (!force && age <= (this.o.tokenRenewAfterMs ?? CLIENT_TOKEN_RENEW_AFTER_MS)) return { renewed: false, expiresAt: expiresAt.toISOString() };
    const a = await this.transport.call<ClientTokenAnswer>(mp, MP_PATHS.token, { body: {} });
    this.store.writeClientToken(a.clientToken);
    this.transport.useProvenToken(a.clientToken, this.tokenKey);
    this.log.exec.info(`Client token renewed through ${mp}: valid until ${a.expiresAt} (the previous one was issued ${issuedAt.toISOString()}).`);
    this.emit({ type: "token-renewed", expiresAt: a.expiresAt });
    return { renewed: true, expiresAt: a.expiresAt };
  }

  /** The management point a token renewal goes to: the one in use, else the install one. */
  mpForRenewal(): string {
    return this.store.state().mpInUse ?? this.store.config().bootstrapMp;
  }

  private emit(e: AgentEvent): void {
    this.o.onEvent?.(e);
  }

  private locationIntervalMs(s: ClientState): number {
    return this.o.locationIntervalMs ?? (s.policy?.locationIntervalMinutes ?? DEFAULT_CLIENT_SETTINGS.locationIntervalMinutes) * MINUTE;
  }

  private policyIntervalMs(s: ClientState): number {
    return (s.policy?.policyIntervalMinutes ?? DEFAULT_CLIENT_SETTINGS.policyIntervalMinutes) * MINUTE;
  }

  private dueIn(last: string | null, interval: number): number {
    return last ? Date.parse(last) + interval - this.now().getTime() : 0;
  }

  /** Intranet or internet, and the management point to use (see decideNetwork). */
  private decide(c: ClientConfig, s: ClientState): Promise<NetworkDecision> {
    if (this.certificateByToken) {
      // Through a CMG at its token URL: the location answer names the mutual-TLS one to a certificate caller.
      const candidates = s.candidates.map((m) => (m.type === "Internet" ? { ...m, url: tokenUrlOf(m.url) } : m));
      const bootstrapMp = mpTypeOf(c.bootstrapMp) === "Internet" ? tokenUrlOf(c.bootstrapMp) : c.bootstrapMp;
      return decideNetwork({ ...c, bootstrapMp }, { ...s, candidates }, { transport: this.transport, internalProbe: this.o.internalProbe, timeoutMs: this.o.probeTimeoutMs ?? 3000 });
    }
    return decideNetwork(c, s, { transport: this.transport, internalProbe: this.o.internalProbe, timeoutMs: this.o.probeTimeoutMs ?? 3000 });
  }

  /** One full cycle: intranet/internet, location (at start and when due), policy (when due), uploads. */
  async cycle(): Promise<CycleReport> {
    const c = this.store.config();
    const s = this.store.state();
    const errors: string[] = [];
    await this.tokenReady(c);
    const first = !this.started;
    this.started = true;
    this.refusals = [];
    this.certRefused = undefined;
    this.transport.newCycle();
    let net = await this.decide(c, s);
    this.noteNetwork(s, net);
    let located = false;
    let gotPolicy = false;
    let uploaded = 0;
    let uploadFailed = false;
    let uploadRetryAfterMs: number | null = null;
    if (!net.mp) {
      const refused = this.refusals.find((r) => r.byGateway);
      // Set by the transport's callback during decide (TypeScript cannot see that).
      const certRefused = this.certRefused as Error | undefined;
      const msg = certRefused
        ? `${certRefused.message}; will retry`
        : refused
        ? `the CMG refused the client: ${refused.status} ${refused.reason}${refused.cause ? ` (${refused.cause})` : ""}, ${explainRefusal(refused.reason, refused.cause).check} check (${refused.url}); opencmg client diagnose says what to fix; will retry`
        : `no ${net.connectionType} management point answers (${this.transport.lastRefusal?.message ?? (net.connectionType === "internet" ? "no CMG known or reachable" : "intranet MPs unreachable")}); will retry`;
      errors.push(msg);
      this.log.location.warn(msg);
    } else {
      // A certificate client on its token renews it where it authenticates with it (the CMG's token URL).
      if (c.tokenAuth || (this.certificateByToken && isTokenUrl(net.mp))) {
        try {
          await this.renewToken(net.mp);
        } catch (e) {
          // The current token stays valid for weeks after the renewal age: renewal is tried again next cycle.
          errors.push(`token renewal: ${errorText(e)}`);
          this.log.exec.warn(`Client token renewal through ${net.mp} failed: ${errorText(e)}`);
        }
      }
      if (first || this.dueIn(s.lastLocationAt, this.locationIntervalMs(s)) <= 0) {
        const r = await this.locate(c, s, { connectionType: net.connectionType, mp: net.mp }, errors);
        located = r.located;
        net = r.net;
      }
      if (net.mp && (first || this.dueIn(s.lastPolicyAt, this.policyIntervalMs(s)) <= 0)) gotPolicy = await this.fetchPolicy(c, s, { connectionType: net.connectionType, mp: net.mp }, errors);
      if (net.mp && gotPolicy) await this.fetchClientToken(net.mp, errors);
      if (net.mp) {
        const r = await this.uploadQueued(net.mp);
        uploaded = r.uploaded;
        uploadFailed = r.failed !== undefined;
        uploadRetryAfterMs = r.retryAfterMs ?? null;
        if (r.failed) errors.push(`upload: ${r.failed}`);
        if (uploaded > 0) s.lastUploadAt = this.now().toISOString();
      }
    }
    const queued = this.queue.count();
    if (!net.mp && queued > 0) uploadFailed = true;
    s.lastCycleAt = this.now().toISOString();
    s.lastError = errors.length > 0 ? errors.join("; ") : null;
    // A gateway's refusal says more than a management point's; the last of the cycle otherwise.
    const refusal = this.refusals.find((r) => r.byGateway) ?? this.refusals[this.refusals.length - 1];
    if (refusal) {
      s.lastRefusal = refusal;
      this.log.location.error(`${refusal.byGateway ? "The CMG" : "The management point"} refused the client: ${refusal.status} ${refusal.reason}${refusal.cause ? ` (${refusal.cause})` : ""} at ${refusal.url}: ${refusal.message}`);
    }
    this.store.writeState(s);
    const report: CycleReport = { connectionType: net.connectionType, mp: net.mp, located, policy: gotPolicy, uploaded, queued, uploadFailed, uploadRetryAfterMs, address: this.transport.lastAddress, errors };
    this.emit({ type: "cycle", report });
    return report;
  }

  /** A location request to the MP in use; decides again when the answer does not name that MP. */
  private async locate(c: ClientConfig, s: ClientState, net: Reached, errors: string[]): Promise<{ located: boolean; net: NetworkDecision }> {
    try {
      const loc = await this.transport.call<LocationAnswer>(net.mp, MP_PATHS.location);
      s.candidates = loc.mps;
      s.siteCode = loc.siteCode;
      s.lastLocationAt = this.now().toISOString();
      this.log.location.info(`Location request to ${net.mp} (${net.connectionType}): site ${loc.siteCode}, ${describeCandidates(loc.mps)}.`);
      this.emit({ type: "location", mps: loc.mps });
      this.store.writeState(s);
      // The answer may name better candidates than the one in use (e.g. the install MP).
      if (loc.mps.some((m) => m.url === net.mp)) return { located: true, net };
      const next = await this.decide(c, s);
      this.noteNetwork(s, next);
      return { located: true, net: next };
    } catch (e) {
      errors.push(`location: ${errorText(e)}`);
      this.log.location.error(`Location request to ${net.mp} failed: ${errorText(e)}`);
      return { located: false, net };
    }
  }

  /** Asked once per agent process: a refusal (key change unproven) is not asked again every cycle. */
  private tokenAsked = false;

  /**
   * A certificate client, or one the site approved, that holds no client token yet registers again
   * with a proof of its own key and keeps the client token the answer carries, so it can move off
   * its certificate (or its request token) later.
   */
  private async fetchClientToken(mp: string, errors: string[]): Promise<void> {
    const c = this.store.config();
    if (c.tokenAuth || !c.approved || this.tokenAsked || this.store.clientToken()) return;
    this.tokenAsked = true;
    try {
      const key = await loadOrCreateTokenKey(this.store.paths.tokenKey);
      const a = await this.transport.call<RegisterAnswer>(mp, MP_PATHS.register, { body: { name: c.name, alwaysInternet: c.alwaysInternet, tokenKeyProof: await makeBindProof(key) } });
      if (a.clientToken) {
        this.store.writeClientToken(a.clientToken);
        this.log.exec.info(`Client token received through ${mp}: valid until ${a.clientTokenExpiresAt ?? "?"}, bound to key ${key.jkt}.`);
      } else if (a.clientTokenRefused) {
        this.log.exec.warn(`${mp} sent no client token: ${a.clientTokenRefused.error}: ${a.clientTokenRefused.message}`);
      }
    } catch (e) {
      errors.push(`client token: ${errorText(e)}`);
      this.log.exec.warn(`Asking ${mp} for a client token failed: ${errorText(e)}`);
    }
  }

  /** A policy request; the first answer also means the site approved the client. */
  private async fetchPolicy(c: ClientConfig, s: ClientState, net: Reached, errors: string[]): Promise<boolean> {
    try {
      const p = await this.transport.call<PolicyAnswer>(net.mp, MP_PATHS.policy);
      s.policy = p.settings;
      this.applyCommunication(p.settings);
      s.lastPolicyAt = this.now().toISOString();
      if (!c.approved) this.store.writeConfig({ ...c, approved: true });
      this.log.policy.info(`Policy from ${net.mp} (${net.connectionType}): ${JSON.stringify(p.settings)}.`);
      this.emit({ type: "policy" });
      return true;
    } catch (e) {
      errors.push(`policy: ${errorText(e)}`);
      this.log.policy.error(`Policy request to ${net.mp} failed: ${errorText(e)}`);
      return false;
    }
  }

  private noteNetwork(s: ClientState, net: NetworkDecision): void {
    if (s.connectionType !== net.connectionType || s.mpInUse !== net.mp) {
      this.log.location.info(`Client is currently ${net.connectionType}; management point in use: ${net.mp ?? "none"}${s.connectionType ? ` (was ${s.connectionType}, ${s.mpInUse ?? "none"})` : ""}.`);
      this.emit({ type: "network", connectionType: net.connectionType, mp: net.mp });
    }
    s.connectionType = net.connectionType;
    s.mpInUse = net.mp;
  }

  /**
   * Uploads queued messages, oldest first, until the queue is empty or an upload fails. A refusal
   * for the client's limits (429) leaves the messages queued and says when to send them again.
   */
  private async uploadQueued(mp: string): Promise<{ uploaded: number; failed?: string; retryAfterMs?: number }> {
    const batchSize = this.o.batchSize ?? 100;
    let uploaded = 0;
    for (;;) {
      const batch = this.queue.peek(batchSize);
      if (batch.length === 0) return { uploaded };
      try {
        const a = await this.transport.call<StatusUploadAnswer>(mp, MP_PATHS.status, { body: { messages: batch.map((m) => m.item) } });
        const acked = new Set(a.acknowledged);
        const done = batch.filter((m) => acked.has(m.item.id));
        this.queue.remove(done.map((m) => m.file));
        uploaded += done.length;
        const queued = this.queue.count();
        this.log.messaging.info(`Uploaded ${done.length} status message(s) to ${mp}: acknowledged${a.duplicates ? ` (${a.duplicates} already held by the site)` : ""}; ${queued} still queued.`);
        this.emit({ type: "uploaded", acknowledged: done.length, duplicates: a.duplicates, queued });
        if (done.length < batch.length) return { uploaded, failed: `${mp} acknowledged ${done.length} of ${batch.length} messages` };
      } catch (e) {
        if (e instanceof MpRefusedError && e.permanent) {
          // The messages themselves are wrong: retrying cannot help, and they would block the rest.
          this.queue.reject(batch.map((m) => m.file));
          this.log.messaging.error(`${mp} refused ${batch.length} status message(s) as invalid; set aside in ${this.queue.rejectedDir}: ${e.message}`);
          continue;
        }
        const queued = this.queue.count();
        const retryAfterMs = e instanceof MpRefusedError && e.retryAfterSeconds !== undefined ? e.retryAfterSeconds * 1000 : undefined;
        this.log.messaging.warn(`Upload of ${batch.length} status message(s) to ${mp} failed; ${queued} stay queued for retry${retryAfterMs !== undefined ? ` in ${retryAfterMs / 1000} s or later (Retry-After)` : ""}: ${errorText(e)}`);
        this.emit({ type: "upload-failed", error: errorText(e), queued });
        return { uploaded, failed: errorText(e), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
      }
    }
  }

  /** Retry delay after `failures` failed cycles: exponential with jitter, capped. */
  private backoff(failures: number): number {
    const base = this.o.retryBaseMs ?? 2000;
    const max = this.o.retryMaxMs ?? 5 * MINUTE;
    const d = Math.min(max, base * 2 ** Math.min(failures - 1, 30));
    return Math.round(d / 2 + (Math.random() * d) / 2);
  }

  /** `opencmg client run`: cycles until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    this.log.exec.info(`Client agent ${this.store.config().clientId} started (folder ${this.store.dir}).`);
    let failures = 0;
    while (!signal.aborted) {
      const r = await this.cycle();
      const troubled = !r.mp || r.uploadFailed || r.errors.length > 0;
      failures = troubled ? failures + 1 : 0;
      const s = this.store.state();
      let wait = this.o.checkIntervalMs ?? 5 * MINUTE;
      // After a failure: back off (not the due times, which stay due until a request succeeds).
      if (troubled) wait = Math.min(wait, this.backoff(failures));
      // Never before the management point's Retry-After (a client over its status message limits).
      if (r.uploadRetryAfterMs !== null) wait = Math.max(wait, r.uploadRetryAfterMs);
      else wait = Math.min(wait, this.dueIn(s.lastLocationAt, this.locationIntervalMs(s)), this.dueIn(s.lastPolicyAt, this.policyIntervalMs(s)));
      try {
        await sleep(Math.max(wait, 10), undefined, { signal });
      } catch {
        break; // aborted
      }
    }
    this.log.exec.info("Client agent stopped.");
  }

  async close(): Promise<void> {
    await this.transport.close();
    this.logs.close();
  }
}

