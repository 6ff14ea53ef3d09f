import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DataSource } from "typeorm";
import { sendLargeObject } from "../../src/http";
import { idleInTransaction, openDataSource } from "../support/database";
import { dropAll, openOrmDataSource } from "../support/orm";
import { checkedOut } from "../support/pool";
import { eventually, startServer, type TestServer } from "../support/http-server";
import { hasFfmpeg, runTool, testVideo, videoTest } from "../support/sample-media";
import { StoredFile } from "./fixtures/http-files";

let ds: DataSource;
let admin: DataSource;
let server: TestServer;
let dir: string;
let local: string;
let video: Buffer;
let url: string;
/** Every request the server answered: its Range header and status. */
let seen: { range: string | undefined; status: number }[] = [];

beforeAll(async () => {
  if (!hasFfmpeg) return;
  dir = await mkdtemp(join(tmpdir(), "tlo-video-"));
  local = join(dir, "video.mp4");
  await testVideo(local);
  video = await readFile(local);
  ds = await openOrmDataSource([StoredFile]);
  admin = await openDataSource();
  const file = await ds.getRepository(StoredFile).save({ name: "video.mp4", type: "video/mp4", content: Buffer.from(video) });
  server = await startServer(async (req, res) => {
    res.on("close", () => seen.push({ range: req.headers.range, status: res.statusCode }));
    const row = await ds.getRepository(StoredFile).findOneByOrFail({ id: Number(req.url!.slice(1).split(".")[0]) });
    await sendLargeObject(req, res, { source: ds, entity: row, property: "content", contentType: row.type });
  });
  url = `${server.url}/${file.id}.mp4`;
}, 60_000);
beforeEach(() => {
  seen = [];
});
afterEach(async () => {
  if (!hasFfmpeg) return;
  await eventually(() => checkedOut(ds) === 0, 5000, "every connection back in the pool");
  expect(await idleInTransaction(admin)).toBe(0);
});
afterAll(async () => {
  if (!hasFfmpeg) return;
  await server?.close();
  await admin?.destroy();
  await dropAll(ds);
  await rm(dir, { recursive: true, force: true });
});

/** Where the index starts: after the media data, so reading it means a range far into the file. */
function moovOffset(): number {
  return video.indexOf("moov") - 4;
}

function rangeStarts(): number[] {
  return seen.filter((s) => s.status === 206).map((s) => Number(/^bytes=(\d+)-/.exec(s.range ?? "")?.[1]));
}

const probe = (input: string): Promise<{ stdout: Buffer }> =>
  runTool("ffprobe", ["-v", "error", "-show_entries", "format=duration,size:stream=codec_type,codec_name,width,height,nb_frames", "-of", "json", input]);

videoTest("the test video keeps its index at the end, so a client must seek to read it", () => {
  expect(moovOffset()).toBeGreaterThan(video.length / 2);
  expect(video.indexOf("mdat")).toBeLessThan(64);
});

videoTest("ffprobe over HTTP reads the same duration and streams as from the file, seeking with Range to the index", async () => {
  const remote = JSON.parse((await probe(url)).stdout.toString()) as { format: { duration: string; size: string }; streams: { codec_type: string }[] };
  const fromFile = JSON.parse((await probe(local)).stdout.toString()) as unknown;
  expect(remote).toEqual(fromFile);
  expect(Number(remote.format.duration)).toBeCloseTo(6, 0);
  expect(Number(remote.format.size)).toBe(video.length);
  expect(remote.streams.map((s) => s.codec_type).sort()).toEqual(["audio", "video"]);
  // ffprobe asks for bytes=0- first and then jumps to the index at the end.
  expect(seen.every((s) => s.status === 206)).toBe(true);
  expect(rangeStarts()).toContain(0);
  expect(rangeStarts().some((start) => start >= moovOffset() - 64 * 1024 && start <= moovOffset())).toBe(true);
});

videoTest("ffmpeg -ss over HTTP decodes the same middle frame as from the file, through ranges into the media data", async () => {
  const frame = (input: string, at: string): Promise<string> =>
    runTool("ffmpeg", ["-nostdin", "-v", "error", "-ss", at, "-i", input, "-frames:v", "1", "-f", "md5", "-"]).then((r) => r.stdout.toString().trim());
  const remote = await frame(url, "3");
  expect(remote).toMatch(/^MD5=[0-9a-f]{32}$/);
  expect(remote).toBe(await frame(local, "3"));
  // A frame from elsewhere differs: the seek went where it was asked.
  expect(remote).not.toBe(await frame(local, "0"));
  const starts = rangeStarts();
  expect(starts.length).toBeGreaterThanOrEqual(3);
  expect(starts.some((start) => start > video.length / 4 && start < moovOffset() - 64 * 1024)).toBe(true);
});

videoTest("ffmpeg copying every packet over HTTP gets the same stream hash as from the file", async () => {
  const packets = (input: string): Promise<string> =>
    runTool("ffmpeg", ["-nostdin", "-v", "error", "-i", input, "-map", "0", "-c", "copy", "-f", "md5", "-"]).then((r) => r.stdout.toString().trim());
  const remote = await packets(url);
  expect(remote).toMatch(/^MD5=[0-9a-f]{32}$/);
  expect(remote).toBe(await packets(local));
  expect(seen.length).toBeGreaterThanOrEqual(2);
  expect(seen.every((s) => s.status === 206)).toBe(true);
});
