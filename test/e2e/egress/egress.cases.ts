/**
 * The egress cases every route must pass, run by one test file per route (direct, proxy without
 * authentication, proxy with Basic authentication) against a real Squid and the local internet.
 * Each case checks what arrived (bytes, or the NetError code, hop and host) and what was logged.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { NetError } from "../../../src/errors.ts";
import { LogSet, parseLines, type ComponentLog, type ParsedLine } from "../../../src/logs/cmtrace.ts";
import { closeMidBody, hang, refusingPort, serveBytes, startInternet, type Internet } from "../../helpers/internet.ts";
import { startSquid, type AccessEntry, type TestSquid } from "../../helpers/squid.ts";
import { Egress, basicAuthorization, type EgressOptions } from "../../../src/egress/egress.ts";
import type { EgressRoute } from "../../../src/egress/route.ts";
import { LOG_FILES } from "../../../src/logs/files.ts";

export type Variant = "direct" | "proxy" | "proxy+auth";

export const PROXY_ACCOUNT = { username: "svc-proxy", password: "pr0xy:Pa55 wörd" };

export interface Fixture {
  internet: Internet;
  squid?: TestSquid;
  route: EgressRoute;
  log: ComponentLog;
  /** Lines of the egress log written since `mark` (a previous `lines().length`). */
  lines(mark?: number): ParsedLine[];
  rawLog(): string;
  /** A new Egress on the fixture's route, trusting the test CA (and resolving like Squid for direct). */
  egress(opts?: EgressOptions): Egress;
  close(): Promise<void>;
}

