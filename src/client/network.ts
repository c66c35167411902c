/**
 * Where the device is: on the intranet when the internal probe (if configured) or an intranet
 * management point answers, unless always-on-internet is set; else on the internet, through a
 * CMG. The management point to use comes with the answer.
 */
import type { MpCandidate } from "../wire/mp.ts";
import { mpTypeOf } from "./mp-url.ts";
import type { ClientConfig, ClientConnectionType, ClientState } from "./store.ts";
import type { MpTransport } from "./transport.ts";

export interface NetworkDecision {
  connectionType: ClientConnectionType;
  /** The first management point of that kind that answered; null when none did. */
  mp: string | null;
}

export interface NetworkProbe {
  transport: Pick<MpTransport, "ping" | "reachable">;
  /** Overrides the internal probe of the configuration. */
  internalProbe?: string | undefined;
  /** How long an MP or the probe has to answer. */
  timeoutMs: number;
}

/**
 * Intranet or internet, and the management point to use.
 *
 * @example
 * const { connectionType, mp } = await decideNetwork(store.config(), store.state(), { transport, timeoutMs: 3000 });
 */
export async function decideNetwork(c: ClientConfig, s: ClientState, p: NetworkProbe): Promise<NetworkDecision> {
  const always = c.alwaysInternet || s.policy?.alwaysOnInternet === true;
  const bootstrapType = mpTypeOf(c.bootstrapMp);
  const of = (type: MpCandidate["type"]): string[] => {
    const urls = s.candidates.filter((m) => m.type === type).map((m) => m.url);
    // The install MP is the last resort of its kind (the only one before the first location answer).
    if (bootstrapType === type && !urls.includes(c.bootstrapMp)) urls.push(c.bootstrapMp);
    return urls;
  };
  const firstAnswering = async (urls: string[]): Promise<string | null> => {
    const answers = await Promise.all(urls.map((u) => p.transport.ping(u, p.timeoutMs)));
    return urls[answers.indexOf(true)] ?? null;
  };
  if (!always) {
    const probe = p.internalProbe ?? c.internalProbe;
    const probeSaysIntranet = probe ? await p.transport.reachable(probe, p.timeoutMs) : undefined;
    if (probeSaysIntranet !== false) {
      const mp = await firstAnswering(of("Intranet"));
      if (mp || probeSaysIntranet) return { connectionType: "intranet", mp };
    }
  }
  return { connectionType: "internet", mp: await firstAnswering(of("Internet")) };
}
