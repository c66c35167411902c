/**
 * Administration > Site Configuration > Servers and Site System Roles: the servers, their roles and
 * role properties, and the site system's Proxy tab (document 003's wording).
 */
import { useEffect, useState, type FormEvent } from "react";
import {
  Button,
  Checkbox,
  Dropdown,
  Field,
  Input,
  Option,
  Radio,
  RadioGroup,
  Select,
  Tab,
  TabList,
  Table,
  TableBody,
  TableCell,
  TableHeader,
  TableHeaderCell,
  TableRow,
  MessageBar,
  MessageBarBody,
} from "@fluentui/react-components";
import { api, type Account, type Cmg, type ProxyConfig, type Role, type Server } from "../api.ts";
import { ChangeButton, useChangeGuard } from "../roles.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";
import { DataTable } from "../table.tsx";
import { EffectiveRoute } from "./ProxyEffective.tsx";

export const ROLE_NAMES: Record<string, string> = {
  "management-point": "Management point",
  "software-update-point": "Software update point",
  "service-connection-point": "Service connection point",
  "asset-intelligence-sync-point": "Asset Intelligence synchronization point",
  "exchange-connector": "Exchange Server connector",
  "distribution-point": "Distribution point",
  "cloud-distribution-point": "Cloud distribution point",
  "cmg-connection-point": "CMG connection point",
};

function Saved({ text }: { text: string | undefined }) {
  if (!text) return null;
  return (
    <MessageBar intent="success" role="status">
      <MessageBarBody>{text}</MessageBarBody>
    </MessageBar>
  );
}

/** The proxy tab's labels; a refusal beside a field is "<its label>: <the rule>". */
const PROXY_LABELS: Record<string, string> = {
  enabled: "Use a proxy server when synchronizing information from the internet",
  host: "Proxy server name",
  port: "Port",
  account: "Account",
  useProxyForSync: "Use a proxy server when synchronizing software updates",
  useProxyForAdr: "Use a proxy server when downloading content by using automatic deployment rules",
};

export function ServersPage() {
  const servers = useGet<Server[]>("/api/v1/servers");
  const [selected, setSelected] = useState<string>();
  const [fqdn, setFqdn] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const add = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api("POST", "/api/v1/servers", { fqdn });
      setFqdn("");
      setErrors({});
      servers.reload();
    } catch (err) {
      setErrors(fieldErrors(err, ["fqdn"]));
    }
  };
  return (
    <>
      <PageTitle>Servers and Site System Roles</PageTitle>
      <Show l={servers} what="Site system servers">
        {(list) => (
          <DataTable
            label="Site system servers"
            rows={list}
            rowKey={(s) => s.fqdn}
            rowProps={(s) => ({ "aria-selected": selected === s.fqdn })}
            initialSort={{ column: "name", direction: "ascending" }}
            columns={[
              { id: "name", label: "Name", width: "45%", text: (s) => s.fqdn },
              { id: "site", label: "Site Code", width: "15%", filter: true, text: (s) => s.siteCode },
              { id: "siteServer", label: "Site server", width: "15%", filter: true, text: (s) => (s.isSiteServer ? "Yes" : "No") },
              {
                id: "actions",
                label: "Actions",
                width: "25%",
                unsortable: true,
                text: () => "",
                render: (s) => (
                  <Button size="small" onClick={() => setSelected(s.fqdn)} aria-label={`Properties of ${s.fqdn}`}>
                    Properties
                  </Button>
                ),
              },
            ]}
          />
        )}
      </Show>
      <form onSubmit={(e) => void add(e)} style={{ display: "flex", gap: 8, alignItems: "end", margin: "12px 0" }}>
        <Field label="Create Site System Server: FQDN" validationMessage={errors.fqdn ?? errors.form} validationState={errors.fqdn || errors.form ? "error" : "none"}>
          <Input value={fqdn} onChange={(_, d) => setFqdn(d.value)} />
        </Field>
        <ChangeButton type="submit">Add</ChangeButton>
      </form>
      {selected && <ServerProperties key={selected} fqdn={selected} />}
    </>
  );
}

