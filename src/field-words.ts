/**
 * The API's field names in words, as the documents and the console label them, so a validation
 * message names a field the way an administrator reads it ("Private key file", not "serverKeyPem").
 * Fields not listed here are spelt out from their name ("resourceGroup" -> "Resource group").
 */
const WORDS: Record<string, string> = {
  // CMG (Create Cloud Management Gateway wizard, CMG Properties)
  cloud: "Azure environment",
  provider: "Provider",
  serviceFqdn: "Service FQDN",
  serverCertPem: "Certificate file",
  serverKeyPem: "Private key file",
  serverPfx: "Certificate file",
  serverCert: "Certificate file",
  serverKey: "Private key file",
  pfxPassword: "PFX password",
  instances: "VM instance",
  trustedRoots: "Trusted root certificate files",
  intermediates: "Intermediate certificate files",
  crlCheck: "Verify Client Certificate Revocation",
  minRsaBits: "Smallest RSA key of client certificates",
  listenHost: "Listen address",
  publicHost: "Public host name",
  instanceHost: "Public host name",
  clientPortBase: "Client port of the first instance",
  tunnelPortBase: "Tunnel port of the first instance",
  metricsPortBase: "Metrics port of the first instance",
  metricsHost: "Metrics bind address",
  kubeconfig: "Kubeconfig path",
  thresholdGb: "14-day threshold (GB)",
  warningPct: "Percentage of threshold for Warning alert",
  criticalPct: "Percentage of threshold for Critical alert",
  stopOnCritical: "Stop this service when it exceeds the critical threshold",
  trafficAlert: "14-day threshold for alerting",
  // Client Settings
  locationIntervalMinutes: "Location request interval (minutes)",
  policyIntervalMinutes: "Client policy polling interval (minutes)",
  useCmg: "Enable clients to use a cloud management gateway",
  alwaysOnInternet: "Clients are always on the internet",
  // Proxy, accounts, tokens, administrative users
  host: "Proxy server name",
  port: "Port",
  account: "Proxy server account",
  username: "User name",
  password: "Password",
  lifetimeMinutes: "Token lifetime (minutes)",
  lifetime: "Token lifetime (minutes)",
  maxUses: "Most devices it registers",
  kind: "Type",
  value: "Name",
  role: "Security role",
  fqdn: "FQDN",
  siteCode: "Site code",
  messageId: "Message ID",
  clientId: "Client ID",
  siteName: "Site name",
};

/** The words for an API field path: "deploy.trafficAlert.thresholdGb" -> "14-day threshold (GB)", "trustedRoots.1" -> "Trusted root certificate files (2nd)". */
export function fieldWords(path: string): string {
  const parts = path.split(/[.[\]]+/).filter(Boolean);
  const last = [...parts].reverse().find((p) => !/^\d+$/.test(p)) ?? path;
  const index = parts.length > 0 && /^\d+$/.test(parts[parts.length - 1]!) ? Number(parts[parts.length - 1]) : undefined;
  const words = WORDS[last] ?? spelt(last);
  return index === undefined ? words : `${words} (${ordinal(index + 1)})`;
}

function spelt(name: string): string {
  if (name === "body") return "The request";
  const s = name.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/[-_]+/g, " ").toLowerCase();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function ordinal(n: number): string {
  const t = n % 100;
  if (t >= 11 && t <= 13) return `${n}th`;
  return `${n}${["th", "st", "nd", "rd"][n % 10] ?? "th"}`;
}
