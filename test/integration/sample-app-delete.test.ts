import { countObjects, objectExists, randomBytes } from "../support/database";
import { Document } from "../../sample-app/src/document";
import { countDocuments, send, useSample, type SampleServer } from "../support/sample-app";

let sample: SampleServer | undefined;

useSample((started) => (sample = started));

test("DELETE removes the row and its large object, and leaves the others", async () => {
  const ids: number[] = [];
  for (const seed of [1, 2]) {
    const reply = await send(`${sample!.url}/api/documents?name=f${seed}`, { method: "POST", body: randomBytes(300_000, seed) });
    ids.push((JSON.parse(reply.body.toString()) as { id: number }).id);
  }
  const ds = sample!.dataSource;
  const [gone, kept] = await Promise.all(ids.map((id) => ds.manager.findOneByOrFail(Document, { id })));
  expect(await countObjects(ds)).toBe(2);

  expect((await send(`${sample!.url}/api/documents/${gone!.id}`, { method: "DELETE" })).status).toBe(204);
  expect(await objectExists(ds, gone!.content as number)).toBe(false);
  expect(await objectExists(ds, kept!.content as number)).toBe(true);
  expect(await countDocuments(ds)).toBe(1);
  expect(await countObjects(ds)).toBe(1);

  expect((await send(`${sample!.url}/api/documents/${gone!.id}`, { method: "DELETE" })).status).toBe(404);
  expect((await send(`${sample!.url}/api/documents/${gone!.id}/content`)).status).toBe(404);
  const list = JSON.parse((await send(`${sample!.url}/api/documents`)).body.toString()) as { id: number }[];
  expect(list.map((d) => d.id)).toEqual([kept!.id]);
});
