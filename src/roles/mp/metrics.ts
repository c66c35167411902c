/**
 * Prometheus metrics of one management point, in a registry of its own (served by `mp serve
 * --metrics HOST:PORT`, the same small server as the gateway's, src/observe/prometheus.ts). Every
 * series carries `mp` (its server's FQDN).
 */
import { Counter, Registry } from "prom-client";
import { addProcessMetrics } from "../../observe/prometheus.ts";

/** What became of an uploaded status message. */
export const STATUS_RESULTS = ["stored", "duplicate", "refused_rate", "refused_day", "refused_invalid"] as const;
export type StatusResult = (typeof STATUS_RESULTS)[number];

export class MpMetrics {
  readonly registry = new Registry();
  readonly statusMessages: Counter<"result">;

  constructor(mp: string, o: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ mp });
    if (o.processMetrics) addProcessMetrics(this.registry);
    this.statusMessages = new Counter({
      name: "opencmg_mp_status_messages_total",
      help: "Status messages clients uploaded, by result: stored, duplicate (held already), refused_rate and refused_day (a client's limits: 429), refused_invalid (400)",
      labelNames: ["result"],
      registers,
    });
    for (const result of STATUS_RESULTS) this.statusMessages.inc({ result }, 0);
  }
}
