import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ComponentLog } from "../../logs/cmtrace.ts";
import { StatusLimiter, type StatusLimits } from "./status-limit.ts";

/** A limiter over an in-memory count of stored messages, with the lines it logs. */
function limiter(limits: StatusLimits) {
  const clock = { now: 1_000_000 };
  const stored = new Map<string, number>();
  const refused = new Map<string, number>();
  const lines: string[] = [];
  const log = { info: (t: string) => lines.push(t), warn: (t: string) => lines.push(t), error: (t: string) => lines.push(t) } as unknown as ComponentLog;
  const l = new StatusLimiter({
    readLimits: async () => limits,
    countSince: async (id) => stored.get(id) ?? 0,
    noteRefused: async (id, n) => void refused.set(id, (refused.get(id) ?? 0) + n),
    log,
    now: () => clock.now,
  });
  const take = async (id: string, n: number) => {
    const v = await l.take(id, id, n);
    if (v.allowed) stored.set(id, (stored.get(id) ?? 0) + n);
    return v;
  };
  return { l, clock, take, refused, lines };
}

describe("status message limits per client", () => {
  it("lets a client upload its burst, refuses more with the time the bucket needs, and refills with time", async () => {
    const t = limiter({ perMinute: 600, burst: 500, perDay: 100_000 });
    for (let i = 0; i < 5; i++) assert.deepEqual(await t.take("a", 100), { allowed: true });
    const v = await t.take("a", 100);
    assert.equal(v.allowed, false);
    assert.deepEqual(v.allowed === false && [v.scope, v.retryAfterSeconds], ["rate", 10], "100 messages at 10 a second");
    assert.deepEqual(await t.take("b", 100), { allowed: true }, "another client has its own bucket");
    t.clock.now += 10_000;
    assert.deepEqual(await t.take("a", 100), { allowed: true }, "a refused upload took nothing: it fits once refilled");
  });

  it("refuses past the count per day without taking from the bucket", async () => {
    const t = limiter({ perMinute: 1_000_000, burst: 1000, perDay: 600 });
    assert.equal((await t.take("a", 500)).allowed, true);
    const v = await t.take("a", 200);
    assert.deepEqual(v.allowed === false && [v.scope, v.retryAfterSeconds], ["day", 3600]);
    assert.equal((await t.take("a", 100)).allowed, true, "what still fits the day goes on");
  });

  it("logs a crossing once and the way back once, and counts every refused message", async () => {
    const t = limiter({ perMinute: 60, burst: 500, perDay: 100_000 });
    assert.equal((await t.take("a", 500)).allowed, true);
    for (let i = 0; i < 1000; i++) assert.equal((await t.take("a", 10)).allowed, false);
    await t.l.close();
    assert.equal(t.refused.get("a"), 10_000);
    assert.equal(t.lines.filter((l) => /crossed its limit/.test(l)).length, 1, t.lines.join("\n"));
    t.clock.now += 60_000;
    assert.equal((await t.take("a", 10)).allowed, true);
    assert.match(t.lines.at(-1)!, /^Client a is back under its status message limits: 10000 message\(s\) were refused meanwhile/);
  });
});
