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
  Toolbar,
  ToolbarButton,
  MessageBar,
  MessageBarBody,
  MessageBarTitle,
} from "@fluentui/react-components";
import { api, type Cmg, type CmgAnalysis } from "../api.ts";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";
import { CreateCmgWizard, ENVIRONMENTS } from "./CmgWizard.tsx";
import { certificateSubject, pemBlocks, readFileText } from "../certs.ts";

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
        <ToolbarButton appearance="primary" onClick={() => setDialog("create")}>
          Create Cloud Management Gateway
        </ToolbarButton>
        <ToolbarButton disabled={!current} onClick={() => setDialog("properties")}>
          Properties
        </ToolbarButton>
        <ToolbarButton disabled={!current} onClick={() => void action("start")}>
          Start
        </ToolbarButton>
        <ToolbarButton disabled={!current} onClick={() => void action("stop")}>
          Stop
        </ToolbarButton>
        <ToolbarButton disabled={!current} onClick={() => setDialog("delete")}>
          Delete
        </ToolbarButton>
        <ToolbarButton disabled={!current} onClick={() => setDialog("analyze")}>
          Connection analyzer
        </ToolbarButton>
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
            <Table aria-label="Cloud management gateways" size="small">
              <TableHeader>
                <TableRow>
                  <TableHeaderCell>Select</TableHeaderCell>
                  <TableHeaderCell>Name</TableHeaderCell>
                  <TableHeaderCell>Service FQDN</TableHeaderCell>
                  <TableHeaderCell>Status</TableHeaderCell>
                  <TableHeaderCell>Environment</TableHeaderCell>
                  <TableHeaderCell>Region</TableHeaderCell>
                  <TableHeaderCell>VM instances</TableHeaderCell>
                  <TableHeaderCell>Connection point</TableHeaderCell>
                </TableRow>
              </TableHeader>
              <TableBody>
                {list.map((c) => (
                  <TableRow key={c.name} aria-selected={c.name === selected}>
                    <TableCell>
                      <Checkbox aria-label={`Select ${c.name}`} checked={c.name === selected} onChange={(_, d) => setSelected(d.checked ? c.name : undefined)} />
                    </TableCell>
                    <TableCell>{c.name}</TableCell>
                    <TableCell>{c.serviceFqdn}</TableCell>
                    <TableCell>
                      <Badge appearance="tint" color={statusColor(c.status)} data-testid={`status-${c.name}`}>
                        {c.status}
                      </Badge>{" "}
                      <span style={{ fontSize: 12 }}>{c.statusReason}</span>
                    </TableCell>
                    <TableCell>{ENVIRONMENTS[c.cloud] ?? c.cloud}</TableCell>
                    <TableCell>{c.region}</TableCell>
                    <TableCell>{c.instanceCount}</TableCell>
                    <TableCell>{c.connectionPointServers.join(", ") || "none"}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
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

/** What can change after creation (SPEC section 3, "Modify, replace, delete"). */
function CmgProperties({ cmg, onClose, onSaved }: { cmg: Cmg; onClose: () => void; onSaved: () => void }) {
  const [instances, setInstances] = useState(cmg.instanceCount);
  const [crlCheck, setCrlCheck] = useState(cmg.crlCheck);
  const [minRsaBits, setMinRsaBits] = useState(String(cmg.minRsaBits));
  const [serverCertPem, setServerCertPem] = useState<string>();
  const [serverKeyPem, setServerKeyPem] = useState<string>();
  const [serverChainPem, setServerChainPem] = useState<string[]>([]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const save = async () => {
    const body: Record<string, unknown> = {};
    if (instances !== cmg.instanceCount) body.instances = instances;
    if (crlCheck !== cmg.crlCheck) body.crlCheck = crlCheck;
    if (minRsaBits !== String(cmg.minRsaBits)) body.minRsaBits = /^\d+$/.test(minRsaBits) ? Number(minRsaBits) : minRsaBits;
    if (serverCertPem !== undefined) Object.assign(body, { serverCertPem, serverKeyPem, ...(serverChainPem.length ? { serverChainPem } : {}) });
    try {
      await api("PATCH", `/api/v1/cmgs/${encodeURIComponent(cmg.name)}`, body);
      onSaved();
      onClose();
    } catch (e) {
      setErrors(fieldErrors(e, ["instances", "crlCheck", "minRsaBits", "serverCertPem", "serverKeyPem", "serverChainPem"]));
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
  };
  const e = (n: string) => ({ validationMessage: errors[n], validationState: errors[n] ? ("error" as const) : ("none" as const) });
  return (
    <Dialog open onOpenChange={(_, d) => !d.open && onClose()}>
      <DialogSurface>
        <DialogBody>
          <DialogTitle>{cmg.name} Properties</DialogTitle>
          <DialogContent>
            {errors.form && <ErrorBar error={new Error(errors.form)} />}
            <div style={{ display: "grid", gap: 10 }}>
              <p style={{ margin: 0 }}>
                Service FQDN {cmg.serviceFqdn}; server authentication certificate {cmg.serverCertificate.subject}, valid until {cmg.serverCertificate.notAfter}. The deployment method, service name and region need a new CMG.
              </p>
              <Field label="VM instance" hint="1 to 16" {...e("instances")}>
                <SpinButton value={instances} min={1} max={16} onChange={(_, d) => setInstances(d.value ?? Number(d.displayValue))} />
              </Field>
              <Field {...e("crlCheck")}>
                <Checkbox checked={crlCheck} onChange={(_, d) => setCrlCheck(Boolean(d.checked))} label="Verify Client Certificate Revocation" />
              </Field>
              <Field label="Smallest RSA key of a client certificate (bits)" {...e("minRsaBits")}>
                <Input value={minRsaBits} onChange={(_, d) => setMinRsaBits(d.value)} inputMode="numeric" />
              </Field>
              <Field label="Renew the server authentication certificate: certificate file (PEM with its key)" {...e(errors.serverKeyPem ? "serverKeyPem" : errors.serverChainPem ? "serverChainPem" : "serverCertPem")}>
                {(p) => <input {...p} type="file" accept=".pem,.crt" onChange={(ev) => void chooseCert(ev.target.files?.[0])} />}
              </Field>
            </div>
          </DialogContent>
          <DialogActions>
            <Button appearance="primary" onClick={() => void save()}>
              OK
            </Button>
            <Button onClick={onClose}>Cancel</Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
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
            <Button appearance="primary" onClick={() => void remove()}>
              Delete
            </Button>
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
      setErrors(fieldErrors(e, ["clientCertPem", "clientKeyPem", "clientCert", "clientKey", "ca", "caPem"]));
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
              <Field label="Client certificate file (PEM, optional)" hint={client.file ? `Chosen: ${client.file}` : "a device's client authentication certificate, to check it and make the location requests"} {...err(errors.clientCert ? "clientCert" : "clientCertPem")}>
                {(p) => <input {...p} type="file" accept=".pem,.crt,.cer" onChange={(ev) => void chooseClientCert(ev.target.files?.[0])} />}
              </Field>
              <Field label="Its private key file (PEM)" hint={client.clientKeyPem ? "Private key loaded" : "when the certificate file has none"} {...err(errors.clientKey ? "clientKey" : "clientKeyPem")}>
                {(p) => <input {...p} type="file" accept=".pem,.key" onChange={(ev) => void chooseClientKey(ev.target.files?.[0])} />}
              </Field>
              <Field
                label="Trusted root for the server certificate (PEM, optional)"
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
            <Button onClick={() => void run()} disabled={running}>
              Analyze again
            </Button>
            <Button appearance="primary" onClick={onClose}>
              Close
            </Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}
