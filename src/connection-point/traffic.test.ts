// The connection point's traffic report: requests and body bytes per instance and role kind, the
// tunnel's own bytes as the kind "tunnel", so each instance's kinds add up to its wire bytes.
import assert from "node:assert/strict";
import { it } from "node:test";
import { TrafficCounter } from "./traffic.ts";

it("breaks a period down per instance and role kind; the kinds add up to the wire bytes", () => {
  const t = new TrafficCounter("cp1");
  t.request("1", "ok", { gateway: "gw:1", kind: "mp", bytesToClient: 100, bytesFromClient: 10 });
  t.request("2", "backend_error", { gateway: "gw:1", kind: "sup", bytesToClient: 50, bytesFromClient: 0 });
  t.request("2", "cancelled", { gateway: "gw:2", kind: "sup", bytesToClient: 30, bytesFromClient: 5 });
  t.bytes("gw:1", 400, 60);
  t.bytes("gw:2", 100, 20);
  const r = t.take();
  assert.equal(r.requests, 2, "a cancelled request is not counted as one");
  assert.equal(r.failed, 1);
  assert.deepEqual(r.byInstance["gw:1"]!.byKind.mp, { requests: 1, failed: 0, bytesToClients: 100, bytesFromClients: 10 });
  assert.deepEqual(r.byInstance["gw:1"]!.byKind.sup, { requests: 1, failed: 1, bytesToClients: 50, bytesFromClients: 0 });
  assert.deepEqual(r.byInstance["gw:1"]!.byKind.tunnel, { requests: 0, failed: 0, bytesToClients: 250, bytesFromClients: 50 });
  assert.deepEqual(r.byInstance["gw:2"]!.byKind.sup, { requests: 0, failed: 0, bytesToClients: 30, bytesFromClients: 5 }, "its bytes still moved");
  for (const [gw, i] of Object.entries(r.byInstance)) {
    const kinds = Object.values(i.byKind);
    assert.equal(kinds.reduce((n, k) => n + k.bytesToClients, 0), i.bytesToGateway, gw);
    assert.equal(kinds.reduce((n, k) => n + k.bytesFromClients, 0), i.bytesFromGateway, gw);
  }
});

it("bodies counted before their wire bytes are taken off the next period's tunnel bytes", () => {
  const t = new TrafficCounter("cp1");
  t.request("1", "ok", { gateway: "gw:1", kind: "mp", bytesToClient: 1000, bytesFromClient: 0 });
  t.bytes("gw:1", 600, 0); // 400 bytes still in buffers
  const first = t.take();
  assert.equal(first.byInstance["gw:1"]!.byKind.tunnel!.bytesToClients, 0);
  t.bytes("gw:1", 500, 0);
  const second = t.take();
  assert.equal(second.byInstance["gw:1"]!.byKind.tunnel!.bytesToClients, 100, "500 on the wire, 400 of it the body counted before");
  assert.equal(t.take().requests, 0, "counting starts over");
});
