/**
 * A real OpenID provider on loopback (`oidc-provider`) for the administrators' directory: the
 * authorization code flow with PKCE required (S256), a confidential client (client secret, sent
 * in the body), and the provider's own login and consent pages, which a test drives in the
 * browser (any password; the login names one of `accounts`). The ID token carries the name and
 * groups claims itself.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";

export const ADMIN_CLIENT_ID = "opencmg-console";
export const ADMIN_CLIENT_SECRET = "a-test-client-secret-4f1c9e";

export interface AdminAccount {
  /** The name claim (preferred_username). */
  name: string;
  groups: string[];
}

export interface TestAdminDirectory {
  issuer: string;
  close(): Promise<void>;
}

export async function startAdminDirectory(o: { redirectUri: string; accounts: Record<string, AdminAccount> }): Promise<TestAdminDirectory> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: "admin-directory-key-1", alg: "RS256", use: "sig" };
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: ADMIN_CLIENT_ID,
        client_secret: ADMIN_CLIENT_SECRET,
        token_endpoint_auth_method: "client_secret_post",
        grant_types: ["authorization_code"],
        response_types: ["code"],
        redirect_uris: [o.redirectUri],
      },
    ],
    // Every authorization request must carry an S256 code challenge.
    pkce: { required: () => true, methods: ["S256"] },
    jwks: { keys: [jwk] },
    features: { devInteractions: { enabled: true } },
    scopes: ["openid", "profile"],
    claims: { openid: ["sub"], profile: ["preferred_username", "groups"] },
    conformIdTokenClaims: false,
    cookies: { keys: ["an admin test cookie key, loopback only"] },
    ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, IdToken: 3600, AuthorizationCode: 60 },
    findAccount: async (_ctx: unknown, id: string) => {
      const a = o.accounts[id];
      if (!a) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, preferred_username: a.name, groups: a.groups }) };
    },
  });
  provider.on("server_error", (_ctx: unknown, err: Error) => process.stderr.write(`oidc-provider: ${err.stack}\n`));
  server.on("request", provider.callback());
  return {
    issuer,
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
