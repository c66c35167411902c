/**
 * The attackers of bench/edge.ts, each run in its own child process: `attack.ts JOB_JSON`.
 * A child ramps up, prints "started", keeps attacking until its stdin closes or its deadline
 * passes (whichever comes first), then prints one JSON line of counters and exits.
 *
 *   rapid-reset  HTTP/2 with a valid client certificate: open a stream, cancel it at once, again
 *                and again, over a few connections (a connection the server closes is opened again).
 *                Raw frames (test/helpers/h2-raw.ts): node:http2's client drops a request cancelled
 *                before it was sent, so with it nothing but the attacker's own CPU was spent; here
 *                each HEADERS really goes out with its RST_STREAM, and GOAWAY is ignored (only the
 *                connection's close stops a connection)
 *
 * Every connection leaves from `localAddress` (another loopback address than the legitimate
 * client's: the attacker is another source), and the process runs at the lowest CPU priority
 * (`nice`): on this one machine the attacker's own CPU would otherwise be taken from the product
 * and the legitimate client, which no gateway can give back; an attacker's CPU is elsewhere.
 *   slow-headers TLS without a certificate, then an HTTP/1.1 request whose headers arrive one byte
 *                at a time and never end (slowloris), over many connections
 *   idle-tcp     TCP connections that never start TLS (the tunnel listener's slowloris, the flood)
 *   upload       HTTP/1.1 with a valid client certificate: chunked uploads that go on past the
 *                body limit (up to `capBytes` each), one after the other on each connection
 */
import { setPriority } from "node:os";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { SERVERNAME } from "../gateway/load.ts";
import { rawH2 } from "../../test/helpers/h2-raw.ts";

export interface AttackJob {
  kind: "rapid-reset" | "slow-headers" | "idle-tcp" | "upload";
  port: number;
  conns: number;
  /** Hard bound on the attack, whatever the parent does. */
  maxMs: number;
  /** Request path (rapid-reset, slow-headers, upload). */
  path?: string;
  tls?: { ca: string; cert: string; key: string };
  /** slow-headers: one byte per connection every this many ms. */
  byteEveryMs?: number;
  /** upload: bytes sent per upload at most (past the limit). */
  capBytes?: number;
  /** Source address of every connection (a loopback address); default the system's choice. */
  localAddress?: string;
  /** CPU priority of the attacker process (nice, 0-19). */
  nice?: number;
}

type Counters = Record<string, number>;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let stopping = false;
const counters: Counters = {};
const bump = (k: string, n = 1): void => void (counters[k] = (counters[k] ?? 0) + n);

function rapidReset(j: AttackJob): Promise<void>[] {
  const one = async (): Promise<void> => {
    while (!stopping) {
      bump("sessions");
      const c = await rawH2({ port: j.port, ca: j.tls!.ca, cert: { certPem: j.tls!.cert, keyPem: j.tls!.key }, ...(j.localAddress ? { localAddress: j.localAddress } : {}) }).catch(() => null);
      if (!c) {
        bump("connectErrors");
      } else {
        while (!stopping && !c.closed) {
          // A batch of HEADERS + RST_STREAM pairs in one write, then let the socket flush and read;
          // no more while the kernel has not taken the last batches (bounded memory here).
          if (c.buffered < 1024 * 1024) {
            for (let i = 0; i < 50; i++) c.openAndCancel(j.path!);
            c.flush();
            bump("streams", 50);
          }
          await new Promise((r) => setTimeout(r, c.buffered < 1024 * 1024 ? 0 : 5));
        }
        if (c.goaway !== undefined) bump(`goaway ${c.goaway}`);
        bump("answered", c.answered.size);
        c.destroy();
      }
      if (!stopping) await sleep(100); // a bounded reconnect rate
    }
  };
  return Array.from({ length: j.conns }, one);
}

/** Keeps `j.conns` connections open (opened again when the server closes one), each built by `open`. */
function holdMany(j: AttackJob, open: (onClose: () => void) => Socket | TLSSocket): Promise<void>[] {
  const slot = async (): Promise<void> => {
    while (!stopping) {
      const closed = new Promise<void>((r) => {
        const s = open(r);
        sockets.add(s);
        s.on("error", () => bump("errors"));
        s.once("close", () => {
          sockets.delete(s);
          r();
        });
      });
      await closed;
      if (!stopping) {
        bump("closedByServer");
        await sleep(200);
      }
    }
  };
  // Opened 50 every 50 ms so the ramp does not itself become a handshake flood.
  return Array.from({ length: j.conns }, (_, i) => sleep(Math.floor(i / 50) * 50).then(slot));
}
const sockets = new Set<Socket>();
const from = (j: AttackJob): { localAddress?: string } => (j.localAddress ? { localAddress: j.localAddress } : {});

