import { connect, createServer, type Socket } from "node:net";

/** An answer as read off the socket. */
export interface RawResponse {
  status: number;
  /** Header names lower-cased; a repeated header's values joined with ", ". */
  headers: Map<string, string>;
  body: Buffer;
}

/**
 * Sends one request as the given bytes over a fresh TCP connection (so header values nobody's
 * client would send reach the server's parser unchanged) and reads the answer until the server
 * closes. A `null` status means the server closed without answering.
 */
export function rawRequest(port: number, request: Buffer, timeoutMs = 5000): Promise<RawResponse | null> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(parseResponse(Buffer.concat(chunks)));
    });
    socket.write(request);
  });
}

function parseResponse(raw: Buffer): RawResponse | null {
  const headEnd = raw.indexOf("\r\n\r\n");
  if (headEnd === -1) return null;
  const lines = raw.subarray(0, headEnd).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")?.[1]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    const name = line.slice(0, i).toLowerCase();
    const value = line.slice(i + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)!}, ${value}` : value);
  }
  return { status, headers, body: raw.subarray(headEnd + 4) };
}

/** The bytes of a request: its head (values written as the raw bytes of their UTF-8 form) and body. */
export function requestBytes(method: string, path: string, headers: [string, string][], body?: Buffer): Buffer {
  const head = [`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close", ...headers.map(([n, v]) => `${n}: ${v}`)];
  if (body !== undefined) head.push(`Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(`${head.join("\r\n")}\r\n\r\n`, "utf8"), body ?? Buffer.alloc(0)]);
}

/** A small seeded generator (mulberry32), so every run sends the same cases. */
export function seeded(seed: number): { next(): number; int(n: number): number; pick<T>(items: readonly T[]): T } {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return { next, int, pick: (items) => items[int(items.length)]! };
}

/** A TCP proxy in the test process: its URL, and a close that cuts every connection through it. */
export interface TcpProxy {
  url: string;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of `target`. `forward` passes on what a client sends (at its own pace, or
 * calling `cut` to drop both sides); answers go back at full speed. Either side closing closes the
 * other.
 */
export async function tcpProxy(target: string, forward: (chunk: Buffer, client: Socket, upstream: Socket, cut: () => void) => void): Promise<TcpProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk: Buffer) => forward(chunk, client, upstream, cut));
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    client.on("close", cut);
    upstream.on("close", cut);
    client.on("error", () => undefined);
    upstream.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
