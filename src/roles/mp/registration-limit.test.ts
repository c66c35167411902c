import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RegistrationLimiter } from "./registration-limit.ts";

describe("registration limits without a certificate", () => {
  it("lets one source make its burst, then refuses it with the time to wait, and refills with time", () => {
    let now = 1_000_000;
    const l = new RegistrationLimiter({ perSourceBurst: 3, perSourcePerMinute: 6, totalBurst: 100, totalPerMinute: 100 }, () => now);
    for (let i = 0; i < 3; i++) assert.deepEqual(l.take("10.0.0.1"), { allowed: true });
    assert.deepEqual(l.take("10.0.0.1"), { allowed: false, scope: "source", retryAfterSeconds: 10 });
    assert.deepEqual(l.take("10.0.0.2"), { allowed: true }, "another source has its own bucket");
    now += 10_000; // 6 a minute: one every 10 s
    assert.deepEqual(l.take("10.0.0.1"), { allowed: true });
    assert.equal(l.take("10.0.0.1").allowed, false);
  });

  it("caps all sources together", () => {
    const now = 5_000;
    const l = new RegistrationLimiter({ perSourceBurst: 10, perSourcePerMinute: 10, totalBurst: 4, totalPerMinute: 2 }, () => now);
    const verdicts = Array.from({ length: 6 }, (_, i) => l.take(`10.0.1.${i}`));
    assert.equal(verdicts.filter((v) => v.allowed).length, 4);
    assert.deepEqual(verdicts[5], { allowed: false, scope: "total", retryAfterSeconds: 30 });
  });

  it("keeps a bounded number of sources, however many addresses ask", () => {
    const l = new RegistrationLimiter({ perSourceBurst: 1, perSourcePerMinute: 1, totalBurst: 1e9, totalPerMinute: 1e9 }, () => 0);
    for (let i = 0; i < 20_000; i++) l.take(`source-${i}`);
    // The first sources were forgotten (a fresh bucket), the most recent are still limited.
    assert.equal(l.take("source-0").allowed, true);
    assert.equal(l.take("source-19999").allowed, false);
  });
});
