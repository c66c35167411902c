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
import { createPrivateKey, X509Certificate } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { NetError, ValidationError } from "../errors.ts";
import { LogSet, type ComponentLog } from "../logs/cmtrace.ts";
import { thumbprintOf } from "../pki/cert.ts";
import { MP_PATHS, type LocationAnswer, type MpCandidate, type PolicyAnswer, type RegisterAnswer, type StatusUploadAnswer } from "../wire/mp.ts";
import { DEFAULT_CLIENT_SETTINGS } from "../wire/mp.ts";
import { StatusQueue, type NewStatus } from "./queue.ts";
import { ClientStore, writeFileAtomic, type ClientConfig, type ClientConnectionType, type ClientState } from "./store.ts";
import { MpRefusedError, MpTransport, type ClientTls } from "./transport.ts";
import { LOG_FILES } from "../logs/files.ts";

const MINUTE = 60_000;

export interface InstallOptions {
  dir: string;
  /** The management point to register with (an intranet MP, or an MP's URL through a CMG). */
  mp: string;
  alwaysInternet?: boolean | undefined;
  /** Client authentication certificate and key (PEM). Without them the site must approve the client. */
  certPem?: string | undefined;
  keyPem?: string | undefined;
  /** Trusted roots for the MPs' and CMGs' server certificates (PEM); the system's roots when absent. */
  caPem?: string | undefined;
  /** Computer name (default: this host's name). */
  name?: string | undefined;
  internalProbe?: string | undefined;
  timeoutMs?: number | undefined;
  now?: (() => Date) | undefined;
}

export interface InstallResult {
  dir: string;
  clientId: string;
  name: string;
  approved: boolean;
  mp: string;
  candidates: MpCandidate[];
}

/** An MP URL through a CMG (`.../CCM_Proxy_MutualAuth/<roleId>`) is an internet one. */
export function mpTypeOf(url: string): MpCandidate["type"] {
  return /\/CCM_Proxy_[A-Za-z]+\//i.test(url + "/") ? "Internet" : "Intranet";
}

function checkHttpsUrl(field: string, value: string): string {
  let u: URL | undefined;
  try {
    u = new URL(value);
  } catch {
    u = undefined;
  }
  if (!u || u.protocol !== "https:" || !u.hostname) throw new ValidationError(field, "must be an https:// URL", `${field}: must be an https:// URL (got ${JSON.stringify(value)})`);
  return value.replace(/\/+$/, "");
}

function checkUrl(field: string, value: string): string {
  try {
    const u = new URL(value);
    if (u.protocol === "http:" || u.protocol === "https:") return value;
  } catch {
    // below
  }
  throw new ValidationError(field, "must be an http:// or https:// URL", `${field}: must be an http:// or https:// URL (got ${JSON.stringify(value)})`);
}

function defaultName(): string {
  return hostname().replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "") || "client";
}

/** Checks that the certificate and key go together and returns the certificate's thumbprint. */
function checkCertificate(certPem: string, keyPem: string): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new ValidationError("cert", "must be a PEM certificate", `cert: not a readable PEM certificate (${errorText(e)})`);
  }
  let matches = false;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch (e) {
    throw new ValidationError("key", "must be a PEM private key", `key: not a readable PEM private key (${errorText(e)})`);
  }
  if (!matches) throw new ValidationError("key", "must be the private key of --cert", "key: is not the private key of the certificate given with --cert");
  return thumbprintOf(cert.raw);
}

/**
 * `opencmg client install`: copies the certificate and key into the client folder (key 0600),
 * registers with the management point, and makes the first location request.
 *
 * @example
 * await installClient({ dir: "/var/lib/opencmg-client", mp: "https://mp01.contoso.com", certPem, keyPem, caPem });
 */
