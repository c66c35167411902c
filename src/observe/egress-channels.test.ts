// The egress publishes its raw connections and their failures, for its own source only.
import assert from "node:assert/strict";
import { createServer, type AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { Egress } from "../egress/egress.ts";
import { Subscriptions, topics, type EgressConnectErrorMessage, type EgressConnectMessage } from "./channels.ts";

describe("egress on the observe channels", () => {
  it("publishes a connect and its failure (code and hop) with the egress's source", async () => {
    // A port that was just free: nothing listens there any more.
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));

    const egress = new Egress({ mode: "direct" });
    const other = new Egress({ mode: "direct" });
    const connects: EgressConnectMessage[] = [];
    const errors: EgressConnectErrorMessage[] = [];
    const subs = new Subscriptions().add(
      topics.egressConnect.subscribe((m) => connects.push(m), egress.source),
      topics.egressConnectError.subscribe((m) => errors.push(m), egress.source),
    );
    try {
      await assert.rejects(egress.connect("127.0.0.1", port), { code: 12029 });
      await assert.rejects(other.connect("127.0.0.1", port), { code: 12029 });
    } finally {
      subs.close();
      await egress.close();
      await other.close();
    }
    assert.deepEqual(connects.map((m) => [m.target, m.via]), [[`127.0.0.1:${port}`, "direct"]]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.stage, "connect");
    assert.equal(errors[0]!.code, 12029);
    assert.equal(errors[0]!.hop, "target");
  });
});
