/**
 * Administration > Cloud Services > Cloud Management Gateway: the list with its Status column, and
 * the ribbon's actions: Create Cloud Management Gateway, Properties, Start, Stop, Delete (with the
 * keep-one-active warning) and the Connection analyzer.
 */
import { useEffect, useState } from "react";
import {
  Badge,
  Button,
  Checkbox,
  Dialog,
  DialogActions,
  DialogBody,
  DialogContent,
  DialogSurface,
  DialogTitle,
  Field,
  Input,
  SpinButton,
  Table,
  TableBody,
  TableCell,
  TableHeader,
  TableHeaderCell,
  TableRow,
  Tab,
  TabList,
  Toolbar,
  ToolbarButton,
  MessageBar,
  MessageBarBody,
  MessageBarTitle,
} from "@fluentui/react-components";
import { api, type Cmg, type CmgAnalysis } from "../api.ts";
import { ChangeButton, ChangeToolbarButton } from "../roles.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";
import { CreateCmgWizard, ENVIRONMENTS } from "./CmgWizard.tsx";
import { certificateSubject, pemBlocks, readFileText } from "../certs.ts";
import { DataTable } from "../table.tsx";

/** Where the instances run: a CMG with the local provider runs on the site's own machine, in no cloud. */
export function environmentOf(c: Pick<Cmg, "provider" | "cloud">): string {
  if (c.provider === "local") return "Local (the site server)";
  return ENVIRONMENTS[c.cloud] ?? c.cloud;
}

export function statusColor(s: string): "success" | "warning" | "danger" | "informative" {
  return s === "Ready" ? "success" : s === "Degraded" || s === "Stopped" ? "warning" : s === "Error" ? "danger" : "informative";
}

