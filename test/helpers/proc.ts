/** What /proc says about processes, for tests that check nothing was left running. */
import { readdirSync, readFileSync } from "node:fs";

/** Pids of the live (not zombie) processes whose parent is `ppid`. */
export function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === ppid && fields[0] !== "Z") out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
