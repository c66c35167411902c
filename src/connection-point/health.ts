/**
 * A connection point's health, from its tunnels: the component status of SMS_CLOUD_PROXYCONNECTOR
 * and the message the site shows with it.
 */
import type { ComponentStatus, HealthReport, InstanceHealth } from "../observe/channels.ts";
import type { TunnelSlot } from "./tunnel.ts";

export type { ComponentStatus, HealthReport, InstanceHealth } from "../observe/channels.ts";

/**
 * ok: every tunnel up and `settingsRevision` in force everywhere; warning: every instance
 * reachable, but not all tunnels up or another revision in force somewhere; critical: an instance
 * has no tunnel.
 *
 * @example
 * const h = computeHealth("cp1.contoso.local", [...slots.values()], settings.revision);
 */
export function computeHealth(connectionPoint: string, slotsByInstance: TunnelSlot[][], settingsRevision: number): HealthReport {
  const instances = slotsByInstance.map(instanceHealth);
  const down = instances.filter((i) => i.connected === 0);
  const partial = instances.filter((i) => i.connected > 0 && i.connected < i.wanted);
  // Either way is worth a look: an instance behind has not taken the push; an instance ahead got
  // newer settings from another connection point than this one has from the site.
  const stale = instances.filter((i) => i.connected > 0 && i.revisionInForce !== null && i.revisionInForce !== settingsRevision);
  let status: ComponentStatus = "ok";
  let message = `${instances.length} instance(s), all tunnels up`;
  if (instances.length === 0) {
    status = "critical";
    message = "no gateway instance to connect to";
  } else if (down.length > 0) {
    status = "critical";
    message = down.map((i) => `no tunnel to ${i.host}:${i.port}${i.lastError ? ` (${i.lastError.code}: ${i.lastError.message})` : ""}`).join("; ");
  } else if (partial.length > 0 || stale.length > 0) {
    status = "warning";
    message = [
      ...partial.map((i) => `${i.connected} of ${i.wanted} tunnels to ${i.host}:${i.port}`),
      ...stale.map((i) => `${i.host}:${i.port} enforces settings revision ${i.revisionInForce}, this connection point has ${settingsRevision}`),
    ].join("; ");
  }
  return { at: new Date(), connectionPoint, status, message, settingsRevision, instances };
}

function instanceHealth(list: TunnelSlot[]): InstanceHealth {
  const e = list[0]!.endpoint;
  const up = list.filter((s) => s.state === "connected");
  return {
    host: e.host,
    port: e.port,
    instance: up.find((s) => s.instance)?.instance ?? null,
    connected: up.length,
    wanted: list.length,
    revisionInForce: up.reduce<number | null>((m, s) => (s.revisionInForce === null ? m : Math.max(m ?? -Infinity, s.revisionInForce)), null),
    lastError: list.map((s) => s.lastError).find((x) => x !== null) ?? null,
  };
}