function ServerProperties({ fqdn }: { fqdn: string }) {
  const roles = useGet<Role[]>(`/api/v1/roles?server=${encodeURIComponent(fqdn)}`);
  const [tab, setTab] = useState<string>("general");
  return (
    <section aria-label={`Site system properties: ${fqdn}`} style={{ borderTop: "1px solid #ddd", paddingTop: 12 }}>
      <h2 style={{ fontSize: 20, margin: "0 0 8px" }}>Site system properties: {fqdn}</h2>
      <TabList selectedValue={tab} onTabSelect={(_, d) => setTab(String(d.value))} aria-label="Site system properties">
        <Tab value="general">General</Tab>
        <Tab value="proxy">Proxy</Tab>
        <Tab value="roles">Site System Roles</Tab>
      </TabList>
      <div role="tabpanel" aria-label={tab === "proxy" ? "Proxy" : tab === "roles" ? "Site System Roles" : "General"} style={{ paddingTop: 12 }}>
        {tab === "general" && <p>Site system server {fqdn}. Its roles share one proxy configuration (Proxy tab).</p>}
        {tab === "proxy" && (
          <Show l={roles} what="Site system roles">
            {(list) => <ProxyTab fqdn={fqdn} roles={list} onRolesChanged={roles.reload} />}
          </Show>
        )}
        {tab === "roles" && (
          <Show l={roles} what="Site system roles">
            {(list) => <RolesTab fqdn={fqdn} roles={list} reload={roles.reload} />}
          </Show>
        )}
      </div>
    </section>
  );
}

