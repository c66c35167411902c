import { useEffect, useState, type FormEvent } from "react";
import { Button, Card, Field, Input, MessageBar, MessageBarBody, Text, makeStyles } from "@fluentui/react-components";
import { api, ApiError } from "../api.ts";

const useStyles = makeStyles({ page: { display: "grid", placeItems: "center", minHeight: "100vh" }, card: { width: "420px", padding: "24px" } });

export function SignIn({ onSignedIn }: { onSignedIn: (csrf: string) => void }) {
  const s = useStyles();
  const [token, setToken] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [directory, setDirectory] = useState<{ configured: boolean }>();
  // A directory sign-in that failed comes back here with its reason in the address.
  const [directoryError] = useState(() => new URLSearchParams(location.search).get("message") ?? undefined);
  useEffect(() => {
    api<{ configured: boolean }>("GET", "/api/v1/session/directory").then(setDirectory, () => setDirectory(undefined));
    if (directoryError) history.replaceState(null, "", location.pathname);
  }, [directoryError]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    try {
      await api<{ csrfToken: string }>("POST", "/api/v1/session", { token });
      // The cookie is Secure: a browser keeps it on https:// and on http://localhost only.
      const kept = await api<{ csrfToken: string }>("GET", "/api/v1/session").catch(() => undefined);
      if (!kept) return setError("The browser did not keep the session cookie: open the console at the https:// address opencmg site serve printed (trust the site CA it names), or at http://localhost on the site server itself.");
      onSignedIn(kept.csrfToken);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className={s.page}>
      <Card className={s.card}>
        <h1 style={{ fontSize: 24, margin: 0 }}>OpenCMG console</h1>
        {directoryError && (
          <MessageBar intent="error" role="alert">
            <MessageBarBody>Directory sign-in failed: {directoryError}</MessageBarBody>
          </MessageBar>
        )}
        {directory?.configured && (
          <>
            <Text>Administrators sign in with the organization's directory.</Text>
            <Button as="a" appearance="primary" href="/api/v1/session/directory/start">
              Sign in with the directory
            </Button>
          </>
        )}
        <Text>Sign in with an admin token: the one opencmg up printed, or the contents of the data folder's admin.token.</Text>
        <form onSubmit={(e) => void submit(e)}>
          <Field label="Admin token" required validationState={error ? "error" : "none"} validationMessage={error}>
            <Input type="password" value={token} onChange={(_, d) => setToken(d.value)} autoComplete="current-password" autoFocus />
          </Field>
          <Button appearance="primary" type="submit" disabled={busy} style={{ marginTop: 16 }}>
            Sign in
          </Button>
        </form>
      </Card>
    </main>
  );
}
