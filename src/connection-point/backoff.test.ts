import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelay, sleep } from "./backoff.ts";

describe("backoffDelay", () => {
  it("doubles from the minimum up to the maximum, with half of each delay random", () => {
    const o = { minDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(backoffDelay(0, o, () => 0), 50);
    assert.equal(backoffDelay(0, o, () => 1), 100);
    assert.equal(backoffDelay(2, o, () => 1), 400);
    assert.equal(backoffDelay(3, o, () => 0), 400);
    assert.equal(backoffDelay(10, o, () => 1), 1000);
    assert.equal(backoffDelay(10, o, () => 0), 500);
    assert.equal(backoffDelay(5000, o, () => 1), 1000, "no overflow on long outages");
  });

  it("has defaults of 0.5 s to 30 s", () => {
    assert.equal(backoffDelay(0, {}, () => 1), 500);
    assert.equal(backoffDelay(100, {}, () => 1), 30_000);
  });
});

describe("sleep", () => {
  it("returns at once when aborted", async () => {
    const ac = new AbortController();
    const p = sleep(60_000, ac.signal);
    ac.abort();
    await p;
    await sleep(60_000, ac.signal);
  });
});
