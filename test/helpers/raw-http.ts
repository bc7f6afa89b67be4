// Raw HTTP/1.1 over a TCP (or Unix) socket, for requests no well-behaved client library would
// send (malformed, trickled, endless) and for exact client shapes (curl's, Go's headers, byte for
// byte). Every helper bounds its wait, so a test can never hang on a socket.
import { connect, type Socket } from 'node:net'

/** One parsed answer. */
export interface RawAnswer {
  status: number
  headers: Record<string, string>
  body: string
  /** The body as JSON, or null. */
  json: Record<string, unknown> | null
}

/** Where to connect: a port on 127.0.0.1 (or `host`), or a Unix socket path. */
export type Target = { port: number, host?: string } | { path: string }

/** Opens a socket and resolves once it is connected. */
export async function open (target: Target): Promise<Socket> {
  const socket = 'path' in target ? connect({ path: target.path }) : connect({ host: target.host ?? '127.0.0.1', port: target.port })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => { resolve() })
    socket.once('error', reject)
  })
  return socket
}

/** Parses the first complete HTTP/1.1 answer in `text`, or null when none is complete yet. */
export function parseAnswer (text: string): RawAnswer | null {
  const end = text.indexOf('\r\n\r\n')
  if (end < 0) return null
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN)
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const length = Number(headers['content-length'] ?? NaN)
  const rest = text.slice(end + 4)
  if (Number.isFinite(length) && Buffer.byteLength(rest) < length) return null
  const body = Number.isFinite(length) ? Buffer.from(rest).subarray(0, length).toString() : rest
  let json: Record<string, unknown> | null = null
  try {
    const parsed: unknown = JSON.parse(body)
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json = parsed as Record<string, unknown>
  } catch {
    // not JSON
  }
  return { status, headers, body, json }
}

/** What a socket received and whether (and how) it ended. */
export interface Received {
  text: string
  answer: RawAnswer | null
  /** The socket closed (by either side) within the wait. */
  closed: boolean
  /** Errors the client socket saw (EPIPE, ECONNRESET), by code. */
  errors: string[]
}

/**
 * Collects what `socket` receives until `until` says stop (default: an answer is complete, or the
 * socket closed), or `withinMs` passes.
 */
export async function receive (socket: Socket, options: { withinMs?: number, untilClosed?: boolean } = {}): Promise<Received> {
  const chunks: Buffer[] = []
  const errors: string[] = []
  let closed = socket.destroyed
  return await new Promise<Received>((resolve) => {
    const finish = (): void => {
      clearTimeout(timer)
      socket.removeListener('data', onData)
      const text = Buffer.concat(chunks).toString()
      resolve({ text, answer: parseAnswer(text), closed, errors })
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      if (options.untilClosed !== true && parseAnswer(Buffer.concat(chunks).toString()) !== null) finish()
    }
    const timer = setTimeout(finish, options.withinMs ?? 10_000)
    socket.on('data', onData)
    socket.on('error', (err: NodeJS.ErrnoException) => { errors.push(err.code ?? err.message) })
    socket.once('close', () => { closed = true; finish() })
    if (closed) finish()
  })
}

/** Sends `request` on a new connection and resolves with the first answer (or what arrived). */
export async function exchange (target: Target, request: string | Buffer, options: { withinMs?: number } = {}): Promise<Received> {
  const socket = await open(target)
  try {
    const received = receive(socket, options)
    socket.write(request)
    return await received
  } finally {
    socket.destroy()
  }
}

/** A JSON POST exactly as `curl -d '<json>' http://host/path` sends it (form-typed, curl's headers). */
export function curlPost (host: string, path: string, json: string): string {
  return `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n` +
    `Content-Length: ${Buffer.byteLength(json)}\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n${json}`
}

/** A JSON POST as Go's net/http client sends it (http.Post(url, "application/json", body)). */
export function goPost (host: string, path: string, json: string): string {
  return `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: ${Buffer.byteLength(json)}\r\n` +
    `Content-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n${json}`
}
