/**
 * Status message IDs. 11488 comes from the source documents (required endpoints unreachable);
 * the others are OpenCMG's own, in one place so that alerts and searches can rely on them.
 */
export const StatusId = {
  /** The site cannot reach the internet endpoints a cloud service needs (documents). */
  ENDPOINTS_UNREACHABLE: 11488,
  /** The endpoints a cloud service needs are reachable again. */
  ENDPOINTS_REACHABLE: 11489,
  /** Software update synchronisation failed. */
  SUP_SYNC_FAILED: 6703,
  /** Software update synchronisation completed. */
  SUP_SYNC_DONE: 6702,
  /** An automatic deployment rule could not download update content. */
  ADR_DOWNLOAD_FAILED: 5800,
  /** The service connection point could not check the product update feed. */
  SCP_FEED_FAILED: 9700,
  /** The CMG connection point lost or regained its gateway connections. */
  CMG_CONNECTOR_STATE: 9417,
  /** A CMG instance process exited and its supervisor (`opencmg cmg start`) restarted it. */
  CMG_INSTANCE_RESTARTED: 9460,
  /** A CMG's outbound traffic over 14 days reached the warning level of its traffic alert. */
  CMG_TRAFFIC_WARNING: 9470,
  /** A CMG's outbound traffic over 14 days reached the critical level of its traffic alert. */
  CMG_TRAFFIC_CRITICAL: 9471,
  /** A CMG's outbound traffic is back below the warning level (or its alert was removed). */
  CMG_TRAFFIC_CLEARED: 9472,
  /** A CMG's server authentication certificate expires within 30 days. */
  CMG_CERT_EXPIRES_30_DAYS: 9473,
  /** A CMG's server authentication certificate expires within 7 days. */
  CMG_CERT_EXPIRES_7_DAYS: 9474,
  /** The traffic alert's stop-on-critical option stopped a CMG, or could not. */
  CMG_STOPPED_ON_CRITICAL: 9475,
} as const;

/** The site's own message IDs: a device may not upload a message under one of them. */
export const SITE_MESSAGE_IDS: ReadonlySet<number> = new Set(Object.values(StatusId));

/**
 * The site's components are named `SMS_*`, as in the platform (SMS_CLOUD_SERVICES_MANAGER,
 * SMS_MP_CONTROL_MANAGER, ...); a device's own components are not (CcmExec, LocationServices).
 */
export const SITE_COMPONENT_PREFIX = "SMS_";

export function isSiteComponent(name: string): boolean {
  return name.toUpperCase().startsWith(SITE_COMPONENT_PREFIX);
}
