import assert from "node:assert/strict";
import { it } from "node:test";
import { ConsoleSessions, readCookie } from "./console-session.ts";

const ADMIN = { name: "admin", role: "full-administrator", readOnly: false, source: "token" } as const;

it("a session ends when idle, and at its absolute age however busy", () => {
  let now = 1_000_000;
  const s = new ConsoleSessions({ idleMs: 1000, maxAgeMs: 2500 }, () => now);
  const { cookie } = s.create(ADMIN);
  now += 900;
  assert.ok(s.touch(cookie), "used within the idle time");
  now += 900;
  assert.ok(s.touch(cookie), "the idle time starts again on use");
  now += 1001;
  assert.equal(s.touch(cookie), undefined, "idle too long");

  const busy = s.create(ADMIN).cookie;
  for (let i = 0; i < 4; i++) {
    now += 600;
    assert.ok(s.touch(busy));
  }
  now += 600;
  assert.equal(s.touch(busy), undefined, "past its absolute age");
});

it("keeps at most maxSessions, dropping the oldest; sign-out ends one", () => {
  const s = new ConsoleSessions({ maxSessions: 2 });
  const a = s.create(ADMIN).cookie;
  const b = s.create(ADMIN).cookie;
  const c = s.create(ADMIN).cookie;
  assert.equal(s.size, 2);
  assert.equal(s.touch(a), undefined);
  assert.ok(s.touch(b) && s.touch(c));
  s.end(b);
  assert.equal(s.touch(b), undefined);
  assert.equal(s.touch("forged"), undefined);
  assert.equal(s.touch(undefined), undefined);
});

it("the CSRF token must match exactly", () => {
  const s = new ConsoleSessions();
  const { session } = s.create(ADMIN);
  assert.ok(ConsoleSessions.csrfMatches(session, session.csrf));
  assert.ok(!ConsoleSessions.csrfMatches(session, undefined));
  assert.ok(!ConsoleSessions.csrfMatches(session, session.csrf.slice(1)));
  // Its first character changed (a random token starts with "x" one time in 64: then "y").
  assert.ok(!ConsoleSessions.csrfMatches(session, (session.csrf.startsWith("x") ? "y" : "x") + session.csrf.slice(1)));
});

it("limits failed sign-ins per address within the window", () => {
  let now = 0;
  const s = new ConsoleSessions({ maxFailures: 3, failureWindowMs: 1000 }, () => now);
  for (let i = 0; i < 3; i++) {
    assert.ok(s.mayTry("10.0.0.1"));
    s.failed("10.0.0.1");
  }
  assert.equal(s.mayTry("10.0.0.1"), false);
  assert.ok(s.mayTry("10.0.0.2"), "another address is not held back");
  now += 1001;
  assert.ok(s.mayTry("10.0.0.1"), "old failures age out");
});

it("reads one cookie out of a Cookie header", () => {
  assert.equal(readCookie("a=1; opencmg_session=abc; b=2", "opencmg_session"), "abc");
  assert.equal(readCookie("xopencmg_session=abc", "opencmg_session"), undefined);
  assert.equal(readCookie(undefined, "opencmg_session"), undefined);
});

it("alive() tells without extending the idle time", () => {
  let now = 0;
  const s = new ConsoleSessions({ idleMs: 1000 }, () => now);
  const { cookie } = s.create(ADMIN);
  now = 900;
  assert.ok(s.alive(cookie));
  now = 1001;
  assert.equal(s.alive(cookie), false, "alive() did not keep it");
});
