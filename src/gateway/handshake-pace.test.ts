// Handshakes in progress follow the event loop's lag: fewer while it lags, back up to the cap after.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nextLimit, paceHandshakes } from "./handshake-pace.ts";

const o = { min: 16, max: 256, targetLagMs: 100 };

describe("handshake pacing", () => {
  it("shrinks by 30% over the target lag, down to the minimum, and grows by an eighth well under it, up to the cap", () => {
    let limit = 256;
    const down: number[] = [];
    for (let i = 0; i < 12; i++) down.push((limit = nextLimit(limit, 400, o)));
    assert.deepEqual(down.slice(0, 3), [179, 125, 87]);
    assert.equal(limit, 16, "never under the minimum");
    // Between half the target and the target: held.
    assert.equal(nextLimit(100, 70, o), 100);
    let steps = 0;
    while (limit < 256 && steps < 100) {
      limit = nextLimit(limit, 10, o);
      steps++;
    }
    assert.equal(limit, 256);
    assert.ok(steps > 5 && steps < 30, `back to the cap in ${steps} quiet intervals`);
    assert.equal(nextLimit(256, 0, o), 256, "never over the cap");
  });

  it("lowers the limit when this process's event loop is blocked", async () => {
    const limits: number[] = [];
    const pace = paceHandshakes((n) => limits.push(n), { ...o, intervalMs: 20 });
    try {
      // Whatever else the machine does, a loop blocked 300 ms lags at least 300 ms.
      for (let round = 0; round < 50 && limits.length === 0; round++) {
        const until = Date.now() + 300;
        while (Date.now() < until) {
          /* busy: the loop cannot turn */
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(limits.length > 0 && limits[0]! < 256, `limits set: ${limits.join(",")}`);
      assert.equal(pace.limit, limits.at(-1));
    } finally {
      pace.stop();
    }
  });
});
