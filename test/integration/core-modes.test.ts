import type { DataSource } from "typeorm";
import { LargeObject, LargeObjectError } from "../../src";
import { objectBytes } from "../support/database";
import { rejection } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened));

test("'r' reads and refuses writes and truncates with ERR_LO_MODE", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const lo = await LargeObject.open(ds, oid, "r");
  expect((await lo.read(4)).toString()).toBe("0123");
  for (const attempt of [lo.write("x"), lo.writePiece(Buffer.from("x")), lo.truncate(0)]) {
    expect(await rejection(attempt)).toMatchObject({ code: "ERR_LO_MODE", oid });
  }
  expect(() => lo.createWriteStream()).toThrow(LargeObjectError);
  // The refused calls did not break the handle.
  expect((await lo.read()).toString()).toBe("456789");
  await lo.close();
  expect((await objectBytes(ds, oid)).toString()).toBe("0123456789");
});

test("'r' keeps the size of its opening, as its reads do, while another descriptor of the transaction grows the object; its stream ends there", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const runner = ds.createQueryRunner();
  await runner.startTransaction();
  try {
    const reader = await LargeObject.open(runner, oid, "r");
    const writer = await LargeObject.open(runner, oid, "rw");
    await writer.seek(0, "end");
    await writer.write("abcdef");
    expect(await writer.size()).toBe(16);
    // Size and reads agree: both are as of the reader's opening.
    expect(await reader.size()).toBe(10);
    expect((await reader.read(100)).toString()).toBe("0123456789");
    const chunks: Buffer[] = [];
    for await (const chunk of reader.createReadStream({ autoClose: false })) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("0123456789");
    const later = await LargeObject.open(runner, oid, "r");
    expect(await later.size()).toBe(16);
    for (const lo of [reader, writer, later]) await lo.close();
    await runner.commitTransaction();
  } finally {
    if (runner.isTransactionActive) await runner.rollbackTransaction();
    await runner.release();
  }
  expect((await objectBytes(ds, oid)).toString()).toBe("0123456789abcdef");
});

test("'w' writes in place without truncating, and refuses reads with ERR_LO_MODE", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const lo = await LargeObject.open(ds, oid, "w");
  expect(await rejection(lo.read(1))).toMatchObject({ code: "ERR_LO_MODE", oid });
  expect(() => lo.createReadStream()).toThrow(expect.objectContaining({ code: "ERR_LO_MODE" }));
  await lo.seek(2);
  await lo.write("ab");
  await lo.close();
  expect((await objectBytes(ds, oid)).toString()).toBe("01ab456789");
});

test("'rw' reads and writes through one descriptor, and sees its own writes", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const lo = await LargeObject.open(ds, oid, "rw");
  expect((await lo.read(3)).toString()).toBe("012");
  await lo.write("XYZ");
  expect(await lo.tell()).toBe(6);
  await lo.seek(0);
  expect((await lo.read(100)).toString()).toBe("012XYZ6789");
  await lo.close();
  expect((await objectBytes(ds, oid)).toString()).toBe("012XYZ6789");
});

test("'a' appends every write at the end, wherever the position is, and refuses reads", async () => {
  const oid = await LargeObject.create(ds, { data: "start" });
  const lo = await LargeObject.open(ds, oid, "a");
  await lo.write("-one");
  await lo.seek(0);
  await lo.write("-two");
  expect(await rejection(lo.read(1))).toMatchObject({ code: "ERR_LO_MODE" });
  await lo.close();
  expect((await objectBytes(ds, oid)).toString()).toBe("start-one-two");
  // An append write stream also lands at the end, even after a seek to the start.
  const again = await LargeObject.open(ds, oid, "a");
  await again.seek(0);
  const stream = again.createWriteStream();
  stream.end("-three");
  await new Promise((resolve, reject) => stream.on("finish", resolve).on("error", reject));
  expect((await objectBytes(ds, oid)).toString()).toBe("start-one-two-three");
});

test("an unknown mode is refused with ERR_LO_INVALID_ARGUMENT before anything is opened", async () => {
  const oid = await LargeObject.create(ds);
  for (const mode of ["x", "R", "", "toString", "constructor"]) {
    expect(await rejection(LargeObject.open(ds, oid, mode as "r"))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
  }
});

test("closing without writing changes nothing, in every mode", async () => {
  const oid = await LargeObject.create(ds, { data: "unchanged" });
  for (const mode of ["r", "w", "rw", "a"] as const) {
    const lo = await LargeObject.open(ds, oid, mode);
    if (mode !== "a") await lo.seek(3);
    await lo.close();
  }
  expect((await objectBytes(ds, oid)).toString()).toBe("unchanged");
});

test("an overwrite in the middle leaves the tail intact, and close() never truncates", async () => {
  const oid = await LargeObject.create(ds, { data: "a".repeat(5000) });
  const lo = await LargeObject.open(ds, oid, "w");
  await lo.seek(2000);
  await lo.write("b".repeat(100));
  await lo.close();
  const bytes = (await objectBytes(ds, oid)).toString();
  expect(bytes).toBe("a".repeat(2000) + "b".repeat(100) + "a".repeat(2900));
  // Through a write stream too: the stream writes at the handle's position and closes it.
  const viaStream = await LargeObject.open(ds, oid, "w");
  await viaStream.seek(10);
  const stream = viaStream.createWriteStream();
  stream.end("cc");
  await new Promise((resolve, reject) => stream.on("finish", resolve).on("error", reject));
  expect((await objectBytes(ds, oid)).length).toBe(5000);
  expect((await objectBytes(ds, oid)).subarray(8, 14).toString()).toBe("aaccaa");
});

test("regression: close() is idempotent, and a second call at once resolves only after the commit", async () => {
  const oid = await LargeObject.create(ds, { data: "xyz" });
  const lo = await LargeObject.open(ds, oid, "w");
  await lo.write("A");
  const first = lo.close();
  // The second call must not resolve before the first one's COMMIT: another session sees the write.
  await lo.close();
  expect((await objectBytes(ds, oid)).toString()).toBe("Ayz");
  await first;
  await lo.close();
  await lo.abort();
  expect(lo.isClosed).toBe(true);
  expect((await objectBytes(ds, oid)).toString()).toBe("Ayz");
});

test("close() after a failed statement rolls back and says nothing was committed", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const lo = await LargeObject.open(ds, oid, "rw");
  await lo.write("AB");
  // The server refuses the seek, which aborts the transaction: the write above is gone.
  expect(await rejection(lo.seek(-100, "cur"))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
  expect(await rejection(lo.close())).toMatchObject({ code: "ERR_LO_TRANSACTION" });
  expect((await objectBytes(ds, oid)).toString()).toBe("0123456789");
  expect(await rejection(lo.read(1))).toMatchObject({ code: "ERR_LO_CLOSED" });
});

test("a read stream of an 'rw' handle sees the handle's own uncommitted writes, and commits them at its end", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const lo = await LargeObject.open(ds, oid, "rw");
  await lo.seek(0, "end");
  await lo.write("abc");
  const chunks: Buffer[] = [];
  for await (const chunk of lo.createReadStream({ start: 8 })) chunks.push(chunk as Buffer);
  expect(Buffer.concat(chunks).toString()).toBe("89abc");
  expect(lo.isClosed).toBe(true);
  expect((await objectBytes(ds, oid)).toString()).toBe("0123456789abc");
});
