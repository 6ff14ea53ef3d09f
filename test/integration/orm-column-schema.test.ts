import type { DataSource } from "typeorm";
import { LargeObjectRepository, oidOf } from "../../src";
import { objectBytes } from "../support/database";
import { openOrmDataSource } from "../support/orm";
import { CompositeKeyed, Document, Media, OddNames, Video } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: [Document, CompositeKeyed, OddNames, Media, Video], schemas: ["orm Schema"] });

async function columnInfo(schema: string, table: string, column: string) {
  const rows: { data_type: string; is_nullable: string; comment: string | null }[] = await ds.query(
    `SELECT c.data_type, c.is_nullable,
            col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position) AS comment
       FROM information_schema.columns c
      WHERE c.table_schema = $1 AND c.table_name = $2 AND c.column_name = $3`,
    [schema, table, column],
  );
  return rows[0];
}

test("synchronize creates oid columns, nullable by default, with name, nullable and comment passed through", async () => {
  expect(await columnInfo("public", "orm_document", "attachment")).toMatchObject({ data_type: "oid", is_nullable: "YES" });
  expect(await columnInfo("public", "orm_composite", "payload_oid")).toMatchObject({
    data_type: "oid",
    is_nullable: "NO",
    comment: "the payload",
  });
  expect(await columnInfo("orm Schema", "Odd Table ñame", "The Blob Ω")).toMatchObject({ data_type: "oid" });
  expect(await columnInfo("public", "orm_media", "poster")).toMatchObject({ data_type: "oid" });
});

test("a second schema diff is empty (synchronize and migration:generate report no change)", async () => {
  const log = await ds.driver.createSchemaBuilder().log();
  expect(log.upQueries.map((q) => q.query)).toEqual([]);
});

test("a fresh database's generated migration creates the oid columns and the record table", async () => {
  const fresh = await openOrmDataSource([]);
  await fresh.query("DROP TABLE IF EXISTS orm_document, typeorm_large_objects");
  await fresh.destroy();
  const log = await ds.driver.createSchemaBuilder().log();
  const sql = log.upQueries.map((q) => q.query).join("\n");
  expect(sql).toContain('"attachment" oid');
  expect(sql).toMatch(/CREATE TABLE "(public"\.")?typeorm_large_objects" \("oid" oid NOT NULL/);
  await ds.synchronize();
});

test("composite primary keys, quoted names in another schema and inherited columns all stream", async () => {
  const files = new LargeObjectRepository(ds.manager);
  const composite = await ds.getRepository(CompositeKeyed).save({ tenant: "t1", key: 7, payload: "composite" });
  const odd = await ds.getRepository(OddNames).save({ blob: "odd" });
  const video = await ds.getRepository(Video).save(Object.assign(new Video(), { original: "orig", poster: "poster" }));

  expect((await files.read(composite, "payload")).toString()).toBe("composite");
  expect((await files.read(odd, "blob")).toString()).toBe("odd");
  expect((await files.read(video, "poster")).toString()).toBe("poster");
  expect((await files.read(video, "original")).toString()).toBe("orig");

  await files.write(odd, "blob", "rewritten");
  expect((await objectBytes(ds, oidOf(odd.blob))).toString()).toBe("rewritten");
  const loaded = await ds.getRepository(Media).findOneByOrFail({ id: video.id });
  expect(loaded).toBeInstanceOf(Video);
  expect((await files.read(loaded as Video, "poster")).toString()).toBe("poster");
});
