import assert from "node:assert/strict";
import { test } from "node:test";
import { DpopNonces, NONCE_WINDOW_MS, ProofReplayCache } from "./dpop-nonce.ts";

test("16 instances: each takes its own nonces only, of this window and the previous one", () => {
  let now = 1_000 * NONCE_WINDOW_MS + 1;
  const instances = Array.from({ length: 16 }, (_, i) => new DpopNonces(`cmg1-${i}`, () => now));
  const nonces = instances.map((n) => n.current());
  for (const [i, inst] of instances.entries()) {
    for (const [j, nonce] of nonces.entries()) {
      const c = inst.check(nonce);
      if (i === j) assert.deepEqual(c, { ok: true, window: 1000, fresh: true });
      else assert.equal(c.ok, false, `instance ${i} took instance ${j}'s nonce`);
    }
  }
  // A restarted instance (a new secret, the same name) refuses what it handed out before.
  assert.equal(new DpopNonces("cmg1-0", () => now).check(nonces[0]).ok, false);
  now += NONCE_WINDOW_MS;
  assert.deepEqual(instances[0]!.check(nonces[0]), { ok: true, window: 1000, fresh: false });
  now += NONCE_WINDOW_MS;
  assert.match((instances[0]!.check(nonces[0]) as { why: string }).why, /expired/);
  for (const bad of [undefined, 42, "", "x", `${nonces[0]}x`, nonces[0]!.replace(/.$/, (c) => (c === "A" ? "B" : "A"))]) assert.equal(instances[0]!.check(bad).ok, false, String(bad));
});

test("replay cache: a proof once; bounded per client and in total, refusing (fail closed) past a bound; old windows forgotten", () => {
  const cache = new ProofReplayCache({ perWindow: 4, perClientPerWindow: 2 });
  assert.deepEqual(cache.use(10, 10, "client A", "k1 j1"), { ok: true });
  assert.equal((cache.use(10, 10, "client A", "k1 j1") as { why: string }).why, "replayed");
  assert.deepEqual(cache.use(10, 10, "client A", "k1 j2"), { ok: true });
  assert.equal((cache.use(10, 10, "client A", "k1 j3") as { why: string }).why, "client_full");
  for (let i = 0; i < 6; i++) assert.deepEqual(cache.use(i < 2 ? 10 : 11, 11, `client ${i}`, `k${i} j`), { ok: true });
  assert.equal(cache.size(), 8);
  assert.equal((cache.use(11, 11, "client Z", "kz j") as { why: string }).why, "full");
  // Window 10's nonces are no longer accepted once window 12 starts: its proofs go, and room comes back.
  assert.deepEqual(cache.use(12, 12, "client Z", "kz j"), { ok: true });
  assert.equal(cache.size(), 5);
  assert.equal((cache.use(11, 12, "client 2", "k2 j") as { why: string }).why, "replayed", "window 11 is still remembered");
});
