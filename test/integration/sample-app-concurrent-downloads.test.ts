import { randomBytes } from "../support/database";
import { checkedOut } from "../support/pool";
import { eventually, send, sha256, useSample, type SampleServer } from "../support/sample-app";

const content = randomBytes(2 * 1024 * 1024 + 333, 41);
const digest = sha256(content);
let sample: SampleServer | undefined;
let url = "";

useSample((started) => (sample = started), {
  poolSize: 5,
  setUp: async (started) => {
    const reply = await send(`${started.url}/api/documents?name=shared.bin`, { method: "POST", body: content });
    url = `${started.url}/api/documents/${(JSON.parse(reply.body.toString()) as { id: number }).id}/content`;
  },
});

test("100 concurrent downloads on a pool of 5 connections all complete byte for byte", async () => {
  const replies = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      // Every fourth one asks for a range, so whole and partial reads interleave.
      i % 4 === 3 ? send(url, { headers: { Range: `bytes=${i * 1000}-${i * 1000 + 99_999}` } }) : send(url),
    ),
  );
  replies.forEach((reply, i) => {
    if (i % 4 === 3) {
      expect(reply.status).toBe(206);
      expect(reply.body.equals(content.subarray(i * 1000, i * 1000 + 100_000))).toBe(true);
    } else {
      expect(reply.status).toBe(200);
      expect(sha256(reply.body)).toBe(digest);
    }
  });
  await eventually(() => checkedOut(sample!.dataSource) === 0, "every connection back in the pool");
});
