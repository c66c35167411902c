/**
 * The console's frame: sign-in, then the documents' workspaces and nodes in the navigation
 * (Administration, Software Library, Monitoring, Internet endpoints), one page per node.
 */
import { useEffect, useState, type MouseEvent, type ReactNode } from "react";
import { Button, Spinner, Text, makeStyles, tokens } from "@fluentui/react-components";
import { api, get, setSession, whenSignedOut, type Me } from "./api.ts";
import { ChangeReasons, MeContext } from "./roles.tsx";
import { AdminUsersPage } from "./pages/AdminUsers.tsx";
import { AuditPage } from "./pages/Audit.tsx";
import { closeLive, openLive } from "./ui.tsx";
import { navigate, usePath } from "./router.ts";
import { SignIn } from "./pages/SignIn.tsx";
import { SitesPage } from "./pages/Sites.tsx";
import { ServersPage } from "./pages/Servers.tsx";
import { AccountsPage } from "./pages/Accounts.tsx";
import { CmgPage } from "./pages/Cmg.tsx";
import { ComponentStatusPage, StatusMessagesPage } from "./pages/Status.tsx";
import { CmgMonitoringPage, ClientsPage } from "./pages/MonitoringCmg.tsx";
import { EndpointsPage } from "./pages/Endpoints.tsx";
import { ClientSettingsPage } from "./pages/ClientSettings.tsx";
import { BulkTokensPage } from "./pages/BulkTokens.tsx";
import { SecurityKeysPage } from "./pages/SecurityKeys.tsx";
import { JoinTokensPage } from "./pages/JoinTokens.tsx";
import { SoftwareUpdateSyncPage } from "./pages/SoftwareUpdateSync.tsx";
import { UpdatesServicingPage } from "./pages/UpdatesServicing.tsx";
import { AutomaticDeploymentRulesPage } from "./pages/AutomaticDeploymentRules.tsx";

interface Node {
  path: string;
  label: string;
  page: () => ReactNode;
}
interface Workspace {
  label: string;
  groups: { label?: string; nodes: Node[] }[];
}

export const WORKSPACES: Workspace[] = [
  {
    label: "Administration",
    groups: [
      { label: "Updates and Servicing", nodes: [{ path: "/administration/updates-and-servicing", label: "Updates and Servicing", page: () => <UpdatesServicingPage /> }] },
      {
        label: "Site Configuration",
        nodes: [
          { path: "/administration/sites", label: "Sites", page: () => <SitesPage /> },
          { path: "/administration/servers", label: "Servers and Site System Roles", page: () => <ServersPage /> },
        ],
      },
      {
        label: "Security",
        nodes: [
          { path: "/administration/accounts", label: "Accounts", page: () => <AccountsPage /> },
          { path: "/administration/administrative-users", label: "Administrative Users", page: () => <AdminUsersPage /> },
          { path: "/administration/bulk-registration-tokens", label: "Bulk Registration Tokens", page: () => <BulkTokensPage /> },
          { path: "/administration/server-join-tokens", label: "Server Join Tokens", page: () => <JoinTokensPage /> },
          { path: "/administration/signing-keys-and-certificates", label: "Signing Keys and Certificates", page: () => <SecurityKeysPage /> },
        ],
      },
      { label: "Cloud Services", nodes: [{ path: "/administration/cloud-management-gateway", label: "Cloud Management Gateway", page: () => <CmgPage /> }] },
      { label: "Client Settings", nodes: [{ path: "/administration/client-settings", label: "Client Settings", page: () => <ClientSettingsPage /> }] },
    ],
  },
  {
    label: "Software Library",
    groups: [
      {
        label: "Software Updates",
        nodes: [
          { path: "/software-library/software-update-synchronization", label: "Software Update Synchronization", page: () => <SoftwareUpdateSyncPage /> },
          { path: "/software-library/automatic-deployment-rules", label: "Automatic Deployment Rules", page: () => <AutomaticDeploymentRulesPage /> },
        ],
      },
    ],
  },
  {
    label: "Monitoring",
    groups: [
      {
        label: "System Status",
        nodes: [
          { path: "/monitoring/component-status", label: "Component Status", page: () => <ComponentStatusPage /> },
          { path: "/monitoring/status-messages", label: "Status Messages", page: () => <StatusMessagesPage /> },
          { path: "/monitoring/audit", label: "Audit", page: () => <AuditPage /> },
        ],
      },
      {
        label: "Cloud Management",
        nodes: [
          { path: "/monitoring/cloud-management-gateway", label: "Cloud Management Gateway", page: () => <CmgMonitoringPage /> },
          { path: "/monitoring/clients", label: "Clients", page: () => <ClientsPage /> },
        ],
      },
    ],
  },
  { label: "Internet endpoints", groups: [{ nodes: [{ path: "/endpoints", label: "Internet endpoints", page: () => <EndpointsPage /> }] }] },
];

