import assert from "node:assert/strict";
import { it } from "node:test";
import { parseSince } from "./admin.ts";

it("--since takes an ISO time or a duration back from now, and names itself when it is neither", () => {
  const now = new Date("2026-12-02T08:00:00.000Z");
  assert.equal(parseSince("30m", now), "2026-12-02T07:30:00.000Z");
  assert.equal(parseSince("2d", now), "2026-11-30T08:00:00.000Z");
  assert.equal(parseSince("2026-12-01T10:00:00+01:00", now), "2026-12-01T09:00:00.000Z");
  assert.throws(() => parseSince("yesterday", now), { field: "since" });
  assert.throws(() => parseSince("5w", now), { field: "since" });
});
