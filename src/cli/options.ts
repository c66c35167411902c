/** Option parsers shared by the long-running commands (`... serve`, `up`): each names its field and rule. */
import { isIP } from "node:net";
import { ValidationError } from "../errors.ts";
import { isLogLevel, LOG_LEVELS, type LogLevel } from "../logs/cmtrace.ts";
import { isHostName } from "../site/validation.ts";

/** The `--log-level` option's help text. */
export const LOG_LEVEL_HELP = `least severe CMTrace line written: ${LOG_LEVELS.join(", ")} (info writes all)`;

/**
 * `--log-level`: one of CMTrace's severities.
 *
 * @example
 * const level = logLevelOpt(o.logLevel); // "warning"
 */
export function logLevelOpt(v: string): LogLevel {
  if (!isLogLevel(v)) throw new ValidationError("logLevel", `must be one of ${LOG_LEVELS.join(", ")}`, `logLevel: must be one of ${LOG_LEVELS.join(", ")} (got ${JSON.stringify(v)})`);
  return v;
}

/** The `--log-size-mb` bounds and default, in megabytes (2.5: the platform's default log size). */
export const LOG_SIZE_MB = { min: 1, max: 1024, default: "2.5" } as const;

/** The `--log-size-mb` option's help text. */
export const LOG_SIZE_HELP = `size in MB at which each CMTrace file rotates to NAME.lo_, one previous file kept (${LOG_SIZE_MB.min} to ${LOG_SIZE_MB.max}; decimals allowed)`;

/**
 * `--log-size-mb`: the rotation size of each CMTrace file, in bytes. Plain decimal numbers only
 * (no sign, exponent or hexadecimal, which Number() would take): an administrator types
 * megabytes, and `1e3` or `0x10` in a unit file is more likely a mistake than a size.
 *
 * @example
 * const maxBytes = logSizeOpt("1.5"); // 1572864
 */
export function logSizeOpt(v: string): number {
  const mb = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
  if (!(mb >= LOG_SIZE_MB.min && mb <= LOG_SIZE_MB.max)) {
    const rule = `must be a number of megabytes from ${LOG_SIZE_MB.min} to ${LOG_SIZE_MB.max}`;
    throw new ValidationError("logSizeMb", rule, `logSizeMb: ${rule} (got ${JSON.stringify(v)})`);
  }
  return Math.round(mb * 1024 * 1024);
}

/** `--metrics-host`: the address a metrics listener binds, an IP address or a host name. */
export function bindHostOpt(field: string, v: string): string {
  if (isIP(v) === 0 && !isHostName(v)) throw new ValidationError(field, "must be an IP address or host name to bind", `${field}: must be an IP address or host name to bind (got ${JSON.stringify(v)})`);
  return v;
}

/** An `<on|off>` option: undefined when not given, else true or false (refusing anything else, naming `field`). */
export const onOff = (field: string, v: string | undefined): boolean | undefined => {
  if (v === undefined) return undefined;
  if (/^(on|true|yes|1)$/i.test(v)) return true;
  if (/^(off|false|no|0)$/i.test(v)) return false;
  throw new ValidationError(field, "must be on or off", `${field}: must be on or off (got ${JSON.stringify(v)})`);
};
