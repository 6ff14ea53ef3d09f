import { createReadStream } from "node:fs";
import type { ServerResponse } from "node:http";
import path from "node:path";
import { pipeline } from "node:stream/promises";

/** The directory of the page's files. */
export const PUBLIC_DIR = path.join(__dirname, "..", "public");

/** The browser build of tus-js-client, served from the installed package (the page loads nothing from elsewhere). */
const TUS_CLIENT = path.join(path.dirname(require.resolve("tus-js-client/package.json")), "dist", "tus.min.js");

/** The page's files, by URL path: a fixed list, so no request can name another file. */
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: path.join(PUBLIC_DIR, "index.html"), type: "text/html; charset=utf-8" },
  "/index.html": { file: path.join(PUBLIC_DIR, "index.html"), type: "text/html; charset=utf-8" },
  "/app.js": { file: path.join(PUBLIC_DIR, "app.js"), type: "text/javascript; charset=utf-8" },
  "/style.css": { file: path.join(PUBLIC_DIR, "style.css"), type: "text/css; charset=utf-8" },
  "/tus.min.js": { file: TUS_CLIENT, type: "text/javascript; charset=utf-8" },
};

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
  await pipeline(createReadStream(entry.file), res);
}
