/**
 * One load generator of bench/capacity.ts, in its own process (`devices.ts JOB_JSON`, IPC to the
 * parent): a share of the devices, each with its own client certificate (P-256, issued here by the
 * test PKI's issuing CA, as devices' certificates are) and its own HTTP/1.1 connection (undici
 * Client, one connection, no pipelining), bound to one of the loopback source addresses it was
 * given so no address runs out of ports.
 *
 * Idle devices authenticate once (one request) and then hold their connection (with a ping every
 * `idlePingS` when the instance's idle timeout would close it). Active devices run the mix, time
 * compressed by `compress`: location once a day, policy every hour, a status upload every 15
 * minutes, each at a random phase. A device whose connection drops (the instance restarted)
 * comes back on its own: one request, after a full-jitter exponential backoff (1 s doubling up to
 * `backoffCapS`), until it gets a 200; the time it came back is reported.
 *
 * Parent -> child: {type:"target", target} connect every device; {type:"reset"} clear the
 * figures; {type:"report"} send them; {type:"storm", t0} note the restart's start; {type:"close"}
 * close every connection; {type:"exit"}. Child -> parent: "ready" (certificates issued),
 * "connected", "report", "closed".
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createSecureContext, type SecureContext } from "node:tls";
import { Client, type buildConnector } from "undici";
import { TlsSessions } from "../../src/client/tls-sessions.ts";
import { issueCert } from "../../src/pki/issue.ts";
import { KINDS, PERIOD_S, type DeviceTarget, type GeneratorJob, type GeneratorReport, type Kind } from "./mix.ts";

const STATUS_BODY = Buffer.alloc(4096, 0x41);
const POLICY_BYTES = 8192;

type Msg = { type: "target"; target: DeviceTarget } | { type: "reset" } | { type: "report" } | { type: "storm"; t0: number } | { type: "close" } | { type: "exit" };

const job = JSON.parse(process.argv[2]!) as GeneratorJob;
const send = (m: object): void => void process.send!(m);

class Device {
  client: Client | null = null;
  connected = false;
  /** A reconnect (backoff, then one request) is under way. */
  coming = false;
  attempt = 0;
  /** Came back since the storm's start (counted once). */
  back = false;
  /** The pending timer of each kind of the mix. */
  readonly timers = new Map<string, NodeJS.Timeout>();
  /**
   * The device's TLS sessions, kept across reconnects as the client's transport keeps them, so a
   * device coming back after a restart offers its ticket. Each connection is counted, and whether
   * it resumed.
   */
  private readonly sessions = new TlsSessions();

  constructor(
    readonly n: number,
    readonly active: boolean,
    readonly ctx: SecureContext,
    readonly address: string,
  ) {}

  open(t: DeviceTarget): void {
    const base = this.sessions.connector({ secureContext: this.ctx, servername: t.servername } as buildConnector.BuildOptions);
    const connect: buildConnector.connector = (opts, cb) =>
      base(opts, (err, socket) => {
        if (socket) {
          stats.handshakes++;
          if ((socket as import("node:tls").TLSSocket).isSessionReused?.()) stats.resumed++;
        }
        // undici's callback types are a union of its two forms.
        (cb as (e: Error | null, s: typeof socket) => void)(err, socket);
      });
    const c = new Client(t.origin, {
      connect,
      localAddress: this.address,
      pipelining: 1,
      keepAliveTimeout: 60 * 60_000,
      keepAliveMaxTimeout: 60 * 60_000,
      headersTimeout: job.requestTimeoutMs,
      bodyTimeout: job.requestTimeoutMs,
    });
    c.on("connect", () => (this.connected = true));
    c.on("disconnect", () => {
      const was = this.connected;
      this.connected = false;
      if (!running || this.client !== c) return;
      if (was) stats.drops++;
      this.comeBack(t);
    });
    this.client = c;
  }

  /** One request; resolves with the failure reason, or null when answered 200. */
  async request(t: DeviceTarget, kind: Kind | "hello"): Promise<string | null> {
    const c = this.client;
    if (!c) return "closed";
    const path =
      kind === "policy" ? `${t.prefix}/SMS_MP/.sms_pol/bytes/${POLICY_BYTES}` : kind === "status" ? `${t.prefix}/ccm_system/request` : `${t.prefix}/SMS_MP/.sms_aut?MPLIST`;
    const signal = AbortSignal.timeout(job.requestTimeoutMs);
    try {
      const r = await c.request({
        path,
        method: kind === "status" ? "POST" : "GET",
        headers: { host: t.servername, ...(kind === "status" ? { "content-type": "application/octet-stream" } : {}) },
        ...(kind === "status" ? { body: STATUS_BODY } : {}),
        signal,
      });
      for await (const _ of r.body) void _;
      return r.statusCode === 200 ? null : `status ${r.statusCode}`;
    } catch (e) {
      return (e as { code?: string }).code ?? (e as Error).name;
    }
  }

  /** Back after a drop: full-jitter backoff, then one request, until it is answered. */
  comeBack(t: DeviceTarget): void {
    if (this.coming) return;
    this.coming = true;
    const tryOnce = (): void => {
      const cap = Math.min(job.backoffCapS, 2 ** this.attempt) * 1000;
      this.attempt++;
      const timer = setTimeout(async () => {
        if (!running) return;
        const why = await this.request(t, "hello");
        if (!running) return;
        stats.tries++;
        if (why !== null) stats.triesWhy[why] = (stats.triesWhy[why] ?? 0) + 1;
        if (why === null) {
          this.coming = false;
          this.attempt = 0;
          // Once per device: the first time it is back after the restart.
          if (stormT0 > 0 && !this.back) stats.back.push((Date.now() - stormT0) / 1000);
          this.back = stormT0 > 0;
          return;
        }
        tryOnce();
      }, Math.random() * cap);
      timer.unref();
    };
    tryOnce();
  }

  /** The active mix: each kind at its compressed period, from a random phase. */
  schedule(t: DeviceTarget): void {
    const kinds: (Kind | "ping")[] = this.active ? KINDS : job.idlePingS > 0 ? ["ping"] : [];
    for (const kind of kinds) {
      const period = kind === "ping" ? job.idlePingS * 1000 : (PERIOD_S[kind] * 1000) / job.compress;
      const tick = (): void => {
        if (!running) return;
        const t0 = performance.now();
        if (kind === "ping") {
          // Keeps the idle connection open; not a figure of the mix.
          if (!this.coming) void this.request(t, "hello");
        } else if (this.coming) {
          // Reconnecting (backoff under way): a device sends nothing until it is back.
          stats.skipped++;
        } else {
          void this.request(t, kind).then((why) => {
            if (!running) return;
            if (why === null) stats.lat[kind].push(performance.now() - t0);
            else {
              stats.failed[kind]++;
              stats.why[why] = (stats.why[why] ?? 0) + 1;
            }
          });
        }
        this.timers.set(kind, setTimeout(tick, period));
      };
      this.timers.set(kind, setTimeout(tick, Math.random() * period));
    }
  }

  async close(): Promise<void> {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.coming = false;
    this.attempt = 0;
    const c = this.client;
    this.client = null;
    this.connected = false;
    if (c) await c.destroy().catch(() => {});
  }
}

