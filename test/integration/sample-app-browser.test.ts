import type { IncomingMessage, ServerResponse } from "node:http";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Page } from "playwright-core";
import { ARTIFACTS, browserTest, hasChromium, launchChromium, type Browser } from "../support/chromium";
import { countObjects, idleInTransaction, randomBytes } from "../support/database";
import { checkedOut } from "../support/pool";
import { gradientPng, hasFfmpeg, testPatternWebm, toneWav } from "../support/sample-media";
import { countDocuments, eventually, startSample, stopSample, type SampleServer } from "../support/sample-app";

let sample: SampleServer | undefined;
let browser: Browser | undefined;
let page: Page;
const ranges: string[] = [];
/** Every answered request to a document's content: its Range header and status. */
const answered: { range: string | undefined; status: number }[] = [];

/** The part of an audio element the seek uses (the test compiles without the DOM library). */
interface MediaLike {
  currentTime: number;
  addEventListener(type: "seeked", listener: () => void, options: { once: boolean }): void;
}

beforeAll(async () => {
  if (!hasChromium) return;
  sample = await startSample();
  sample.app.server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.range !== undefined) ranges.push(req.headers.range);
    if (/\/content(\?|$)/.test(req.url ?? "")) res.on("finish", () => answered.push({ range: req.headers.range, status: res.statusCode }));
  });
  browser = await launchChromium();
  page = browser.page;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await stopSample(sample);
});

async function uploadThroughForm(files: { name: string; mimeType: string; buffer: Buffer }[]): Promise<void> {
  expect(await page.locator("#upload-button").isDisabled()).toBe(true);
  await page.setInputFiles("#file-input", files);
  expect(await page.locator("#upload-button").isEnabled()).toBe(true);
  await page.click("#upload-button");
  for (const file of files) {
    await page.locator("#uploads li", { hasText: file.name }).locator(".status", { hasText: "stored" }).waitFor({ timeout: 30_000 });
    await page.locator("#documents tbody a", { hasText: file.name }).waitFor();
  }
  // The input is cleared after the upload: nothing to send until another file is chosen.
  expect(await page.locator("#upload-button").isDisabled()).toBe(true);
}

browserTest("the page uploads files through the form with progress, lists them, and downloads the same bytes", async () => {
  await page.goto(sample!.url);
  await page.locator("#empty").waitFor();
  expect(await page.locator("#upload-button").isDisabled()).toBe(true);
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

/** The part of a video element the test uses. */
interface VideoLike extends MediaLike {
  duration: number;
  readyState: number;
  muted: boolean;
  paused: boolean;
  play(): Promise<void>;
}

// A longer timeout: ffmpeg's encoding shares the machine's cores with the rest of the suite.
// The video is made by ffmpeg: without it, this one test is skipped with the note sample-media prints.
const videoBrowserTest = hasFfmpeg ? browserTest : test.skip;

videoBrowserTest("a video plays in the preview and seeks to its middle through Range requests", async () => {
  const video = await testPatternWebm(10);
  await uploadThroughForm([{ name: "pattern.webm", mimeType: "video/webm", buffer: video }]);
  answered.length = 0;
  await page.locator("#documents tbody tr", { hasText: "pattern.webm" }).getByText("Preview").click();
  const element = page.locator("#preview-body video");
  await element.waitFor();
  const playing = await element.evaluate(async (el: VideoLike) => {
    el.muted = true;
    await el.play();
    return !el.paused;
  });
  expect(playing).toBe(true);
  await page.waitForFunction('(document.querySelector("#preview-body video")?.currentTime ?? 0) > 0.2');
  const middle = await element.evaluate(
    (el: VideoLike) =>
      new Promise<{ time: number; readyState: number; duration: number }>((resolve) => {
        el.addEventListener("seeked", () => resolve({ time: el.currentTime, readyState: el.readyState, duration: el.duration }), { once: true });
        el.currentTime = el.duration / 2;
      }),
  );
  const ranged = answered.filter((a) => a.range !== undefined);
  // One expectation, so that a failure shows the whole picture.
  expect({ duration: Math.round(middle.duration), time: middle.time, decoded: middle.readyState >= 2, ranged }).toEqual({
    duration: 10,
    time: expect.closeTo(5, 0),
    // HAVE_CURRENT_DATA or better: the frame at the middle is decoded and shown.
    decoded: true,
    // The browser fetched the video by ranges: answered with the part asked for, or with 304
    // where it revalidated a part it had cached, and never otherwise.
    ranged: expect.arrayContaining([expect.objectContaining({ status: 206 })]),
  });
  expect(ranged.filter((a) => a.status !== 206 && a.status !== 304)).toEqual([]);
  await page.screenshot({ path: path.join(ARTIFACTS, "sample-app-video.png"), fullPage: true });
  // Every document keeps its object, and no read the browser left behind holds a connection.
  await eventually(() => checkedOut(sample!.dataSource) === 0, "every connection back in the pool");
  expect(await countObjects(sample!.dataSource)).toBe(await countDocuments(sample!.dataSource));
  expect(await idleInTransaction(sample!.dataSource)).toBe(0);
}, 120_000);
