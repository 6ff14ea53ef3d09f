import { pipeline } from "node:stream/promises";
import { Readable, Writable } from "node:stream";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectExists, randomBytes } from "../support/database";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { unlink: "none" });

test("smoke: a 3 MiB object round-trips through the write and read streams", async () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const oid = await LargeObject.create(ds);
  const writer = await LargeObject.open(ds, oid, "w");
  await pipeline(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), writer.createWriteStream());
  const reader = await LargeObject.open(ds, oid, "r");
  const chunks: Buffer[] = [];
  await pipeline(
    reader.createReadStream(),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
  );
  expect(Buffer.concat(chunks).equals(data)).toBe(true);
  await LargeObject.unlink(ds, oid);
  expect(await objectExists(ds, oid)).toBe(false);
});
