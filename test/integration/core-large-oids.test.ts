import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes } from "../support/database";
import { drain } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { unlink: "end" });

// lo_create(n) picks the oid, so objects above 2^31 (negative as int4) can be made on demand.
test.each([2 ** 31, 3_000_000_000, 0xffffffff])("an object with oid %i works end to end", async (wanted) => {
  const rows = (await ds.query("SELECT lo_create($1) AS oid", [wanted])) as { oid: number }[];
  expect(rows[0]!.oid).toBe(wanted);
  const oid = rows[0]!.oid;
  expect(await LargeObject.exists(ds, oid)).toBe(true);
  const writer = await LargeObject.open(ds, oid, "w");
  const stream = writer.createWriteStream();
  stream.end(Buffer.from("big oid"));
  await new Promise((resolve, reject) => stream.on("finish", resolve).on("error", reject));
  const reader = await LargeObject.open(ds, oid, "r");
  expect(reader.oid).toBe(wanted);
  expect((await reader.read(3)).toString()).toBe("big");
  expect((await drain(reader.createReadStream({ start: 4 }))).toString()).toBe("oid");
  expect((await objectBytes(ds, oid)).toString()).toBe("big oid");
  await LargeObject.unlink(ds, oid);
  expect(await LargeObject.exists(ds, oid)).toBe(false);
});

test("oids returned by create are numbers that open() accepts, whatever their size", async () => {
  const oid = await LargeObject.create(ds, { data: "x" });
  expect(typeof oid).toBe("number");
  expect(Number.isInteger(oid) && oid > 0).toBe(true);
  const lo = await LargeObject.open(ds, oid, "r");
  expect((await lo.read()).toString()).toBe("x");
  await lo.close();
});
