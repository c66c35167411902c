import assert from "node:assert/strict";
import diagnostics_channel from "node:diagnostics_channel";
import { describe, it } from "node:test";
import { Subscriptions, Topic, newSource, topics, type SettingsAppliedMessage } from "./channels.ts";

const applied = (source: SettingsAppliedMessage["source"], revision: number): SettingsAppliedMessage => ({
  source,
  revision,
  from: "cp1",
  trustedRoots: 1,
  intermediates: 0,
  crlCheck: true,
  roles: 2,
});

describe("observe channels", () => {
  it("delivers a published message to a subscriber, and nothing after it unsubscribes", () => {
    const me = newSource("gateway", "cmg1-0");
    const got: number[] = [];
    const off = topics.settingsApplied.subscribe((m) => got.push(m.revision), me);
    assert.equal(topics.settingsApplied.active, true);
    topics.settingsApplied.publish(applied(me, 7));
    off();
    topics.settingsApplied.publish(applied(me, 8));
    assert.deepEqual(got, [7]);
    off(); // twice is harmless
  });

  it("keeps sources with the same name apart: a subscriber sees its own source only", () => {
    const a = newSource("gateway", "cmg1-0");
    const b = newSource("gateway", "cmg1-0");
    const seen: string[] = [];
    const subs = new Subscriptions().add(
      topics.settingsApplied.subscribe((m) => seen.push(`a${m.revision}`), a),
      topics.settingsApplied.subscribe((m) => seen.push(`b${m.revision}`), b),
      topics.settingsApplied.subscribe((m) => seen.push(`all${m.revision}`)),
    );
    topics.settingsApplied.publish(applied(a, 1));
    topics.settingsApplied.publish(applied(b, 2));
    subs.close();
    topics.settingsApplied.publish(applied(a, 3));
    assert.deepEqual(seen, ["a1", "all1", "b2", "all2"]);
  });

  it("is inactive without subscribers, so publishers can skip building messages", () => {
    const t = new Topic<{ source: ReturnType<typeof newSource> }>("opencmg:test:inactive");
    assert.equal(t.active, false);
    const off = t.subscribe(() => {});
    assert.equal(t.active, true);
    off();
    assert.equal(t.active, false);
  });

  it("publishes on the named node:diagnostics_channel, so outside observers can subscribe by name", () => {
    const me = newSource("connection-point", "cp1");
    const got: unknown[] = [];
    const listener = (m: unknown): void => void got.push(m);
    diagnostics_channel.subscribe("opencmg:gateway:settingsApplied", listener);
    try {
      topics.settingsApplied.publish(applied(me, 4));
    } finally {
      diagnostics_channel.unsubscribe("opencmg:gateway:settingsApplied", listener);
    }
    assert.equal((got[0] as SettingsAppliedMessage).revision, 4);
  });

  it("reports a subscriber that throws as a warning; the publisher and other subscribers go on", async () => {
    const me = newSource("gateway", "x");
    const warned = new Promise<Error>((resolve) => process.once("warning", resolve));
    const got: number[] = [];
    const subs = new Subscriptions().add(
      topics.settingsApplied.subscribe(() => {
        throw new Error("boom");
      }, me),
      topics.settingsApplied.subscribe((m) => got.push(m.revision), me),
    );
    topics.settingsApplied.publish(applied(me, 9));
    subs.close();
    assert.deepEqual(got, [9]);
    assert.match((await warned).message, /subscriber of opencmg:gateway:settingsApplied failed: Error: boom/);
  });
});
