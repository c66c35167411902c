// Preloaded (`node --import`) into a child process to make it start together with others: it
// says "ready" on fd 3 and waits there for the parent's "go" before the main module runs.
import { Socket } from "node:net";

const s = new Socket({ fd: 3, readable: true, writable: true });
await new Promise((resolve, reject) => {
  s.once("data", resolve);
  s.once("error", reject);
  s.once("end", () => reject(new Error("start barrier: the parent closed fd 3 without saying go")));
  s.write("ready\n");
});
s.destroy();
