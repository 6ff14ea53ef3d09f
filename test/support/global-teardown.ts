import { Client } from "pg";
import { ADMIN_TIMEOUTS, dropTestDatabase } from "./database";

/** Drops this run's databases and stops a server the setup started. */
export default async function globalTeardown(): Promise<void> {
  const prefix = process.env.TLO_TEST_DATABASE_PREFIX;
  const url = process.env.DATABASE_URL;
  if (prefix && url && !process.env.TLO_TEST_SHARED_DATABASE) {
    const admin = new Client({ connectionString: url, ...ADMIN_TIMEOUTS });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", [prefix]);
      for (const { datname } of rows) await dropTestDatabase(admin, datname);
    } finally {
      await admin.end();
    }
  }
  const stop = (globalThis as { __tloStop?: () => Promise<void> }).__tloStop;
  if (stop) await stop();
}
