// Closing a connection whose client may still be sending (an early error answer: 413 for a body
// over the limit, a parser error, a refusal before the body was read). Closing the socket outright
// while unread bytes sit in its receive buffer makes the kernel send a reset, and a client still
// uploading then gets EPIPE or ECONNRESET instead of the answer (measured: the 413 reached a Node
// client in 1 of 8 runs). RFC 9112 §9.6 describes the remedy, a lingering close: send the answer,
// half-close (FIN), keep reading and discarding for a while, then close. Bounded in time so a
// client that never stops sending cannot hold the socket.
import type { Socket } from 'node:net'

/** How long a lingering socket keeps reading before it is destroyed (ms). */
export const LINGER_MS = 2_000

const lingering = new WeakSet<Socket>()
// Sockets whose current answer is their last (set by lingerOnClose); lingering ones included.
const closing = new WeakSet<Socket>()

/** True once a socket's last answer has been decided: no further request on it may do any work. */
export function isClosing (socket: Socket): boolean {
  return closing.has(socket) || lingering.has(socket)
}

/**
 * Half-closes `socket` after what was written, then destroys it when the client closes its side
 * or after `maxMs`, whichever comes first. Whatever the client still sends is read and discarded
 * meanwhile (by the HTTP parser that owns the socket). Idempotent.
 */
export function closeLingering (socket: Socket, maxMs: number = LINGER_MS): void {
  if (socket.destroyed || lingering.has(socket)) return
  lingering.add(socket)
  const timer = setTimeout(() => { socket.destroy() }, maxMs)
  timer.unref()
  socket.once('close', () => { clearTimeout(timer) })
  socket.once('end', () => { socket.destroy() })
  // Keep reading: a paused socket would fill its receive buffer and end in a reset after all.
  socket.resume()
  socket.end()
}

/**
 * Makes the end of the current response close `socket` lingeringly instead of at once. Node ends
 * a connection after a `Connection: close` answer with socket.destroySoon() (http's resOnFinish),
 * which destroys the socket as soon as the answer is flushed; this replaces it for this socket.
 */
export function lingerOnClose (socket: Socket, maxMs: number = LINGER_MS): void {
  closing.add(socket)
  if (lingering.has(socket)) return
  Object.defineProperty(socket, 'destroySoon', { configurable: true, writable: true, value: () => { closeLingering(socket, maxMs) } })
}
