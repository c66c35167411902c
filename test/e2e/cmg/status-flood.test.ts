/**
 * The flood the way it came: through the gateway. `opencmg up` (site, management point,
 * CMG instance, connection point, all real processes), a device installed with the printed
 * command, then this test uploading 20,000 status messages with that device's certificate to the
 * CMG's internet management point URL. The management point refuses the flood with 429 (relayed
 * back through the gateway); the site keeps at most the device's burst.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { Agent, request } from "undici";
import { startUp, type UpProcess } from "../../helpers/up-process.ts";
import { ClientStore } from "../../../src/client/store.ts";
import { MP_PATHS } from "../../../src/wire/mp.ts";

let up: UpProcess;
before(async () => {
  up = await startUp("opencmg-flood-gw-");
});
after(async () => {
  await up?.stop();
});

it("a device flooding status messages through the gateway gets 429s; the site keeps at most its limit", async () => {
  const clientDir = join(up.dir, "client");
  const install = up.cli([...up.facts.clientInstall.slice(2), "--client-dir", clientDir, "--json"]);
  assert.equal(install.status, 0, install.stderr);
  const clientId = install.json().clientId as string;
  const tls = new ClientStore(clientDir).tls();
  const agent = new Agent({ connect: { cert: tls.certPem!, key: tls.keyPem!, ca: tls.ca! }, connections: 2 });
  const results: { status: number; error?: string }[] = [];
  try {
    for (let batch = 0; batch < 40; batch++) {
      const messages = Array.from({ length: 500 }, (_, i) => ({ type: "status", id: `g-${batch}-${i}`, messageId: 10002, severity: "informational", component: "CcmExec", text: "flood", time: new Date().toISOString() }));
      const r = await request(`${up.facts.internetMpUrl}${MP_PATHS.status}`, { dispatcher: agent, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages }) });
      const body = (await r.body.json().catch(() => ({}))) as { error?: string };
      results.push({ status: r.statusCode, ...(body.error ? { error: body.error } : {}) });
    }
  } finally {
    await agent.close();
  }
  const accepted = results.filter((r) => r.status === 200).length;
  const refused = results.filter((r) => r.status === 429 && r.error === "too_many_status_messages").length;
  assert.equal(accepted + refused, results.length, JSON.stringify(results));
  assert.ok(refused >= 36, `${refused} of ${results.length} refused by the management point`);
  // The default burst of 1000 (two uploads), plus 60 a minute for the flood's seconds.
  assert.ok(accepted <= 3, `${accepted} uploads stored`);
  const stored = up.site(["status", "messages", "--json", "--limit", "100000", "--client", clientId]).json() as unknown[];
  assert.equal(stored.length, accepted * 500);
});
