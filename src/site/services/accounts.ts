import { ConflictError, checkAll, NotFoundError, OpenCmgError, ValidationError } from "../../errors.ts";
import type { AccountInfo } from "../model.ts";
import { accountName, check } from "../validation.ts";
import { iso, type Db, type ServiceContext } from "./context.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { writeTransaction } from "../db/transaction.ts";

export interface Credentials {
  username: string;
  password: string;
}

/** Checks a secret without ever echoing it in the error. */
function checkSecret(password: string): void {
  if (typeof password !== "string" || password.length === 0) throw new ValidationError("password", "must not be empty");
  if (password.length > 1024) throw new ValidationError("password", "must be at most 1024 characters");
}

/** Accounts (such as the site system proxy server account): stored once, referenced by name. */
export class AccountsService {
  constructor(private readonly ctx: ServiceContext) {}

  private get key() {
    if (!this.ctx.key) throw new OpenCmgError("internal", "SITE_KEY_MISSING", "the site key is not loaded; account secrets cannot be sealed or opened");
    return this.ctx.key;
  }

  async add(nameInput: string, usernameInput: string, password: string): Promise<AccountInfo> {
    // Every field's problem at once, so a form shows them all.
    const { name, username } = checkAll({ name: () => check("name", accountName, nameInput), username: () => check("username", accountName, usernameInput), password: () => checkSecret(password) });
    const sealed = this.key.seal(password, name);
    const now = iso(this.ctx.now());
    const info = await writeTransaction(this.ctx.db, async (tx) => {
      if (await findAccount(tx, name)) throw new ConflictError("name", `account ${name} already exists`);
      const row = await tx.insertInto("accounts").values({ name, username, secret: sealed, created_at: now, updated_at: now }).returning(["id"]).executeTakeFirstOrThrow();
      return { id: row.id, name, username };
    });
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Created account ${name} (user name ${username}).`);
    return info;
  }

  async setPassword(nameInput: string, password: string, usernameInput?: string): Promise<AccountInfo> {
    const name = check("name", accountName, nameInput);
    const { given } = checkAll({ password: () => checkSecret(password), given: () => (usernameInput ? check("username", accountName, usernameInput) : undefined) });
    const current = await this.get(name);
    const username = given ?? current.username;
    await this.ctx.db
      .updateTable("accounts")
      .set({ username, secret: this.key.seal(password, name), updated_at: iso(this.ctx.now()) })
      .where("id", "=", current.id)
      .execute();
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Changed the credentials of account ${name}.`);
    return { ...current, username };
  }

  async list(): Promise<AccountInfo[]> {
    return this.ctx.db.selectFrom("accounts").select(["id", "name", "username"]).orderBy("name").execute();
  }

  async get(name: string): Promise<AccountInfo> {
    const a = await findAccount(this.ctx.db, name);
    if (!a) throw new NotFoundError("account", `account ${name}`);
    return a;
  }

  async remove(name: string): Promise<void> {
    const a = await this.get(name);
    const user = await this.ctx.db
      .selectFrom("proxy_configs")
      .innerJoin("servers", "servers.id", "proxy_configs.server_id")
      .select("servers.fqdn")
      .where("account_id", "=", a.id)
      .executeTakeFirst();
    if (user) throw new ConflictError("account", `account ${a.name} is the proxy account of ${user.fqdn}; change that proxy configuration first`);
    await this.ctx.db.deleteFrom("accounts").where("id", "=", a.id).execute();
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Removed account ${a.name}.`);
  }

  /** The plain credentials, for the egress module only. Never print, log or return these. */
  async credentials(name: string): Promise<Credentials> {
    const r = await this.ctx.db.selectFrom("accounts").select(["username", "secret"]).where("name", "=", name).executeTakeFirst();
    if (!r) throw new NotFoundError("account", `account ${name}`);
    return { username: r.username, password: this.key.open(r.secret, name) };
  }
}

export async function findAccount(db: Db, name: string): Promise<AccountInfo | undefined> {
  return db.selectFrom("accounts").select(["id", "name", "username"]).where("name", "=", name).executeTakeFirst();
}