/** Document 003, "Configure the proxy for a site system server". */
function ProxyTab({ fqdn, roles, onRolesChanged }: { fqdn: string; roles: Role[]; onRolesChanged: () => void }) {
  const proxy = useGet<ProxyConfig | null>(`/api/v1/servers/${encodeURIComponent(fqdn)}/proxy`);
  const accounts = useGet<Account[]>("/api/v1/accounts");
  const [use, setUse] = useState(false);
  const [host, setHost] = useState("");
  const [port, setPort] = useState("80");
  const [creds, setCreds] = useState(false);
  const [accountMode, setAccountMode] = useState<"existing" | "new">("existing");
  const [account, setAccount] = useState("");
  const [newUser, setNewUser] = useState("");
  const [newPassword, setNewPassword] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState<string>();
  const sup = roles.find((r) => r.kind === "software-update-point");
  const [supSync, setSupSync] = useState(false);
  const [supAdr, setSupAdr] = useState(false);

  useEffect(() => {
    if (proxy.data === undefined) return;
    const p = proxy.data;
    setUse(p?.enabled ?? false);
    setHost(p?.host ?? "");
    setPort(String(p?.port ?? 80));
    setCreds(Boolean(p?.account));
    setAccount(p?.account ?? "");
  }, [proxy.data]);
  useEffect(() => {
    setSupSync(Boolean(sup?.settings.useProxyForSync));
    setSupAdr(Boolean(sup?.settings.useProxyForAdr));
  }, [sup?.settings.useProxyForSync, sup?.settings.useProxyForAdr]);

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(undefined);
    setErrors({});
    const base = `/api/v1/servers/${encodeURIComponent(fqdn)}`;
    try {
      if (!use && !host.trim()) {
        if (proxy.data) await api("DELETE", `${base}/proxy`);
      } else {
        let accountName: string | null = null;
        if (creds && accountMode === "new") {
          try {
            const a = await api<Account>("POST", "/api/v1/accounts", { name: newUser, username: newUser, password: newPassword });
            accountName = a.name;
          } catch (err) {
            const f = fieldErrors(err, ["name", "username", "password"], { name: "User name", username: "User name", password: "Password" });
            setErrors({ newUser: f.name ?? f.username ?? "", newPassword: f.password ?? "", form: f.form ?? "" });
            return;
          }
        } else if (creds) {
          if (!account) return setErrors({ account: "Account: choose an existing account, or New Account" });
          accountName = account;
        }
        const portValue = /^\d+$/.test(port.trim()) ? Number(port.trim()) : port;
        await api("PUT", `${base}/proxy`, { enabled: use, host: host.trim(), port: portValue, account: accountName });
        if (accountName) setAccount(accountName);
        setAccountMode("existing");
        setNewPassword("");
      }
      if (sup && (supSync !== Boolean(sup.settings.useProxyForSync) || supAdr !== Boolean(sup.settings.useProxyForAdr))) {
        await api("PATCH", `${base}/roles/software-update-point`, { useProxyForSync: supSync, useProxyForAdr: supAdr });
        onRolesChanged();
      }
      proxy.reload();
      accounts.reload();
      setSaved("The proxy server configuration is saved.");
    } catch (err) {
      const f = fieldErrors(err, ["host", "port", "account", "enabled", "useProxyForSync", "useProxyForAdr"], PROXY_LABELS);
      setErrors(f);
    }
  };

  // The form shows once the server's configuration is read: what someone ticked or typed before
  // it arrived would be overwritten by it.
  if (proxy.data === undefined) return <Show l={proxy} what="Proxy configuration">{() => null}</Show>;
  return (
    <>
    <form onSubmit={(e) => void save(e)} style={{ display: "grid", gap: 12, maxWidth: 560 }} aria-label="Proxy">
      <Saved text={saved} />
      {errors.form && <ErrorBar error={new Error(errors.form)} />}
      <Field validationMessage={errors.enabled} validationState={errors.enabled ? "error" : "none"}>
        <Checkbox checked={use} onChange={(_, d) => setUse(Boolean(d.checked))} label="Use a proxy server when synchronizing information from the internet" />
      </Field>
      <Field label="Proxy server name" hint="The host name or FQDN of the proxy server" validationMessage={errors.host} validationState={errors.host ? "error" : "none"}>
        <Input value={host} onChange={(_, d) => setHost(d.value)} disabled={!use} />
      </Field>
      <Field label="Port" validationMessage={errors.port} validationState={errors.port ? "error" : "none"}>
        <Input value={port} onChange={(_, d) => setPort(d.value)} disabled={!use} inputMode="numeric" />
      </Field>
      <Field>
        <Checkbox checked={creds} onChange={(_, d) => setCreds(Boolean(d.checked))} disabled={!use} label="Use credentials to connect to the proxy server" />
      </Field>
      {use && creds && (
        <fieldset style={{ border: "1px solid #ccc", padding: 12, display: "grid", gap: 8 }}>
          <legend>Site System Proxy Server Account</legend>
          <RadioGroup value={accountMode} onChange={(_, d) => setAccountMode(d.value as "existing" | "new")} aria-label="Site system proxy server account" layout="horizontal">
            <Radio value="existing" label="Existing Account" />
            <Radio value="new" label="New Account" />
          </RadioGroup>
          {accountMode === "existing" ? (
            <Field label="Account" validationMessage={errors.account} validationState={errors.account ? "error" : "none"}>
              <Dropdown value={account} selectedOptions={account ? [account] : []} onOptionSelect={(_, d) => setAccount(d.optionValue ?? "")} placeholder="Choose an account">
                {(accounts.data ?? []).map((a) => (
                  <Option key={a.name} value={a.name}>
                    {a.name}
                  </Option>
                ))}
              </Dropdown>
            </Field>
          ) : (
            <>
              <Field label="User name" validationMessage={errors.newUser || errors.account} validationState={errors.newUser || errors.account ? "error" : "none"}>
                <Input value={newUser} onChange={(_, d) => setNewUser(d.value)} autoComplete="off" />
              </Field>
              <Field label="Password" validationMessage={errors.newPassword} validationState={errors.newPassword ? "error" : "none"}>
                <Input type="password" value={newPassword} onChange={(_, d) => setNewPassword(d.value)} autoComplete="new-password" />
              </Field>
            </>
          )}
        </fieldset>
      )}
      {sup && (
        <fieldset style={{ border: "1px solid #ccc", padding: 12, display: "grid", gap: 4 }}>
          <legend>Software update point: Proxy and Account Settings</legend>
          <Field validationMessage={errors.useProxyForSync} validationState={errors.useProxyForSync ? "error" : "none"}>
            <Checkbox checked={supSync} onChange={(_, d) => setSupSync(Boolean(d.checked))} label="Use a proxy server when synchronizing software updates" />
          </Field>
          <Field validationMessage={errors.useProxyForAdr} validationState={errors.useProxyForAdr ? "error" : "none"}>
            <Checkbox checked={supAdr} onChange={(_, d) => setSupAdr(Boolean(d.checked))} label="Use a proxy server when downloading content by using automatic deployment rules" />
          </Field>
        </fieldset>
      )}
      <div>
        <ChangeButton appearance="primary" type="submit">
          OK
        </ChangeButton>
      </div>
    </form>
    {/* A string key: the route is asked again when what decides it changes, not on every render. */}
    <EffectiveRoute fqdn={fqdn} installed={roles.map((r) => r.kind)} roleNames={ROLE_NAMES} config={JSON.stringify([proxy.data, sup?.settings.useProxyForSync, sup?.settings.useProxyForAdr])} />
    </>
  );
}

