// Path traversal behind a real normalizing server: the management point role's internal URL is
// nginx's /role, another role's (which does not allow CMG traffic) is /forbidden, and nginx also
// serves /admin. Asked directly, nginx resolves /role/../admin to /admin; through the gateway no
// path of the traversal matrix reaches anything but /role.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, ROLES, until, type CmgHarness } from "../../helpers/cmg-harness.ts";
import { rawGet, startNginx, type TestNginx } from "../../helpers/nginx.ts";
import { TRAVERSAL_MATRIX } from "../../helpers/traversal.ts";

describe("path traversal behind nginx", () => {
  let nginx: TestNginx;
  let h: CmgHarness;
  /** Access log lines of the direct requests (not through the gateway). */
  let direct = 0;
  before(async () => {
    nginx = await startNginx();
    h = await startCmgHarness({
      instances: 1,
      connectionPoints: 1,
      backends: { [ROLES.mp]: `${nginx.url}/role`, [ROLES.closed]: `${nginx.url}/forbidden` },
    });
    await h.waitReady();
  });
  after(async () => {
    await h?.close();
    await nginx?.close();
  });

  it("nginx itself normalizes: asked directly, /role/../admin is /admin (what the gateway must prevent)", async () => {
    assert.match((await rawGet(nginx.port, "/role/../admin")).body, /^admin /);
    assert.match((await rawGet(nginx.port, "/role/%2e%2e/forbidden/x")).body, /^forbidden /);
    assert.match((await rawGet(nginx.port, "/role/..%2fadmin")).body, /^admin /);
    direct = nginx.access().length;
  });

  it("relays a path inside the role, dot segments removed", async () => {
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/./x/../.sms_aut?MPLIST`, { cert: h.pki.client });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "role /role/SMS_MP/.sms_aut\n");
  });

  for (const h2 of [false, true]) {
    it(`refuses every path of the traversal matrix with 400 at the gateway (${h2 ? "HTTP/2" : "HTTP/1.1"}); nginx sees nothing outside /role`, async () => {
      const seen = nginx.access().length;
      for (const p of TRAVERSAL_MATRIX) {
        const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}${p}`, { cert: h.pki.client, h2 });
        assert.equal(r.status, 400, `${p}: ${r.status} ${r.body.toString()}`);
        assert.equal(JSON.parse(r.body.toString()).error, "bad_path", p);
        assert.equal(r.headers["x-opencmg-reason"], "bad_path", p);
      }
      assert.deepEqual(nginx.access().slice(seen), [], "nothing reached nginx");
      await until("a bad_path line per refused request", () => h.logLines("gw0", "CMGHttpHandler.log").filter((l) => /400 bad_path/.test(l.text)).length >= TRAVERSAL_MATRIX.length);
      assert.ok(h.logLines("gw0", "CMGHttpHandler.log").some((l) => /climbs above the role's root/.test(l.text)));
    });
  }

  it("never lets nginx answer from outside /role through the gateway", () => {
    assert.ok(nginx.access().length > direct, "requests went through");
    for (const a of nginx.access().slice(direct)) assert.match(a.uri, /^\/role(\/|$)/, JSON.stringify(a));
  });
});
