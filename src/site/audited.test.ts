import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ForbiddenError } from "../errors.ts";
import { auditedServices, METHODS, READ, type AuditRules, type MethodKind } from "./audited.ts";
import { redact, REDACTED, type AuditRecord, type AuditService } from "./services/audit.ts";
import { initSite, openSite, type SiteServices } from "./site.ts";

describe("redact", () => {
  it("replaces secrets by field name and private keys by content, at any depth, and keeps the rest", () => {
    const keyPem = "-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----\n";
    const out = redact({
      name: "svc",
      password: "p",
      nested: [{ token: "t", serverKeyPem: "k", pfxPassword: "x", readOnly: true }],
      cert: keyPem,
      credentials: { username: "u", password: "p" },
      port: 8080,
      revokedAt: null,
    });
    assert.deepEqual(out, { name: "svc", password: REDACTED, nested: [{ token: REDACTED, serverKeyPem: REDACTED, pfxPassword: REDACTED, readOnly: true }], cert: REDACTED, credentials: REDACTED, port: 8080, revokedAt: null });
  });
});

/** A fake service with changing methods (one nobody classified) and a reading one, and an audit log in memory. */
function fixture(readOnly: boolean) {
  const state = new Map<string, string>();
  const things = {
    async put(name: string, value: string) {
      state.set(name, value);
      return { name, value };
    },
    async get(name: string) {
      return state.has(name) ? { name, value: state.get(name)! } : null;
    },
    /** Added later, and left out of the rules. */
    async wipe() {
      state.clear();
      return { wiped: true };
    },
  };
  const records: AuditRecord[] = [];
  const audit = { record: async (r: AuditRecord) => void records.push(r) } as unknown as AuditService;
  const raw = { things } as unknown as SiteServices;
  const rules = { things: { put: { object: (a: readonly unknown[]) => `thing/${String(a[0])}`, read: (s: SiteServices, a: readonly unknown[]) => (s as unknown as { things: typeof things }).things.get(String(a[0])) }, get: READ } } as unknown as AuditRules;
  const wrapped = auditedServices(raw, { name: "alice", via: "api", readOnly }, audit, (fn) => fn(), rules) as unknown as { things: typeof things };
  return { wrapped, records, state };
}

describe("auditedServices", () => {
  it("records a change with the object before and after; a read is not recorded; a change to the same value is not a change", async () => {
    const { wrapped, records } = fixture(false);
    await wrapped.things.put("a", "1");
    await wrapped.things.put("a", "2");
    await wrapped.things.get("a");
    await wrapped.things.put("a", "2");
    assert.deepEqual(
      records.map((r) => [r.actor.name, r.action, r.object, r.before, r.after]),
      [
        ["alice", "things.put", "thing/a", null, { name: "a", value: "1" }],
        ["alice", "things.put", "thing/a", { name: "a", value: "1" }, { name: "a", value: "2" }],
      ],
    );
  });

  it("refuses every listed method for a read-only actor, before it runs", async () => {
    const { wrapped, records, state } = fixture(true);
    await assert.rejects(wrapped.things.put("a", "1"), ForbiddenError);
    assert.equal(state.size, 0);
    assert.equal(records.length, 0);
    assert.equal(await wrapped.things.get("a"), null);
  });
});

describe("audited by default", () => {
  it("a method nobody classified is audited: refused for a read-only actor, recorded for the others", async () => {
    const ro = fixture(true);
    ro.state.set("a", "1");
    await assert.rejects(ro.wrapped.things.wipe(), ForbiddenError);
    assert.equal(ro.state.size, 1, "the read-only actor's call did not run");
    const rw = fixture(false);
    rw.state.set("a", "1");
    await rw.wrapped.things.wipe();
    assert.deepEqual(
      rw.records.map((r) => [r.actor.name, r.action, r.object, r.after]),
      [["alice", "things.wipe", "things/", { wiped: true }]],
    );
  });

  it("every public method of every service of a real site is classified, and all but the reads are refused for a read-only actor before they run", async () => {
    const dir = mkdtempSync(join(tmpdir(), "opencmg-audited-"));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const site = await openSite({ dataDir: dir });
    try {
      await initSite(site, { code: "P01", name: "Test" });
      const ro = site.servicesAs({ name: "auditor", via: "api", readOnly: true });
      const auditBefore = (await site.services.audit.list()).items.length;
      const table = METHODS as unknown as Record<string, Record<string, MethodKind>>;
      const notRefused: string[] = [];
      for (const [service, wrapped] of Object.entries(ro)) {
        const classified = table[service] ?? {};
        // Every method of the service's class (TypeScript's private ones included: they fall to the default, audited).
        const names = new Set<string>();
        for (let p = Object.getPrototypeOf(wrapped) as object | null; p && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null)
          for (const n of Object.getOwnPropertyNames(p)) if (n !== "constructor" && typeof Object.getOwnPropertyDescriptor(p, n)?.value === "function") names.add(n);
        for (const n of Object.keys(classified)) assert.ok(names.has(n), `${service}.${n} is classified but is no method of the service`);
        for (const n of names) {
          if (classified[n] === READ) continue;
          // No arguments: a refusal comes before the method looks at them.
          const call = (wrapped as Record<string, (...a: unknown[]) => unknown>)[n]!;
          const outcome = await Promise.resolve()
            .then(() => call())
            .then(
              () => "ran",
              (e: unknown) => (e instanceof ForbiddenError ? "refused" : `ran (${e instanceof Error ? e.message : String(e)})`),
            );
          if (outcome !== "refused") notRefused.push(`${service}.${n}: ${outcome}`);
        }
      }
      assert.deepEqual(notRefused, []);
      assert.equal((await site.services.audit.list()).items.length, auditBefore, "nothing was recorded");
    } finally {
      await site.close();
    }
  });
});
