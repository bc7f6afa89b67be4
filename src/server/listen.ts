// Puts the app on the network: loopback TCP by default (the API releases keys and must not
// leave the pod), a non-loopback address only with the config's explicit opt-in and a loud
// warning, and optionally a Unix socket for callers that prefer file permissions to ports.
//
// Extra listeners (::1 next to 127.0.0.1, the Unix socket) are plain node:http servers
// driven by `app.routing`, the same handler fastify itself attaches to the secondary
// servers it creates for 'localhost'. One app instance therefore serves every listener:
// one set of routes, hooks, limits and shutdown state (return503OnClosing covers all), and
// no second instance that could drift in configuration.
import type * as http from 'node:http'
import { connect } from 'node:net'
import { chmod, lstat, unlink } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import { isLoopbackHost, type Config } from '../config/config.ts'
import { ConfigInvalid } from '../errors.ts'
import type { Logger } from '../log.ts'
import { trackResponses } from './client-error.ts'
import { listenFailed } from '../listen/listen-error.ts'
import { countOpenFiles, createConnectionGate, deriveConnectionCap, readOpenFileLimit, type ConnectionEvents, type ConnectionGate } from '../listen/connections.ts'
import { applyListenerTimeouts, nodeServerOptions } from './http-options.ts'
import { markLocalSocket } from './plugins/browser-guard.ts'
import { lifecycleOf } from './lifecycle.ts'

/** Running listeners and the way to stop them. */
export interface Listening {
  /** `http://127.0.0.1:8080`, `http://[::1]:8080`, `unix:/run/skr.sock`. */
  addresses: string[]
  /** Stops accepting, lets in-flight requests finish, closes everything. */
  close (): Promise<void>
  /** Ends the grace period: requests still waiting answer 503 ERR_SHUTTING_DOWN (./lifecycle.ts). */
  stopInFlight (): void
  /** Destroys every connection at once, in-flight ones included. */
  forceClose (): void
}

/** How a graceful close ended. */
export interface CloseOutcome {
  /** True when connections were still open after the stopped answers' flush window and were cut. */
  forced: boolean
  /** True when the grace period ran out and waiting requests were answered 503 ERR_SHUTTING_DOWN. */
  stopped?: boolean
}

// Not `import ... from 'node:http'`: an ES module import of node:http reads every export to build
// its namespace, and its lazy WebSocket/EventSource exports load Node's bundled copy of undici
// (about 14 MB of RSS and 20 ms at start-up). process.getBuiltinModule returns the plain module.
const { createServer } = process.getBuiltinModule('node:http')

const SOCKET_MODE = 0o660
// Errors meaning "this machine has no IPv6 loopback", which is fine for 'localhost'.
const NO_IPV6 = new Set(['EADDRNOTAVAIL', 'EAFNOSUPPORT'])

function errnoCode (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

function secondaryServer (app: FastifyInstance, config: Config): http.Server {
  const server = createServer(nodeServerOptions(config.listener), app.routing)
  applyListenerTimeouts(server, config.listener)
  // The same client-error handler fastify attached to its own server (buildApp's clientErrorHandler).
  for (const listener of app.server.listeners('clientError')) server.on('clientError', listener as (...args: unknown[]) => void)
  trackResponses.attach(server)
  return server
}

async function listenOn (server: http.Server, options: { host: string; port: number } | { path: string }): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => { reject(err) }
    server.once('error', onError)
    server.listen(options, () => {
      server.removeListener('error', onError)
      resolve()
    })
  })
}

async function closeServer (server: http.Server): Promise<void> {
  if (!server.listening) return
  await new Promise<void>(resolve => {
    server.close(() => { resolve() })
    server.closeIdleConnections()
  })
}

/** True when something accepts connections on the socket at `path`. */
async function socketInUse (path: string): Promise<boolean> {
  return await new Promise<boolean>((resolve, reject) => {
    const probe = connect({ path })
    probe.once('connect', () => { probe.destroy(); resolve(true) })
    probe.once('error', (err) => {
      const code = errnoCode(err)
      if (code === 'ECONNREFUSED' || code === 'ENOENT') resolve(false)
      else reject(err)
    })
  })
}

