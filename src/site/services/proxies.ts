import { FieldChecks, ValidationError } from "../../errors.ts";
import type { EgressRoute } from "../../egress/route.ts";
import { checkProxyConfig, decideProxy, isProxySubject, type ProxyDecision } from "../../proxy/rules.ts";
import { FEATURES, ROLE_KINDS, DEFAULT_PROXY_PORT, type ProxyConfig } from "../model.ts";
import { check, fqdn as fqdnRule, port as portRule, proxyHost } from "../validation.ts";
import type { AccountsService } from "./accounts.ts";
import { findAccount } from "./accounts.ts";
import { iso, type ServiceContext } from "./context.ts";
import { writeTransaction } from "../db/transaction.ts";
import { getServer } from "./servers.ts";
import { loadProxyModel } from "./snapshot.ts";
import { LOG_FILES } from "../../logs/files.ts";

export interface ProxyInput {
  enabled?: boolean | undefined;
  host: string;
  /** Default 80, as the documents say. */
  port?: number | string | undefined;
  /** The site system proxy server account's name; none to go out as the server itself. */
  account?: string | null | undefined;
}

/** The one proxy configuration of each site system server, and what each role makes of it. */
export class ProxiesService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly accounts: AccountsService,
  ) {}

  /** Saves the server's proxy configuration, replacing the previous one entirely. */
  async set(fqdnInput: string, input: ProxyInput): Promise<ProxyConfig> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    // Every field's problem at once (the account's too), so a form shows them all.
    const v = new FieldChecks();
    const host = v.take(() => check("host", proxyHost, input.host));
    const port = input.port === undefined ? DEFAULT_PROXY_PORT : v.take(() => check("port", portRule, input.port));
    const enabled = input.enabled ?? true;
    const accountName = input.account ?? null;
    const saved = await writeTransaction(this.ctx.db, async (tx) => {
      const server = await getServer(tx, fqdn);
      let accountId: number | null = null;
      if (accountName !== null) {
        const a = await findAccount(tx, accountName);
        accountId =
          v.take(() => {
            if (!a) throw new ValidationError("account", `must name an existing account; there is no account ${accountName} (create it with opencmg account add)`);
            return a.id;
          }) ?? null;
      }
      v.done();
      const next = { enabled, host: host!, port: port!, account: accountName };
      checkProxyConfig(await loadProxyModel(tx), fqdn, next);
      const row = { enabled: enabled ? 1 : 0, host: next.host, port: next.port, account_id: accountId, updated_at: iso(this.ctx.now()) };
      // Replace, never merge: a new configuration overwrites the previous one as a whole.
      await tx.deleteFrom("proxy_configs").where("server_id", "=", server.id).execute();
      await tx.insertInto("proxy_configs").values({ server_id: server.id, ...row }).execute();
      return { server: fqdn, ...next };
    });
    const as = saved.account ? `with account ${saved.account}` : "without an account";
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Saved the proxy configuration of ${fqdn}: ${saved.enabled ? "enabled" : "disabled"}, ${saved.host}:${saved.port}, ${as}.`);
    return saved;
  }

  async show(fqdnInput: string): Promise<ProxyConfig | null> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    const server = await getServer(this.ctx.db, fqdn);
    const r = await this.ctx.db
      .selectFrom("proxy_configs")
      .leftJoin("accounts", "accounts.id", "proxy_configs.account_id")
      .select(["proxy_configs.enabled", "proxy_configs.host", "proxy_configs.port", "accounts.name as account"])
      .where("server_id", "=", server.id)
      .executeTakeFirst();
    return r ? { server: fqdn, enabled: r.enabled === 1, host: r.host, port: r.port, account: r.account ?? null } : null;
  }

  async clear(fqdnInput: string): Promise<void> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    await writeTransaction(this.ctx.db, async (tx) => {
      const server = await getServer(tx, fqdn);
      checkProxyConfig(await loadProxyModel(tx), fqdn, null);
      await tx.deleteFrom("proxy_configs").where("server_id", "=", server.id).execute();
    });
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Cleared the proxy configuration of ${fqdn}.`);
  }

  /** Which proxy role or feature `subject` uses on `fqdn`, and why. */
  async effective(fqdnInput: string, subject: string): Promise<ProxyDecision> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    if (!isProxySubject(subject)) throw new ValidationError("role", `must be a role (${ROLE_KINDS.join(", ")}) or a feature (${FEATURES.join(", ")})`);
    return decideProxy(await loadProxyModel(this.ctx.db), fqdn, subject);
  }

  /**
   * The route the egress module takes for `subject` on `fqdn`, with the proxy account's
   * credentials opened. Read fresh on every call so a replaced configuration applies at once.
   */
  async route(fqdn: string, subject: string): Promise<{ decision: ProxyDecision; route: EgressRoute }> {
    const decision = await this.effective(fqdn, subject);
    if (decision.use !== "proxy") return { decision, route: { mode: "direct" } };
    const credentials = decision.account ? await this.accounts.credentials(decision.account) : undefined;
    return { decision, route: { mode: "proxy", host: decision.host, port: decision.port, ...(credentials ? { credentials } : {}) } };
  }
}