export async function installClient(o: InstallOptions): Promise<InstallResult> {
  const mp = checkHttpsUrl("mp", o.mp);
  const internalProbe = o.internalProbe ? checkUrl("internalProbe", o.internalProbe) : null;
  if (Boolean(o.certPem) !== Boolean(o.keyPem)) throw new ValidationError(o.certPem ? "key" : "cert", "--cert and --key go together", `${o.certPem ? "key" : "cert"}: --cert and --key go together`);
  const thumbprint = o.certPem && o.keyPem ? checkCertificate(o.certPem, o.keyPem) : undefined;
  const name = o.name ?? defaultName();
  const now = o.now ?? (() => new Date());
  const store = new ClientStore(o.dir);
  store.ensure();
  const logs = new LogSet({ dir: store.paths.logs, now });
  const regLog = logs.component(LOG_FILES.clientIdManagerStartup);
  const locLog = logs.component(LOG_FILES.locationServices);
  const tls: ClientTls = { certPem: o.certPem, keyPem: o.keyPem, ca: o.caPem ? [o.caPem] : undefined };
  // A client without certificate keeps its token across reinstalls, so it stays the same client.
  const token = thumbprint ? undefined : store.token();
  const transport = new MpTransport(tls, { token, timeoutMs: o.timeoutMs });
  try {
    let reg: RegisterAnswer;
    try {
      reg = await transport.call<RegisterAnswer>(mp, MP_PATHS.register, { body: { name, ...(thumbprint ? { thumbprint } : {}), alwaysInternet: o.alwaysInternet === true } });
    } catch (e) {
      regLog.error(`Registration with ${mp} failed: ${errorText(e)}`);
      throw e;
    }
    if (o.certPem && o.keyPem) {
      writeFileAtomic(store.paths.cert, o.certPem, 0o644);
      writeFileAtomic(store.paths.key, o.keyPem, 0o600);
    }
    if (o.caPem) writeFileAtomic(store.paths.ca, o.caPem, 0o644);
    if (reg.token) {
      writeFileAtomic(store.paths.token, reg.token + "\n", 0o600);
      transport.useToken(reg.token);
    }
    const config: ClientConfig = {
      version: 1,
      name,
      bootstrapMp: mp,
      alwaysInternet: o.alwaysInternet === true,
      internalProbe,
      clientId: reg.clientId,
      approved: reg.approved,
      hasCertificate: thumbprint !== undefined,
      installedAt: now().toISOString(),
    };
    store.writeConfig(config);
    regLog.info(
      `Registered with ${mp} as ${reg.clientId} (${name})${thumbprint ? ` with certificate ${thumbprint}` : " without a certificate"}; ${reg.approved ? "approved" : "awaiting approval by the site"}${config.alwaysInternet ? "; always on internet (CCMALWAYSINF=1)" : ""}.`,
    );
    let loc: LocationAnswer;
    try {
      loc = await transport.call<LocationAnswer>(mp, MP_PATHS.location);
    } catch (e) {
      locLog.error(`First location request to ${mp} failed: ${errorText(e)}`);
      throw e;
    }
    const state: ClientState = { ...store.state(), candidates: loc.mps, siteCode: loc.siteCode, lastLocationAt: now().toISOString(), mpInUse: mp, connectionType: mpTypeOf(mp) === "Internet" ? "internet" : "intranet" };
    store.writeState(state);
    locLog.info(`Location request to ${mp}: site ${loc.siteCode}, ${describeCandidates(loc.mps)}.`);
    return { dir: store.dir, clientId: reg.clientId, name, approved: reg.approved, mp, candidates: loc.mps };
  } finally {
    await transport.close();
    logs.close();
  }
}

/** An error for logs and the CLI; network failures carry the platform's code (12002, 12029, ...). */
function errorText(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return e instanceof NetError && !m.includes(String(e.code)) ? `${m} (error ${e.code})` : m;
}

function describeCandidates(mps: MpCandidate[]): string {
  if (mps.length === 0) return "no management point";
  return mps.map((m) => `${m.type} ${m.url}`).join(", ");
}

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
  /** Status messages per upload (default 100). */
  batchSize?: number | undefined;
  /** Upload retry back-off: first delay and cap (default 2 s, 5 min). */
  retryBaseMs?: number | undefined;
  retryMaxMs?: number | undefined;
  now?: (() => Date) | undefined;
  onEvent?: ((e: AgentEvent) => void) | undefined;
}

