import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, it } from "node:test";
import { Registry } from "prom-client";
import { VERSION } from "../version.ts";
import { addProcessMetrics, serveMetrics, type MetricsServer } from "./prometheus.ts";

const servers: MetricsServer[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

it("keeps the product version equal to package.json's", () => {
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "package.json"), "utf8")) as { version: string };
  assert.equal(VERSION, pkg.version);
});

it("adds process metrics and opencmg_build_info to the registry it is given, not the global one", async () => {
  const registry = new Registry();
  addProcessMetrics(registry);
  const text = await registry.metrics();
  assert.match(text, new RegExp(`^opencmg_build_info\\{version="${VERSION.replaceAll(".", "\\.")}",node="${process.versions.node.replaceAll(".", "\\.")}"\\} 1$`, "m"));
  for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes"]) {
    assert.match(text, new RegExp(`^${name}(\\{[^}]*\\})? `, "m"), name);
  }
  const { register } = await import("prom-client");
  assert.equal(register.getSingleMetric("opencmg_build_info"), undefined, "the global registry stays empty");
});

it("binds the metrics listener to the address asked for, and only there", async () => {
  const registry = new Registry();
  const marker = `m${process.pid}${Date.now()}`;
  registry.setDefaultLabels({ marker });
  addProcessMetrics(registry);
  // 127.0.0.2 is loopback too (127.0.0.0/8): a listener bound there is not on 127.0.0.1.
  const s = await serveMetrics(registry, { host: "127.0.0.2", port: 0 }, () => ({ ok: true }));
  servers.push(s);
  const res = await fetch(`http://127.0.0.2:${s.port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(await res.text(), /^opencmg_build_info/m);
  // Refused on 127.0.0.1 (unless another test's listener happens to hold that port there: never ours).
  const other = await fetch(`http://127.0.0.1:${s.port}/metrics`).then((r) => r.text(), (e: Error & { cause?: { code?: string } }) => e.cause?.code);
  assert.ok(other === "ECONNREFUSED" || (typeof other === "string" && !other.includes(marker)), String(other));
  const health = await fetch(`http://127.0.0.2:${s.port}/healthz`);
  assert.deepEqual(await health.json(), { ok: true });
  assert.equal((await fetch(`http://127.0.0.2:${s.port}/other`)).status, 404);
});
