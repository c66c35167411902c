/**
 * A gateway instance's metrics listener binds where it is told: `cmg create --metrics-host` puts
 * the address in the start-up bundle, `gateway serve --metrics-host` overrides it, and a bad
 * address is refused naming the field.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { createCa, issueCert } from "../../../src/pki/issue.ts";
import { tempDir } from "../../helpers/databases.ts";
import { runCli } from "../../helpers/cli.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { freePort } from "../../helpers/ports.ts";
import { until } from "../../helpers/until.ts";
import { assertConventions } from "../../helpers/prometheus.ts";

it("cmg create --metrics-host reaches the start-up file; gateway serve --metrics-host binds there", async () => {
  const dir = tempDir("opencmg-metrics-host-");
  const data = join(dir, "data");
  assert.equal((await runCli(["--data", data, "site", "init"])).code, 0);
  const root = await createCa({ commonName: "Clients Root" });
  const server = await issueCert({ issuer: root, commonName: "cmg.contoso.test", dnsNames: ["cmg.contoso.test"], usage: "server" });
  const f = (name: string, body: string): string => {
    writeFileSync(join(dir, name), body, { mode: 0o600 });
    return join(dir, name);
  };
  const common = ["--server-cert", f("server.pem", server.certPem), "--server-key", f("server.key", server.keyPem), "--trusted-root", f("root.pem", root.certPem), "--provider", "external"];

  const bad = await runCli(["--data", data, "cmg", "create", "bad", ...common, "--metrics-host", "not a host"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /metricsHost: must be an IP address or host name to bind/);

  // Ports free a moment ago may be taken by another test file before the instance binds them: tried again on others.
  let stderr = "";
  for (let attempt = 1; ; attempt++) {
    const name = `cmg${attempt}`;
    const ports = { client: await freePort(), tunnel: await freePort(), metrics: await freePort() };
    const created = await runCli(["--data", data, "cmg", "create", name, ...common, "--service-fqdn", "cmg.contoso.test", "--listen-host", "127.0.0.1", "--client-port", String(ports.client), "--tunnel-port", String(ports.tunnel), "--metrics-port", String(ports.metrics), "--metrics-host", "127.0.0.3"]);
    assert.equal(created.code, 0, created.stderr);
    const out = join(dir, `bundle${attempt}`);
    assert.equal((await runCli(["--data", data, "cmg", "bundle", name, "--out", out])).code, 0);
    const startup = JSON.parse(readFileSync(join(out, "instance-0.json"), "utf8")) as { metrics: { host: string; port: number } };
    assert.deepEqual(startup.metrics, { host: "127.0.0.3", port: ports.metrics });
    await runCli(["--data", data, "cmg", "delete", name]); // only its bundle is needed now; the next attempt's service name stays free

    const p = spawn(process.execPath, [OPENCMG_BIN, "--data", join(dir, "gw"), "gateway", "serve", "--config", join(out, "instance-0.json"), "--metrics-host", "127.0.0.4"], { stdio: ["ignore", "ignore", "pipe"] });
    stderr = "";
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => p.once("exit", (c) => r(c)));
    await until("gateway serve to listen or exit", () => /listening/.test(stderr) || p.exitCode !== null);
    if (p.exitCode !== null) {
      if (/EADDRINUSE/.test(stderr) && attempt < 5) continue;
      assert.fail(stderr);
    }
    try {
      assert.ok(stderr.includes(`metrics on 127.0.0.4:${ports.metrics}`), stderr);
      const res = await fetch(`http://127.0.0.4:${ports.metrics}/metrics`);
      assert.equal(res.status, 200);
      const text = await res.text();
      assertConventions(text, "cmg_instance");
      assert.match(text, new RegExp(`^opencmg_build_info\\{[^}]*cmg_instance="${name}-0"[^}]*\\} 1$`, "m"));
    } finally {
      p.kill("SIGTERM");
      assert.equal(await exited, 0, stderr);
    }
    break;
  }
});

it("gateway serve and connection-point serve refuse a bad --metrics-host, naming the field", async () => {
  const dir = tempDir("opencmg-metrics-host-");
  const bad = await runCli(["--data", join(dir, "gw"), "gateway", "serve", "--config", join(dir, "missing.json"), "--metrics-host", "bad host!"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /metricsHost: must be an IP address or host name to bind \(got "bad host!"\)/);
  const cp = await runCli(["--data", join(dir, "data"), "connection-point", "serve", "--server", "cp01.contoso.test", "--metrics-host", "-x-"]);
  assert.equal(cp.code, 2);
  assert.match(cp.stderr, /metricsHost: must be an IP address or host name to bind/);
});
