import { createReadStream } from "node:fs";
import type { ServerResponse } from "node:http";
import path from "node:path";
import { pipeline } from "node:stream/promises";

/** The page's files, by URL path: a fixed list, so no request can name another file. */
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

/** The directory of the page's files. */
export const PUBLIC_DIR = path.join(__dirname, "..", "public");

/** Whether `pathname` is one of the page's files. */
export function isStaticFile(pathname: string): boolean {
  return Object.prototype.hasOwnProperty.call(FILES, pathname);
}

/** Sends one of the page's files. */
export async function sendStaticFile(res: ServerResponse, pathname: string, head: boolean): Promise<void> {
  const entry = FILES[pathname]!;
  res.setHeader("Content-Type", entry.type);
  res.setHeader("Cache-Control", "no-cache");
  if (head) {
    res.end();
    return;
  }
  await pipeline(createReadStream(path.join(PUBLIC_DIR, entry.file)), res);
}
