/**
 * Administration > Updates and Servicing, as `opencmg scp check-updates FQDN`: the service
 * connection point checks the product update feed now, through its server's proxy (POST
 * .../service-connection-point/check-updates), and the page says what the feed answered.
 */
import { useState } from "react";
import { Field, Input, MessageBar, MessageBarBody, Select, Spinner } from "@fluentui/react-components";
import { api, type Role, type Shape } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";

type FeedResult = Shape<"FeedResult">;

/** The fields the site names when it refuses a check (src/roles/scp/update-feed.ts). */
export const SCP_CHECK_LABELS: Record<string, string> = {
  server: "Service connection point",
  updateFeedUrl: "Update feed (URL)",
};

export function UpdatesServicingPage() {
  const roles = useGet<Role[]>("/api/v1/roles");
  const [fqdn, setFqdn] = useState<string>();
  return (
    <>
      <PageTitle>Updates and Servicing</PageTitle>
      <Show l={roles} what="Site system roles">
        {(all) => {
          const scps = all.filter((r) => r.kind === "service-connection-point");
          if (scps.length === 0)
            return (
              <MessageBar intent="info" role="status">
                <MessageBarBody>The site has no service connection point: add the role to a server in Servers and Site System Roles.</MessageBarBody>
              </MessageBar>
            );
          const chosen = scps.find((r) => r.serverFqdn === fqdn) ?? scps[0]!;
          return (
            <>
              <Field label={SCP_CHECK_LABELS.server} style={{ maxWidth: 560, marginBottom: 12 }}>
                <Select value={chosen.serverFqdn} onChange={(_, d) => setFqdn(d.value)}>
                  {scps.map((r) => (
                    <option key={r.serverFqdn} value={r.serverFqdn}>
                      {r.serverFqdn}
                    </option>
                  ))}
                </Select>
              </Field>
              <CheckForUpdates key={chosen.serverFqdn} role={chosen} />
            </>
          );
        }}
      </Show>
    </>
  );
}

function CheckForUpdates({ role }: { role: Role }) {
  const fqdn = role.serverFqdn;
  const feedUrl = (role.settings as { updateFeedUrl?: string }).updateFeedUrl;
  const [checking, setChecking] = useState(false);
  const [result, setResult] = useState<FeedResult>();
  const [error, setError] = useState<Error>();
  const [errors, setErrors] = useState<Record<string, string>>({});
  const check = async () => {
    setResult(undefined);
    setError(undefined);
    setErrors({});
    setChecking(true);
    try {
      setResult(await api<FeedResult>("POST", `/api/v1/servers/${encodeURIComponent(fqdn)}/service-connection-point/check-updates`, {}));
    } catch (err) {
      // A setting the site names goes beside its field; what the feed or the proxy answered, beside the button.
      const f = fieldErrors(err, Object.keys(SCP_CHECK_LABELS), SCP_CHECK_LABELS);
      if (f.form) setError(new Error(f.form));
      else setErrors(f);
    } finally {
      setChecking(false);
    }
  };
  const fieldError = errors.updateFeedUrl ?? errors.server;
  return (
    <section aria-label="Product updates">
      <Field
        label={SCP_CHECK_LABELS.updateFeedUrl}
        hint={`Set with opencmg role set ${fqdn} service-connection-point --update-feed-url URL; fetched through the proxy server of this site system server when it has one.`}
        validationMessage={fieldError}
        validationState={fieldError ? "error" : "none"}
        style={{ maxWidth: 560, marginBottom: 12 }}
      >
        <Input readOnly value={feedUrl ?? "(none)"} />
      </Field>
      <ChangeButton appearance="primary" onClick={() => void check()} disabled={checking}>
        Check for Updates
      </ChangeButton>
      {checking && <Spinner size="tiny" label="Checking for updates" labelPosition="after" style={{ display: "inline-flex", marginLeft: 8 }} />}
      <div style={{ marginTop: 8 }}>
        <ErrorBar error={error} />
      </div>
      {result && (
        <MessageBar intent="success" role="status" style={{ marginTop: 8 }}>
          <MessageBarBody>
            Latest version {result.latestVersion} ({result.releases} releases) from {result.url} {result.route}.
          </MessageBarBody>
        </MessageBar>
      )}
    </section>
  );
}
