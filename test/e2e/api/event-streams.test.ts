/**
 * The insider who holds every live event stream, against a real `opencmg site serve`: a read-only
 * admin token opens its share of streams (4) and is refused the next ones with 429 (the one error
 * shape, a log line), while the administrator's console session and token still open theirs; a
 * stream given back frees its slot.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { request, type IncomingMessage } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, it } from "node:test";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { runCli } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/databases.ts";
import { until } from "../../helpers/until.ts";

interface Answer {
  status: number;
  res: IncomingMessage;
  /** The JSON body of a refusal; undefined for a stream (which stays open). */
  body?: { error: { code: string; kind: string; message: string } };
}

/** GET /api/v1/events on its own connection; resolves once the status is known (a 200 stays open). */
function openStream(base: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL("/api/v1/events", base), { headers, agent: false }, (res) => {
      if (res.statusCode === 200) return resolve({ status: 200, res });
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, res, body: JSON.parse(text) as Answer["body"] }));
    });
    req.on("error", reject);
    req.end();
  });
}

const open: Answer[] = [];
let serve: ChildProcess | undefined;
after(async () => {
  for (const a of open) a.res.destroy();
  if (serve && serve.exitCode === null) {
    const exited = new Promise((r) => serve!.once("exit", r));
    serve.kill("SIGTERM");
    await exited;
  }
});

it("a read-only token holds at most its 4 live event streams (429 past them, logged); the administrator's console still gets one", async () => {
  const data = join(tempDir("opencmg-streams-"), "data");
  assert.equal((await runCli(["--data", data, "site", "init"])).code, 0);
  const made = await runCli(["--data", data, "--json", "site", "token", "create", "auditor", "--read-only"]);
  assert.equal(made.code, 0, made.stderr);
  const auditor = made.json<{ token: string }>().token;
  const admin = readFileSync(join(data, "admin.token"), "utf8").trim();

  serve = spawn(process.execPath, [OPENCMG_BIN, "--data", data, "site", "serve", "--listen", "127.0.0.1:0", "--insecure-http"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  serve.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const base = await until("site serve to listen", () => {
    if (serve!.exitCode !== null) throw new Error(`site serve exited: ${stderr}`);
    return /serving the admin API on (http:\/\/\S+)/.exec(stderr)?.[1];
  });

  // The attack as it was seen: the read-only token asks for every stream the server has (64).
  const answers: Answer[] = [];
  for (let i = 0; i < 64; i++) {
    const a = await openStream(base, { authorization: `Bearer ${auditor}` });
    answers.push(a);
    if (a.status === 200) open.push(a);
  }
  // The administrators' console: sign in with the admin token, open the live view's stream.
  const signIn = await fetch(new URL("/api/v1/session", base), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: admin }) });
  assert.equal(signIn.status, 201);
  const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
  const consoleStream = await openStream(base, { cookie });
  open.push(consoleStream);
  assert.equal(consoleStream.status, 200, "the administrators' console gets its stream");
  assert.equal(consoleStream.res.headers["content-type"], "text/event-stream; charset=utf-8");
  const bearer = await openStream(base, { authorization: `Bearer ${admin}` });
  open.push(bearer);
  assert.equal(bearer.status, 200);

  assert.deepEqual(
    answers.map((a) => a.status),
    [...Array<number>(4).fill(200), ...Array<number>(60).fill(429)],
  );
  const refused = answers[4]!.body!;
  assert.equal(refused.error.code, "EVENT_STREAMS_PER_IDENTITY");
  assert.equal(refused.error.kind, "busy");
  assert.match(refused.error.message, /auditor holds 4 live event streams/);
  assert.deepEqual(Object.keys(refused), ["error"]);

  // One line in smsprov.log names the identity refused (not one per refusal).
  const log = await until("the refusal logged", () => {
    const text = readFileSync(join(data, "logs", "smsprov.log"), "utf8");
    return text.includes("Live event stream refused for admin identity auditor") && text;
  });
  assert.equal(log.split("Live event stream refused").length - 1, 1, log);
  assert.ok(!log.includes(auditor), "the token is not in the log");

  // A stream the reader closes is given back: the next one opens.
  open[0]!.res.destroy();
  const again = await until("a freed slot", async () => {
    const a = await openStream(base, { authorization: `Bearer ${auditor}` });
    if (a.status === 200) return a;
    assert.equal(a.status, 429);
    return undefined;
  });
  open.push(again);
});
