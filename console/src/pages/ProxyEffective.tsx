/**
 * The Proxy tab's "Effective route for ROLE": which proxy a role or feature on the server uses,
 * and why, as `opencmg proxy effective FQDN ROLE` answers (GET
 * /api/v1/servers/:fqdn/proxy/effective/:subject). Asked again when the server's proxy
 * configuration changes (`config`), so a saved OK shows its effect here at once.
 */
import { useEffect, useId, useState } from "react";
import { Field, Select } from "@fluentui/react-components";
import { get } from "../api.ts";
import { fieldErrors } from "../ui.tsx";

/** The API's answer (`S.proxyDecision`); kept here so api.ts stays as its owner generates it. */
export type ProxyDecision = { subject: string; server: string; reason: string } & (
  | { use: "proxy"; proxyServer: string; host: string; port: number; account: string | null }
  | { use: "direct" }
  | { use: "none" }
);

/** Features that are not roles but reach the internet through a role's server (the site's FEATURES). */
export const FEATURE_NAMES: Record<string, string> = {
  "software-update-sync": "Software update synchronization",
  "adr-download": "Automatic deployment rule downloads",
  "directory-user-discovery": "Directory user discovery",
  "directory-group-discovery": "Directory group discovery",
  "group-sync": "Group synchronization",
};

/** The route in the command line's words. */
export function routeText(d: ProxyDecision): string {
  if (d.use === "proxy") return `Proxy ${d.host}:${d.port}${d.account ? ` as ${d.account}` : ""} (the proxy configuration of ${d.proxyServer})`;
  return d.use === "direct" ? "Direct (no proxy)" : "No internet access";
}

const SUBJECT_LABEL = "Role or feature";

export function EffectiveRoute({ fqdn, installed, roleNames, config }: { fqdn: string; installed: string[]; roleNames: Record<string, string>; config: unknown }) {
  const names: Record<string, string> = { ...roleNames, ...FEATURE_NAMES };
  const [subject, setSubject] = useState(installed[0] ?? Object.keys(roleNames)[0] ?? "");
  const [decision, setDecision] = useState<ProxyDecision>();
  const [error, setError] = useState<string>();
  const headingId = useId();
  useEffect(() => {
    if (!subject) return;
    let current = true;
    get<ProxyDecision>(`/api/v1/servers/${encodeURIComponent(fqdn)}/proxy/effective/${encodeURIComponent(subject)}`).then(
      (d) => current && (setDecision(d), setError(undefined)),
      (e: unknown) => current && (setDecision(undefined), setError(Object.values(fieldErrors(e, ["role"], { role: SUBJECT_LABEL })).join(" "))),
    );
    return () => void (current = false);
  }, [fqdn, subject, config]);
  const name = names[subject] ?? subject;
  return (
    <section aria-labelledby={headingId} style={{ borderTop: "1px solid #ddd", paddingTop: 12, maxWidth: 560 }}>
      <h3 id={headingId} style={{ fontSize: 16, margin: "0 0 8px" }}>
        Effective route for {name}
      </h3>
      <Field label={SUBJECT_LABEL} validationMessage={error} validationState={error ? "error" : "none"}>
        <Select value={subject} onChange={(_, d) => setSubject(d.value)}>
          <optgroup label="Roles">
            {Object.entries(roleNames).map(([k, v]) => (
              <option key={k} value={k}>
                {v}
                {installed.includes(k) ? " (on this server)" : ""}
              </option>
            ))}
          </optgroup>
          <optgroup label="Features">
            {Object.entries(FEATURE_NAMES).map(([k, v]) => (
              <option key={k} value={k}>
                {v}
              </option>
            ))}
          </optgroup>
        </Select>
      </Field>
      {decision && decision.subject === subject && (
        <dl aria-label={`Effective route for ${name}`} style={{ display: "grid", gridTemplateColumns: "max-content 1fr", gap: "4px 12px", margin: "8px 0 0" }}>
          <dt>Route</dt>
          <dd style={{ margin: 0 }}>{routeText(decision)}</dd>
          <dt>Why</dt>
          <dd style={{ margin: 0 }}>{decision.reason}</dd>
        </dl>
      )}
    </section>
  );
}