let running = false;
let stormT0 = 0;
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
const fresh = (): Omit<GeneratorReport, "type" | "id" | "connected" | "lagP99Ms" | "lagMaxMs"> => ({
  lat: { location: [], policy: [], status: [] },
  failed: { location: 0, policy: 0, status: 0 },
  why: {},
  back: [],
  drops: 0,
  skipped: 0,
  handshakes: 0,
  resumed: 0,
  tries: 0,
  triesWhy: {},
});
let stats = fresh();

async function main(): Promise<void> {
  // Every device its own key and certificate, issued by the test PKI's issuing CA.
  const devices: Device[] = [];
  const total = job.idle + job.active;
  const perAddress = Math.ceil(total / job.addresses.length);
  for (let i = 0; i < total; i++) {
    const n = job.first + i;
    const cert = await issueCert({ issuer: job.issuer, commonName: `PC-${String(n).padStart(6, "0")}`, usage: "client", crlUrl: job.crlUrl });
    devices.push(new Device(n, i < job.active, createSecureContext({ ca: job.ca, cert: cert.certPem, key: cert.keyPem }), job.addresses[Math.floor(i / perAddress)]!));
  }
  let target: DeviceTarget | null = null;
  send({ type: "ready", id: job.id });

  process.on("message", (m: Msg) => {
    void (async () => {
      if (m.type === "target") {
        target = m.target;
        running = true;
        stormT0 = 0;
        stats = fresh();
        lag.reset();
        const t0 = performance.now();
        let failed = 0;
        const why: Record<string, number> = {};
        // Bounded concurrency: a few dozen handshakes in flight per generator.
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < devices.length) {
            const d = devices[next++]!;
            d.open(target!);
            const w = await d.request(target!, "hello");
            if (w !== null) {
              failed++;
              why[w] = (why[w] ?? 0) + 1;
              d.comeBack(target!);
            }
            // At once, not after every device: a connect phase longer than the gateway's idle
            // timeout would otherwise lose the first devices before their first ping.
            d.schedule(target!);
          }
        };
        await Promise.all(Array.from({ length: 32 }, worker));
        send({ type: "connected", id: job.id, failed, why, ms: performance.now() - t0 });
      } else if (m.type === "reset") {
        stats = fresh();
        lag.reset();
      } else if (m.type === "storm") {
        stormT0 = m.t0;
        stats.back = [];
        stats.handshakes = 0;
        stats.resumed = 0;
        for (const d of devices) d.back = false;
      } else if (m.type === "report") {
        send({ type: "report", id: job.id, ...stats, lagP99Ms: lag.percentile(99) / 1e6, lagMaxMs: lag.max / 1e6, connected: devices.filter((d) => d.connected && !d.coming).length } satisfies GeneratorReport);
      } else if (m.type === "close") {
        running = false;
        await Promise.all(devices.map((d) => d.close()));
        send({ type: "closed", id: job.id });
      } else if (m.type === "exit") {
        process.exit(0);
      }
    })();
  });
  process.on("disconnect", () => process.exit(0));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