/** Removes a stale socket left by a previous run; refuses to touch a live socket or any other file. */
async function clearStaleSocket (path: string): Promise<void> {
  const stat = await lstat(path).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return null
    throw err
  })
  if (stat === null) return
  if (!stat.isSocket()) throw new ConfigInvalid('SKR_UNIX_SOCKET names an existing file that is not a socket; refusing to replace it')
  if (await socketInUse(path)) throw new ConfigInvalid('SKR_UNIX_SOCKET is in use by another process')
  await unlink(path)
}

function tcpHosts (host: string): { primary: string; secondary: string | null } {
  // 'localhost' is bound by address, not resolved: /etc/hosts must not be able to widen it.
  if (host.toLowerCase() === 'localhost') return { primary: '127.0.0.1', secondary: '::1' }
  return { primary: host.replace(/^\[|\]$/g, ''), secondary: null }
}

function httpAddress (host: string, port: number): string {
  return host.includes(':') ? `http://[${host}]:${port}` : `http://${host}:${port}`
}

/** A request may wait silently this much longer than its deadline before its connection counts as stalled (ms). */
export const BUSY_MARGIN_MS = 5_000

/**
 * The connection gate for every listener of one sidecar (HTTP and gRPC count together): the cap
 * from SKR_MAX_CONNECTIONS or the open-file limit, read now (under EMFILE /proc itself can no
 * longer be read), and the timers from the listener settings. Logs what it chose.
 */
export function createListenerGate (config: Config, logger: Logger, events: ConnectionEvents = {}): ConnectionGate {
  const fdLimit = readOpenFileLimit()
  const openNow = countOpenFiles()
  const upstreamSockets = config.performance.maxInFlight
  const cap = deriveConnectionCap({ configured: config.listener.maxConnections, fdLimit, openNow, upstreamSockets })
  const room = deriveConnectionCap({ configured: null, fdLimit, openNow, upstreamSockets })
  if (cap.tight || (cap.source === 'SKR_MAX_CONNECTIONS' && room.source === 'open-file limit' && cap.maxConnections > room.maxConnections)) {
    logger.warn({ fdLimit, maxConnections: cap.maxConnections, room: room.maxConnections, maxInFlight: upstreamSockets },
      'the open-file limit leaves less room for API connections than allowed, next to SKR_MAX_INFLIGHT upstream requests: a flood of connections can exhaust descriptors; raise the limit (ulimit -n), lower SKR_MAX_CONNECTIONS or SKR_MAX_INFLIGHT')
  }
  logger.info({ maxConnections: cap.maxConnections, maxConnectionsFrom: cap.source, fdLimit }, 'connection cap')
  const { listener } = config
  return createConnectionGate({
    maxConnections: cap.maxConnections,
    timers: {
      idleConnectionTimeoutMs: listener.idleConnectionTimeoutMs,
      busyTimeoutMs: Math.ceil(config.requestTimeoutMs) + BUSY_MARGIN_MS,
      nextRequestTimeoutMs: listener.keepAliveTimeoutMs + listener.headersTimeoutMs
    },
    events
  })
}

/**
 * Listens on config.host:config.port (and the Unix socket when configured).
 * @param options.gate the sidecar's connection gate (shared with gRPC); one of its own when absent
 * @throws ConfigInvalid for a non-loopback host without the opt-in, or an unusable socket path;
 *   ListenFailed when a port or the socket cannot be opened (in use, privileged, not this machine's address)
 */
