// The path under a role: normalized, and refused when it would leave the role's root or when
// servers could read it differently (encoded separators, backslashes, empty segments).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkRolePath, staysUnder } from "./role-path.ts";
import { TRAVERSAL_MATRIX } from "../../../test/helpers/traversal.ts";

describe("role path check", () => {
  for (const p of TRAVERSAL_MATRIX) {
    it(`refuses ${JSON.stringify(p)}`, () => {
      const r = checkRolePath(p);
      assert.equal(r.ok, false, JSON.stringify(r));
      if (!r.ok) assert.ok(r.detail.length > 10);
    });
  }

  it("normalizes dot segments that stay inside the role", () => {
    const cases: [string, string][] = [
      ["", "/"],
      ["/", "/"],
      ["/SMS_MP/.sms_aut", "/SMS_MP/.sms_aut"],
      ["/SMS_MP/./.sms_aut", "/SMS_MP/.sms_aut"],
      ["/a/b/../c", "/a/c"],
      ["/a/%2e%2e/c", "/c"],
      ["/a/%2E/c", "/a/c"],
      ["/a/", "/a/"],
      ["/a/.", "/a/"],
      ["/a/..", "/"],
      ["/.../x", "/.../x"],
      ["/a%20b/%41", "/a%20b/%41"],
    ];
    for (const [input, path] of cases) assert.deepEqual(checkRolePath(input), { ok: true, path }, input);
  });

  it("says why", () => {
    assert.match((checkRolePath("/../admin") as { detail: string }).detail, /climbs above the role's root/);
    assert.match((checkRolePath("/..%2fadmin") as { detail: string }).detail, /encoded \//);
    assert.match((checkRolePath("//admin") as { detail: string }).detail, /empty segment/);
    assert.match((checkRolePath("/..\\admin") as { detail: string }).detail, /backslash/);
  });

  it("checks a joined path against the internal URL's path as a normalizing server reads it", () => {
    assert.equal(staysUnder("/sup", "/sup/x"), true);
    assert.equal(staysUnder("/sup", "/sup"), true);
    assert.equal(staysUnder("/sup", "/supx"), false);
    assert.equal(staysUnder("/sup", "/sup/../admin"), false);
    assert.equal(staysUnder("/sup", "/sup/%2e%2e/admin"), false);
    assert.equal(staysUnder("/sup", "/sup/..\\admin"), false);
    assert.equal(staysUnder("", "/anything"), true);
    assert.equal(staysUnder("", "//evil.example/x"), true);
  });
});
