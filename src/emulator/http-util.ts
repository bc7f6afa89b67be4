// The HTTP plumbing the upstream doubles (akv.ts, entra.ts, imds.ts, maa.ts) share: a bounded
// request body, a JSON answer that never throws at a client that has gone or a bad header, the
// Azure REST error envelope, and listening/closing on an ephemeral port. What each double answers
// stays in its own module.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** Reads the request body; null once it exceeds `maxBytes` (the rest is not read). */
export async function readBody (req: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length
    if (total > maxBytes) return null
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, total)
}

/**
 * Answers `status` with `body` as JSON (undefined: an empty body without a content type) and
 * `headers` on top. Does nothing when the answer is already under way or the client has gone; a
 * header value Node refuses (e.g. an injected fault's Retry-After) drops the connection instead.
 */
export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return
  try {
    const text = body === undefined ? '' : JSON.stringify(body)
    res.writeHead(status, {
      ...(body === undefined ? {} : { 'Content-Type': 'application/json; charset=utf-8' }),
      'Content-Length': String(Buffer.byteLength(text)),
      ...headers
    })
    res.end(text)
  } catch {
    res.destroy()
  }
}

/** The error body Azure REST services (Key Vault, MAA) answer with. */
export function azureError (code: string, message: string): { error: { code: string, message: string } } {
  return { error: { code, message } }
}

/** Listens on host:port (default 127.0.0.1, an ephemeral port) and says where; malformed client connections are dropped. */
export async function listen (server: Server, options: { host?: string, port?: number }): Promise<AddressInfo> {
  server.on('clientError', (_err, socket) => { socket.destroy() })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => { server.off('error', reject); resolve() })
  })
  return server.address() as AddressInfo
}

/** host:port as a URL authority (IPv6 in brackets). */
export function authority (host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** Stops the server, cutting keep-alive connections so it does not wait for clients. */
export async function closeServer (server: Server): Promise<void> {
  await new Promise<void>((resolve) => { server.close(() => { resolve() }); server.closeAllConnections() })
}