export function CmgPage() {
  const cmgs = useGet<Cmg[]>("/api/v1/cmgs", ["cmg"]);
  const [selected, setSelected] = useState<string>();
  const [dialog, setDialog] = useState<"create" | "properties" | "delete" | "analyze" | undefined>();
  const [actionError, setActionError] = useState<Error>();
  const [notice, setNotice] = useState<string>();
  const current = cmgs.data?.find((c) => c.name === selected);

  const action = async (verb: "start" | "stop") => {
    if (!current) return;
    try {
      await api("POST", `/api/v1/cmgs/${encodeURIComponent(current.name)}/${verb}`);
      setActionError(undefined);
      setNotice(`${verb === "start" ? "Start" : "Stop"} of ${current.name} requested.`);
      cmgs.reload();
    } catch (e) {
      setNotice(undefined);
      setActionError(e as Error);
    }
  };

  return (
    <>
      <PageTitle>Cloud Management Gateway</PageTitle>
      <Toolbar aria-label="Cloud Management Gateway actions">
        <ChangeToolbarButton appearance="primary" onClick={() => setDialog("create")}>
          Create Cloud Management Gateway
        </ChangeToolbarButton>
        <ToolbarButton disabled={!current} onClick={() => setDialog("properties")}>
          Properties
        </ToolbarButton>
        <ChangeToolbarButton disabled={!current} onClick={() => void action("start")}>
          Start
        </ChangeToolbarButton>
        <ChangeToolbarButton disabled={!current} onClick={() => void action("stop")}>
          Stop
        </ChangeToolbarButton>
        <ChangeToolbarButton disabled={!current} onClick={() => setDialog("delete")}>
          Delete
        </ChangeToolbarButton>
        <ChangeToolbarButton disabled={!current} onClick={() => setDialog("analyze")}>
          Connection analyzer
        </ChangeToolbarButton>
      </Toolbar>
      <ErrorBar error={actionError} />
      {notice && (
        <MessageBar intent="success" role="status">
          <MessageBarBody>{notice}</MessageBarBody>
        </MessageBar>
      )}
      <Show l={cmgs} what="The Cloud Management Gateway list">
        {(list) =>
          list.length === 0 ? (
            <p>No cloud management gateway yet: choose Create Cloud Management Gateway.</p>
          ) : (
<DataTable
              label="Cloud management gateways"
              rows={list}
              rowKey={(c) => c.name}
              rowProps={(c) => ({ "aria-selected": c.name === selected })}
              initialSort={{ column: "name", direction: "ascending" }}
              columns={[
                {
                  id: "select",
                  label: "Select",
                  width: "5%",
                  unsortable: true,
                  text: () => "",
                  render: (c) => <Checkbox aria-label={`Select ${c.name}`} checked={c.name === selected} onChange={(_, d) => setSelected(d.checked ? c.name : undefined)} />,
                },
                { id: "name", label: "Name", width: "9%", text: (c) => c.name },
                { id: "fqdn", label: "Service FQDN", width: "13%", text: (c) => c.serviceFqdn },
                {
                  id: "status",
                  label: "Status",
                  width: "8%",
                  filter: true,
                  text: (c) => c.status,
                  render: (c) => (
                    <Badge appearance="tint" color={statusColor(c.status)} data-testid={`status-${c.name}`}>
                      {c.status}
                    </Badge>
                  ),
                },
                { id: "reason", label: "Status details", width: "19%", text: (c) => c.statusReason },
                { id: "environment", label: "Environment", width: "12%", filter: true, text: environmentOf },
                { id: "region", label: "Region", width: "7%", text: (c) => c.region },
                { id: "instances", label: "VM instances", width: "8%", text: (c) => String(c.instanceCount), sortValue: (c) => c.instanceCount },
                { id: "cp", label: "Connection point", width: "10%", text: (c) => c.connectionPointServers.join(", ") || "none" },
                {
                  id: "actions",
                  label: "Actions",
                  width: "9%",
                  unsortable: true,
                  text: () => "",
                  render: (c) => (
                    <Button
                      size="small"
                      aria-label={`Properties of ${c.name}`}
                      onClick={() => {
                        setSelected(c.name);
                        setDialog("properties");
                      }}
                    >
                      Properties
                    </Button>
                  ),
                },
              ]}
            />
          )
        }
      </Show>
      <CreateCmgWizard
        open={dialog === "create"}
        onClose={() => setDialog(undefined)}
        onCreated={(c) => {
          setDialog(undefined);
          setSelected(c.name);
          setNotice(`The cloud management gateway ${c.name} is created. Check the Status column to see when the service is ready.`);
          cmgs.reload();
        }}
      />
      {current && dialog === "properties" && <CmgProperties cmg={current} onClose={() => setDialog(undefined)} onSaved={cmgs.reload} />}
      {current && dialog === "delete" && (
        <DeleteCmg
          cmg={current}
          others={(cmgs.data ?? []).filter((c) => c.name !== current.name && c.status === "Ready").length}
          onClose={() => setDialog(undefined)}
          onDeleted={() => {
            setDialog(undefined);
            setSelected(undefined);
            setNotice(`The cloud management gateway ${current.name} is deleted.`);
            cmgs.reload();
          }}
        />
      )}
      {current && dialog === "analyze" && <ConnectionAnalyzer cmg={current} onClose={() => setDialog(undefined)} />}
    </>
  );
}

/**
 * What can change after creation (SPEC section 3, "Modify, replace, delete"), on three tabs:
 * General (instances, revocation checking, RSA floor, server certificate renewal), Trusted roots
 * (the trusted root certificates and intermediates for client certificates, listed by subject) and
 * Alerts (the 14-day traffic threshold, its percentages and stop on critical). Each tab saves its
 * own part: OK on General and Trusted roots changes the CMG, Save alerts changes the alert.
 */