export async function setUp(variant: Variant): Promise<Fixture> {
  const internet = await startInternet();
  const squid =
    variant === "direct" ? undefined : await startSquid({ hosts: internet.hosts(), ...(variant === "proxy+auth" ? { auth: PROXY_ACCOUNT } : {}) });
  const route: EgressRoute = !squid
    ? { mode: "direct" }
    : { mode: "proxy", host: squid.host, port: squid.port, ...(variant === "proxy+auth" ? { credentials: PROXY_ACCOUNT } : {}) };
  const dir = mkdtempSync(join(tmpdir(), "opencmg-egress-"));
  const logs = new LogSet({ dir });
  const log = logs.component(LOG_FILES.egress);
  const rawLog = (): string => {
    try {
      return readFileSync(join(dir, "egress.log"), "utf8");
    } catch {
      return "";
    }
  };
  const made: Egress[] = [];
  return {
    internet,
    squid,
    route,
    log,
    lines: (mark = 0) => parseLines(rawLog()).slice(mark),
    rawLog,
    egress(opts = {}) {
      // Direct routes resolve names themselves: through the test map, so nothing leaves the machine.
      const e = new Egress(route, { log, ca: [internet.ca.certPem], ...(route.mode === "direct" ? { lookup: internet.lookup } : {}), ...opts });
      made.push(e);
      return e;
    },
    async close() {
      await Promise.all(made.map((e) => e.close().catch(() => {})));
      await squid?.stop();
      await internet.stop();
      logs.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

async function rejectsNet(p: Promise<unknown>, code: number, hop: "proxy" | "target", host: string): Promise<NetError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof NetError, `expected NetError ${code}, got ${caught === undefined ? "success" : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.hop, hop, caught.message);
  assert.equal(caught.host, host, caught.message);
  assert.ok(caught.message.includes(host), `message names the host: ${caught.message}`);
  assert.match(caught.message, /check/, "message says what to check");
  return caught;
}

/** Reads a response body, returning the NetError it fails with. */
async function bodyOf(e: Egress, url: string, opts: Parameters<Egress["request"]>[1] = {}): Promise<Buffer> {
  const res = await e.request(url, opts);
  return Buffer.from(await res.body.arrayBuffer());
}

export function egressCases(variant: Variant): void {
  describe(`egress (${variant})`, () => {
    let f: Fixture;
    let egress: Egress;
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const via = variant === "direct" ? "direct" : variant === "proxy" ? "proxy 127.0.0.1:" : `as ${PROXY_ACCOUNT.username}`;

    before(async () => {
      f = await setUp(variant);
      f.internet.route("/kb/update.cab", serveBytes(body));
      f.internet.route("/hang", hang());
      f.internet.route("/cut", closeMidBody(body, 256 * 1024));
      egress = f.egress();
    });
    after(async () => {
      await f?.close();
    });

    for (const scheme of ["http", "https"] as const) {
      it(`${scheme}: the bytes arrive intact, and the attempt is logged without the password`, async () => {
        const mark = f.lines().length;
        const url = f.internet.url(scheme, "/kb/update.cab");
        const got = await bodyOf(egress, url);
        assert.equal(got.length, body.length);
        assert.equal(sha(got), sha(body));
        const lines = f.lines(mark);
        assert.equal(lines.length, 1, JSON.stringify(lines));
        assert.equal(lines[0]!.type, 1);
        assert.ok(lines[0]!.text.startsWith(`GET ${scheme}://download.windowsupdate.com:`), lines[0]!.text);
        assert.ok(lines[0]!.text.includes(via), lines[0]!.text);
        assert.ok(!f.rawLog().includes(PROXY_ACCOUNT.password));
        assert.ok(!f.rawLog().includes(basicAuthorization(PROXY_ACCOUNT).slice(6)));
      });

      it(`${scheme}: a name that does not resolve -> 12007 at the target`, async () => {
        const mark = f.lines().length;
        const err = await rejectsNet(egress.request(`${scheme}://nothing-here.invalid/kb/update.cab`), 12007, "target", "nothing-here.invalid");
        if (variant !== "direct") assert.match(err.message, /proxy 127\.0\.0\.1:\d+ could not resolve/);
        const failed = f.lines(mark).filter((l) => l.type === 3);
        assert.equal(failed.length, 1);
        assert.match(failed[0]!.text, /error 12007 at the target: .*nothing-here\.invalid/);
      });

      it(`${scheme}: a target that refuses -> 12029 at the target`, async () => {
        const port = await refusingPort();
        const host = `download.windowsupdate.com:${port}`;
        await rejectsNet(egress.request(`${scheme}://${host}/x`), 12029, "target", host);
        assert.match(f.lines().at(-1)!.text, /error 12029 at the target/);
      });

      it(`${scheme}: a target that never answers -> 12002 at the target`, async () => {
        const url = f.internet.url(scheme, "/hang");
        await rejectsNet(egress.request(url, { headersTimeout: 300 }), 12002, "target", new URL(url).host);
        assert.match(f.lines().at(-1)!.text, /error 12002 at the target/);
      });

      it(`${scheme}: a target that closes mid-body -> 12030 while reading, nothing else`, async () => {
        const url = f.internet.url(scheme, "/cut");
        const res = await egress.request(url);
        assert.equal(res.statusCode, 200);
        await rejectsNet(res.body.arrayBuffer(), 12030, "target", new URL(url).host);
        assert.match(f.lines().at(-1)!.text, /error 12030 at the target/);
      });
    }

    it("https: a certificate for another name -> 12175", async () => {
      const url = f.internet.url("https", "/kb/update.cab", "wrong-name.example");
      const err = await rejectsNet(egress.request(url), 12175, "target", new URL(url).host);
      assert.match(err.message, /ERR_TLS_CERT_ALTNAME_INVALID/);
    });

    it("https: a certificate from an untrusted CA -> 12175", async () => {
      const url = f.internet.url("https", "/kb/update.cab", "untrusted.example");
      await rejectsNet(egress.request(url), 12175, "target", new URL(url).host);
    });

    it("https: without the test CA the system roots do not trust the target -> 12175", async () => {
      const e = f.egress({ ca: [] });
      await rejectsNet(e.request(f.internet.url("https", "/kb/update.cab")), 12175, "target", `download.windowsupdate.com:${f.internet.httpsPort}`);
    });

    it("connect(): a raw tunnel carries bytes both ways", async () => {
      const socket = await egress.connect("download.windowsupdate.com", f.internet.echoPort);
      const out = randomBytes(512 * 1024);
      const received: Buffer[] = [];
      let n = 0;
      const done = new Promise<void>((resolve, reject) => {
        socket.on("data", (c: Buffer) => {
          received.push(c);
          n += c.length;
          if (n >= out.length) resolve();
        });
        socket.once("error", reject);
        socket.once("close", () => (n >= out.length ? resolve() : reject(new Error(`closed after ${n} bytes`))));
      });
      socket.write(out);
      await done;
      socket.destroy();
      assert.equal(sha(Buffer.concat(received)), sha(out));
      assert.ok(f.lines().some((l) => l.text.startsWith(`Connecting to download.windowsupdate.com:${f.internet.echoPort}`)));
    });

    it("connect(): a target that refuses -> 12029 at the target", async () => {
      const port = await refusingPort();
      await rejectsNet(egress.connect("download.windowsupdate.com", port), 12029, "target", `download.windowsupdate.com:${port}`);
    });

    for (const scheme of ["http", "https"] as const) {
      it(`${scheme}: 20 sequential requests reuse the connection`, async () => {
        const e = f.egress();
        // A name no other case uses, so the proxy's log lines of this case are easy to pick out.
        const url = f.internet.url(scheme, "/kb/update.cab", "go.microsoft.com");
        const authority = new URL(url).host;
        const before = f.internet.connections()[scheme];
        for (let i = 0; i < 20; i++) assert.equal((await bodyOf(e, url)).length, body.length);
        await e.close(); // CONNECT lines reach Squid's log when the tunnel closes
        // Connections the target accepted: one per tunnel (https), or Squid's own (http via proxy,
        // which may reuse one it already had).
        const atTarget = f.internet.connections()[scheme] - before;
        assert.ok(atTarget <= 2, `target saw ${atTarget} connections for 20 requests`);
        if (!f.squid || scheme === "https") assert.ok(atTarget >= 1);
        if (f.squid) {
          const ours = (xs: AccessEntry[]): AccessEntry[] => xs.filter((x) => x.url === url || x.url === authority);
          // One GET line per request (absolute form); one CONNECT line per tunnel, once it is closed.
          const entries = ours(
            await f.squid.waitForEntries((xs) => (scheme === "http" ? ours(xs).length >= 20 : ours(xs).length >= atTarget)),
          );
          assert.ok(entries.every((x) => x.method === (scheme === "http" ? "GET" : "CONNECT")));
          if (scheme === "http") assert.equal(entries.length, 20);
          // Connections from this egress to the proxy, told apart by their client port.
          const clientConnections = new Set(entries.map((x) => x.clientPort)).size;
          assert.ok(clientConnections >= 1 && clientConnections <= 2, `${clientConnections} connections to the proxy for 20 requests`);
        }
      });
    }
  });
}
