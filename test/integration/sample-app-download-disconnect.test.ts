import { request } from "node:http";
import { idleInTransaction, randomBytes } from "../support/database";
import { checkedOut } from "../support/pool";
import { eventually, send, sha256, useSample, type SampleServer } from "../support/sample-app";

const MiB = 1024 * 1024;
// Larger than the read stream's 16 MiB window, so a COPY is in flight when the client leaves.
const big = randomBytes(40 * MiB, 31);
const small = randomBytes(100_000, 32);
let sample: SampleServer | undefined;
let bigUrl = "";
let smallUrl = "";

useSample((started) => (sample = started), {
  poolSize: 1,
  setUp: async (started) => {
    for (const [name, content] of [["big", big], ["small", small]] as const) {
      const reply = await send(`${started.url}/api/documents?name=${name}`, { method: "POST", body: content });
      const url = `${started.url}/api/documents/${(JSON.parse(reply.body.toString()) as { id: number }).id}/content`;
      if (name === "big") bigUrl = url;
      else smallUrl = url;
    }
  },
});

/** Starts a download, reads `bytes` of it, then drops the connection. */
function downloadAndLeave(url: string, bytes: number, range?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: range ? { Range: range } : {} }, (res) => {
      let received = 0;
      res.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received >= bytes) {
          req.destroy();
          resolve(received);
        }
      });
      res.on("end", () => reject(new Error("the download ended before the client left")));
    });
    req.on("error", () => undefined);
    req.end();
  });
}

test.each([
  ["its first bytes", 1, undefined],
  ["1 MiB", MiB, undefined],
  ["20 MiB, in the second window", 20 * MiB, undefined],
  ["part of a range", 2 * MiB, `bytes=${5 * MiB}-${30 * MiB}`],
])("a client leaving after %s frees the only pooled connection at once", async (_when, bytes, range) => {
  const received = await downloadAndLeave(bigUrl, bytes, range);
  expect(received).toBeLessThan(big.length);
  const startedAt = Date.now();
  // With a pool of one, both requests need the connection the abandoned download held.
  const list = await send(`${sample!.url}/api/documents`);
  expect(list.status).toBe(200);
  const next = await send(smallUrl);
  expect(next.status).toBe(200);
  expect(next.body.equals(small)).toBe(true);
  // Far below the 10 s a request would wait for a connection before failing.
  expect(Date.now() - startedAt).toBeLessThan(3000);
  await eventually(() => checkedOut(sample!.dataSource) === 0, "the connection back in the pool");
  expect(await idleInTransaction(sample!.dataSource)).toBe(0);
});

test("after clients left, the whole object still downloads byte for byte", async () => {
  const reply = await send(bigUrl);
  expect(reply.status).toBe(200);
  expect(sha256(reply.body)).toBe(sha256(big));
});
