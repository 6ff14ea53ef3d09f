import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { randomBytes } from "../support/database";
import { gradientPng, toneWav } from "../support/sample-media";
import { startSample, stopSample, type SampleServer } from "../support/sample-app";

// Debian's chromium. In CI .ci/prepare installs it and a missing browser fails the run; on a
// newcomer's machine without it the file is skipped with a note, so `npm test` still passes.
const CHROMIUM = "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) throw new Error(`${CHROMIUM} is missing: .ci/prepare installs it`);
if (!hasChromium) console.log(`browser test skipped: ${CHROMIUM} is missing (apt-get install chromium, or run .ci/prepare as root)`);
const browserTest = hasChromium ? test : test.skip;
const ARTIFACTS = path.join(__dirname, "..", "..", "test-artifacts");

let sample: SampleServer | undefined;
let context: BrowserContext | undefined;
let profile = "";
let page: Page;
const ranges: string[] = [];

/** The part of an audio element the seek uses (the test compiles without the DOM library). */
interface MediaLike {
  currentTime: number;
  addEventListener(type: "seeked", listener: () => void, options: { once: boolean }): void;
}

beforeAll(async () => {
  if (!hasChromium) return;
  sample = await startSample();
  sample.app.server.on("request", (req: { headers: { range?: string } }) => {
    if (req.headers.range !== undefined) ranges.push(req.headers.range);
  });
  profile = mkdtempSync(path.join(tmpdir(), "sample-app-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
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
  page = context.pages()[0] ?? (await context.newPage());
}, 60_000);

afterAll(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await stopSample(sample);
});

async function uploadThroughForm(files: { name: string; mimeType: string; buffer: Buffer }[]): Promise<void> {
  await page.setInputFiles("#file-input", files);
  await page.click("#upload-button");
  for (const file of files) {
    await page.locator("#uploads li", { hasText: file.name }).locator(".status", { hasText: "stored" }).waitFor({ timeout: 30_000 });
    await page.locator("#documents tbody a", { hasText: file.name }).waitFor();
  }
}

browserTest("the page uploads files through the form with progress, lists them, and downloads the same bytes", async () => {
  await page.goto(sample!.url);
  await page.locator("#empty").waitFor();
  const data = randomBytes(6 * 1024 * 1024 + 5, 51);
  const image = gradientPng(320, 200);
  await uploadThroughForm([
    { name: "data.bin", mimeType: "application/octet-stream", buffer: data },
    { name: "gradient.png", mimeType: "image/png", buffer: image },
  ]);
  expect(await page.locator("#documents tbody tr").count()).toBe(2);
  const dataRow = page.locator("#documents tbody tr", { hasText: "data.bin" });
  expect(await dataRow.locator("td.num").textContent()).toBe("6.0 MiB");
  expect(await page.locator("#uploads li", { hasText: "data.bin" }).locator("progress").evaluate((bar: { value: number; max: number }) => bar.value / bar.max)).toBe(1);

  const downloading = page.waitForEvent("download");
  await dataRow.locator("a", { hasText: "data.bin" }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toBe("data.bin");
  expect(readFileSync(await download.path()).equals(data)).toBe(true);

  await page.locator("#documents tbody tr", { hasText: "gradient.png" }).getByText("Preview").click();
  const shown = page.locator("#preview-body img");
  await shown.waitFor();
  await page.waitForFunction('document.querySelector("#preview-body img")?.complete === true');
  expect(await shown.evaluate((img: { naturalWidth: number; naturalHeight: number }) => [img.naturalWidth, img.naturalHeight])).toEqual([320, 200]);

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, "sample-app.png"), fullPage: true });
});

browserTest("an audio preview seeks through Range requests", async () => {
  await uploadThroughForm([{ name: "tone.wav", mimeType: "audio/wav", buffer: toneWav(60) }]);
  await page.locator("#documents tbody tr", { hasText: "tone.wav" }).getByText("Preview").click();
  const audio = page.locator("#preview-body audio");
  await audio.waitFor();
  await page.waitForFunction('(document.querySelector("#preview-body audio")?.readyState ?? 0) >= 1');
  expect(await audio.evaluate((el: { duration: number }) => Math.round(el.duration))).toBe(60);
  ranges.length = 0;
  const seeked = await audio.evaluate(
    (el: MediaLike) =>
      new Promise<number>((resolve) => {
        el.addEventListener("seeked", () => resolve(el.currentTime), { once: true });
        el.currentTime = 50;
      }),
  );
  expect(seeked).toBeCloseTo(50, 0);
  // 50 s into a 44.1 kHz 16-bit mono file is byte 4,410,044: the browser asked from about there.
  const starts = ranges.map((range) => Number(/^bytes=(\d+)-/.exec(range)?.[1] ?? -1));
  expect(starts.some((start) => start > 4_000_000)).toBe(true);
  await page.screenshot({ path: path.join(ARTIFACTS, "sample-app-audio.png"), fullPage: true });
});