export type AgentEvent =
  | { type: "network"; connectionType: ClientConnectionType; mp: string | null }
  | { type: "location"; mps: MpCandidate[] }
  | { type: "policy" }
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
  errors: string[];
}

export interface ClientStatusView {
  dir: string;
  clientId: string;
  name: string;
  approved: boolean;
  alwaysInternet: boolean;
  connectionType: ClientConnectionType | null;
  mpInUse: string | null;
  siteCode: string | null;
  lastLocationAt: string | null;
  lastPolicyAt: string | null;
  lastUploadAt: string | null;
  queuedUploads: number;
  candidates: number;
  lastError: string | null;
}

/** `opencmg client status`: what the agent last learnt, read from its folder. */
export function clientStatus(dir: string): ClientStatusView {
  const store = new ClientStore(dir);
  const c = store.config();
  const s = store.state();
  return {
    dir: store.dir,
    clientId: c.clientId,
    name: c.name,
    approved: c.approved,
    alwaysInternet: c.alwaysInternet || s.policy?.alwaysOnInternet === true,
    connectionType: s.connectionType,
    mpInUse: s.mpInUse,
    siteCode: s.siteCode,
    lastLocationAt: s.lastLocationAt,
    lastPolicyAt: s.lastPolicyAt,
    lastUploadAt: s.lastUploadAt,
    queuedUploads: new StatusQueue(store.paths.queue).count(),
    candidates: s.candidates.length,
    lastError: s.lastError,
  };
}

/** `opencmg client locate`: the management point candidates of the last location request. */
export function clientCandidates(dir: string): MpCandidate[] {
  const store = new ClientStore(dir);
  store.config();
  return store.state().candidates;
}

/**
 * `opencmg client send-status`: queues status messages for the next upload.
 *
 * @example
 * queueStatus("/var/lib/opencmg-client", [{ messageId: 10002, text: "Agent started" }]);
 */
