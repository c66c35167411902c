/**
 * What the client folder says without running the agent: `opencmg client status`, `client locate`,
 * and queueing status messages for the next upload (`client send-status`).
 */
import { ValidationError } from "../errors.ts";
import type { MpCandidate } from "../wire/mp.ts";
import { StatusQueue, type NewStatus } from "./queue.ts";
import { ClientStore, type ClientConnectionType, type RecordedRefusal } from "./store.ts";
import { explainRefusal, type RefusalExplained } from "../wire/refusals.ts";

const pick = (x: RefusalExplained): { check: string; fix: string } => ({ check: x.check, fix: x.fix });

export interface ClientStatusView {
  dir: string;
  clientId: string;
  name: string;
  approved: boolean;
  alwaysInternet: boolean;
  connectionType: ClientConnectionType | null;
  mpInUse: string | null;
  siteCode: string | null;
  lastLocationAt: string | null;
  lastPolicyAt: string | null;
  lastUploadAt: string | null;
  queuedUploads: number;
  candidates: number;
  lastError: string | null;
  /** The last refusal by a CMG or management point, with the check that refused and what to fix. */
  lastRefusal: (RecordedRefusal & { check: string; fix: string }) | null;
}

/** `opencmg client status`: what the agent last learnt, read from its folder. */
export function clientStatus(dir: string): ClientStatusView {
  const store = new ClientStore(dir);
  const c = store.config();
  const s = store.state();
  return {
    dir: store.dir,
    clientId: c.clientId,
    name: c.name,
    approved: c.approved,
    alwaysInternet: c.alwaysInternet || s.policy?.alwaysOnInternet === true,
    connectionType: s.connectionType,
    mpInUse: s.mpInUse,
    siteCode: s.siteCode,
    lastLocationAt: s.lastLocationAt,
    lastPolicyAt: s.lastPolicyAt,
    lastUploadAt: s.lastUploadAt,
    queuedUploads: new StatusQueue(store.paths.queue).count(),
    candidates: s.candidates.length,
    lastError: s.lastError,
    lastRefusal: s.lastRefusal ? { ...s.lastRefusal, ...(s.lastRefusal.byGateway ? pick(explainRefusal(s.lastRefusal.reason, s.lastRefusal.cause)) : { check: "management point", fix: "see the management point's message" }) } : null,
  };
}

/** `opencmg client locate`: the management point candidates of the last location request. */
export function clientCandidates(dir: string): MpCandidate[] {
  const store = new ClientStore(dir);
  store.config();
  return store.state().candidates;
}

/**
 * Queues status messages for the next upload.
 *
 * @example
 * queueStatus("/var/lib/opencmg-client", [{ messageId: 10002, text: "Agent started" }]);
 */
export function queueStatus(dir: string, messages: NewStatus[]): number {
  const store = new ClientStore(dir);
  store.config();
  return new StatusQueue(store.paths.queue).add(messages).length;
}

/** Most copies of one message `queueStatusCopies` queues at once. */
export const MAX_STATUS_COPIES = 100_000;

/**
 * `opencmg client send-status`: queues `count` copies of one message, each with its own upload
 * ID and, when there are several, `sequence`/`of` properties.
 *
 * @example
 * queueStatusCopies(dir, { messageId: 10002, text: "Agent started" }, 3); // 3
 */
export function queueStatusCopies(dir: string, message: NewStatus, count = 1): number {
  if (!Number.isInteger(count) || count < 1 || count > MAX_STATUS_COPIES) throw new ValidationError("count", `must be a whole number from 1 to ${MAX_STATUS_COPIES}`);
  return queueStatus(
    dir,
    Array.from({ length: count }, (_, i) => ({ ...message, ...(count > 1 ? { properties: { ...message.properties, sequence: i + 1, of: count } } : {}) })),
  );
}
