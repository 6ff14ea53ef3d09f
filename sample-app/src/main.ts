import path from "node:path";
import type { DataSource } from "typeorm";
import { startEmbeddedPostgres, type EmbeddedServer } from "../../scripts/embedded-postgres";
import { createApp, DEFAULT_MAX_UPLOAD_BYTES, type App } from "./app";
import { openDataSource } from "./data-source";

/** A running sample app and what it started. */
export interface Running {
  app: App;
  url: string;
  databaseUrl: string;
  dataSource: DataSource;
  stop(): Promise<void>;
}

/**
 * Starts the sample app: on DATABASE_URL when it is set, otherwise on an embedded PostgreSQL whose
 * data is kept under sample-app/.data; listens on PORT (default 3000).
 *
 * @example
 * const { url, stop } = await start();
 */
export async function start(env: NodeJS.ProcessEnv = process.env): Promise<Running> {
  let embedded: EmbeddedServer | undefined;
  let databaseUrl = env.DATABASE_URL;
  if (!databaseUrl) {
    // The socket directory is made beside the data directory, so both stay under .data.
    embedded = await startEmbeddedPostgres({ dataDir: path.join(__dirname, "..", ".data", "postgres"), persistent: true });
    databaseUrl = embedded.url;
  }
  try {
    const dataSource = await openDataSource(databaseUrl);
    const maxUploadBytes = env.MAX_UPLOAD_BYTES ? Number(env.MAX_UPLOAD_BYTES) : DEFAULT_MAX_UPLOAD_BYTES;
    const app = createApp({ dataSource, maxUploadBytes });
    const url = await app.listen(env.PORT ? Number(env.PORT) : 3000, env.HOST ?? "127.0.0.1");
    return {
      app,
      url,
      databaseUrl,
      dataSource,
      stop: async () => {
        await app.close();
        await dataSource.destroy();
        await embedded?.stop();
      },
    };
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
}

if (require.main === module) {
  start().then(
    (running) => {
      console.log(`PostgreSQL: ${running.databaseUrl}`);
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
      console.error(err);
      process.exit(1);
    },
  );
}