export function queueStatus(dir: string, messages: NewStatus[]): number {
  const store = new ClientStore(dir);
  store.config();
  return new StatusQueue(store.paths.queue).add(messages).length;
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
    this.transport = new MpTransport(this.store.tls(), { token: config.hasCertificate ? undefined : this.store.token(), timeoutMs: o.requestTimeoutMs });
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

  /**
   * Intranet or internet, and the management point to use. Intranet when the internal probe (if
   * configured) or an intranet management point answers, unless always-on-internet is set.
   */
  private async decide(c: ClientConfig, s: ClientState): Promise<{ connectionType: ClientConnectionType; mp: string | null }> {
    const always = c.alwaysInternet || s.policy?.alwaysOnInternet === true;
    const timeout = this.o.probeTimeoutMs ?? 3000;
    const bootstrapType = mpTypeOf(c.bootstrapMp);
    const of = (type: MpCandidate["type"]): string[] => {
      const urls = s.candidates.filter((m) => m.type === type).map((m) => m.url);
      // The install MP is the last resort of its kind (the only one before the first location answer).
      if (bootstrapType === type && !urls.includes(c.bootstrapMp)) urls.push(c.bootstrapMp);
      return urls;
    };
    const firstAnswering = async (urls: string[]): Promise<string | null> => {
      const answers = await Promise.all(urls.map((u) => this.transport.ping(u, timeout)));
      return urls[answers.indexOf(true)] ?? null;
    };
    if (!always) {
      const probe = this.o.internalProbe ?? c.internalProbe;
      const probeSaysIntranet = probe ? await this.transport.reachable(probe, timeout) : undefined;
      if (probeSaysIntranet !== false) {
        const mp = await firstAnswering(of("Intranet"));
        if (mp || probeSaysIntranet) return { connectionType: "intranet", mp };
      }
    }
    return { connectionType: "internet", mp: await firstAnswering(of("Internet")) };
  }

  /** One full cycle: intranet/internet, location (at start and when due), policy (when due), uploads. */
  async cycle(): Promise<CycleReport> {
    const c = this.store.config();
    const s = this.store.state();
    const errors: string[] = [];
    const first = !this.started;
    this.started = true;
    let net = await this.decide(c, s);
    this.noteNetwork(s, net);
    let located = false;
    let gotPolicy = false;
    let uploaded = 0;
    let uploadFailed = false;
    if (!net.mp) {
      const msg = `no ${net.connectionType} management point answers (${net.connectionType === "internet" ? "no CMG known or reachable" : "intranet MPs unreachable"}); will retry`;
      errors.push(msg);
      this.log.location.warn(msg);
    } else {
      if (first || this.dueIn(s.lastLocationAt, this.locationIntervalMs(s)) <= 0) {
        try {
          const loc = await this.transport.call<LocationAnswer>(net.mp, MP_PATHS.location);
          s.candidates = loc.mps;
          s.siteCode = loc.siteCode;
          s.lastLocationAt = this.now().toISOString();
          located = true;
          this.log.location.info(`Location request to ${net.mp} (${net.connectionType}): site ${loc.siteCode}, ${describeCandidates(loc.mps)}.`);
          this.emit({ type: "location", mps: loc.mps });
          this.store.writeState(s);
          // The answer may name better candidates than the one in use (e.g. the install MP).
          if (!loc.mps.some((m) => m.url === net.mp)) {
            net = await this.decide(c, s);
            this.noteNetwork(s, net);
          }
        } catch (e) {
          errors.push(`location: ${errorText(e)}`);
          this.log.location.error(`Location request to ${net.mp} failed: ${errorText(e)}`);
        }
      }
      if (net.mp && (first || this.dueIn(s.lastPolicyAt, this.policyIntervalMs(s)) <= 0)) {
        try {
          const p = await this.transport.call<PolicyAnswer>(net.mp, MP_PATHS.policy);
          s.policy = p.settings;
          s.lastPolicyAt = this.now().toISOString();
          gotPolicy = true;
          if (!c.approved) this.store.writeConfig({ ...c, approved: true });
          this.log.policy.info(`Policy from ${net.mp} (${net.connectionType}): ${JSON.stringify(p.settings)}.`);
          this.emit({ type: "policy" });
        } catch (e) {
          errors.push(`policy: ${errorText(e)}`);
          this.log.policy.error(`Policy request to ${net.mp} failed: ${errorText(e)}`);
        }
      }
      if (net.mp) {
        const r = await this.uploadQueued(net.mp);
        uploaded = r.uploaded;
        uploadFailed = r.failed !== undefined;
        if (r.failed) errors.push(`upload: ${r.failed}`);
        if (uploaded > 0) s.lastUploadAt = this.now().toISOString();
      }
    }
    const queued = this.queue.count();
    if (!net.mp && queued > 0) uploadFailed = true;
    s.lastCycleAt = this.now().toISOString();
    s.lastError = errors.length > 0 ? errors.join("; ") : null;
    this.store.writeState(s);
    const report: CycleReport = { connectionType: net.connectionType, mp: net.mp, located, policy: gotPolicy, uploaded, queued, uploadFailed, errors };
    this.emit({ type: "cycle", report });
    return report;
  }

  private noteNetwork(s: ClientState, net: { connectionType: ClientConnectionType; mp: string | null }): void {
    if (s.connectionType !== net.connectionType || s.mpInUse !== net.mp) {
      this.log.location.info(`Client is currently ${net.connectionType}; management point in use: ${net.mp ?? "none"}${s.connectionType ? ` (was ${s.connectionType}, ${s.mpInUse ?? "none"})` : ""}.`);
      this.emit({ type: "network", connectionType: net.connectionType, mp: net.mp });
    }
    s.connectionType = net.connectionType;
    s.mpInUse = net.mp;
  }

  /** Uploads queued messages, oldest first, until the queue is empty or an upload fails. */
  private async uploadQueued(mp: string): Promise<{ uploaded: number; failed?: string }> {
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
        this.log.messaging.warn(`Upload of ${batch.length} status message(s) to ${mp} failed; ${queued} stay queued for retry: ${errorText(e)}`);
        this.emit({ type: "upload-failed", error: errorText(e), queued });
        return { uploaded, failed: errorText(e) };
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
