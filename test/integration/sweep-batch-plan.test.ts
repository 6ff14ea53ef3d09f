import { DataSource, Entity, PrimaryGeneratedColumn } from "typeorm";
import { LargeObjectColumn, type LargeObjectValue } from "../../src";
import { batchSql, referenceColumns } from "../../src/cleanup/sweep";
import { TransactionScope } from "../../src/connection/transaction-scope";
import { locateRecords } from "../../src/cleanup/home";
import { useDataSource } from "../support/use-data-source";

@Entity({ name: "plan_ref" })
class PlanRef {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn() file!: LargeObjectValue;
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  Plans?: PlanNode[];
}

function nodesOf(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(nodesOf)];
}

let ds: DataSource;
useDataSource((opened) => (ds = opened), {
  orm: [PlanRef],
  tearDown: async (opened) => void (await opened.query(`DELETE FROM typeorm_large_objects WHERE created_for = 'plan test'`)),
});

test("with statistics, a sweep batch probes a declared column through its index and deletes its records by row id", async () => {
  // 50,000 referencing rows and 5,000 records, analyzed: a planner left alone hashes every row of
  // plan_ref for each batch of 1,000. Nothing here is executed, so the oids need no objects.
  await ds.query(`INSERT INTO plan_ref (file) SELECT g FROM generate_series(4000000001, 4000050000) AS g`);
  await ds.query(
    `INSERT INTO typeorm_large_objects (oid, created_for, created_at)
     SELECT g, 'plan test', now() - interval '2 days' FROM generate_series(4000100001, 4000105000) AS g`,
  );
  await ds.query(`ANALYZE plan_ref, typeorm_large_objects`);
  const batch = Array.from({ length: 1000 }, (_, i) => 4000101001 + i);
  const plan = await TransactionScope.using(ds, { transaction: true, rollback: true }, async (scope) => {
    const { records, home } = await locateRecords(ds, scope);
    const columns = await referenceColumns(scope, records, home);
    expect(columns.find((c) => c.table === "plan_ref")).toMatchObject({ column: "file", int8Index: true });
    const rows = await scope.query<{ "QUERY PLAN": { Plan: PlanNode }[] }>(
      `EXPLAIN (FORMAT JSON) ${batchSql("recorded", records, columns, { dryRun: false, pagesReadable: true })}`,
      [batch, 0],
    );
    return rows[0]!["QUERY PLAN"][0]!.Plan;
  });
  const onTable = nodesOf(plan).filter((n) => n["Relation Name"] === "plan_ref");
  expect(onTable.length).toBeGreaterThan(0);
  expect(onTable.map((n) => n["Node Type"])).toEqual(onTable.map(() => expect.stringMatching(/^Index (Only )?Scan$/)));
  // The records it has locked are deleted by their row ids, not found again through the key.
  const deletes = nodesOf(plan).filter((n) => n["Node Type"] === "ModifyTable" && n["Relation Name"] === "typeorm_large_objects");
  expect(deletes).toHaveLength(1);
  expect(nodesOf(deletes[0]!).filter((n) => n["Relation Name"] === "typeorm_large_objects").map((n) => n["Node Type"])).toEqual([
    "ModifyTable",
    "Tid Scan",
  ]);
});
