import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { CHECK_NAMES } from "../gateway/auth/client-cert.ts";
import { TOKEN_CHECKS } from "../gateway/auth/token.ts";
import { CAUSE_FIXES, explainRefusal, GATEWAY_REFUSALS } from "./refusals.ts";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") ? [p] : [];
  });
}

test("every reason code the gateway answers with has a check and a fix", () => {
  const codes = new Set<string>([...Object.keys(CHECK_NAMES), ...Object.keys(TOKEN_CHECKS)]);
  for (const f of sources(join(dirname(fileURLToPath(import.meta.url)), "..", "gateway"))) {
    const text = readFileSync(f, "utf8");
    for (const m of text.matchAll(/reply\(req, res, \d+, "([a-z_]+)"/g)) codes.add(m[1]!);
    for (const m of text.matchAll(/status: \d+, reason: "([a-z_]+)"/g)) codes.add(m[1]!);
  }
  // The scan found the gateway's replies (a changed call shape would make it find nothing).
  for (const known of ["bad_path", "role_not_allowed", "no_connection_point", "http_version", "untrusted_chain"]) assert.ok(codes.has(known), known);
  for (const code of codes) {
    assert.ok(GATEWAY_REFUSALS[code], `no entry for ${code} in GATEWAY_REFUSALS`);
    assert.ok(GATEWAY_REFUSALS[code]!.check.length > 0 && GATEWAY_REFUSALS[code]!.fix.length > 0);
  }
});

test("a cause changes the fix; an unknown code still gets an answer", () => {
  assert.equal(explainRefusal("crl_unavailable", "no_crl_distribution_point").fix, CAUSE_FIXES.no_crl_distribution_point);
  assert.equal(explainRefusal("crl_unavailable", "no_crl_distribution_point").check, "client certificate revocation");
  assert.equal(explainRefusal("weak_key", "rsa_below_policy").fix, CAUSE_FIXES.rsa_below_policy);
  assert.equal(explainRefusal("weak_key").fix, GATEWAY_REFUSALS.weak_key!.fix);
  const unknown = explainRefusal("from_a_newer_gateway");
  assert.match(unknown.check, /from_a_newer_gateway/);
  assert.match(unknown.fix, /CMGHttpHandler\.log/);
});
