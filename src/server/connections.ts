// What the API listeners do with connections, so that idle or slow sockets can neither exhaust
// skr's file descriptors nor be held forever (issue 11 §3):
// - a cap on open connections over all listeners, below the process's open-file limit: past it a
//   new connection is closed at once and the open ones keep being served. Without it, ~1,100 idle
//   connections under a limit of 1024 left no descriptor for reading /proc, and sampling memory
//   threw EMFILE out of a timer, which ended the process;
// - a connection that sends nothing at all is closed after idleConnectionTimeoutMs. Node's own
//   headersTimeout also starts at accept, but it is the bound for trickled headers too and so
//   has to be longer. The idle timer is the socket's inactivity timer: any byte re-arms it, and it
//   is switched off once a request has arrived (a request may legitimately wait, silent, for an
//   upstream); Node's keep-alive timer takes over after each answer.
// The header, whole-request and keep-alive timeouts are Node's http.Server options, set by
// ./http-options.ts on every listener.
import { readdirSync, readFileSync } from 'node:fs'
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'

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
  /** Applies the cap and the idle timer to `server`'s connections. */
  attach (server: Server): void
  /** Destroys every open connection (the end of shutdown; lingering closes included). */
  destroyAll (): void
}

/** Builds the gate shared by all listeners of one app. */
export function createConnectionGate (options: { maxConnections: number, idleConnectionTimeoutMs: number, events?: ConnectionEvents }): ConnectionGate {
  const { maxConnections, idleConnectionTimeoutMs } = options
  const events = options.events ?? {}
  const sockets = new Set<Socket>()

  const onConnection = (socket: Socket): void => {
    if (sockets.size >= maxConnections) {
      socket.destroy()
      events.connectionDropped?.()
      return
    }
    sockets.add(socket)
    events.setOpenConnections?.(sockets.size)
    socket.once('close', () => {
      sockets.delete(socket)
      events.setOpenConnections?.(sockets.size)
    })
    // Fires only if not a byte arrives: Node's 'timeout' handler on the socket then destroys it.
    socket.setTimeout(idleConnectionTimeoutMs)
  }
  // A request arrived: the connection is not idle, and it may now wait silently for its answer.
  const onRequest = (req: IncomingMessage): void => { req.socket.setTimeout(0) }

  return {
    maxConnections,
    get open () { return sockets.size },
    destroyAll () {
      for (const socket of sockets) socket.destroy()
    },
    attach (server) {
      // Node drops connections past maxConnections before they become sockets (cheapest); the
      // shared count above then covers the listeners together.
      server.maxConnections = maxConnections
      server.on('drop', () => { events.connectionDropped?.() })
      server.on('connection', onConnection)
      server.on('request', onRequest)
    }
  }
}
