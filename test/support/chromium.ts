import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

// Debian's chromium. In CI .ci/prepare installs it and a missing browser fails the run; on a
// newcomer's machine without it the browser tests are skipped with a note, so `npm test` still passes.
export const CHROMIUM = "/usr/bin/chromium";
export const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) throw new Error(`${CHROMIUM} is missing: .ci/prepare installs it`);
if (!hasChromium) console.log(`browser test skipped: ${CHROMIUM} is missing (apt-get install chromium, or run .ci/prepare as root)`);

/** `test`, or `test.skip` when there is no Chromium (see above). */
export const browserTest = hasChromium ? test : test.skip;

/** Where browser tests leave their screenshots. */
export const ARTIFACTS = path.join(__dirname, "..", "..", "test-artifacts");

/** A headless Chromium on a fresh profile, and its first page. */
export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/** Launches headless Chromium on a fresh profile directory, removed again by `close()`. */
export async function launchChromium(): Promise<Browser> {
  const profile = mkdtempSync(path.join(tmpdir(), "sample-app-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1200, height: 900 },
    acceptDownloads: true,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