export async function listen (app: FastifyInstance, config: Config, logger: Logger, options: { events?: ConnectionEvents, gate?: ConnectionGate } = {}): Promise<Listening> {
  const loopback = isLoopbackHost(config.host)
  // config.ts already refuses this; checked again because exposure is the costly mistake.
  if (!loopback && !config.allowNonLoopback) {
    throw new ConfigInvalid('SKR_HOST is not a loopback address and SKR_ALLOW_NON_LOOPBACK is not set')
  }
  if (!loopback) {
    logger.warn({ host: config.host, port: config.port },
      `skr is listening on the NON-LOOPBACK address ${config.host}: anyone who can reach it can request attestation and key releases; this was allowed by SKR_ALLOW_NON_LOOPBACK`)
  }
  const gate = options.gate ?? createListenerGate(config, logger, options.events)
  // Once a server listens: an accept() failure (EMFILE when even libuv's spare descriptor is
  // gone) is emitted as 'error' on it, and without a listener that would end the process.
  const keepServing = (server: http.Server): void => {
    server.on('error', (err) => { logger.error({ code: errnoCode(err) }, 'listener error; still serving the connections it has') })
  }
  const { primary, secondary } = tcpHosts(config.host)
  const portSetting = 'Port / --port'
  gate.attach(app.server)
  try {
    await app.listen({ host: primary, port: config.port })
  } catch (err) {
    // Stops what the app started for serving (its onClose hooks: samplers, timers), so an
    // in-process caller that handles the error is not left with them; the listen error is the news.
    await app.close().catch(() => {})
    throw listenFailed(err, { host: primary, port: config.port, portSetting })
  }
  keepServing(app.server)
  const extras: http.Server[] = []
  const closeAll = async (): Promise<void> => {
    await Promise.all([app.close(), ...extras.map(closeServer)])
  }
  const forceClose = (): void => {
    for (const server of [app.server, ...extras]) server.closeAllConnections()
    // Connections Node no longer lists as serving a request (a lingering close after an early answer).
    gate.destroyAll()
  }

  try {
    const bound = app.server.address()
    const port = typeof bound === 'object' && bound !== null ? bound.port : config.port
    const addresses = [httpAddress(primary, port)]

    if (secondary !== null) {
      const server = secondaryServer(app, config)
      try {
        gate.attach(server)
        await listenOn(server, { host: secondary, port })
        keepServing(server)
        extras.push(server)
        addresses.push(httpAddress(secondary, port))
      } catch (err) {
        if (!NO_IPV6.has(errnoCode(err) ?? '')) throw listenFailed(err, { host: secondary, port, portSetting })
        logger.debug({ host: secondary, code: errnoCode(err) }, 'no IPv6 loopback; serving 127.0.0.1 only')
      }
    }

    if (config.unixSocket !== null) {
      await clearStaleSocket(config.unixSocket)
      const server = secondaryServer(app, config)
      server.on('connection', markLocalSocket)
      gate.attach(server)
      await listenOn(server, { path: config.unixSocket }).catch((err: unknown) => { throw listenFailed(err, { socketSetting: 'SKR_UNIX_SOCKET' }) })
      keepServing(server)
      extras.push(server)
      await chmod(config.unixSocket, SOCKET_MODE)
      addresses.push(`unix:${config.unixSocket}`)
    }

    logger.info({ addresses, maxConnections: gate.maxConnections }, 'skr HTTP API listening')
    return { addresses, close: closeAll, forceClose, stopInFlight: () => { lifecycleOf(app).stopInFlight() } }
  } catch (err) {
    await closeAll()
    throw err
  }
}

/** How long answers stopped at the end of the grace period get to reach their clients (ms). */
export const STOP_FLUSH_MS = 1_000

async function settlesWithin (work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<false>(resolve => { timer = setTimeout(() => { resolve(false) }, ms) })
  try {
    return await Promise.race([work.then(() => true), expired])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Shuts the listeners down gracefully: new connections are refused at once, requests already
 * running finish (answers carry `Connection: close`; /readyz says "shutting down", other new
 * requests on open connections get 503 ERR_SHUTTING_DOWN). Requests still waiting after `graceMs`
 * (on a hung upstream, say) are answered 503 ERR_SHUTTING_DOWN rather than cut off; whatever is
 * left STOP_FLUSH_MS later is cut. Resolves when every listener is closed.
 */
export async function closeGracefully (listening: Listening, options: { graceMs: number, flushMs?: number }): Promise<CloseOutcome> {
  const closing = listening.close()
  if (await settlesWithin(closing, options.graceMs)) return { forced: false }
  listening.stopInFlight()
  if (await settlesWithin(closing, options.flushMs ?? STOP_FLUSH_MS)) return { forced: false, stopped: true }
  listening.forceClose()
  await closing
  return { forced: true, stopped: true }
}
