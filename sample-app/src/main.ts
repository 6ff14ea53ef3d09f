import path from "node:path";
import type { DataSource } from "typeorm";
import { EmbeddedStartError, startEmbeddedPostgres, type EmbeddedServer } from "../../scripts/embedded-postgres";
import { createApp, DEFAULT_MAX_UPLOAD_BYTES, type App } from "./app";
import { openDataSource } from "./data-source";
import { resumableUploads } from "./resumable";

/** A running sample app and what it started. */
export interface Running {
  app: App;
  url: string;
  databaseUrl: string;
  /** The embedded server's data directory, when the app started one. */
  databaseDir?: string;
  dataSource: DataSource;
  stop(): Promise<void>;
}

/**
 * Starts the sample app: on DATABASE_URL when it is set, otherwise on an embedded PostgreSQL whose
 * data is kept under sample-app/.data (under /var/tmp/typeorm-large-object when the server runs as
 * `postgres`, as it does for root, and cannot reach the checkout); listens on PORT (default 3000),
 * with resumable uploads (tus) under /files.
 *
 * @example
 * const { url, stop } = await start();
 */
export async function start(env: NodeJS.ProcessEnv = process.env): Promise<Running> {
  let embedded: EmbeddedServer | undefined;
  let databaseUrl = env.DATABASE_URL;
  if (!databaseUrl) {
    // Kept under sample-app/.data, or where the server's user can reach it when it cannot reach that.
    embedded = await startEmbeddedPostgres({ dataDir: path.join(__dirname, "..", ".data", "postgres"), persistent: true });
    databaseUrl = embedded.url;
  }
  let opened: DataSource | undefined;
  try {
    const dataSource = await openDataSource(databaseUrl);
    opened = dataSource;
    const maxUploadBytes = env.MAX_UPLOAD_BYTES ? Number(env.MAX_UPLOAD_BYTES) : DEFAULT_MAX_UPLOAD_BYTES;
    const app = createApp({
      dataSource,
      maxUploadBytes,
      resumable: (events) =>
        resumableUploads(dataSource, events, {
          maxUploadBytes,
          ...(env.RESUMABLE_CHUNK_BYTES ? { chunkBytes: Number(env.RESUMABLE_CHUNK_BYTES) } : {}),
          ...(env.RESUMABLE_MIN_BYTES ? { minBytes: Number(env.RESUMABLE_MIN_BYTES) } : {}),
        }),
    });
    const url = await app.listen(env.PORT ? Number(env.PORT) : 3000, env.HOST ?? "127.0.0.1");
    return {
      app,
      url,
      databaseUrl,
      databaseDir: embedded?.dataDir,
      dataSource,
      stop: async () => {
        await app.close();
        await dataSource.destroy();
        await embedded?.stop();
      },
    };
  } catch (err) {
    // A port in use fails after the pool opened: close it, or the process would not exit.
    if (opened?.isInitialized) await opened.destroy().catch(() => undefined);
    await embedded?.stop();
    throw err;
  }
}

if (require.main === module) {
  start().then(
    (running) => {
      console.log(`PostgreSQL: ${running.databaseUrl}${running.databaseDir ? ` (data in ${running.databaseDir})` : ""}`);
      console.log(`Sample app: ${running.url}`);
      let stopping = false;
      const shutdown = () => {
        if (stopping) return;
        stopping = true;
        running.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            console.error(err);
            process.exit(1);
          },
        );
      };
      process.on("SIGINT", shutdown);
      process.on("SIGTERM", shutdown);
    },
    (err: unknown) => {
      // The embedded server's failures, and a port in use, say in one line what to do.
      const inUse = (err as NodeJS.ErrnoException | undefined)?.code === "EADDRINUSE";
      const port = process.env.PORT ?? "3000";
      const next = Number(port) + 1;
      if (inUse) console.error(`Port ${port} is in use by another program: start the sample app on another one, e.g. PORT=${next} npm run sample`);
      else console.error(err instanceof EmbeddedStartError ? err.message : err);
      process.exit(1);
    },
  );
}
