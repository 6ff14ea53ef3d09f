import type { DataSource } from "typeorm";
import { countObjects, idleInTransaction, objectBytes, objectExists, randomBytes } from "../support/database";
import { dropTusTable, leftovers, objectSize, poolSettled, uploadRow, useTusServer, type TusServer } from "../support/tus";
import { useDataSource } from "../support/use-data-source";
import { TusFile } from "./fixtures/tus-file";

// The protocol's answers for what goes wrong, through undici's fetch against @tus/server on the
// store: the status the protocol names, the upload left as it was, no connection held.
let ds: DataSource;
let server: TusServer;

useDataSource((opened) => (ds = opened), { orm: [TusFile], tearDown: dropTusTable });
useTusServer((started) => (server = started), { commitEveryBytes: 1024 * 1024 });

afterEach(async () => {
  expect(await poolSettled(server)).toBe(0);
  expect(await idleInTransaction(ds)).toBe(0);
});

const TUS = { "Tus-Resumable": "1.0.0" };
const BYTES = { "Content-Type": "application/offset+octet-stream" };

function metadata(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([key, value]) => `${key} ${Buffer.from(value).toString("base64")}`)
    .join(",");
}

/** Creates an upload (POST) and returns its URL. */
async function create(headers: Record<string, string>, through = 0): Promise<string> {
  const res = await fetch(`${server.urls[through]}/files`, { method: "POST", headers: { ...TUS, ...headers } });
  expect(res.status).toBe(201);
  return new URL(res.headers.get("location")!, server.urls[through]).toString();
}

function patch(url: string, offset: number, body: Buffer | ReadableStream<Uint8Array>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: "PATCH", headers: { ...TUS, ...BYTES, "Upload-Offset": String(offset), ...headers }, body, duplex: "half" } as RequestInit);
}

function head(url: string): Promise<Response> {
  return fetch(url, { method: "HEAD", headers: TUS });
}

/** A body that sends `first`, then waits for `release()` before sending `rest`. */
function heldBody(first: Buffer, rest: Buffer): { body: ReadableStream<Uint8Array>; release: () => void } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let step = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      step += 1;
      if (step === 1) controller.enqueue(first);
      else if (step === 2) {
        await released;
        controller.enqueue(rest);
      } else controller.close();
    },
  });
  return { body, release };
}

async function adopted(url: string): Promise<TusFile | null> {
  return ds.getRepository(TusFile).findOneBy({ uploadId: decodeURIComponent(url.slice(url.lastIndexOf("/") + 1)) });
}

test("a PATCH at the wrong offset is refused with 409 and changes nothing", async () => {
  const url = await create({ "Upload-Length": "4096" });
  expect((await patch(url, 0, randomBytes(1000))).status).toBe(204);
  const res = await patch(url, 10, randomBytes(100, 2));
  expect(res.status).toBe(409);
  const row = await uploadRow(ds, url);
  expect(row!.offset).toBe(1000);
  expect(await objectSize(ds, row!.oid)).toBe(1000);
  expect(Number((await head(url)).headers.get("upload-offset"))).toBe(1000);
});

