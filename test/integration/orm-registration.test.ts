import { DataSource, type DataSourceOptions } from "typeorm";
import { LargeObjectRepository, LargeObjectRecord, LargeObjectSubscriber, registerLargeObjects } from "../../src";
import { databaseUrl, makeDataSource } from "../support/database";
import { Document } from "./fixtures/documents";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

test("registration adds the oid type, the subscriber and the record entity once, even when called twice", () => {
  const ds = makeDataSource({ entities: [Document], subscribers: [] });
  expect(registerLargeObjects(registerLargeObjects(ds))).toBe(ds);
  expect(ds.driver.supportedDataTypes.filter((t) => t === ("oid" as never))).toHaveLength(1);
  expect(ds.options.entities).toEqual([Document, LargeObjectRecord]);
  expect(ds.options.subscribers).toEqual([LargeObjectSubscriber]);
});

test("registration keeps entities given as an object map", () => {
  const ds = makeDataSource({ entities: { Document } });
  registerLargeObjects(ds);
  expect(Object.values(ds.options.entities as object)).toEqual([Document, LargeObjectRecord]);
});

test("registering after initialize() is refused with ERR_LO_NOT_REGISTERED", async () => {
  const ds = await makeDataSource({ entities: [] }).initialize();
  try {
    expect(codeOf(() => registerLargeObjects(ds))).toBe("ERR_LO_NOT_REGISTERED");
  } finally {
    await ds.destroy();
  }
});

const HINT = "call registerLargeObjects(dataSource) before dataSource.initialize() (in NestJS, inside TypeOrmModule's dataSourceFactory)";

test("a repository on a data source that was not registered says what to call, and where", async () => {
  const ds = await makeDataSource({ entities: [] }).initialize();
  try {
    const files = new LargeObjectRepository(ds.manager);
    const doc = Object.assign(new Document(), { id: 1 });
    for (const call of [() => files.read(doc, "attachment"), () => files.createReadStream(doc, "attachment"), () => files.openStream(doc, "attachment")]) {
      await expect(call()).rejects.toMatchObject({ code: "ERR_LO_NOT_REGISTERED", message: expect.stringContaining(HINT) });
    }
  } finally {
    await ds.destroy();
  }
});

test("registering after initialize() says where the call belongs", async () => {
  const ds = await makeDataSource({ entities: [] }).initialize();
  try {
    expect(() => registerLargeObjects(ds)).toThrow(HINT);
  } finally {
    await ds.destroy();
  }
});

test("a data source of another driver is refused with ERR_LO_NOT_POSTGRES", () => {
  const other = new DataSource({ type: "cockroachdb", url: databaseUrl() } as DataSourceOptions);
  expect(codeOf(() => registerLargeObjects(other))).toBe("ERR_LO_NOT_POSTGRES");
  expect(codeOf(() => new LargeObjectRepository(other.manager))).toBe("ERR_LO_NOT_POSTGRES");
});

test("a subscriber added by hand without registration fails with ERR_LO_NOT_REGISTERED, and saves nothing", async () => {
  const ds = makeDataSource({ entities: [Document], subscribers: [LargeObjectSubscriber], synchronize: true });
  (ds.driver.supportedDataTypes as string[]).push("oid");
  await ds.initialize();
  try {
    await expect(ds.getRepository(Document).save({ name: "x", attachment: "content" })).rejects.toMatchObject({
      code: "ERR_LO_NOT_REGISTERED",
      message: expect.stringContaining(HINT),
    });
    expect(await ds.getRepository(Document).count()).toBe(0);
  } finally {
    await ds.query("DROP TABLE IF EXISTS orm_document");
    await ds.destroy();
  }
});
