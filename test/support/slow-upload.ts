/**
 * A child process that uploads forever, slowly, until it is killed: `tsx slow-upload.ts <url> <app>
 * save|stream [id]`. It prints "uploading" once the upload is in flight inside its transaction.
 */
import "reflect-metadata";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DataSource } from "typeorm";
import { LargeObjectRepository, registerLargeObjects } from "../../src";
import { Upload } from "./upload-entity";

async function main(): Promise<void> {
  const [url, applicationName, how, id] = process.argv.slice(2);
  const ds = registerLargeObjects(new DataSource({ type: "postgres", url, applicationName, entities: [Upload], poolSize: 1 }));
  await ds.initialize();
  let sent = 0;
  const content = new Readable({
    read() {
      setTimeout(() => {
        this.push(Buffer.alloc(256 * 1024, sent % 251));
        sent += 1;
        if (sent === 6) process.stdout.write("uploading\n");
      }, 20);
    },
  });
  if (how === "save") {
    await ds.getRepository(Upload).save({ name: "killed", content });
  } else {
    const row = await ds.getRepository(Upload).findOneByOrFail({ id: Number(id) });
    await pipeline(content, await new LargeObjectRepository(ds.manager).createWriteStream(row, "content", { chunkSize: 256 * 1024 }));
  }
  process.stdout.write("finished\n");
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
