import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ForbiddenError } from "../errors.ts";
import { auditedServices, type AuditRules } from "./audited.ts";
import { redact, REDACTED, type AuditRecord, type AuditService } from "./services/audit.ts";
import type { SiteServices } from "./site.ts";

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

/** A fake service with one changing and one reading method, and an audit log in memory. */
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
  };
  const records: AuditRecord[] = [];
  const audit = { record: async (r: AuditRecord) => void records.push(r) } as unknown as AuditService;
  const raw = { things } as unknown as SiteServices;
  const rules = { things: { put: { object: (a: readonly unknown[]) => `thing/${String(a[0])}`, read: (s: SiteServices, a: readonly unknown[]) => (s as unknown as { things: typeof things }).things.get(String(a[0])) } } } as unknown as AuditRules;
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