/** Waits until the upload's committed offset is `offset`: the PATCH in flight has committed a piece. */
async function committed(url: string, offset: number): Promise<void> {
  const started = Date.now();
  while ((await uploadRow(ds, url))?.offset !== offset) {
    if (Date.now() - started > 5000) throw new Error(`the upload never reached offset ${offset}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// A store failure while the body still arrives makes @tus/server abort the request: it answers
// 400 whatever the store's error was, so these tests look at what is stored and at the next HEAD.
test("a later piece of a PATCH finds the row moved by another writer: refused, the committed piece kept", async () => {
  const piece = 1024 * 1024;
  const url = await create({ "Upload-Length": String(4 * piece) });
  const [first, rest] = [randomBytes(piece, 11), randomBytes(piece, 12)];
  const held = heldBody(first, rest);
  const writing = patch(url, 0, held.body, { "Content-Length": String(2 * piece) });
  await committed(url, piece);
  // As if another process had committed a piece between this PATCH's pieces.
  const { oid } = (await uploadRow(ds, url))!;
  await ds.query('UPDATE "typeorm_large_object_tus_uploads" SET "offset" = 2 * $2::int8 WHERE "oid" = $1', [oid, piece]);
  held.release();
  expect((await writing).status).toBeGreaterThanOrEqual(400);
  expect(await objectSize(ds, oid)).toBe(piece);
  expect((await objectBytes(ds, oid)).equals(first)).toBe(true);
  expect((await uploadRow(ds, url))!.offset).toBe(2 * piece);
});

test("a later piece of a PATCH finds its object swept: refused, and HEAD answers 410", async () => {
  const piece = 1024 * 1024;
  const url = await create({ "Upload-Length": String(4 * piece) });
  const held = heldBody(randomBytes(piece, 13), randomBytes(piece, 14));
  const writing = patch(url, 0, held.body, { "Content-Length": String(2 * piece) });
  await committed(url, piece);
  // What the sweep does to an idle upload's staged object: its record and the object go together.
  const { oid } = (await uploadRow(ds, url))!;
  await ds.query("WITH gone AS (DELETE FROM typeorm_large_objects WHERE oid = $1) SELECT lo_unlink($1)", [oid]);
  held.release();
  expect((await writing).status).toBeGreaterThanOrEqual(400);
  expect(await objectExists(ds, oid)).toBe(false);
  expect((await uploadRow(ds, url))!.offset).toBe(piece);
  expect((await head(url)).status).toBe(410);
});

test("DELETE unlinks the object at once; a PATCH after it is 404", async () => {
  const url = await create({ "Upload-Length": "4096" });
  expect((await patch(url, 0, randomBytes(2000))).status).toBe(204);
  const { oid } = (await uploadRow(ds, url))!;
  expect((await fetch(url, { method: "DELETE", headers: TUS })).status).toBe(204);
  expect(await objectExists(ds, oid)).toBe(false);
  expect(await uploadRow(ds, url)).toBeUndefined();
  expect((await patch(url, 2000, randomBytes(100))).status).toBe(404);
  expect((await head(url)).status).toBe(404);
});

test("an upload idle past its expiry answers 410 to HEAD and PATCH, and deleteExpired() removes it", async () => {
  const url = await create({ "Upload-Length": "4096" });
  expect((await patch(url, 0, randomBytes(100))).status).toBe(204);
  const { oid } = (await uploadRow(ds, url))!;
  const fresh = await create({ "Upload-Length": "4096" });
  await ds.query(`UPDATE "typeorm_large_object_tus_uploads" SET "touched_at" = now() - interval '2 days' WHERE "oid" = $1`, [oid]);
  expect((await head(url)).status).toBe(410);
  expect((await patch(url, 100, randomBytes(100))).status).toBe(410);
  expect(await objectSize(ds, oid)).toBe(100);
  expect(await server.control<{ removed: number }>("expire")).toEqual({ removed: 1 });
  expect(await objectExists(ds, oid)).toBe(false);
  expect(await uploadRow(ds, url)).toBeUndefined();
  // The upload that is not idle stays.
  expect((await head(fresh)).status).toBe(200);
});

test("a body past Upload-Length is 413, whether Content-Length says so or the bytes do; nothing is written", async () => {
  const url = await create({ "Upload-Length": "1000" });
  expect((await patch(url, 0, randomBytes(2000))).status).toBe(413);
  // Chunked, with no Content-Length: the stream is cut at the limit.
  const chunked = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(randomBytes(600, 3));
      controller.enqueue(randomBytes(600, 4));
      controller.close();
    },
  });
  expect((await patch(url, 0, chunked)).status).toBe(413);
  const row = await uploadRow(ds, url);
  expect(row!.offset).toBe(0);
  expect(await objectSize(ds, row!.oid)).toBe(0);
  expect(await adopted(url)).toBeNull();
});

test("bad Upload-Metadata is 400 and creates nothing", async () => {
  const objects = await countObjects(ds);
  const before = await leftovers(ds);
  for (const bad of ["", "file name x", `filename ${"%%%"}`, `a ${Buffer.from("x").toString("base64")},a ${Buffer.from("y").toString("base64")}`]) {
    const res = await fetch(`${server.urls[0]}/files`, { method: "POST", headers: { ...TUS, "Upload-Length": "10", "Upload-Metadata": bad } });
    expect([bad, res.status]).toEqual([bad, 400]);
  }
  expect(await countObjects(ds)).toBe(objects);
  expect(await leftovers(ds)).toEqual(before);
});

test("two PATCHes of one upload at once through two servers: the second is 423, bytes never interleave", async () => {
  const first = randomBytes(512 * 1024, 5);
  const rest = randomBytes(512 * 1024, 6);
  const url = await create({ "Upload-Length": String(4 * 1024 * 1024) });
  const held = heldBody(first, rest);
  const writing = patch(url, 0, held.body, { "Content-Length": String(first.length + rest.length) });
  // Until the first bytes are in, the first PATCH holds no lock yet.
  const started = Date.now();
  while ((await busyServers()) === 0 && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 20));
  const other = url.replace(server.urls[0], server.urls[1]);
  const refused = await patch(other, 0, randomBytes(1000, 7));
  expect(refused.status).toBe(423);
  held.release();
  const done = await writing;
  expect(done.status).toBe(204);
  expect(Number(done.headers.get("upload-offset"))).toBe(first.length + rest.length);
  const { oid } = (await uploadRow(ds, url))!;
  expect((await objectBytes(ds, oid)).equals(Buffer.concat([first, rest]))).toBe(true);
});

/** Sessions of the tus server inside a transaction (a PATCH writing its piece). */
async function busyServers(): Promise<number> {
  const rows: { n: string }[] = await ds.query(
    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'tus-server' AND state LIKE 'idle in transaction%'",
  );
  return Number(rows[0]!.n);
}

test("creation-with-upload that carries the whole body finishes in the POST, adopted in onUploadFinish", async () => {
  const data = randomBytes(3000, 8);
  const res = await fetch(`${server.urls[0]}/files`, {
    method: "POST",
    headers: { ...TUS, ...BYTES, "Upload-Length": String(data.length), "Upload-Metadata": metadata({ filename: "small.bin" }) },
    body: data,
  });
  expect(res.status).toBe(201);
  expect(res.headers.get("upload-offset")).toBe(String(data.length));
  const url = new URL(res.headers.get("location")!, server.urls[0]).toString();
  const file = await adopted(url);
  expect(file!.name).toBe("small.bin");
  expect((await objectBytes(ds, file!.content as number)).equals(data)).toBe(true);
  expect(await uploadRow(ds, url)).toBeUndefined();
  expect(await ds.query("SELECT staged FROM typeorm_large_objects WHERE oid = $1", [file!.content])).toEqual([{ staged: false }]);
});

test("a finished upload answers HEAD with its length, and DELETE of it leaves the adopted object alone", async () => {
  const data = randomBytes(5000, 11);
  const url = await create({ "Upload-Length": String(data.length) });
  expect((await patch(url, 0, data)).status).toBe(204);
  const probe = await head(url);
  expect(probe.status).toBe(200);
  expect(probe.headers.get("upload-offset")).toBe(String(data.length));
  const file = await adopted(url);
  expect((await fetch(url, { method: "DELETE", headers: TUS })).status).toBe(204);
  expect((await objectBytes(ds, file!.content as number)).equals(data)).toBe(true);
});

test("creation-defer-length: the length comes with a later PATCH, which finishes the upload", async () => {
  const url = await create({ "Upload-Defer-Length": "1", "Upload-Metadata": metadata({ filename: "deferred.bin" }) });
  const a = randomBytes(300, 9);
  const b = randomBytes(200, 10);
  expect((await patch(url, 0, a)).status).toBe(204);
  const probe = await head(url);
  expect(probe.headers.get("upload-defer-length")).toBe("1");
  expect((await patch(url, 300, b, { "Upload-Length": "500" })).status).toBe(204);
  const file = await adopted(url);
  expect((await objectBytes(ds, file!.content as number)).equals(Buffer.concat([a, b]))).toBe(true);
  expect(file!.sha256).toMatch(/^[0-9a-f]{64}$/);
});

test("an empty upload is finished and adopted when it is created", async () => {
  const res = await fetch(`${server.urls[0]}/files`, { method: "POST", headers: { ...TUS, "Upload-Length": "0" } });
  expect(res.status).toBe(201);
  const url = new URL(res.headers.get("location")!, server.urls[0]).toString();
  const file = await adopted(url);
  expect(await objectSize(ds, file!.content as number)).toBe(0);
  expect(await uploadRow(ds, url)).toBeUndefined();
});
