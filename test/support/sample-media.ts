import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { deflateSync } from "node:zlib";

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Buffer): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A true-colour PNG of a diagonal gradient, so a browser has a real image to show. */
export function gradientPng(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y += 1) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x += 1) {
      rows.set([Math.round((255 * x) / width), Math.round((255 * y) / height), 160], row + 1 + x * 3);
    }
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk("IHDR", header), chunk("IDAT", deflateSync(rows)), chunk("IEND", Buffer.alloc(0))]);
}

/** A mono 16-bit PCM WAV of a quiet sine tone, `seconds` long. */
export function toneWav(seconds: number, rate = 44100): Buffer {
  const samples = Math.round(seconds * rate);
  const out = Buffer.alloc(44 + samples * 2);
  out.write("RIFF", 0, "latin1");
  out.writeUInt32LE(36 + samples * 2, 4);
  out.write("WAVEfmt ", 8, "latin1");
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20); // PCM
  out.writeUInt16LE(1, 22); // mono
  out.writeUInt32LE(rate, 24);
  out.writeUInt32LE(rate * 2, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write("data", 36, "latin1");
  out.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i += 1) out.writeInt16LE(Math.round(3000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return out;
}

// Debian's ffmpeg and ffprobe make and read the test videos. In CI .ci/prepare installs them and a
// missing tool fails the run; on a newcomer's machine without them the video tests are skipped with
// a note, so `npm test` still passes.
const onPath = (tool: string): boolean => (process.env.PATH ?? "").split(delimiter).some((dir) => dir !== "" && existsSync(join(dir, tool)));
export const hasFfmpeg = onPath("ffmpeg") && onPath("ffprobe");
if (!hasFfmpeg && process.env.CI) throw new Error("ffmpeg or ffprobe is missing: .ci/prepare installs them");
if (!hasFfmpeg) console.log("video tests skipped: ffmpeg or ffprobe is missing (apt-get install ffmpeg, or run .ci/prepare as root)");

/** `test`, or `test.skip` when there is no ffmpeg (see above). */
export const videoTest = hasFfmpeg ? test : test.skip;

/** Runs a program (asynchronously: a server it talks to may run in this process) and returns its output. */
export function runTool(file: string, args: string[], timeoutMs = 30_000): Promise<{ stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { encoding: "buffer", maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${file} ${args.join(" ")} failed: ${err.message}\n${stderr.toString()}`));
      else resolve({ stdout, stderr: stderr.toString() });
    });
    child.stdin?.end();
  });
}

/**
 * An H.264/AAC MP4 of ffmpeg's test pattern and a tone, a key frame every second, with its index
 * (moov) after the media data as ffmpeg writes it by default: a player must seek to its end first.
 */
export async function testVideo(path: string, seconds = 6): Promise<void> {
  await runTool("ffmpeg", [
    "-nostdin", "-v", "error", "-y",
    "-f", "lavfi", "-i", `testsrc2=duration=${seconds}:size=320x240:rate=25`,
    "-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`,
    "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "1500k", "-pix_fmt", "yuv420p",
    "-c:a", "aac", "-b:a", "64k", "-movflags", "-faststart", path,
  ]);
}

/**
 * A WebM (VP8) test pattern of `seconds` at 320x240 with a key frame every second, made by ffmpeg
 * (asynchronously: a server in this process may be answering meanwhile). Noise keeps the bitrate
 * up, so its middle lies megabytes from its start.
 */
export async function testPatternWebm(seconds: number): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "sample-media-"));
  const file = join(dir, "pattern.webm");
  try {
    await runTool("ffmpeg", [
      "-nostdin", "-hide_banner", "-loglevel", "error",
      "-f", "lavfi", "-i", `testsrc=size=320x240:rate=25:duration=${seconds}`,
      "-vf", "noise=alls=40:allf=t",
      "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "3M", "-g", "25",
      "-an", file,
    ], 120_000);
    return readFileSync(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
