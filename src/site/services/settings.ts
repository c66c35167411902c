/**
 * Site-wide settings: the intervals of the site's schedules and the client defaults, each with its
 * default and its rule. Only values that differ from the default are stored (`site_settings`), so a
 * default changed in a later release reaches sites that never set the key. Schedules read their
 * interval again after each run (`src/schedule.ts`), so `opencmg settings set` applies without a
 * restart.
 */
import { OpenCmgError, ValidationError } from "../../errors.ts";
import { formatDuration, parseDuration } from "../../duration.ts";
import { LOG_FILES } from "../../logs/files.ts";
import type { ClientsService } from "./clients.ts";
import { iso, type ServiceContext } from "./context.ts";
import { DIRECTORY_SETTINGS } from "./directory.ts";
import { ADMIN_DIRECTORY_SETTINGS } from "./admin-directory.ts";
import { MAX_STATUS_BATCH } from "../../wire/mp.ts";

export interface SettingDefinition {
  description: string;
  /** The default, in the same form `normalize` returns. */
  default: string;
  /** The rule a value must meet, as errors and `settings list` state it. */
  rule: string;
  /** The value in its one stored form (`60m` -> `1h`); throws a ValidationError stating the rule. */
  normalize(field: string, raw: string): string;
  /**
   * A secret (a client secret): stored sealed with the site key, never shown: the setting reads
   * SECRET_SET when one is stored, "" when none; only `secret(key)` opens it, for its one user.
   */
  secret?: true;
}

/** What a secret setting reads as while one is stored. */
export const SECRET_SET = "(set)";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** A duration from `min` to `max`; with `off`, the word `off` turns the schedule off. */
export function durationSetting(o: { description: string; default: string; min: number; max: number; off?: boolean; wholeMinutes?: boolean }): SettingDefinition {
  const rule = `a duration such as 30s, 5m, 1h or 2d, from ${formatDuration(o.min)} to ${formatDuration(o.max)}${o.wholeMinutes ? " in whole minutes" : ""}${o.off ? ", or off" : ""}`;
  return {
    description: o.description,
    default: o.default,
    rule,
    normalize(field, raw) {
      const text = raw.trim().toLowerCase();
      if (o.off && text === "off") return "off";
      let ms: number;
      try {
        ms = parseDuration(field, text);
      } catch {
        throw new ValidationError(field, `must be ${rule}`, `${field}: must be ${rule} (got ${JSON.stringify(raw)})`);
      }
      if (ms < o.min || ms > o.max || (o.wholeMinutes && ms % MINUTE !== 0)) {
        throw new ValidationError(field, `must be ${rule}`, `${field}: must be ${rule} (got ${JSON.stringify(raw)})`);
      }
      return formatDuration(ms);
    },
  };
}

/** A whole number from `min` to `max` (a count, a rate). */
export function countSetting(o: { description: string; default: number; min: number; max: number; unit: string }): SettingDefinition {
  const rule = `a whole number of ${o.unit} from ${o.min} to ${o.max}`;
  return {
    description: o.description,
    default: String(o.default),
    rule,
    normalize(field, raw) {
      const text = raw.trim();
      const n = /^\d{1,10}$/.test(text) ? Number(text) : NaN;
      if (!Number.isInteger(n) || n < o.min || n > o.max) throw new ValidationError(field, `must be ${rule}`, `${field}: must be ${rule} (got ${JSON.stringify(raw)})`);
      return String(n);
    },
  };
}

/**
 * Every site setting. A new setting is one entry here; its reader decides what the value means.
 * Keys are lower-case words joined by hyphens, as typed on the command line.
 */
