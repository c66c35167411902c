/**
 * Every CMTrace log file the product writes and the component named on its lines, with the names
 * the documents give. A log is opened by its entry here (`logs.component(LOG_FILES.statmgr)`), so a
 * file name is written once.
 */
export interface LogFileSpec {
  readonly file: string;
  readonly component: string;
  /**
   * A line per request (an access log): info and warning lines are written in batches, once per
   * turn of the event loop, instead of a system call each; an error line, a close or the process's
   * exit writes what is waiting first (cmtrace.ts).
   */
  readonly perRequest?: true;
}

export const LOG_FILES = {
  /** admin API and CLI changes to the site (the SMS Provider) */
  smsprov: { file: "smsprov.log", component: "SMS Provider" },
  /** site server start-up and its listeners */
  sitecomp: { file: "sitecomp.log", component: "SMS_SITE_COMPONENT_MANAGER" },
  /** status messages and component status */
  statmgr: { file: "statmgr.log", component: "SMS_STATUS_MANAGER" },
  /** automatic deployment rules and their downloads */
  ruleengine: { file: "ruleengine.log", component: "SMS_RULE_ENGINE" },
  /** software update point synchronisation */
  wsyncmgr: { file: "wsyncmgr.log", component: "SMS_WSUS_SYNC_MANAGER" },
  /** software update point serving clients */
  supServe: { file: "SUPServe.log", component: "SMS_SUP" },
  /** service connection point: product update feed */
  dmpdownloader: { file: "dmpdownloader.log", component: "SMS_DMP_DOWNLOADER" },
  /** service connection point: internet endpoint checks (11488) */
  endpointCheck: { file: "EndpointCheck.log", component: "SMS_SERVICE_CONNECTOR" },
  /** directory discovery */
  adsysdis: { file: "adsysdis.log", component: "SMS_AD_SYSTEM_DISCOVERY_AGENT" },
  /** outbound connections without a role of their own */
  egress: { file: "egress.log", component: "EGRESS" },
  /** management point: client registration */
  mpRegistration: { file: "MP_RegistrationManager.log", component: "MP_RegistrationManager" },
  /** management point: location requests */
  mpLocation: { file: "MP_Location.log", component: "MP_LocationManager" },
  /** management point: policy requests */
  mpPolicy: { file: "MP_Policy.log", component: "MP_PolicyManager" },
  /** management point: status uploads */
  mpStatus: { file: "MP_Status.log", component: "MP_StatusManager" },
  /** management point: start, stop, health */
  mpcontrol: { file: "mpcontrol.log", component: "SMS_MP_CONTROL_MANAGER" },
  /** cloud management gateway definitions (create, update, delete) */
  cloudMgr: { file: "CloudMgr.log", component: "SMS_CLOUD_SERVICES_MANAGER" },
  /** CMG deployment and instance start-up */
  cmgSetup: { file: "CMGSetup.log", component: "CMGSetup" },
  /** CMG instance: service, tunnels, settings */
  cmgService: { file: "CMGService.log", component: "CMGService" },
  /** CMG instance: client traffic and refusals */
  cmgHttpHandler: { file: "CMGHttpHandler.log", component: "CMGHttpHandler", perRequest: true },
  /** CMG connection point: tunnels and forwarded requests */
  cloudProxyConnector: { file: "SMS_Cloud_ProxyConnector.log", component: "SMS_CLOUD_PROXYCONNECTOR" },
  /** client: agent service */
  ccmExec: { file: "CcmExec.log", component: "CcmExec" },
  /** client: messages to the management point */
  ccmMessaging: { file: "CcmMessaging.log", component: "CcmMessaging" },
  /** client: management point location */
  locationServices: { file: "LocationServices.log", component: "LocationServices" },
  /** client: policy */
  policyAgent: { file: "PolicyAgent.log", component: "PolicyAgent_RequestAssignments" },
  /** client: registration */
  clientIdManagerStartup: { file: "ClientIDManagerStartup.log", component: "ClientIdManagerStartup" },
} as const satisfies Record<string, LogFileSpec>;

export type LogFileKey = keyof typeof LOG_FILES;
