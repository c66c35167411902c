/**
 * What to do about a failed analyzer check, in the console's words: the page, the object and the
 * button to use. The command line's words (flags, commands) stay in `cliFix`, from the gateway's
 * own table (src/wire/refusals.ts) or the analyzer. The console shows `fix`; `cmg analyze` prints
 * `cliFix` when there is one.
 */
import { explainRefusal } from "../../wire/refusals.ts";

/** Where the console keeps a CMG's settings. */
export const cmgProperties = (cmg: string): string => `in Administration > Cloud Services > Cloud Management Gateway, select ${cmg} and choose Properties`;
const SERVERS = "Administration > Site Configuration > Servers and Site System Roles";

/** Console fixes for the gateway reasons whose command-line fix names a command or flag. */
function consoleRefusalFix(cmg: string, reason: string, cause: string | undefined): string | undefined {
  if (cause === "no_crl_distribution_point") return `revocation checking is on but a certificate of the chain names no CRL distribution point: reissue it from a CA that writes one, or clear Verify Client Certificate Revocation (${cmgProperties(cmg)})`;
  if (cause === "crl_unreachable") return `revocation checking is on and the CRL could not be downloaded or did not verify: publish it at the CRL distribution point and let the gateway reach it, or clear Verify Client Certificate Revocation (${cmgProperties(cmg)})`;
  if (cause === "rsa_below_policy") return `the RSA key is shorter than the CMG's smallest RSA key setting: reissue the certificate with a longer key, or lower Smallest RSA key of a client certificate (${cmgProperties(cmg)}; at least 2048)`;
  switch (reason) {
    case "no_certificate":
      return "give the device a client authentication certificate issued under one of the CMG's trusted roots; to check one here, choose it under Client certificate file";
    case "untrusted_chain":
      return `the certificate does not chain to a trusted root of the CMG through its intermediates: add its root or its issuing CA on the Trusted roots tab (${cmgProperties(cmg)}), or reissue the certificate from a trusted CA`;
    case "crl_unavailable":
      return `revocation checking is on and no CRL could be used: publish the CRL where the certificates' CRL distribution points say and let the gateway reach it, or clear Verify Client Certificate Revocation (${cmgProperties(cmg)})`;
    case "no_connection_point":
    case "not_configured":
      return `no connection point has configured this instance or is connected to it: in ${SERVERS}, open the Properties of the connection point's server, and on its Site System Roles tab check that the CMG connection point role names ${cmg}; then check that its server runs it and reaches the instance's tunnel port`;
    case "role_not_allowed":
      return `the management point or software update point does not allow CMG traffic: in ${SERVERS}, open the Properties of its server and, on the Site System Roles tab, select Allow Configuration Manager cloud management gateway traffic`;
    default:
      return undefined;
  }
}

/** `fix` (console words) and `cliFix` (the command line's) for a gateway reason code. */
export function refusalFixes(cmg: string, reason: string, cause?: string): { fix: string; cliFix?: string } {
  const cli = explainRefusal(reason, cause).fix;
  const consoleFix = consoleRefusalFix(cmg, reason, cause);
  return consoleFix ? { fix: consoleFix, cliFix: cli.replaceAll("NAME", cmg) } : { fix: cli };
}

export const FIXES = {
  renewServerCert: (cmg: string) => ({
    fix: `renew it: ${cmgProperties(cmg)}, then choose the new certificate under Renew the server authentication certificate`,
    cliFix: `renew it: opencmg cmg update ${cmg} --server-cert FILE --server-key FILE`,
  }),
  notListening: (cmg: string) => ({
    fix: "nothing listens there: start the CMG (select it in Cloud Management Gateway and choose Start); with the external provider, start the instances on their hosts from the start-up bundle",
    cliFix: `nothing listens there: start the instances (opencmg cmg start ${cmg}, or gateway serve on their hosts)`,
  }),
  olderServerCert: () => ({
    fix: "the instance runs with another certificate than the one configured: wait for the connection point to push the change, or stop and start the CMG (Stop, then Start)",
    cliFix: "the instance runs with an older certificate: let the connection point push the change, or restart the instance",
  }),
  untrustedServerCert: () => ({
    fix: "devices must trust the server certificate's issuer: use a certificate from a public CA, include its intermediates with it, or give devices its root when the client is installed; to check with that root, choose it under Trusted root for the server certificate",
    cliFix: "devices must trust the server certificate's issuer: use a certificate from a public CA, include its intermediates with it, or give devices its root (client install --ca FILE); check with --ca FILE",
  }),
  noTrustedRoot: (cmg: string) => ({
    fix: `add the root CA of the devices' client certificates on the Trusted roots tab (${cmgProperties(cmg)})`,
    cliFix: `add the root CA of the devices' client certificates (opencmg cmg update ${cmg} --trusted-root FILE)`,
  }),
  expiredCa: (cmg: string) => ({
    fix: `replace the expired CA certificate on the Trusted roots tab (${cmgProperties(cmg)})`,
    cliFix: `replace the expired CA certificate (opencmg cmg update ${cmg})`,
  }),
  orphanIntermediate: (cmg: string) => ({
    fix: `add the root that issued it on the Trusted roots tab, or remove the intermediate there (${cmgProperties(cmg)})`,
    cliFix: `add the root that issued it (opencmg cmg update ${cmg} --trusted-root FILE), or remove the intermediate`,
  }),
  giveClientCert: () => ({
    fix: "choose a client certificate file a device uses (and its key) above, to check it against the CMG's trusted roots, intermediates and CRL, and to make the location requests",
    cliFix: "give one a device uses (--cert FILE --key FILE) to check it against the CMG's trusted roots, intermediates and CRL, and to make the location requests",
  }),
  locationNeedsCert: () => ({
    fix: "choose a client certificate file a device uses (and its key) above to make the location request",
    cliFix: "give a client certificate (--cert FILE --key FILE) to make the location request",
  }),
  noConnectionPointBound: (cmg: string) => ({
    fix: `add one: in ${SERVERS}, add the server (or open the Properties of an existing one), and on its Site System Roles tab add the CMG connection point role for ${cmg}`,
    cliFix: `add one: opencmg role add FQDN cmg-connection-point --cmg ${cmg}`,
  }),
  noMpAllowsCmg: () => ({
    fix: `allow it on one: in ${SERVERS}, open the Properties of the management point's server and, on the Site System Roles tab, select Allow Configuration Manager cloud management gateway traffic`,
    cliFix: "allow it on one: opencmg role set FQDN management-point --allow-cmg-traffic",
  }),
} as const;
