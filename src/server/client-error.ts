// Requests that fail before they reach fastify's router: HTTP that does not parse (a bad
// Content-Length or Transfer-Encoding, a header too large, a bad method, an HTTP/2 preface, bare
// LF line endings, a NUL in a header), and requests that arrive too slowly. Node hands them to the
// listener's 'clientError' event with the socket. fastify's default handler answers them without
// skr's error shape and, at trace level, logs the error object with its `rawPacket`: the raw bytes
// of the request, Authorization header and access_token included. This handler answers every one
// in skr's JSON shape (`error`, `code`, `requestId`) and logs only the parser's error code.
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { HeadersTooLarge, RequestInvalid, RequestTimeout, type SidecarError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { closeLingering, isClosing } from './lingering-close.ts'

/** Node's HTTP parser error codes (llhttp's HPE_*, and Node's own) and what skr tells the client. */
const PARSER_PROBLEMS: Readonly<Record<string, string>> = {
  HPE_INVALID_CONTENT_LENGTH: 'the Content-Length header is malformed',
  HPE_UNEXPECTED_CONTENT_LENGTH: 'Content-Length is given twice or next to Transfer-Encoding',
  HPE_INVALID_TRANSFER_ENCODING: 'the Transfer-Encoding header is malformed or unsupported',
  HPE_INVALID_METHOD: 'the method is unknown or malformed',
  HPE_INVALID_URL: 'the request target is malformed',
  HPE_INVALID_VERSION: 'the request line is malformed (HTTP/1.1 with CRLF line endings expected)',
  HPE_INVALID_CONSTANT: 'the request line is malformed (HTTP/1.1 expected)',
  HPE_LF_EXPECTED: 'a line does not end in CRLF',
  HPE_CR_EXPECTED: 'a line does not end in CRLF',
  HPE_INVALID_HEADER_TOKEN: 'a header name or value holds a character HTTP does not allow',
  HPE_INVALID_CHUNK_SIZE: 'the chunked body is malformed',
  HPE_PAUSED_H2_UPGRADE: 'HTTP/2 is not served here; use HTTP/1.1',
  HPE_PAUSED_UPGRADE: 'protocol upgrades are not served here; use HTTP/1.1'
}

// The socket is gone or the peer ended it: nothing to answer.
const NO_ANSWER = new Set(['ECONNRESET', 'EPIPE', 'HPE_INVALID_EOF_STATE', 'ERR_STREAM_DESTROYED'])

const REASONS: Readonly<Record<number, string>> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }

/** The typed error for a parser failure (its code names the HTTP-level problem; never the request's bytes). */
export function clientErrorFor (code: string | undefined): SidecarError {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new RequestTimeout('the request did not arrive in time: headers are expected within SKR_HEADERS_TIMEOUT_MS, the whole request within SKR_RECEIVE_TIMEOUT_MS')
  }
  if (code === 'HPE_HEADER_OVERFLOW') return new HeadersTooLarge('the request headers are larger than 16 KiB')
  const problem = code === undefined ? undefined : PARSER_PROBLEMS[code]
  const name = code !== undefined && /^[A-Z0-9_]{1,48}$/.test(code) ? ` (${code})` : ''
  return new RequestInvalid(`malformed HTTP request${name}: ${problem ?? 'the request could not be parsed'}`)
}

/** The raw HTTP/1.1 answer for a client error: skr's JSON body, `Connection: close`. */
export function clientErrorResponse (err: SidecarError, requestId: string): string {
  const body = JSON.stringify({ error: err.message, code: err.code, requestId })
  return `HTTP/1.1 ${err.statusCode} ${REASONS[err.statusCode] ?? 'Bad Request'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' + body
}

// The response in progress on each socket: a parser error after a request was dispatched (a
// malformed chunked body, a body that never ends) must not write a second status line into an
// answer that has begun.
const current = new WeakMap<Socket, ServerResponse>()

/** Tracks the response in progress per socket, for responseStarted. */
export const trackResponses = {
  attach (server: Server): void {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket
      current.set(socket, res)
      res.once('close', () => { if (current.get(socket) === res) current.delete(socket) })
    })
  },
  /** True when the response of the request in progress on `socket` has sent its headers. */
  started (socket: Socket): boolean {
    return current.get(socket)?.headersSent === true
  }
}

// Sockets already answered: the parser may report the same connection again (once more per
// chunk it is fed, and at EOF), and one answer is all it gets.
const answered = new WeakSet<Socket>()

/** What the handler needs. */
export interface ClientErrorOptions {
  log?: Logger
  /** Counts each answered client error by skr code. */
  onClientError?: (code: string) => void
  /** Whether a response to a request on this socket has started (then no error answer can be written). */
  responseStarted?: (socket: Socket) => boolean
}

/** Builds the 'clientError' listener shared by every API listener. */
export function createClientErrorHandler (options: ClientErrorOptions = {}): (err: Error & { code?: string }, socket: Socket) => void {
  return (err, socket) => {
    try {
      // Answered already, here or by a route whose answer was the connection's last (a request
      // timeout on the unread rest of its body must not add a second answer).
      if (answered.has(socket) || socket.destroyed || isClosing(socket)) return
      if (NO_ANSWER.has(err.code ?? '') || !socket.writable || options.responseStarted?.(socket) === true) {
        socket.destroy()
        return
      }
      answered.add(socket)
      const error = clientErrorFor(err.code)
      const requestId = randomUUID()
      // The parser's code only: the error object also holds rawPacket (the request's bytes).
      options.log?.debug({ requestId, code: error.code, parserCode: err.code }, error.message)
      options.onClientError?.(error.code)
      socket.write(clientErrorResponse(error, requestId))
      // The client may still be sending (a large header, a body): read and discard for a while so
      // it sees the answer rather than a reset (RFC 9112 §9.6).
      closeLingering(socket)
    } catch {
      socket.destroy()
    }
  }
}