function CmgProperties({ cmg, onClose, onSaved }: { cmg: Cmg; onClose: () => void; onSaved: () => void }) {
  const [tab, setTab] = useState<"general" | "trust" | "alerts">("general");
  const [instances, setInstances] = useState(cmg.instanceCount);
  const [crlCheck, setCrlCheck] = useState(cmg.crlCheck);
  const [minRsaBits, setMinRsaBits] = useState(String(cmg.minRsaBits));
  const [serverCertPem, setServerCertPem] = useState<string>();
  const [serverKeyPem, setServerKeyPem] = useState<string>();
  const [serverChainPem, setServerChainPem] = useState<string[]>([]);
  const [serverFile, setServerFile] = useState<string>();
  // Trust changes: certificates to add (with their subjects) and thumbprints to remove.
  const [addRoots, setAddRoots] = useState<ChosenCa[]>([]);
  const [addIntermediates, setAddIntermediates] = useState<ChosenCa[]>([]);
  const [removed, setRemoved] = useState<string[]>([]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const save = async () => {
    const body: Record<string, unknown> = {};
    if (instances !== cmg.instanceCount) body.instances = instances;
    if (crlCheck !== cmg.crlCheck) body.crlCheck = crlCheck;
    if (minRsaBits !== String(cmg.minRsaBits)) body.minRsaBits = /^\d+$/.test(minRsaBits) ? Number(minRsaBits) : minRsaBits;
    if (serverCertPem !== undefined) Object.assign(body, { serverCertPem, serverKeyPem, ...(serverChainPem.length ? { serverChainPem } : {}) });
    if (addRoots.length) body.addTrustedRoots = addRoots.map((c) => c.pem);
    if (addIntermediates.length) body.addIntermediates = addIntermediates.map((c) => c.pem);
    const isRoot = (t: string) => cmg.trustedRoots.some((c) => c.thumbprint === t);
    if (removed.some(isRoot)) body.removeTrustedRoots = removed.filter(isRoot);
    if (removed.some((t) => !isRoot(t))) body.removeIntermediates = removed.filter((t) => !isRoot(t));
    try {
      await api("PATCH", `/api/v1/cmgs/${encodeURIComponent(cmg.name)}`, body);
      onSaved();
      onClose();
    } catch (e) {
      const f = fieldErrors(e, ["instances", "crlCheck", "minRsaBits", "serverCertPem", "serverKeyPem", "serverChainPem", "serverCert", "serverKey", "addTrustedRoots", "addIntermediates", "removeTrustedRoots", "removeIntermediates", "trustedRoots", "intermediates"], PROPERTY_LABELS);
      setErrors(f);
      // Show the tab that holds the field the site named.
      if (Object.keys(f).some((k) => /Roots|Intermediates|^trustedRoots|^intermediates/.test(k))) setTab("trust");
      else if (!f.form) setTab("general");
    }
  };
  const chooseCert = async (file: File | undefined) => {
    if (!file) return;
    const text = await readFileText(file);
    const b = pemBlocks(text);
    // A file without a PEM certificate goes as it is: the site's message names the field.
    setServerCertPem(b.certificates[0] ?? text);
    setServerChainPem(b.certificates.slice(1));
    setServerKeyPem(b.privateKey);
    setServerFile(file.name);
  };
  const e = (n: string) => ({ validationMessage: errors[n], validationState: errors[n] ? ("error" as const) : ("none" as const) });
  const errorOf = (...names: string[]) => e(names.find((n) => errors[n]) ?? names[0]!);
  return (
    <Dialog open onOpenChange={(_, d) => !d.open && onClose()}>
      <DialogSurface style={{ maxWidth: 760 }}>
        <DialogBody>
          <DialogTitle>{cmg.name} Properties</DialogTitle>
          <DialogContent>
            <TabList selectedValue={tab} onTabSelect={(_, d) => setTab(d.value as typeof tab)} aria-label={`${cmg.name} Properties`}>
              <Tab value="general">General</Tab>
              <Tab value="trust">Trusted roots</Tab>
              <Tab value="alerts">Alerts</Tab>
            </TabList>
            {errors.form && <ErrorBar error={new Error(errors.form)} />}
            <div role="tabpanel" aria-label={tab === "general" ? "General" : tab === "trust" ? "Trusted roots" : "Alerts"} style={{ paddingTop: 12 }}>
              {tab === "general" && (
                <div style={{ display: "grid", gap: 10 }}>
                  <p style={{ margin: 0 }}>
                    Service FQDN {cmg.serviceFqdn}; server authentication certificate {cmg.serverCertificate.subject}, valid until {cmg.serverCertificate.notAfter}. The deployment method, service name and region need a new CMG.
                  </p>
                  <Field label={PROPERTY_LABELS.instances} hint="1 to 16" {...e("instances")}>
                    <SpinButton value={instances} min={1} max={16} onChange={(_, d) => setInstances(d.value ?? Number(d.displayValue))} />
                  </Field>
                  <Field {...e("crlCheck")}>
                    <Checkbox checked={crlCheck} onChange={(_, d) => setCrlCheck(Boolean(d.checked))} label="Verify Client Certificate Revocation" />
                  </Field>
                  <Field label={PROPERTY_LABELS.minRsaBits} {...e("minRsaBits")}>
                    <Input value={minRsaBits} onChange={(_, d) => setMinRsaBits(d.value)} inputMode="numeric" />
                  </Field>
                  <Field
                    label={PROPERTY_LABELS.serverCertPem}
                    hint={serverFile ? `Chosen: ${serverFile}` : undefined}
                    {...errorOf("serverCertPem", "serverKeyPem", "serverChainPem", "serverCert", "serverKey")}
                  >
                    {(p) => <input {...p} type="file" accept=".pem,.crt" onChange={(ev) => void chooseCert(ev.target.files?.[0])} />}
                  </Field>
                </div>
              )}
              {tab === "trust" && (
                <TrustedRootsTab cmg={cmg} removed={removed} setRemoved={setRemoved} addRoots={addRoots} setAddRoots={setAddRoots} addIntermediates={addIntermediates} setAddIntermediates={setAddIntermediates} errorOf={errorOf} />
              )}
              {tab === "alerts" && <AlertsTab cmg={cmg} onSaved={onSaved} />}
            </div>
          </DialogContent>
          <DialogActions>
            {tab !== "alerts" && (
              <ChangeButton appearance="primary" onClick={() => void save()}>
                OK
              </ChangeButton>
            )}
            <Button onClick={onClose}>{tab === "alerts" ? "Close" : "Cancel"}</Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}

/** The General tab's labels; a refusal beside a field is "<its label>: <the rule>". */
const PROPERTY_LABELS: Record<string, string> = {
  instances: "VM instance",
  crlCheck: "Verify Client Certificate Revocation",
  minRsaBits: "Smallest RSA key of a client certificate (bits)",
  serverCertPem: "Renew the server authentication certificate: certificate file (PEM with its key)",
  serverKeyPem: "Renew the server authentication certificate: certificate file (PEM with its key)",
  serverChainPem: "Renew the server authentication certificate: certificate file (PEM with its key)",
  serverCert: "Renew the server authentication certificate: certificate file (PEM with its key)",
  serverKey: "Renew the server authentication certificate: certificate file (PEM with its key)",
  addTrustedRoots: "Add trusted root certificate files",
  removeTrustedRoots: "Trusted root certificates",
  trustedRoots: "Trusted root certificates",
  addIntermediates: "Add intermediate certificate files",
  removeIntermediates: "Intermediate certificates",
  intermediates: "Intermediate certificates",
};

/** The connection analyzer's labels; a refusal beside a field is "<its label>: <the rule>". */
const ANALYZER_LABELS: Record<string, string> = {
  clientCert: "Client certificate file (PEM, optional)",
  clientCertPem: "Client certificate file (PEM, optional)",
  clientKey: "Its private key file (PEM)",
  clientKeyPem: "Its private key file (PEM)",
  ca: "Trusted root for the server certificate (PEM, optional)",
  caPem: "Trusted root for the server certificate (PEM, optional)",
};

interface ChosenCa {
  file: string;
  pem: string;
  subject: string;
}

/** Every certificate of the chosen files, by subject (a file without one goes as it is: the site names the fault). */
async function chooseCaFiles(files: FileList | null): Promise<ChosenCa[]> {
  const chosen = await Promise.all([...(files ?? [])].map(async (f) => ({ file: f.name, text: await readFileText(f) })));
  return chosen.flatMap(({ file, text }) => {
    const certs = pemBlocks(text).certificates;
    return certs.length ? certs.map((pem) => ({ file, pem, subject: certificateSubject(pem) || file })) : [{ file, pem: text, subject: file }];
  });
}

type ErrorOf = (...names: string[]) => { validationMessage: string | undefined; validationState: "error" | "none" };

function TrustedRootsTab(p: {
  cmg: Cmg;
  removed: string[];
  setRemoved: (f: (r: string[]) => string[]) => void;
  addRoots: ChosenCa[];
  setAddRoots: (c: ChosenCa[]) => void;
  addIntermediates: ChosenCa[];
  setAddIntermediates: (c: ChosenCa[]) => void;
  errorOf: ErrorOf;
}) {
  const list = (title: string, certs: Cmg["trustedRoots"], adding: ChosenCa[]) => (
    <ul aria-label={title} style={{ margin: "4px 0 8px" }}>
      {certs.map((c) => {
        const gone = p.removed.includes(c.thumbprint);
        return (
          <li key={c.thumbprint} style={{ display: "flex", gap: 8, alignItems: "center", flexWrap: "wrap" }}>
            <span style={{ textDecoration: gone ? "line-through" : undefined, overflowWrap: "anywhere" }}>
              {c.subject} (valid until {c.notAfter}){gone ? ", removed on OK" : ""}
            </span>
            <Button size="small" aria-label={`${gone ? "Keep" : "Remove"} ${c.subject}`} onClick={() => p.setRemoved((r) => (gone ? r.filter((t) => t !== c.thumbprint) : [...r, c.thumbprint]))}>
              {gone ? "Keep" : "Remove"}
            </Button>
          </li>
        );
      })}
      {adding.map((c, i) => (
        <li key={`new-${i}`}>{c.subject}, added on OK</li>
      ))}
      {certs.length + adding.length === 0 && <li>None</li>}
    </ul>
  );
  return (
    <div style={{ display: "grid", gap: 8 }}>
      <p style={{ margin: 0 }}>The root and intermediate CAs of the devices' client certificates: at most 2 trusted root CAs and 4 intermediate CAs.</p>
      <h3 style={{ fontSize: 16, margin: 0 }}>Trusted root certificates</h3>
      {list("Trusted root certificates", p.cmg.trustedRoots, p.addRoots)}
      <Field label="Add trusted root certificate files" {...p.errorOf("addTrustedRoots", "removeTrustedRoots", "trustedRoots")}>
        {(x) => <input {...x} type="file" multiple accept=".pem,.crt,.cer" onChange={(ev) => void chooseCaFiles(ev.target.files).then(p.setAddRoots)} />}
      </Field>
      <h3 style={{ fontSize: 16, margin: 0 }}>Intermediate certificates</h3>
      {list("Intermediate certificates", p.cmg.intermediates, p.addIntermediates)}
      <Field label="Add intermediate certificate files" {...p.errorOf("addIntermediates", "removeIntermediates", "intermediates")}>
        {(x) => <input {...x} type="file" multiple accept=".pem,.crt,.cer" onChange={(ev) => void chooseCaFiles(ev.target.files).then(p.setAddIntermediates)} />}
      </Field>
    </div>
  );
}

interface TrafficAlert {
  thresholdGb: number;
  warningPct: number;
  criticalPct: number;
  stopOnCritical?: boolean;
}

const ALERT_LABELS = {
  thresholdGb: "14-day threshold (GB)",
  warningPct: "Percentage of threshold for Warning alert",
  criticalPct: "Percentage of threshold for Critical alert",
  stopOnCritical: "Stop this service when it exceeds the critical threshold",
};

/** The CMG's Alerts tab: the 14-day outbound traffic threshold (document wording), saved on its own. */
function AlertsTab({ cmg, onSaved }: { cmg: Cmg; onSaved: () => void }) {
  const current = cmg.deploy.trafficAlert as TrafficAlert | null;
  const [enabled, setEnabled] = useState(current !== null);
  const [thresholdGb, setThresholdGb] = useState(current ? String(current.thresholdGb) : "");
  const [warningPct, setWarningPct] = useState(String(current?.warningPct ?? 50));
  const [criticalPct, setCriticalPct] = useState(String(current?.criticalPct ?? 90));
  const [stopOnCritical, setStopOnCritical] = useState(current?.stopOnCritical === true);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState<string>();
  const num = (v: string) => (/^\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v);
  const save = async () => {
    setSaved(undefined);
    try {
      if (enabled) await api("PUT", `/api/v1/cmgs/${encodeURIComponent(cmg.name)}/traffic-alert`, { thresholdGb: num(thresholdGb), warningPct: num(warningPct), criticalPct: num(criticalPct), stopOnCritical });
      else if (current) await api("DELETE", `/api/v1/cmgs/${encodeURIComponent(cmg.name)}/traffic-alert`);
      setErrors({});
      setSaved(enabled ? "The alert is saved." : "The alert is removed.");
      onSaved();
    } catch (e) {
      setErrors(fieldErrors(e, ["thresholdGb", "warningPct", "criticalPct", "stopOnCritical"], ALERT_LABELS));
    }
  };
  const e = (n: string) => ({ validationMessage: errors[n], validationState: errors[n] ? ("error" as const) : ("none" as const) });
  return (
    <div style={{ display: "grid", gap: 10 }}>
      {errors.form && <ErrorBar error={new Error(errors.form)} />}
      <Field>
        <Checkbox checked={enabled} onChange={(_, d) => setEnabled(Boolean(d.checked))} label="Enable 14-day threshold for alerting" />
      </Field>
      <Field label={ALERT_LABELS.thresholdGb} {...e("thresholdGb")}>
        <Input value={thresholdGb} onChange={(_, d) => setThresholdGb(d.value)} disabled={!enabled} inputMode="decimal" />
      </Field>
      <Field label={ALERT_LABELS.warningPct} {...e("warningPct")}>
        <Input value={warningPct} onChange={(_, d) => setWarningPct(d.value)} disabled={!enabled} inputMode="numeric" />
      </Field>
      <Field label={ALERT_LABELS.criticalPct} {...e("criticalPct")}>
        <Input value={criticalPct} onChange={(_, d) => setCriticalPct(d.value)} disabled={!enabled} inputMode="numeric" />
      </Field>
      <Field {...e("stopOnCritical")}>
        <Checkbox checked={stopOnCritical} disabled={!enabled} onChange={(_, d) => setStopOnCritical(Boolean(d.checked))} label={ALERT_LABELS.stopOnCritical} />
      </Field>
      <div>
        <ChangeButton appearance="primary" onClick={() => void save()}>
          Save alerts
        </ChangeButton>
      </div>
      {saved && (
        <MessageBar intent="success" role="status">
          <MessageBarBody>{saved}</MessageBarBody>
        </MessageBar>
      )}
    </div>
  );
}

function DeleteCmg({ cmg, others, onClose, onDeleted }: { cmg: Cmg; others: number; onClose: () => void; onDeleted: () => void }) {
  const [error, setError] = useState<Error>();
  const [force, setForce] = useState(false);
  const remove = async () => {
    try {
      await api("DELETE", `/api/v1/cmgs/${encodeURIComponent(cmg.name)}${force ? "?force=true" : ""}`);
      onDeleted();
    } catch (e) {
      setError(e as Error);
    }
  };
  return (
    <Dialog open onOpenChange={(_, d) => !d.open && onClose()} modalType="alert">
      <DialogSurface>
        <DialogBody>
          <DialogTitle>Delete {cmg.name}</DialogTitle>
          <DialogContent>
            <MessageBar intent="warning">
              <MessageBarBody>
                <MessageBarTitle>Keep at least one active CMG for internet clients</MessageBarTitle>
                Clients cannot use a deleted CMG, and they learn of a new one only after their next location request (wait at least a day).
                {others === 0 ? " No other CMG of this site is Ready: internet clients lose their way to the site." : ` ${others} other CMG(s) of this site are Ready.`}
              </MessageBarBody>
            </MessageBar>
            {others === 0 && (
              <Checkbox checked={force} onChange={(_, d) => setForce(Boolean(d.checked))} label="Delete it even though it is the last Ready CMG and internet clients use it" />
            )}
            <ErrorBar error={error} />
          </DialogContent>
          <DialogActions>
            <ChangeButton appearance="primary" onClick={() => void remove()}>
              Delete
            </ChangeButton>
            <Button onClick={onClose}>Cancel</Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}

const CHECK_COLOR = { pass: "success", fail: "danger", skip: "informative" } as const;

function ConnectionAnalyzer({ cmg, onClose }: { cmg: Cmg; onClose: () => void }) {
  const [result, setResult] = useState<CmgAnalysis>();
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [running, setRunning] = useState(false);
  // A device's client certificate (used for this analysis only; the site neither keeps nor logs it).
  const [client, setClient] = useState<{ file: string; clientCertPem?: string; clientKeyPem?: string }>({ file: "" });
  // Roots devices trust for the server certificate (a private CA's), listed by subject.
  const [cas, setCas] = useState<{ file: string; pem: string; subject: string }[]>([]);
  const run = async () => {
    setRunning(true);
    setErrors({});
    try {
      const body = {
        ...(client.clientCertPem === undefined ? {} : { clientCertPem: client.clientCertPem, ...(client.clientKeyPem === undefined ? {} : { clientKeyPem: client.clientKeyPem }) }),
        ...(cas.length ? { caPem: cas.map((c) => c.pem).join("\n") } : {}),
      };
      setResult(await api<CmgAnalysis>("POST", `/api/v1/cmgs/${encodeURIComponent(cmg.name)}/analyze`, body));
    } catch (e) {
      // The analyzer names the certificate, key and CA as the command line does (clientCert, clientKey, ca).
      setErrors(fieldErrors(e, ["clientCertPem", "clientKeyPem", "clientCert", "clientKey", "ca", "caPem"], ANALYZER_LABELS));
    } finally {
      setRunning(false);
    }
  };
  const chooseClientCert = async (file: File | undefined) => {
    if (!file) return;
    const text = await readFileText(file);
    const b = pemBlocks(text);
    // Without a PEM certificate the file goes as it is: the site's message names the field.
    setClient((c) => ({ file: file.name, clientCertPem: b.certificates.length ? b.certificates.join("") : text, clientKeyPem: b.privateKey ?? c.clientKeyPem }));
  };
  const chooseCas = async (files: FileList | null) => {
    const chosen = await Promise.all([...(files ?? [])].map(async (f) => ({ file: f.name, text: await readFileText(f) })));
    // Each certificate of each file, by subject; a file without one goes as it is (the site names the fault).
    setCas(chosen.flatMap(({ file, text }) => {
      const certs = pemBlocks(text).certificates;
      return certs.length ? certs.map((pem) => ({ file, pem, subject: certificateSubject(pem) || file })) : [{ file, pem: text, subject: file }];
    }));
  };
  const chooseClientKey = async (file: File | undefined) => {
    if (!file) return;
    const text = await readFileText(file);
    setClient((c) => ({ ...c, clientKeyPem: pemBlocks(text).privateKey ?? text }));
  };
  const err = (k: string) => ({ validationMessage: errors[k], validationState: errors[k] ? ("error" as const) : ("none" as const) });
  useEffect(() => void run(), []);
  return (
    <Dialog open onOpenChange={(_, d) => !d.open && onClose()}>
      <DialogSurface style={{ maxWidth: 900 }}>
        <DialogBody>
          <DialogTitle>Cloud Management Gateway Connection Analyzer: {cmg.name}</DialogTitle>
          <DialogContent>
            <div style={{ display: "flex", gap: 12, flexWrap: "wrap", marginBottom: 8 }}>
              <Field label={ANALYZER_LABELS.clientCert} hint={client.file ? `Chosen: ${client.file}` : "a device's client authentication certificate, to check it and make the location requests"} {...err(errors.clientCert ? "clientCert" : "clientCertPem")}>
                {(p) => <input {...p} type="file" accept=".pem,.crt,.cer" onChange={(ev) => void chooseClientCert(ev.target.files?.[0])} />}
              </Field>
              <Field label={ANALYZER_LABELS.clientKey} hint={client.clientKeyPem ? "Private key loaded" : "when the certificate file has none"} {...err(errors.clientKey ? "clientKey" : "clientKeyPem")}>
                {(p) => <input {...p} type="file" accept=".pem,.key" onChange={(ev) => void chooseClientKey(ev.target.files?.[0])} />}
              </Field>
              <Field
                label={ANALYZER_LABELS.ca}
                hint="the root devices trust for a server certificate from a private CA; the chosen certificates are listed below by subject"
                {...err(errors.ca ? "ca" : "caPem")}
              >
                {(p) => <input {...p} type="file" multiple accept=".pem,.crt,.cer" onChange={(ev) => void chooseCas(ev.target.files)} />}
              </Field>
            </div>
            {cas.length > 0 && (
              <ul aria-label="Trusted roots for the server certificate" style={{ margin: "0 0 8px" }}>
                {cas.map((c, i) => (
                  <li key={i}>{c.subject}</li>
                ))}
              </ul>
            )}
            {errors.form && <ErrorBar error={new Error(errors.form)} />}
            {running && <p role="status">Analyzing the connection...</p>}
            {result && (
              <>
                <p role="status">
                  {result.ok ? "No check failed" : `${result.failed} check(s) failed`}: {result.passed} passed, {result.failed} failed, {result.skipped} skipped.
                </p>
                <Table aria-label="Connection analyzer results" size="small" style={{ overflowWrap: "anywhere" }}>
                  <TableHeader>
                    <TableRow>
                      <TableHeaderCell>Check</TableHeaderCell>
                      <TableHeaderCell>Instance</TableHeaderCell>
                      <TableHeaderCell>Result</TableHeaderCell>
                      <TableHeaderCell>Details</TableHeaderCell>
                      <TableHeaderCell>What to do</TableHeaderCell>
                    </TableRow>
                  </TableHeader>
                  <TableBody>
                    {result.checks.map((c, i) => (
                      <TableRow key={i}>
                        <TableCell>{c.check}</TableCell>
                        <TableCell>{c.instance ?? ""}</TableCell>
                        <TableCell>
                          <Badge appearance="tint" color={CHECK_COLOR[c.status as keyof typeof CHECK_COLOR] ?? "informative"}>
                            {c.status}
                          </Badge>
                        </TableCell>
                        <TableCell>
                          {c.detail}
                          {c.reason ? ` (reason ${c.reason}${c.cause ? `: ${c.cause}` : ""})` : ""}
                        </TableCell>
                        <TableCell>{c.fix ?? ""}</TableCell>
                      </TableRow>
                    ))}
                  </TableBody>
                </Table>
              </>
            )}
          </DialogContent>
          <DialogActions>
            <ChangeButton onClick={() => void run()} disabled={running}>
              Analyze again
            </ChangeButton>
            <Button appearance="primary" onClick={onClose}>
              Close
            </Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}