const ALL = WORKSPACES.flatMap((w) => w.groups.flatMap((g) => g.nodes.map((n) => ({ ...n, workspace: w.label }))));

const useStyles = makeStyles({
  frame: { display: "grid", gridTemplateColumns: "280px 1fr", gridTemplateRows: "48px 1fr", minHeight: "100vh" },
  header: { gridColumn: "1 / 3", display: "flex", alignItems: "center", gap: "16px", padding: "0 16px", backgroundColor: tokens.colorBrandBackground, color: tokens.colorNeutralForegroundOnBrand },
  nav: { borderRight: `1px solid ${tokens.colorNeutralStroke2}`, padding: "8px 0", backgroundColor: tokens.colorNeutralBackground2 },
  workspace: { fontWeight: 600, fontSize: "15px", margin: "12px 16px 4px" },
  group: { fontSize: "12px", color: tokens.colorNeutralForeground2, margin: "8px 16px 2px 24px", textTransform: "uppercase" },
  list: { listStyle: "none", margin: 0, padding: 0 },
  link: {
    display: "block",
    padding: "6px 16px 6px 32px",
    color: tokens.colorNeutralForeground1,
    textDecoration: "none",
    ":hover": { backgroundColor: tokens.colorNeutralBackground2Hover },
    ":focus-visible": { outline: `2px solid ${tokens.colorStrokeFocus2}`, outlineOffset: "-2px" },
  },
  current: { backgroundColor: tokens.colorNeutralBackground1Selected, fontWeight: 600, borderLeft: `3px solid ${tokens.colorBrandStroke1}` },
  main: { padding: "16px 24px", overflow: "auto" },
});

function NavLink({ node, current }: { node: Node; current: boolean }) {
  const s = useStyles();
  const click = (e: MouseEvent) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    navigate(node.path);
  };
  return (
    <li>
      <a href={node.path} onClick={click} className={current ? `${s.link} ${s.current}` : s.link} aria-current={current ? "page" : undefined}>
        {node.label}
      </a>
    </li>
  );
}

export function App() {
  const s = useStyles();
  const path = usePath();
  const [state, setState] = useState<"checking" | "out" | "in">("checking");
  const [me, setMe] = useState<Me>();
  const node = ALL.find((n) => path === n.path || path.startsWith(n.path + "/")) ?? ALL[0]!;
  useEffect(() => {
    document.title = state === "in" ? `${node.label} - ${node.workspace} - OpenCMG console` : "Sign in - OpenCMG console";
  });

  useEffect(() => {
    whenSignedOut(() => {
      closeLive();
      setState("out");
    });
    api<{ csrfToken: string }>("GET", "/api/v1/session")
      .then((r) => {
        setSession(r.csrfToken);
        setState("in");
      })
      .catch(() => setState("out"));
  }, []);
  useEffect(() => {
    if (state !== "in") return;
    openLive();
    get<Me>("/api/v1/whoami").then(setMe, () => setMe(undefined));
  }, [state]);

  if (state === "checking" || (state === "in" && !me)) return <Spinner label="Opening the console" />;
  if (state === "out")
    return (
      <SignIn
        onSignedIn={(csrf) => {
          setSession(csrf);
          setState("in");
        }}
      />
    );

  const signOut = async () => {
    await api("DELETE", "/api/v1/session").catch(() => undefined);
    closeLive();
    setMe(undefined);
    setState("out");
  };
  return (
    <MeContext.Provider value={me}>
    <div className={s.frame}>
      <header className={s.header}>
        <Text weight="semibold" size={400}>
          OpenCMG console
        </Text>
        <Text>
          {node.workspace} &gt; {node.label}
        </Text>
        <span style={{ flex: 1 }} />
        <Text aria-label="Signed in as">
          {me!.name} ({me!.roleLabel})
        </Text>
        <Button appearance="primary" onClick={() => void signOut()}>
          Sign out
        </Button>
      </header>
      <nav className={s.nav} aria-label="Workspaces">
        {WORKSPACES.map((w) => (
          <section key={w.label} aria-label={w.label}>
            <h2 className={s.workspace}>{w.label}</h2>
            {w.groups.map((g, i) => (
              <div key={g.label ?? i}>
                {g.label && <h3 className={s.group}>{g.label}</h3>}
                <ul className={s.list}>
                  {g.nodes.map((n) => (
                    <NavLink key={n.path} node={n} current={n === node || n.path === node.path} />
                  ))}
                </ul>
              </div>
            ))}
          </section>
        ))}
      </nav>
      <main className={s.main} key={node.path}>
        <ChangeReasons />
        {node.page()}
      </main>
    </div>
    </MeContext.Provider>
  );
}