function RolesTab({ fqdn, roles, reload }: { fqdn: string; roles: Role[]; reload: () => void }) {
  const [error, setError] = useState<Error>();
  const [kind, setKind] = useState("");
  const [cmgName, setCmgName] = useState("");
  // The CMG is chosen from the site's CMGs, as the documents' role wizard offers them (no free text to mistype).
  const cmgs = useGet<Cmg[]>("/api/v1/cmgs", ["cmg"]);
  const [internalUrl, setInternalUrl] = useState("");
  const [addErrors, setAddErrors] = useState<Record<string, string>>({});
  const addRole = async (e: FormEvent) => {
    e.preventDefault();
    const body: Record<string, unknown> = { role: kind };
    if (kind === "cmg-connection-point") body.cmgName = cmgName;
    if ((kind === "management-point" || kind === "software-update-point") && internalUrl.trim()) body.internalUrl = internalUrl.trim();
    try {
      await api("POST", `/api/v1/servers/${encodeURIComponent(fqdn)}/roles`, body);
      setAddErrors({});
      setKind("");
      reload();
    } catch (err) {
      setAddErrors(fieldErrors(err, ["role", "cmgName", "internalUrl"]));
    }
  };
  // The CMG traffic box saves as it is ticked: it is a change control like the buttons.
  const changeGuard = useChangeGuard();
  const av = (f: string) => ({ validationMessage: addErrors[f], validationState: addErrors[f] ? ("error" as const) : ("none" as const) });
  const setFlag = async (r: Role, key: string, value: boolean) => {
    try {
      await api("PATCH", `/api/v1/servers/${encodeURIComponent(fqdn)}/roles/${r.kind}`, { [key]: value });
      setError(undefined);
      reload();
    } catch (e) {
      setError(e as Error);
    }
  };
  return (
    <>
      <ErrorBar error={error} />
      <Table aria-label="Site system roles" size="small">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Role</TableHeaderCell>
            <TableHeaderCell>Properties</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {roles.map((r) => (
            <TableRow key={r.kind}>
              <TableCell>{ROLE_NAMES[r.kind] ?? r.kind}</TableCell>
              <TableCell>
                {"allowCmgTraffic" in r.settings && (
                  <Checkbox {...changeGuard} checked={Boolean(r.settings.allowCmgTraffic)} onChange={(_, d) => void setFlag(r, "allowCmgTraffic", Boolean(d.checked))} label="Allow Configuration Manager cloud management gateway traffic" />
                )}
                {r.kind === "cmg-connection-point" && <span>Cloud management gateway name: {String(r.settings.cmgName ?? "")}</span>}
                {typeof r.settings.internalUrl === "string" && <span> Internal URL: {r.settings.internalUrl}</span>}
              </TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
      <h3 style={{ fontSize: 16 }}>Add Site System Roles</h3>
      <form onSubmit={(e) => void addRole(e)} style={{ display: "grid", gap: 8, maxWidth: 480 }} aria-label="Add Site System Roles">
        {addErrors.form && <ErrorBar error={new Error(addErrors.form)} />}
        <Field label="System role" {...av("role")}>
          <Dropdown value={ROLE_NAMES[kind] ?? ""} selectedOptions={kind ? [kind] : []} onOptionSelect={(_, d) => setKind(d.optionValue ?? "")} placeholder="Choose a role">
            {Object.entries(ROLE_NAMES)
              .filter(([k]) => !roles.some((r) => r.kind === k))
              .map(([k, v]) => (
                <Option key={k} value={k}>
                  {v}
                </Option>
              ))}
          </Dropdown>
        </Field>
        {kind === "cmg-connection-point" && (
          <Field label="Cloud management gateway name" hint={cmgs.data?.length === 0 ? "No CMG yet: create one under Cloud Services > Cloud Management Gateway" : undefined} {...av("cmgName")}>
            <Select value={cmgName} onChange={(_, d) => setCmgName(d.value)}>
              <option value="">Choose a cloud management gateway</option>
              {(cmgs.data ?? []).map((c) => (
                <option key={c.name} value={c.name}>
                  {c.name} ({c.serviceFqdn})
                </option>
              ))}
            </Select>
          </Field>
        )}
        {(kind === "management-point" || kind === "software-update-point") && (
          <Field label="Internal URL (default https://FQDN)" {...av("internalUrl")}>
            <Input value={internalUrl} onChange={(_, d) => setInternalUrl(d.value)} />
          </Field>
        )}
        <div>
          <ChangeButton type="submit" disabled={!kind}>
            Add role
          </ChangeButton>
        </div>
      </form>
    </>
  );
}
