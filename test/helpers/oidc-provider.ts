/**
 * A real OpenID provider on loopback (the `oidc-provider` package), for directory sign-in tests,
 * and a device that signs in with the device authorization grant (RFC 8628): it asks for a user
 * code, a scripted user enters it at the provider's verification page, signs in and consents
 * through the provider's own interaction pages, and the device then polls the token endpoint for
 * its ID token. The ID token is signed by the provider's own key (RS256), published through its
 * discovery document and JWKS.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";

export const DEVICE_CLIENT_ID = "opencmg-devices";
export const DEVICE_CLAIM = "device_name";

export interface TestDirectory {
  issuer: string;
  /** Signs in `account` with the device flow and returns the ID token. */
  deviceSignIn(account: string): Promise<string>;
  close(): Promise<void>;
}

export async function startDirectory(): Promise<TestDirectory> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: "directory-key-1", alg: "RS256", use: "sig" };
  const server: Server = createServer();
  // The test's fetch keeps connections alive between sign-ins; the server must not close them under it.
  server.keepAliveTimeout = 5 * 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [{ client_id: DEVICE_CLIENT_ID, token_endpoint_auth_method: "none", grant_types: ["urn:ietf:params:oauth:grant-type:device_code"], response_types: [], redirect_uris: [] }],
    jwks: { keys: [jwk] },
    features: { deviceFlow: { enabled: true }, devInteractions: { enabled: true } },
    scopes: ["openid", "device"],
    // sign_in: a value of each sign-in, as real directories give every ID token an ID of its own
    // (Entra ID's uti): without it, two sign-ins of one device in the same second would give the
    // very same token, which the site rightly takes once.
    claims: { openid: ["sub"], device: [DEVICE_CLAIM, "sign_in"] },
    // The device's name in the ID token itself (not only at the userinfo endpoint).
    conformIdTokenClaims: false,
    cookies: { keys: ["a test cookie key, loopback only"] },
    ttl: { DeviceCode: 600, Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, IdToken: 3600 },
    findAccount: async (_ctx: unknown, id: string) => ({ accountId: id, claims: async () => ({ sub: id, [DEVICE_CLAIM]: `PC-${id}`, sign_in: randomUUID() }) }),
  });
  provider.on("server_error", (_ctx: unknown, err: Error) => process.stderr.write(`oidc-provider: ${err.stack}\n`));
  server.on("request", provider.callback());

  return {
    issuer,
    async deviceSignIn(account) {
      const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as { device_authorization_endpoint: string; token_endpoint: string };
      const auth = (await (await fetch(discovery.device_authorization_endpoint, { method: "POST", body: new URLSearchParams({ client_id: DEVICE_CLIENT_ID, scope: "openid device" }) })).json()) as {
        device_code: string;
        user_code: string;
        verification_uri: string;
      };
      await actAsUser(auth.verification_uri, auth.user_code, account);
      const token = await fetch(discovery.token_endpoint, {
        method: "POST",
        body: new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: auth.device_code, client_id: DEVICE_CLIENT_ID }),
      });
      const body = (await token.json()) as { id_token?: string; error?: string };
      if (!body.id_token) throw new Error(`no ID token from the directory: ${JSON.stringify(body)}`);
      return body.id_token;
    },
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** The user at the verification page: enters the code, confirms, signs in, consents (forms and redirects as a browser would). */
async function actAsUser(verificationUri: string, userCode: string, account: string): Promise<void> {
  const cookies = new Map<string, string>();
  const go = async (url: string, form?: Record<string, string>): Promise<{ url: string; html: string }> => {
    for (let hops = 0; hops < 20; hops++) {
      const res = await fetch(url, {
        method: form ? "POST" : "GET",
        redirect: "manual",
        headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; "), ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}) },
        ...(form ? { body: new URLSearchParams(form).toString() } : {}),
      });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(";");
        const eq = pair!.indexOf("=");
        cookies.set(pair!.slice(0, eq), pair!.slice(eq + 1));
      }
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location) {
        url = new URL(location, url).toString();
        form = undefined;
        continue;
      }
      return { url, html: await res.text() };
    }
    throw new Error("too many redirects at the directory");
  };
  const input = (html: string, name: string): string => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? "";
  let page = await go(verificationUri);
  page = await go(verificationUri, { xsrf: input(page.html, "xsrf"), user_code: userCode, confirm: "yes" });
  for (let step = 0; step < 5; step++) {
    const action = /<form[^>]*action="([^"]+)"/.exec(page.html)?.[1];
    const prompt = input(page.html, "prompt");
    if (!action || !prompt) break;
    const target = new URL(action.replaceAll("&amp;", "&"), page.url).toString();
    page = await go(target, prompt === "login" ? { prompt, login: account, password: "any" } : { prompt });
  }
  if (!/success|Sign-in Success|signed in/i.test(page.html)) throw new Error(`the device sign-in did not complete: ${page.html.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").slice(0, 300)}`);
}
