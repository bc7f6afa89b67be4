// What the API listeners do with connections, so that idle or slow sockets can neither exhaust
// skr's file descriptors nor be held forever (issue 11 §3):
// - a cap on open connections over all listeners, below the process's open-file limit: past it a
//   new connection is closed at once and the open ones keep being served. Without it, ~1,100 idle
//   connections under a limit of 1024 left no descriptor for reading /proc, and sampling memory
//   threw EMFILE out of a timer, which ended the process;
// - a connection that sends nothing at all is closed after idleConnectionTimeoutMs. Node's own
//   headersTimeout also starts at accept, but it is the bound for trickled headers too and so
//   has to be longer. The idle timer is the socket's inactivity timer: any byte re-arms it;
// - while a request is answered, a connection on which nothing moves for busyTimeoutMs (the
//   request deadline plus a margin) is closed: a caller that never reads its answers used to hold
//   its connection (and the kernel's send buffer) forever;
// - after the last answer, the next request must arrive within nextRequestTimeoutMs, however
//   many bare CRLFs (skipped by the parser, yet re-arming Node's keep-alive timer) come first.
// The header, whole-request and keep-alive timeouts are Node's http.Server options, set by
// ./http-options.ts on every listener.
import { readdirSync, readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Server as NetServer, Socket } from 'node:net'

/** The descriptors kept free for everything but API connections, besides the upstream sockets. */
export const FD_RESERVE = 64
/** The derived cap never exceeds this: more idle local connections than this only cost memory. */
export const MAX_DERIVED_CONNECTIONS = 4096
/** Nor falls below this (a limit too low for the settings is logged at start-up). */
export const MIN_CONNECTIONS = 16

/** The soft open-file limit of this process (RLIMIT_NOFILE from /proc/self/limits); null when unknown or unlimited. */
export function readOpenFileLimit (limitsText?: string): number | null {
  let text = limitsText
  try {
    text ??= readFileSync('/proc/self/limits', 'utf8')
  } catch {
    return null
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1]
  return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : null
}

/** Descriptors open in this process now (/proc/self/fd, less the one reading it); null when unknown. */
export function countOpenFiles (): number | null {
  try {
    return Math.max(0, readdirSync('/proc/self/fd').length - 1)
  } catch {
    return null
  }
}

/** How the cap was chosen, for the start-up log. */
export interface ConnectionCap {
  readonly maxConnections: number
  readonly source: 'SKR_MAX_CONNECTIONS' | 'open-file limit' | 'default'
  readonly fdLimit: number | null
  /** True when the open-file limit leaves less room than the settings need (the cap was raised to MIN_CONNECTIONS). */
  readonly tight: boolean
}

/**
 * The connection cap: the configured one, else the open-file limit less the descriptors open now,
 * less one per upstream request that may be in flight (`upstreamSockets`), less FD_RESERVE.
 */
export function deriveConnectionCap (options: { configured: number | null, fdLimit: number | null, openNow: number | null, upstreamSockets: number }): ConnectionCap {
  const { configured, fdLimit } = options
  if (configured !== null) return { maxConnections: configured, source: 'SKR_MAX_CONNECTIONS', fdLimit, tight: false }
  if (fdLimit === null) return { maxConnections: MAX_DERIVED_CONNECTIONS, source: 'default', fdLimit, tight: false }
  const room = fdLimit - (options.openNow ?? 32) - options.upstreamSockets - FD_RESERVE
  const maxConnections = Math.min(MAX_DERIVED_CONNECTIONS, Math.max(MIN_CONNECTIONS, room))
  return { maxConnections, source: 'open-file limit', fdLimit, tight: room < MIN_CONNECTIONS }
}

/** What the gate reports. */
export interface ConnectionEvents {
  setOpenConnections?: (count: number) => void
  connectionDropped?: () => void
}

/** The connections of every listener, counted together. */
export interface ConnectionGate {
  readonly maxConnections: number
  readonly open: number
  /**
   * Applies the cap to `server`'s connections and, for an HTTP server (`http: true`), the idle,
   * busy and between-requests timers; a gRPC listener's sessions are timed by grpc-js itself.
   */
  attach (server: NetServer, options?: { http: boolean }): void
  /** Destroys every open connection (the end of shutdown; lingering closes included). */
  destroyAll (): void
}

/** The timers of an HTTP connection, besides Node's header, whole-request and keep-alive ones (ms). */
export interface ConnectionTimers {
  /** Nothing at all has arrived on a new connection. */
  idleConnectionTimeoutMs: number
  /**
   * While a request is answered, not a byte moves either way. A request may wait silently for an
   * upstream up to its deadline, so this is the deadline plus a margin; what it stops is a caller
   * that never reads its answer (its socket's send buffer full), which Node's timers do not cover
   * once the request has arrived.
   */
  busyTimeoutMs: number
  /**
   * After the last answer, the next request has not arrived. Node's keep-alive timer is an
   * inactivity timer, and a bare CRLF between requests (which the parser skips) re-arms it
   * forever; this one is not re-armed by anything but a request.
   */
  nextRequestTimeoutMs: number
}

/** Builds the gate shared by all listeners of one app. */
export function createConnectionGate (options: { maxConnections: number, timers: ConnectionTimers, events?: ConnectionEvents }): ConnectionGate {
  const { maxConnections, timers } = options
  const events = options.events ?? {}
  const sockets = new Set<Socket>()
  // Per HTTP socket: requests being answered, and the timer waiting for the next one.
  const active = new WeakMap<Socket, number>()
  const waiting = new WeakMap<Socket, ReturnType<typeof setTimeout>>()

  const count = (socket: Socket): boolean => {
    if (sockets.size >= maxConnections) {
      socket.destroy()
      events.connectionDropped?.()
      return false
    }
    sockets.add(socket)
    events.setOpenConnections?.(sockets.size)
    socket.once('close', () => {
      sockets.delete(socket)
      clearTimeout(waiting.get(socket))
      events.setOpenConnections?.(sockets.size)
    })
    return true
  }
  const onHttpConnection = (socket: Socket): void => {
    // Fires only if not a byte arrives: Node's 'timeout' handler on the socket then destroys it.
    if (count(socket)) socket.setTimeout(timers.idleConnectionTimeoutMs)
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket
    clearTimeout(waiting.get(socket))
    active.set(socket, (active.get(socket) ?? 0) + 1)
    socket.setTimeout(timers.busyTimeoutMs)
    res.once('close', () => {
      const left = (active.get(socket) ?? 1) - 1
      active.set(socket, left)
      if (left > 0 || socket.destroyed) return
      // Node has just set its keep-alive (inactivity) timer; this one is absolute.
      const timer = setTimeout(() => { socket.destroy() }, timers.nextRequestTimeoutMs)
      timer.unref()
      waiting.set(socket, timer)
    })
  }

  return {
    maxConnections,
    get open () { return sockets.size },
    destroyAll () {
      for (const socket of sockets) socket.destroy()
    },
    attach (server, attachOptions = { http: true }) {
      // Node drops connections past maxConnections before they become sockets (cheapest); the
      // shared count then covers the listeners together.
      server.maxConnections = maxConnections
      server.on('drop', () => { events.connectionDropped?.() })
      if (attachOptions.http) {
        server.on('connection', onHttpConnection)
        server.on('request', onRequest)
      } else {
        server.on('connection', (socket: Socket) => { count(socket) })
      }
    }
  }
}
