import type { DataSource } from "typeorm";
import { randomBytes } from "../support/database";
import {
  cuttingProxy,
  dropTusTable,
  leftovers,
  objectSha256,
  objectSize,
  poolSettled,
  runTusUpload,
  sha256,
  startTusServer,
  uploadRow,
  useTusServer,
  type TusServer,
} from "../support/tus";
import { useDataSource } from "../support/use-data-source";
import { TusFile } from "./fixtures/tus-file";

// tus-js-client uploads 64 MiB in 5 MiB PATCHes through a proxy that cuts the connection twice
// mid-PATCH; each time a new client resumes from the stored URL. The store commits every 4 MiB.
let ds: DataSource;
let server: TusServer;

useDataSource((opened) => (ds = opened), { orm: [TusFile], tearDown: dropTusTable });
useTusServer((started) => (server = started));

const MiB = 1024 * 1024;

test("a 64 MiB upload cut twice mid-PATCH resumes from its URL to a byte-exact object, adopted once", async () => {
  const data = randomBytes(64 * MiB, 21);
  const cuts = [22 * MiB + 12_345, 47 * MiB + 777];
  const proxy = await cuttingProxy(server.urls[0], cuts);
  try {
    const endpoint = `${proxy.url}/files`;
    const options = { endpoint, chunkSize: 5 * MiB, metadata: { filename: "video.bin", filetype: "application/octet-stream" } };
    let outcome = await runTusUpload(data, options);
    const offsets: number[] = [];
    while (!outcome.ok) {
      const url = outcome.url;
      expect(url).not.toBeNull();
      // The server answers HEAD once the cut PATCH has ended: the offset is what it committed.
      const head = await fetch(url!.replace(proxy.url, server.urls[0]), { method: "HEAD", headers: { "Tus-Resumable": "1.0.0" } });
      expect(head.status).toBe(200);
      const offset = Number(head.headers.get("upload-offset"));
      const row = await uploadRow(ds, url!);
      expect(row).toBeDefined();
      expect(row!.offset).toBe(offset);
      expect(await objectSize(ds, row!.oid)).toBe(offset);
      expect(await objectSha256(ds, row!.oid, offset)).toBe(sha256(data.subarray(0, offset)));
      offsets.push(offset);
      outcome = await runTusUpload(data, { ...options, uploadUrl: url! });
    }
    expect(proxy.cutsMade()).toBe(2);
    expect(offsets).toHaveLength(2);
    // Each cut kept the committed pieces before it, and resumed past the previous cut.
    expect(offsets[0]).toBeGreaterThanOrEqual(20 * MiB);
    expect(offsets[0]).toBeLessThanOrEqual(cuts[0]!);
    expect(offsets[1]).toBeGreaterThanOrEqual(45 * MiB);
    expect(offsets[1]).toBeLessThanOrEqual(cuts[1]!);

    const files = await ds.getRepository(TusFile).find();
    expect(files).toHaveLength(1);
    const file = files[0]!;
    expect(file.name).toBe("video.bin");
    const oid = file.content as number;
    expect(await objectSize(ds, oid)).toBe(data.length);
    expect(await objectSha256(ds, oid)).toBe(sha256(data));
    // The digest the store recorded for the staged object, read by onUploadFinish before adopting.
    expect(file.sha256).toBe(sha256(data));
    expect(await leftovers(ds)).toEqual({ uploads: 0, staged: 0 });
    expect(await poolSettled(server)).toBe(0);
  } finally {
    await proxy.close();
  }
}, 120_000);

test("a server restarted mid-upload resumes it, and records the digest by one read at the end", async () => {
  const data = randomBytes(12 * MiB, 22);
  const first = await startTusServer();
  const proxy = await cuttingProxy(first.urls[0], [7 * MiB]);
  let url: string;
  try {
    // The first process takes the first PATCH and part of the second, then goes away.
    const outcome = await runTusUpload(data, { endpoint: `${proxy.url}/files`, chunkSize: 5 * MiB, metadata: { filename: "restarted.bin" } });
    expect(outcome.ok).toBe(false);
    url = outcome.url!;
  } finally {
    await proxy.close();
    await first.stop();
  }
  expect((await uploadRow(ds, url))!.offset).toBeGreaterThanOrEqual(5 * MiB);
  const path = new URL(url).pathname;
  const resumed = await runTusUpload(data, { endpoint: `${server.urls[0]}/files`, uploadUrl: `${server.urls[0]}${path}`, chunkSize: 5 * MiB });
  expect(resumed.ok).toBe(true);
  const file = await ds.getRepository(TusFile).findOneByOrFail({ name: "restarted.bin" });
  expect(await objectSha256(ds, file.content as number)).toBe(sha256(data));
  expect(file.sha256).toBe(sha256(data));
}, 60_000);