function slowHeaders(j: AttackJob): Promise<void>[] {
  const head = `GET ${j.path} HTTP/1.1\r\nHost: ${SERVERNAME}\r\nUser-Agent: slow\r\nX-Pad: `;
  return holdMany(j, () => {
    const s = tlsConnect({ host: "127.0.0.1", port: j.port, ca: j.tls!.ca, servername: SERVERNAME, ALPNProtocols: ["http/1.1"], ...from(j) });
    s.once("secureConnect", () => {
      bump("opened");
      let i = 0;
      const tick = (): void => {
        if (s.destroyed || stopping) return;
        s.write(i < head.length ? head[i]! : "a");
        i++;
        bump("bytes");
        timer = setTimeout(tick, j.byteEveryMs ?? 1000);
      };
      let timer = setTimeout(tick, Math.random() * (j.byteEveryMs ?? 1000));
      s.once("close", () => clearTimeout(timer));
    });
    return s;
  });
}

function idleTcp(j: AttackJob): Promise<void>[] {
  return holdMany(j, () => {
    const s = netConnect({ port: j.port, host: "127.0.0.1", ...from(j) });
    s.once("connect", () => bump("opened"));
    return s;
  });
}

function upload(j: AttackJob): Promise<void>[] {
  const data = Buffer.alloc(64 * 1024, 0x61);
  const frame = Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from("\r\n")]);
  const one = async (): Promise<void> => {
    while (!stopping) {
      bump("uploads");
      const outcome = await new Promise<string>((resolve) => {
        const s = tlsConnect({ host: "127.0.0.1", port: j.port, ...j.tls!, servername: SERVERNAME, ALPNProtocols: ["http/1.1"], ...from(j) });
        sockets.add(s);
        let done = false;
        const finish = (why: string): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          s.destroy();
          sockets.delete(s);
          resolve(why);
        };
        const timer = setTimeout(() => finish("timeout"), 60_000);
        s.on("error", () => finish("reset"));
        s.on("close", () => finish("closed"));
        s.on("data", (d: Buffer) => finish(`status ${/^HTTP\/1\.1 (\d+)/.exec(d.toString("latin1"))?.[1] ?? "?"}`));
        s.once("secureConnect", async () => {
          s.write(`POST ${j.path} HTTP/1.1\r\nHost: ${SERVERNAME}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`);
          let sent = 0;
          while (!done && !stopping && sent < j.capBytes!) {
            sent += data.length;
            bump("bytesSent", data.length);
            if (!s.write(frame))
              await new Promise<void>((r) => {
                const go = (): void => (s.off("drain", go), s.off("close", go), r());
                s.on("drain", go);
                s.on("close", go);
              });
          }
          if (!done && !stopping) s.write("0\r\n\r\n"); // the whole (oversized) body sent: wait for the answer
          if (stopping) finish("stopped");
        });
      });
      bump(outcome);
    }
  };
  return Array.from({ length: j.conns }, one);
}

async function main(): Promise<void> {
  const j = JSON.parse(process.argv[2]!) as AttackJob;
  if (j.nice) setPriority(j.nice);
  const t0 = performance.now();
  const runs: Promise<void>[] = [];
  // The counters go out the moment the attack stops (before the clean-up, which may be slow with
  // many half-open streams); the process then exits within 5 s whatever the clean-up does.
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(JSON.stringify({ ...counters, ms: Math.round(performance.now() - t0) }) + "\n");
    for (const s of sockets) s.destroy();
    setTimeout(() => process.exit(0), 5000).unref();
    void Promise.all(runs).then(() => process.exit(0));
  };
  setTimeout(stop, j.maxMs).unref();
  process.stdin.resume();
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  runs.push(...(j.kind === "rapid-reset" ? rapidReset(j) : j.kind === "slow-headers" ? slowHeaders(j) : j.kind === "idle-tcp" ? idleTcp(j) : upload(j)));
  // "started" once the connections are (mostly) up: the ramp of holdMany, a moment for the others
  // (at most 15 s: 95% of the connections open, or 1 s for the kinds that open few).
  const holding = j.kind === "slow-headers" || j.kind === "idle-tcp";
  const rampEnd = Date.now() + (holding ? 15_000 : 1000);
  while (Date.now() < rampEnd && !stopping && (!holding || (counters.opened ?? 0) < j.conns * 0.95)) await sleep(100);
  process.stdout.write(`started ${JSON.stringify({ ...counters, rampMs: Math.round(performance.now() - t0) })}\n`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
