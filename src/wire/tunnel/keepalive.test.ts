import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { keepAlive } from "./keepalive.ts";
import { until } from "../../../test/helpers/until.ts";

/** A session whose PINGs are answered (on the next turn of the event loop) or never. */
function fakeSession(answers: boolean) {
  const s = {
    destroyed: false,
    pings: 0,
    ping(cb: (err: Error | null) => void): boolean {
      s.pings++;
      if (answers) setImmediate(() => cb(null));
      return true;
    },
    destroy(): void {
      s.destroyed = true;
    },
  };
  return s;
}

describe("keepAlive", () => {
  it("keeps a session that answers its PINGs", async () => {
    const s = fakeSession(true);
    let missed = 0;
    const timer = keepAlive(s as never, { intervalMs: 5, onMissed: () => missed++ });
    await until("four PINGs", () => s.pings >= 4);
    clearInterval(timer);
    assert.equal(missed, 0);
    assert.equal(s.destroyed, false);
  });

  it("destroys a session whose PING stays unanswered for two intervals, and says so", async () => {
    const s = fakeSession(false);
    const timer = keepAlive(s as never, { intervalMs: 5, onMissed: () => {} });
    await until("the session destroyed", () => s.destroyed);
    clearInterval(timer);
    assert.equal(s.pings, 1, "no second PING while the first is unanswered");
  });

  it("gives a late answer one interval of grace (a stalled event loop is not a dead tunnel)", async () => {
    const s = fakeSession(false);
    let first: ((err: Error | null) => void) | undefined;
    s.ping = (cb) => {
      // The first answer comes late, as after a stall; the others at once.
      if (++s.pings === 1) first = cb;
      else setImmediate(() => cb(null));
      return true;
    };
    let ticks = 0;
    let missed = 0;
    const timer = keepAlive(s as never, {
      intervalMs: 5,
      onMissed: () => missed++,
      onTick: () => {
        if (++ticks === 2) setImmediate(() => first!(null));
      },
    });
    await until("three PINGs", () => s.pings >= 3);
    clearInterval(timer);
    assert.equal(missed, 0);
    assert.equal(s.destroyed, false);
  });

  it("keeps a tunnel whose answer is late while bytes keep arriving, and closes it once they stop", async () => {
    // The answer waits behind the peer's queued data (an overloaded reader): bytes still arrive.
    const s = fakeSession(false);
    let received = 0;
    let ticks = 0;
    let flowing = true;
    let missed = 0;
    const timer = keepAlive(s as never, {
      intervalMs: 5,
      received: () => received,
      onMissed: () => missed++,
      onTick: () => {
        ticks++;
        if (flowing) received += 100;
      },
    });
    await until("ten ticks with data arriving", () => ticks >= 10);
    assert.equal(s.destroyed, false, "a tunnel still receiving is alive");
    assert.equal(missed, 0);
    assert.equal(s.pings, 1, "no second PING while the first is unanswered");
    flowing = false;
    const stoppedAt = ticks;
    await until("the session destroyed", () => s.destroyed);
    clearInterval(timer);
    assert.equal(missed, 1);
    assert.ok(ticks - stoppedAt >= 2, "two silent intervals before it is declared dead");
  });
});
