import assert from "node:assert/strict";
import { it } from "node:test";
import { assertConventions, sampleValue } from "../../test/helpers/prometheus.ts";
import { ConnectionPointMetrics } from "./metrics.ts";

it("names every connection point series as the gateway names it: opencmg_connection_point_*, connection_point label", async () => {
  const metrics = new ConnectionPointMetrics("cp1.contoso.com", { processMetrics: true });
  metrics.requestDuration.observe({ role_kind: "mp", result: "ok" }, 0.02);
  metrics.tunnels.set({ gateway: "cmg.contoso.com:10140" }, 2);
  const text = await metrics.registry.metrics();
  const all = assertConventions(text, "connection_point");
  assert.doesNotMatch(text, /connector/);
  assert.doesNotMatch(text, /[{,]instance="/);
  for (const name of [
    "opencmg_connection_point_tunnels",
    "opencmg_connection_point_tunnel_connects_total",
    "opencmg_connection_point_requests_total",
    "opencmg_connection_point_request_duration_seconds",
    "opencmg_connection_point_tunnel_bytes_total",
    "opencmg_connection_point_tls_handshake_failures_total",
    "opencmg_build_info",
    "process_resident_memory_bytes",
  ]) {
    assert.ok(all.has(name), `${name} is exposed`);
  }
  for (const name of all.keys()) assert.ok(!name.startsWith("opencmg_") || name.startsWith("opencmg_connection_point_") || name === "opencmg_build_info", name);
  const cp = { connection_point: "cp1.contoso.com" };
  assert.equal(sampleValue(text, "opencmg_connection_point_request_duration_seconds_bucket", { ...cp, role_kind: "mp", result: "ok", le: "0.01" }), 0);
  assert.equal(sampleValue(text, "opencmg_connection_point_request_duration_seconds_bucket", { ...cp, role_kind: "mp", result: "ok", le: "0.025" }), 1);
  assert.equal(sampleValue(text, "opencmg_connection_point_tunnels", { ...cp, gateway: "cmg.contoso.com:10140" }), 2);
});