export const SITE_SETTINGS = {
  "endpoint-check-interval": durationSetting({
    description: "Time between the service connection point's scheduled checks of the internet endpoints (status message 11488 when one fails)",
    default: "1h",
    min: MINUTE,
    max: DAY,
    off: true,
  }),
  "traffic-report-interval": durationSetting({
    description: "Time between a CMG connection point's traffic reports (requests and bytes per instance and role)",
    default: "5m",
    min: SECOND,
    max: HOUR,
  }),
  "alert-evaluation-interval": durationSetting({
    description: "Time between evaluations of the CMGs' traffic alerts and certificate expiry warnings",
    default: "15m",
    min: SECOND,
    max: DAY,
  }),
  "client-location-interval": durationSetting({
    description: "Time between a client's location requests (how soon clients learn a new or removed CMG)",
    default: "1d",
    min: MINUTE,
    max: 7 * DAY,
    wholeMinutes: true,
  }),
  "client-policy-interval": durationSetting({
    description: "Time between a client's policy requests",
    default: "1h",
    min: MINUTE,
    max: 7 * DAY,
    wholeMinutes: true,
  }),
  // Limits on each client's status messages (src/roles/mp/status-limit.ts). A client sends a few
  // dozen a day; one back from a week offline a few hundred at once. A flood is thousands a second.
  "client-status-rate": countSetting({
    description: "Status messages a client may upload per minute, sustained (each management point; more are refused with 429 and the client retries)",
    default: 60,
    min: 1,
    max: 1_000_000,
    unit: "messages per minute",
  }),
  "client-status-burst": countSetting({
    description: "Status messages a client may upload at once above its rate (a backlog after time offline); at least one full upload",
    default: 1000,
    min: MAX_STATUS_BATCH,
    max: 1_000_000,
    unit: "messages",
  }),
  "client-status-per-day": countSetting({
    description: "Status messages the site stores from one client in 24 hours; more are refused with 429 until older ones age out of the 24 hours",
    default: 10_000,
    min: MAX_STATUS_BATCH,
    max: 10_000_000,
    unit: "messages",
  }),
  "status-message-retention": countSetting({
    description: "Status messages (the site's and the clients') older than this many days are deleted (the platform's Delete Aged Status Messages task)",
    default: 30,
    min: 1,
    max: 3650,
    unit: "days",
  }),
  "status-cleanup-interval": durationSetting({
    description: "Time between the site server's runs that delete aged status messages",
    default: "1d",
    min: SECOND,
    max: 7 * DAY,
  }),
  // Directory sign-in (OpenID Connect): src/site/services/directory.ts.
  ...DIRECTORY_SETTINGS,
  // The administrators' directory (console sign-in): src/site/services/admin-directory.ts.
  ...ADMIN_DIRECTORY_SETTINGS,
} satisfies Record<string, SettingDefinition>;

export type SettingKey = keyof typeof SITE_SETTINGS;

export interface SettingView {
  key: SettingKey;
  value: string;
  default: string;
  /** True when the value is the default (nothing stored). */
  isDefault: boolean;
  description: string;
  rule: string;
  updatedAt: string | null;
}

/**
 * The client defaults the management points hand out as policy have lived in `client_settings`
 * since before this service: these keys read and write there, so there is one value, not two.
 */
const CLIENT_SETTING_FIELDS = {
  "client-location-interval": "locationIntervalMinutes",
  "client-policy-interval": "policyIntervalMinutes",
} as const satisfies Partial<Record<SettingKey, string>>;

function isClientSetting(key: SettingKey): key is keyof typeof CLIENT_SETTING_FIELDS {
  return key in CLIENT_SETTING_FIELDS;
}

export function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(SITE_SETTINGS, key);
}

/**
 * @example
 * await settings.set("traffic-report-interval", "30s");
 * await settings.durationMs("traffic-report-interval"); // 30000
 * await settings.durationMs("endpoint-check-interval"); // null when set to off
 */
