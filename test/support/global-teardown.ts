export default async function globalTeardown(): Promise<void> {
  const stop = (globalThis as { __tloStop?: () => Promise<void> }).__tloStop;
  if (stop) await stop();
}
