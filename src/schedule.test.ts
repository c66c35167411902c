import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { every } from "./schedule.ts";
import { until } from "../test/helpers/until.ts";

describe("every", () => {
  it("reads the interval again after each run, so a change applies without a restart", async () => {
    const intervals: number[] = [];
    let interval = 1;
    let runs = 0;
    const s = every(
      async () => {
        intervals.push(interval);
        return interval;
      },
      async () => {
        runs++;
        if (runs === 2) interval = 2; // the setting changed between runs
      },
      { firstDelayMs: 0, onError: (e) => assert.fail(String(e)) },
    );
    await until("four runs", () => runs >= 4);
    await s.stop();
    // every run is followed by a fresh read: the value after the change is the one used
    assert.ok(intervals.includes(2), `intervals read: ${intervals.join(",")}`);
  });

  it("runs nothing while switched off (null) and goes on after a failed run", async () => {
    let off = true;
    let runs = 0;
    const errors: unknown[] = [];
    const s = every(
      async () => (off ? null : 1),
      async () => {
        runs++;
        if (runs === 1) throw new Error("first run fails");
      },
      { firstDelayMs: 0, offRecheckMs: 1, onError: (e) => errors.push(e) },
    );
    let reads = 0;
    await until("some off rechecks", () => ++reads > 20);
    assert.equal(runs, 0);
    off = false;
    await until("two runs after switching on", () => runs >= 2);
    await s.stop();
    assert.equal(errors.length, 1);
    const after = runs;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(runs, after, "no run after stop");
  });
});
