import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes } from "../support/database";
import { drain, rejection } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

const GiB = 1024 ** 3;

let ds: DataSource;
useDataSource((opened) => (ds = opened));

test("seek with each whence, tell, and size (which leaves the position alone)", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const lo = await LargeObject.open(ds, oid, "rw");
  expect(await lo.tell()).toBe(0);
  expect(await lo.seek(4)).toBe(4);
  expect(await lo.seek(2, "cur")).toBe(6);
  expect(await lo.seek(-3, "cur")).toBe(3);
  expect(await lo.seek(-2, "end")).toBe(8);
  expect(await lo.seek(1, 0)).toBe(1);
  expect(await lo.seek(1, 1)).toBe(2);
  expect(await lo.seek(0, 2)).toBe(10);
  expect(await lo.seek(5n)).toBe(5);
  expect(await lo.size()).toBe(10);
  expect(await lo.tell()).toBe(5);
  expect((await lo.read(2)).toString()).toBe("56");
  // Seeking past the end is allowed; reading there gives an empty Buffer.
  expect(await lo.seek(100)).toBe(100);
  expect((await lo.read(10)).length).toBe(0);
  await lo.close();
});

test("truncate cuts or extends with zeros and leaves the position where it was", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const lo = await LargeObject.open(ds, oid, "rw");
  await lo.seek(7);
  await lo.truncate(4);
  expect(await lo.tell()).toBe(7);
  expect(await lo.size()).toBe(4);
  await lo.truncate(6);
  await lo.close();
  expect(await objectBytes(ds, oid)).toEqual(Buffer.from([0x30, 0x31, 0x32, 0x33, 0, 0]));
  const empty = await LargeObject.open(ds, oid, "w");
  await empty.truncate();
  await empty.close();
  expect((await objectBytes(ds, oid)).length).toBe(0);
});

test("past 2 GiB: seek to 3 GiB, write, and read back through the handle and a range stream", async () => {
  const oid = await LargeObject.create(ds, { data: "head" });
  const at = 3 * GiB;
  const lo = await LargeObject.open(ds, oid, "rw");
  expect(await lo.seek(at)).toBe(at);
  await lo.write("tail bytes");
  expect(await lo.tell()).toBe(at + 10);
  expect(await lo.size()).toBe(at + 10);
  expect(await lo.seek(-10, "end")).toBe(at);
  expect((await lo.read(100)).toString()).toBe("tail bytes");
  // The hole reads as zeros, also across the 2 GiB boundary of 32-bit offsets.
  await lo.seek(2 * GiB - 2);
  expect(await lo.read(4)).toEqual(Buffer.alloc(4));
  await lo.seek(at - 3, "set");
  expect(await lo.read(5)).toEqual(Buffer.from([0, 0, 0, 0x74, 0x61]));
  await lo.close();

  const reader = await LargeObject.open(ds, oid, "r");
  expect(await reader.size()).toBe(at + 10);
  const tail = await drain(reader.createReadStream({ start: at - 2, end: at + 100 }));
  expect(tail).toEqual(Buffer.concat([Buffer.alloc(2), Buffer.from("tail bytes")]));
  const bigintRange = await LargeObject.open(ds, oid, "r");
  expect((await drain(bigintRange.createReadStream({ start: BigInt(at) + 5n }))).toString()).toBe("bytes");
});

test("truncate past 2 GiB extends sparsely, then cuts back below it", async () => {
  const oid = await LargeObject.create(ds, { data: "abc" });
  const lo = await LargeObject.open(ds, oid, "rw");
  await lo.truncate(2.5 * GiB);
  expect(await lo.size()).toBe(2.5 * GiB);
  await lo.seek(2.5 * GiB - 4);
  expect(await lo.read(10)).toEqual(Buffer.alloc(4));
  await lo.truncate(BigInt(2 * GiB + 1));
  expect(await lo.size()).toBe(2 * GiB + 1);
  await lo.truncate(2);
  await lo.close();
  expect((await objectBytes(ds, oid)).toString()).toBe("ab");
});

test("negative, fractional and NaN offsets and unknown whence are ERR_LO_INVALID_ARGUMENT, and the handle goes on", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const lo = await LargeObject.open(ds, oid, "rw");
  const bad = [
    lo.seek(-1),
    lo.seek(1.5),
    lo.seek(NaN, "cur"),
    lo.seek(0, "middle" as "set"),
    lo.seek(0, 3 as 0),
    lo.read(-1),
    lo.read(2.5),
    lo.truncate(-1),
    lo.truncate(NaN),
  ];
  for (const attempt of bad) {
    expect(await rejection(attempt)).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT", oid });
  }
  expect((await lo.read(3)).toString()).toBe("012");
  await lo.close();
});

test("regression: whence names inherited from Object.prototype are refused", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const lo = await LargeObject.open(ds, oid, "r");
  for (const whence of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
    expect(await rejection(lo.seek(0, whence as "set"))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
  }
  expect((await lo.read(2)).toString()).toBe("01");
  await lo.close();
});

test("a seek to before the start is refused with ERR_LO_INVALID_ARGUMENT", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const lo = await LargeObject.open(ds, oid, "r");
  expect(await rejection(lo.seek(-20, "end"))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT", oid });
  await lo.abort();
});
