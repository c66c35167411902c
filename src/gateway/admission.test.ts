// Unfinished handshakes: counted per listener and per address, the oldest closed to make room.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import net from "node:net";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { makeTestPki, type TestPki } from "../../test/helpers/pki-fixtures.ts";
import { until } from "../../test/helpers/until.ts";
import { Admission, listenGated, worthLogging } from "./admission.ts";

let port = 40000;
/** A stand-in socket: an address, a port, and destroy() that closes it. */
function fake(address: string): Socket & { destroyed: boolean } {
  const s = new EventEmitter() as unknown as Socket & { destroyed: boolean };
  Object.assign(s, { remoteAddress: address, remotePort: port++, destroyed: false, bytesRead: 0 });
  s.destroy = (() => {
    s.destroyed = true;
    s.emit("close");
    return s;
  }) as Socket["destroy"];
  return s;
}

describe("admission of unfinished handshakes", () => {
  it("closes the oldest of the same address over the per-address cap, and leaves other addresses alone", () => {
    const a = new Admission({ maxPending: 100, maxPendingPerAddress: 2 });
    const other = fake("10.0.0.9");
    a.accepted(other);
    const [s1, s2, s3] = [fake("10.0.0.1"), fake("10.0.0.1"), fake("10.0.0.1")];
    a.accepted(s1);
    a.accepted(s2);
    a.accepted(s3);
    assert.deepEqual([s1.destroyed, s2.destroyed, s3.destroyed, other.destroyed], [true, false, false, false]);
    assert.equal(a.pending, 3);
    assert.equal(a.evicted, 1);
  });

  it("closes the oldest overall over the listener's cap", () => {
    const a = new Admission({ maxPending: 2, maxPendingPerAddress: 0 });
    const [s1, s2, s3] = [fake("10.0.0.1"), fake("10.0.0.2"), fake("10.0.0.3")];
    a.accepted(s1);
    a.accepted(s2);
    a.accepted(s3);
    assert.deepEqual([s1.destroyed, s2.destroyed, s3.destroyed], [true, false, false]);
  });

  it("says why it closed each connection: its place taken, the waiting queue full, or waited too long", async () => {
    // Ungated: a newcomer over the cap takes the oldest place.
    const closed: string[] = [];
    const ungated = new Admission({ maxPending: 1, maxPendingPerAddress: 0 });
    ungated.onClosed = (why) => closed.push(why);
    ungated.accepted(fake("10.0.0.1"));
    ungated.accepted(fake("10.0.0.2"));
    assert.deepEqual(closed, ["room"]);

    // Gated: newcomers wait; past the address's waiting bound the oldest waiting goes.
    const gated = new Admission({ maxPending: 1, maxPendingPerAddress: 1, maxWaitingPerAddress: 1, maxWaiting: 10, waitTimeoutMs: 30 });
    const why: string[] = [];
    gated.onClosed = (w) => why.push(w);
    const [held, w1, w2] = [fake("10.0.0.1"), fake("10.0.0.1"), fake("10.0.0.1")];
    gated.accepted(held);
    gated.accepted(w1);
    gated.accepted(w2);
    assert.equal(w1.destroyed, true);
    assert.deepEqual(why, ["queue_full"]);
    // The place stays held: w2 waits past waitTimeoutMs and is closed for it.
    await until("the waiting connection closed", () => w2.destroyed);
    assert.deepEqual(why, ["queue_full", "wait_timeout"]);
    assert.equal(gated.waiting, 0);
    assert.equal(held.destroyed, false);
  });

  it("stops counting a connection once its handshake is done or it closes", () => {
    let evicted = 0;
    const a = new Admission({ maxPending: 2, maxPendingPerAddress: 2 });
    a.onClosed = () => evicted++;
    const [s1, s2] = [fake("10.0.0.1"), fake("10.0.0.1")];
    a.accepted(s1);
    a.accepted(s2);
    a.settled(s1);
    s2.emit("close");
    assert.equal(a.pending, 0);
    const s3 = fake("10.0.0.1");
    a.accepted(s3);
    a.accepted(fake("10.0.0.1"));
    assert.equal(s1.destroyed || s2.destroyed || s3.destroyed, false, "a settled or closed connection is never evicted, and room was left");
    assert.equal(evicted, 0);
  });

  it("gated: an address at its cap waits for its places, before any TLS work; newest first; the oldest waiting is closed past the waiting cap", () => {
    const started: Socket[] = [];
    const a = new Admission({ maxPending: 100, maxPendingPerAddress: 2, maxWaitingPerAddress: 2, waitTimeoutMs: 600_000, graceMs: 600_000 });
    a.start = (s) => void started.push(s);
    const [s1, s2, s3, s4, s5] = Array.from({ length: 5 }, () => fake("10.0.0.1"));
    for (const s of [s1!, s2!, s3!, s4!, s5!]) a.accepted(s);
    // Two handed to TLS, two waiting (not handed, not closed), the oldest waiting (s3) closed for s5.
    assert.deepEqual(started, [s1, s2]);
    assert.deepEqual([s1, s2, s3, s4, s5].map((s) => s!.destroyed), [false, false, true, false, false]);
    assert.equal(a.waiting, 2);
    // Another address is not held up.
    const other = fake("10.0.0.9");
    a.accepted(other);
    assert.equal(started.at(-1), other);
    // A place frees up: the newest waiting takes it.
    a.settled(s1!);
    assert.equal(started.at(-1), s5);
    s2!.emit("close");
    assert.equal(started.at(-1), s4);
    assert.equal(a.waiting, 0);
    assert.equal(a.evicted, 1);
  });

  it("gated: a handshake that held its place past the grace gives it to a newcomer of its address", () => {
    const started: Socket[] = [];
    const a = new Admission({ maxPending: 100, maxPendingPerAddress: 1, maxWaitingPerAddress: 4, waitTimeoutMs: 600_000, graceMs: 0 });
    a.start = (s) => void started.push(s);
    const [s1, s2] = [fake("10.0.0.1"), fake("10.0.0.1")];
    a.accepted(s1);
    a.accepted(s2);
    assert.deepEqual([s1.destroyed, s2.destroyed], [true, false]);
    assert.deepEqual(started, [s1, s2]);
    assert.equal(a.waiting, 0);
  });

  it("gated: a place whose peer has sent bytes (its handshake under way) is never taken, however long it is held; an idle one is", () => {
    let now = 0;
    const started: Socket[] = [];
    const a = new Admission({ maxPending: 2, maxPendingPerAddress: 2, maxWaitingPerAddress: 4, waitTimeoutMs: 600_000, graceMs: 1000 }, () => now);
    a.start = (s) => void started.push(s);
    const [busy, idle] = [fake("10.0.0.1"), fake("10.0.0.2")];
    a.accepted(busy);
    a.accepted(idle);
    Object.assign(busy, { bytesRead: 517 });
    now += 4000;
    const [n1, n2] = [fake("10.0.0.3"), fake("10.0.0.4")];
    a.accepted(n1);
    assert.deepEqual([busy.destroyed, idle.destroyed], [false, true], "the idle place went to the newcomer");
    a.accepted(n2);
    assert.equal(busy.destroyed, false, "a handshake under way is not closed for a newcomer");
    assert.deepEqual(started, [busy, idle, n1]);
    assert.equal(a.waiting, 1);
  });

  it("gated: one waiting connection per address at most, when that is the bound", () => {
    const a = new Admission({ maxPending: 100, maxPendingPerAddress: 1, maxWaitingPerAddress: 1, waitTimeoutMs: 600_000, graceMs: 600_000 });
    const [s1, s2, s3, s4] = Array.from({ length: 4 }, () => fake("10.0.0.1"));
    for (const s of [s1!, s2!, s3!, s4!]) a.accepted(s);
    assert.deepEqual([s1, s2, s3, s4].map((s) => s!.destroyed), [false, true, true, false]);
    assert.equal(a.waiting, 1);
  });

  it("gated: a waiting connection that closes leaves the queue, and one that waits too long is closed", async () => {
    const started: Socket[] = [];
    const a = new Admission({ maxPending: 100, maxPendingPerAddress: 1, maxWaitingPerAddress: 4, waitTimeoutMs: 1, graceMs: 600_000 });
    a.start = (s) => void started.push(s);
    const [s1, s2, s3] = [fake("10.0.0.1"), fake("10.0.0.1"), fake("10.0.0.1")];
    a.accepted(s1);
    a.accepted(s2);
    a.accepted(s3);
    s2.emit("close");
    assert.equal(a.waiting, 1);
    // Bounded: only a broken wait timeout ever waits the whole bound.
    for (let i = 0; i < 500 && !s3.destroyed; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s3.destroyed, true);
    assert.equal(a.waiting, 0);
    assert.deepEqual(started, [s1]);
  });

  it("gated: at the listener's cap, newcomers of any address wait instead of closing a handshake in progress; newest first; the oldest waiting goes past the total waiting cap", () => {
    const started: Socket[] = [];
    const a = new Admission({ maxPending: 2, maxPendingPerAddress: 2, maxWaitingPerAddress: 4, maxWaiting: 3, waitTimeoutMs: 600_000, graceMs: 600_000 });
    a.start = (s) => void started.push(s);
    const [h1, h2] = [fake("10.0.0.1"), fake("10.0.0.2")];
    a.accepted(h1);
    a.accepted(h2);
    const waiters = ["10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"].map(fake);
    for (const w of waiters) a.accepted(w);
    // Nothing in progress was closed; three wait, the oldest waiting (10.0.0.3) closed for the fourth.
    assert.deepEqual([h1.destroyed, h2.destroyed], [false, false]);
    assert.deepEqual(started, [h1, h2]);
    assert.deepEqual(waiters.map((w) => w.destroyed), [true, false, false, false]);
    assert.equal(a.waiting, 3);
    // Places free up: the newest waiting take them, one place each.
    a.settled(h1);
    assert.deepEqual(started, [h1, h2, waiters[3]]);
    h2.emit("close");
    assert.deepEqual(started, [h1, h2, waiters[3], waiters[2]]);
    assert.equal(a.waiting, 1);
    assert.equal(a.pending, 2);
  });

  it("gated: a waiting connection whose address is at its cap is passed over for a newer one of an address with room", () => {
    const started: Socket[] = [];
    const a = new Admission({ maxPending: 3, maxPendingPerAddress: 2, maxWaitingPerAddress: 4, waitTimeoutMs: 600_000, graceMs: 600_000 });
    a.start = (s) => void started.push(s);
    const [n1, n2, n3] = [fake("10.0.0.1"), fake("10.0.0.1"), fake("10.0.0.1")];
    const other = fake("10.0.0.2");
    const busy = fake("10.0.0.3");
    a.accepted(n1);
    a.accepted(n2);
    a.accepted(busy);
    a.accepted(other); // the listener is full: waits
    a.accepted(n3); // its address is full: waits, newest
    a.settled(busy);
    // n3 is newer, but its address still holds two places: the place is other's.
    assert.deepEqual(started, [n1, n2, busy, other]);
    a.settled(n1);
    assert.deepEqual(started, [n1, n2, busy, other, n3]);
  });

  it("gated: the grace follows recent handshake times (at least the floor, at most half the timeout), so a slow but busy handshake is not taken for an idle one", () => {
    let now = 0;
    const started: Socket[] = [];
    const a = new Admission({ maxPending: 1, maxPendingPerAddress: 1, maxWaitingPerAddress: 4, waitTimeoutMs: 10_000, graceMs: 100 }, () => now);
    a.start = (s) => void started.push(s);
    assert.equal(a.graceMs, 100);
    // Handshakes have been taking 1 s each (a saturated CPU): the grace grows towards 4 s.
    for (let i = 0; i < 64; i++) {
      const s = fake("10.0.0.1");
      a.accepted(s);
      now += 1000;
      a.settled(s);
    }
    assert.ok(a.graceMs > 3900 && a.graceMs <= 4000, `grace ${a.graceMs}`);
    const slow = fake("10.0.0.1");
    a.accepted(slow);
    now += 2000;
    const newcomer = fake("10.0.0.1");
    a.accepted(newcomer);
    assert.equal(slow.destroyed, false, "a handshake within four recent handshake times keeps its place");
    assert.equal(a.waiting, 1);
    now += 3000;
    a.accepted(fake("10.0.0.1"));
    assert.equal(slow.destroyed, true, "past the grace the place is stale and goes to a newcomer");
    // Capped at half the handshake timeout, however slow handshakes were.
    const b = new Admission({ maxPending: 1, maxPendingPerAddress: 1, maxWaitingPerAddress: 1, waitTimeoutMs: 10_000, graceMs: 100 }, () => now);
    for (let i = 0; i < 64; i++) {
      const s = fake("10.0.0.9");
      b.accepted(s);
      now += 60_000;
      b.settled(s);
    }
    assert.equal(b.graceMs, 5000);
  });

  it("gated: a lowered limit closes nothing and makes newcomers wait; raising it hands places to the newest waiting", () => {
    const started: Socket[] = [];
    const a = new Admission({ maxPending: 4, maxPendingPerAddress: 4, maxWaitingPerAddress: 8, waitTimeoutMs: 600_000, graceMs: 0 });
    a.start = (s) => void started.push(s);
    const first = [fake("10.0.0.1"), fake("10.0.0.2"), fake("10.0.0.3")];
    for (const s of first) a.accepted(s);
    a.setLimit(2);
    const [w1, w2] = [fake("10.0.0.4"), fake("10.0.0.5")];
    a.accepted(w1);
    a.accepted(w2);
    // Over the lowered limit, even with every place stale (grace 0): nothing closed, newcomers wait.
    assert.deepEqual([...first, w1, w2].map((s) => s.destroyed), [false, false, false, false, false]);
    assert.deepEqual(started, first);
    assert.equal(a.waiting, 2);
    a.setLimit(100);
    // Up to maxPending (4): the one free place goes to the newest waiting.
    assert.deepEqual(started.slice(3), [w2]);
    assert.equal(a.waiting, 1);
    first[0]!.emit("close");
    assert.deepEqual(started.slice(3), [w2, w1]);
  });

  it("logs floods at 1, 10, 100, 1000 ...", () => {
    assert.deepEqual([1, 2, 9, 10, 11, 100, 500, 1000].filter(worthLogging), [1, 10, 100, 1000]);
  });

  describe("on real sockets behind listenGated", () => {
    let pki: TestPki;
    before(async () => {
      pki = await makeTestPki({ serverName: "cmg.contoso.test" });
    });
    const open: net.Socket[] = [];
    after(() => {
      for (const s of open) s.destroy();
    });
    const connect = async (port: number): Promise<net.Socket> => {
      const s = net.connect(port, "127.0.0.1");
      open.push(s);
      s.on("error", () => {});
      await new Promise((r) => s.once("connect", r));
      return s;
    };

    it("a newcomer takes the place of a peer that sent nothing, never of one whose ClientHello has arrived; a TLS client still gets in after them", async () => {
      const server = tls.createServer({ cert: pki.server.certPem, key: pki.server.keyPem });
      const a = new Admission({ maxPending: 2, maxPendingPerAddress: 2, maxWaitingPerAddress: 8, waitTimeoutMs: 600_000, graceMs: 50 });
      server.on("secureConnection", (s) => a.settled(s));
      const front = await listenGated(server, a, "127.0.0.1", 0);
      try {
        const port = (front.address() as net.AddressInfo).port;
        // A handshake under way (the start of a ClientHello, then nothing), and an idle connection.
        const started = await connect(port);
        started.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
        const idle = await connect(port);
        await until("both hold places", () => a.pending === 2);
        // Long past the grace for both (well past what four recent handshake times could add: none finished yet).
        await new Promise((r) => setTimeout(r, 200));
        const client = tls.connect({ port, host: "127.0.0.1", ca: pki.root.certPem, servername: "cmg.contoso.test" });
        client.on("error", () => {});
        await new Promise<void>((resolve, reject) => {
          client.once("secureConnect", resolve);
          client.once("error", reject);
        });
        client.destroy();
        await until("the idle connection closed", () => idle.destroyed || idle.readableEnded || undefined);
        assert.equal(started.destroyed, false, "the connection that sent its ClientHello's first bytes keeps its place");
        assert.equal(a.evicted, 1);
      } finally {
        front.close();
      }
    });
  });
});