export class SettingsService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly clients: ClientsService,
  ) {}

  async list(): Promise<SettingView[]> {
    const rows = await this.ctx.db.selectFrom("site_settings").selectAll().execute();
    const stored = new Map(rows.map((r) => [r.key, r]));
    const out: SettingView[] = [];
    for (const key of Object.keys(SITE_SETTINGS) as SettingKey[]) out.push(await this.#view(key, stored.get(key)));
    return out;
  }

  async get(key: string): Promise<SettingView> {
    const k = this.#key(key);
    const row = await this.ctx.db.selectFrom("site_settings").selectAll().where("key", "=", k).executeTakeFirst();
    return this.#view(k, row);
  }

  /** Validates and stores a value; setting the default removes the stored value. */
  async set(key: string, value: unknown): Promise<SettingView> {
    const k = this.#key(key);
    if (typeof value !== "string") throw new ValidationError(k, "must be text", `${k}: must be text such as ${SITE_SETTINGS[k].default}`);
    const def: SettingDefinition = SITE_SETTINGS[k];
    const normalized = def.normalize(k, value);
    if (def.secret) return this.#setSecret(k, normalized);
    if (isClientSetting(k)) {
      await this.clients.setSettings({ [CLIENT_SETTING_FIELDS[k]]: parseDuration(k, normalized) / MINUTE });
    } else if (normalized === def.default) {
      await this.ctx.db.deleteFrom("site_settings").where("key", "=", k).execute();
    } else {
      const row = { value: normalized, updated_at: iso(this.ctx.now()) };
      await this.ctx.db
        .insertInto("site_settings")
        .values({ key: k, ...row })
        .onConflict((oc) => oc.column("key").doUpdateSet(row))
        .execute();
    }
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Site setting ${k} set to ${normalized}.`);
    return this.get(k);
  }

  /** The opened value of a secret setting; "" when none is stored. */
  async secret(key: SettingKey): Promise<string> {
    const def: SettingDefinition = SITE_SETTINGS[key];
    if (!def.secret) throw new ValidationError("key", "must be a secret setting", `key: ${key} is not a secret setting`);
    const row = await this.ctx.db.selectFrom("site_settings").select("value").where("key", "=", key).executeTakeFirst();
    return row ? this.#key_().open(row.value, `setting/${key}`) : "";
  }

  async #setSecret(k: SettingKey, value: string): Promise<SettingView> {
    if (value === "") {
      await this.ctx.db.deleteFrom("site_settings").where("key", "=", k).execute();
      this.ctx.logs.component(LOG_FILES.smsprov).info(`Site setting ${k} cleared.`);
    } else {
      // Sealed with the site key, bound to the setting's name; the log says only that it changed.
      const row = { value: this.#key_().seal(value, `setting/${k}`), updated_at: iso(this.ctx.now()) };
      await this.ctx.db
        .insertInto("site_settings")
        .values({ key: k, ...row })
        .onConflict((oc) => oc.column("key").doUpdateSet(row))
        .execute();
      this.ctx.logs.component(LOG_FILES.smsprov).info(`Site setting ${k} replaced (a secret: its value is not logged).`);
    }
    return this.get(k);
  }

  #key_() {
    if (!this.ctx.key) throw new OpenCmgError("internal", "SITE_KEY_MISSING", "the site key is not loaded; secret settings cannot be sealed or opened");
    return this.ctx.key;
  }

  /** Back to the default. */
  async reset(key: string): Promise<SettingView> {
    const k = this.#key(key);
    return this.set(k, SITE_SETTINGS[k].default);
  }

  /** A duration setting in milliseconds; null when it is `off`. */
  async durationMs(key: SettingKey): Promise<number | null> {
    const { value } = await this.get(key);
    return value === "off" ? null : parseDuration(key, value);
  }

  /** A count setting as a number. */
  async count(key: SettingKey): Promise<number> {
    return Number((await this.get(key)).value);
  }

  #key(key: string): SettingKey {
    if (!isSettingKey(key)) {
      const rule = `must be one of ${Object.keys(SITE_SETTINGS).join(", ")}`;
      throw new ValidationError("key", rule, `key: ${rule} (got ${JSON.stringify(key)})`);
    }
    return key;
  }

  async #view(key: SettingKey, row: { value: string; updated_at: string } | undefined): Promise<SettingView> {
    const def: SettingDefinition = SITE_SETTINGS[key];
    let value = def.secret ? (row ? SECRET_SET : "") : (row?.value ?? def.default);
    let updatedAt = row?.updated_at ?? null;
    if (isClientSetting(key)) {
      const c = await this.clients.settings();
      value = formatDuration(c[CLIENT_SETTING_FIELDS[key]] * MINUTE);
      updatedAt = null;
    }
    return { key, value, default: def.default, isDefault: value === def.default, description: def.description, rule: def.rule, updatedAt };
  }
}
