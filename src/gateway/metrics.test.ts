import assert from "node:assert/strict";
import { it } from "node:test";
import { newSource, topics, type GatewayRequestMessage } from "../observe/channels.ts";
import { assertConventions, sampleValue } from "../../test/helpers/prometheus.ts";
import { GatewayMetrics } from "./metrics.ts";
import { gatewayMetricsObserver } from "./observers.ts";
import { TunnelPool } from "./tunnels/tunnel-pool.ts";

function relayed(source: GatewayRequestMessage["source"], over: Partial<GatewayRequestMessage>): GatewayRequestMessage {
  return {
    source,
    requestId: "r1",
    method: "GET",
    path: "/CCM_Proxy_MutualAuth/72057594037927941/SMS_MP/.sms_aut",
    clientAddress: "127.0.0.1",
    roleId: "72057594037927941",
    roleKind: "mp",
    status: 200,
    result: "ok",
    bytesIn: 0,
    bytesOut: 512,
    durationMs: 30,
    failovers: 0,
    client: { thumbprint: "AB" },
    ...over,
  } as GatewayRequestMessage;
}

it("names every gateway series for Prometheus: cmg_instance (never instance), _total counters, durations in seconds", async () => {
  const metrics = new GatewayMetrics("cmg1-0", { processMetrics: true });
  const source = newSource("gateway", "cmg1-0");
  const off = gatewayMetricsObserver({ source, metrics, pool: new TunnelPool() });
  topics.gatewayRequest.publish(relayed(source, {}));
  topics.gatewayRequest.publish(relayed(source, { durationMs: 3000, roleKind: "sup", result: "upstream_timeout", status: 504 }));
  topics.gatewayRequest.publish(relayed(newSource("gateway", "cmg1-0"), {})); // another instance of the same name: not ours
  off();
  const text = await metrics.registry.metrics();
  const all = assertConventions(text, "cmg_instance");
  assert.doesNotMatch(text, /[{,]instance="/);
  for (const name of [
    "opencmg_gateway_client_connections",
    "opencmg_gateway_client_connections_total",
    "opencmg_gateway_requests_total",
    "opencmg_gateway_request_duration_seconds",
    "opencmg_gateway_auth_refusals_total",
    "opencmg_gateway_body_bytes_total",
    "opencmg_gateway_tunnel_sessions",
    "opencmg_gateway_tunnel_sessions_total",
    "opencmg_gateway_tls_handshake_failures_total",
    "opencmg_gateway_handshake_gate_closed_total",
    "opencmg_gateway_failovers_total",
    "opencmg_gateway_settings_revision",
    "opencmg_gateway_client_abuse_total",
    "opencmg_build_info",
    "process_cpu_seconds_total",
  ]) {
    assert.ok(all.has(name), `${name} is exposed`);
  }
  assert.equal(all.get("opencmg_gateway_request_duration_seconds")!.type, "histogram");
  assert.deepEqual(all.get("opencmg_gateway_tunnel_sessions")!.labelSets.length, 0, "no series before a tunnel");
  // 30 ms falls in the 0.05 s bucket, not the 0.025 s one; 3 s in 5 s, not 2.5 s.
  const mpOk = { role_kind: "mp", result: "ok", cmg_instance: "cmg1-0" };
  const supTimeout = { role_kind: "sup", result: "upstream_timeout", cmg_instance: "cmg1-0" };
  const bucket = (labels: Record<string, string>, le: string): number | undefined => sampleValue(text, "opencmg_gateway_request_duration_seconds_bucket", { ...labels, le });
  assert.equal(bucket(mpOk, "0.025"), 0);
  assert.equal(bucket(mpOk, "0.05"), 1);
  assert.equal(sampleValue(text, "opencmg_gateway_request_duration_seconds_count", mpOk), 1);
  assert.equal(bucket(supTimeout, "2.5"), 0);
  assert.equal(bucket(supTimeout, "5"), 1);
  assert.equal(sampleValue(text, "opencmg_gateway_requests_total", { result: "ok", cmg_instance: "cmg1-0" }), 1);
});

it("leaves process metrics out unless asked (an instance without a metrics listener)", async () => {
  const text = await new GatewayMetrics("cmg1-1").registry.metrics();
  assert.doesNotMatch(text, /^process_cpu_seconds_total/m);
  assert.doesNotMatch(text, /^opencmg_build_info/m);
  assertConventions(text, "cmg_instance");
});
