import assert from "node:assert/strict";
import { it } from "node:test";
import { ValidationError } from "../errors.ts";
import { AVOID_MS, parseResolve, preferenceOrder, ServiceAddresses, staticResolver } from "./addresses.ts";

const THREE = ["192.0.2.11", "192.0.2.12", "192.0.2.13"];
/** Fixed client IDs (as the site makes them): the figures below do not change from run to run. */
const ids = Array.from({ length: 300 }, (_, i) => `GUID:${String(i).padStart(8, "0")}-0000-4000-8000-000000000000`);

it("clients spread evenly over the addresses of a name, each always preferring the same one", () => {
  const counts = new Map<string, number>();
  for (const id of ids) {
    const order = preferenceOrder(id, "cmg.contoso.com", THREE);
    assert.deepEqual([...order].sort(), THREE, "every address, each once");
    assert.deepEqual(preferenceOrder(id, "CMG.contoso.com", [...THREE].reverse()), order, "stable: the same whatever the resolver's order or the name's case");
    counts.set(order[0]!, (counts.get(order[0]!) ?? 0) + 1);
  }
  for (const a of THREE) assert.ok((counts.get(a) ?? 0) >= 80, `${a} is preferred by ${counts.get(a)} of 300`);
});

it("an address going away moves only the clients that preferred it", () => {
  for (const id of ids) {
    const before = preferenceOrder(id, "cmg.contoso.com", THREE);
    const after = preferenceOrder(id, "cmg.contoso.com", [THREE[0]!, THREE[2]!]);
    if (before[0] !== THREE[1]) assert.equal(after[0], before[0]);
    else assert.equal(after[0], before[1], "to the next of its own order");
  }
});

it("an address that failed is tried last until AVOID_MS passed, and first again once it worked", async () => {
  let now = 1_000_000;
  const s = new ServiceAddresses(ids[0]!, staticResolver(new Map([["cmg.contoso.com", THREE]])), () => now);
  const order = (await s.candidates("cmg.contoso.com"))!;
  s.failed(order[0]!);
  assert.deepEqual(await s.candidates("cmg.contoso.com"), [order[1], order[2], order[0]]);
  now += AVOID_MS + 1;
  assert.deepEqual(await s.candidates("cmg.contoso.com"), order);
  s.failed(order[0]!);
  s.worked(order[0]!);
  assert.deepEqual(await s.candidates("cmg.contoso.com"), order);
});

it("nothing to spread: an IP address, a name with one address, a name that does not resolve", async () => {
  const s = new ServiceAddresses("k", staticResolver(new Map([["one.contoso.com", ["192.0.2.1"]]]), async () => Promise.reject(new Error("ENOTFOUND"))));
  assert.equal(await s.candidates("192.0.2.1"), null);
  assert.equal(await s.candidates("[2001:db8::1]"), null);
  assert.equal(await s.candidates("one.contoso.com"), null);
  assert.equal(await s.candidates("nowhere.contoso.com"), null);
});

it("one family at a time: one address of each is one host (localhost), several IPv4 addresses are spread over without the IPv6 one", async () => {
  const s = new ServiceAddresses("k", staticResolver(new Map([["localhost", ["127.0.0.1", "::1"]], ["cmg.contoso.com", [...THREE, "2001:db8::1"]], ["v6.contoso.com", ["2001:db8::1", "2001:db8::2"]]])));
  assert.equal(await s.candidates("localhost"), null);
  assert.deepEqual([...(await s.candidates("cmg.contoso.com"))!].sort(), THREE);
  assert.deepEqual([...(await s.candidates("v6.contoso.com"))!].sort(), ["2001:db8::1", "2001:db8::2"]);
});

it("a name is resolved again each cycle", async () => {
  let answer = ["192.0.2.1", "192.0.2.2"];
  let asked = 0;
  const s = new ServiceAddresses("k", async () => (asked++, answer));
  await s.candidates("cmg.contoso.com");
  await s.candidates("cmg.contoso.com");
  assert.equal(asked, 1, "once within a cycle");
  answer = ["192.0.2.3", "192.0.2.4"];
  s.newCycle();
  assert.deepEqual([...(await s.candidates("cmg.contoso.com"))!].sort(), answer);
});

it("--resolve takes NAME=ADDR,ADDR and refuses anything else, naming the field", () => {
  assert.deepEqual(parseResolve(["CMG.contoso.com=127.0.0.11, 127.0.0.12,127.0.0.11"]), new Map([["cmg.contoso.com", ["127.0.0.11", "127.0.0.12"]]]));
  for (const bad of ["cmg.contoso.com", "=127.0.0.1", "cmg.contoso.com=", "cmg.contoso.com=host.example", "bad_name!=127.0.0.1"]) {
    assert.throws(() => parseResolve([bad]), (e: unknown) => e instanceof ValidationError && e.field === "resolve", bad);
  }
  assert.throws(() => parseResolve(["a.test=127.0.0.1", "A.test=127.0.0.2"]), /given twice/);
});
