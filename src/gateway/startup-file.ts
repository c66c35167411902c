/**
 * A gateway instance's start-up file: the only configuration an instance reads (SPEC: everything
 * else arrives through the connection point). `opencmg cmg bundle` writes it; `opencmg gateway
 * serve --config FILE` reads it, here or on another host (the external provider).
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { ValidationError } from "../errors.ts";
import { admittedConnectionPointSchema, MAX_ADMITTED_CONNECTION_POINTS, MAX_SETTINGS_KEYS, publicJwkSchema } from "../wire/tunnel/protocol.ts";
import type { GatewayInstanceConfig } from "./config.ts";

export const startupFileSchema = z.object({
  version: z.literal(1),
  name: z.string(),
  index: z.number().int().min(0).max(15),
  serverCertFile: z.string(),
  serverKeyFile: z.string(),
  tunnelCertFile: z.string(),
  tunnelKeyFile: z.string(),
  siteCaFile: z.string(),
  client: z.object({ host: z.string(), port: z.number().int().min(0).max(65535) }),
  tunnel: z.object({ host: z.string(), port: z.number().int().min(0).max(65535) }),
  metrics: z.object({ host: z.string().default("127.0.0.1"), port: z.number().int().min(0).max(65535) }).nullable(),
  /** What the site trusts, as the bundle was written: until the first signed settings, the instance goes by it. */
  trust: z
    .object({
      settingsKeys: z.array(publicJwkSchema).min(1).max(MAX_SETTINGS_KEYS),
      connectionPoints: z.array(admittedConnectionPointSchema).max(MAX_ADMITTED_CONNECTION_POINTS),
      minRevision: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    })
    .strict(),
});
export type StartupFile = z.output<typeof startupFileSchema>;

/** Reads a start-up file; paths in it are relative to the file. */
export function loadStartupFile(file: string): GatewayInstanceConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ValidationError("config", `cannot read the start-up file ${file}: ${(e as Error).message}`);
  }
  const r = startupFileSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ValidationError(`config.${i.path.join(".")}`, i.message);
  }
  const f = r.data;
  const at = (p: string): string => {
    try {
      return readFileSync(resolve(dirname(file), p), "utf8");
    } catch (e) {
      throw new ValidationError("config", `cannot read ${p} named in ${file}: ${(e as Error).message}`);
    }
  };
  return {
    name: f.name,
    index: f.index,
    serverCert: { certPem: at(f.serverCertFile), keyPem: at(f.serverKeyFile) },
    client: f.client,
    tunnel: { host: f.tunnel.host, port: f.tunnel.port, siteCaPem: at(f.siteCaFile), cert: { certPem: at(f.tunnelCertFile), keyPem: at(f.tunnelKeyFile) } },
    metrics: f.metrics,
    trust: f.trust,
  };
}
