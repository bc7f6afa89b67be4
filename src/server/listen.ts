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
import { isLoopbackHost, type Config } from '../config.ts'
import { ConfigInvalid } from '../errors.ts'
import type { Logger } from '../log.ts'

/** Running listeners and the way to stop them. */
export interface Listening {
  /** `http://127.0.0.1:8080`, `http://[::1]:8080`, `unix:/run/skr.sock`. */
  addresses: string[]
  /** Stops accepting, lets in-flight requests finish, closes everything. */
  close (): Promise<void>
  /** Destroys every connection at once, in-flight ones included (the end of a grace period). */
  forceClose (): void
}

/** How a graceful close ended. */
export interface CloseOutcome {
  /** True when the grace period ran out and in-flight connections were cut. */
  forced: boolean
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

function secondaryServer (app: FastifyInstance): http.Server {
  const server = createServer(app.routing)
  server.keepAliveTimeout = app.server.keepAliveTimeout
  server.requestTimeout = app.server.requestTimeout
  server.headersTimeout = app.server.headersTimeout
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

/**
 * Listens on config.host:config.port (and the Unix socket when configured).
 * @throws ConfigInvalid for a non-loopback host without the opt-in, or an unusable socket path
 */
export async function listen (app: FastifyInstance, config: Config, logger: Logger): Promise<Listening> {
  const loopback = isLoopbackHost(config.host)
  // config.ts already refuses this; checked again because exposure is the costly mistake.
  if (!loopback && !config.allowNonLoopback) {
    throw new ConfigInvalid('SKR_HOST is not a loopback address and SKR_ALLOW_NON_LOOPBACK is not set')
  }
  if (!loopback) {
    logger.warn({ host: config.host, port: config.port },
      `skr is listening on the NON-LOOPBACK address ${config.host}: anyone who can reach it can request attestation and key releases; this was allowed by SKR_ALLOW_NON_LOOPBACK`)
  }

  const { primary, secondary } = tcpHosts(config.host)
  await app.listen({ host: primary, port: config.port })
  const extras: http.Server[] = []
  const closeAll = async (): Promise<void> => {
    await Promise.all([app.close(), ...extras.map(closeServer)])
  }
  const forceClose = (): void => {
    for (const server of [app.server, ...extras]) server.closeAllConnections()
  }

  try {
    const bound = app.server.address()
    const port = typeof bound === 'object' && bound !== null ? bound.port : config.port
    const addresses = [httpAddress(primary, port)]

    if (secondary !== null) {
      const server = secondaryServer(app)
      try {
        await listenOn(server, { host: secondary, port })
        extras.push(server)
        addresses.push(httpAddress(secondary, port))
      } catch (err) {
        if (!NO_IPV6.has(errnoCode(err) ?? '')) throw err
        logger.debug({ host: secondary, code: errnoCode(err) }, 'no IPv6 loopback; serving 127.0.0.1 only')
      }
    }

    if (config.unixSocket !== null) {
      await clearStaleSocket(config.unixSocket)
      const server = secondaryServer(app)
      await listenOn(server, { path: config.unixSocket })
      extras.push(server)
      await chmod(config.unixSocket, SOCKET_MODE)
      addresses.push(`unix:${config.unixSocket}`)
    }

    logger.info({ addresses }, 'skr HTTP API listening')
    return { addresses, close: closeAll, forceClose }
  } catch (err) {
    await closeAll()
    throw err
  }
}

/**
 * Shuts the listeners down gracefully: new connections are refused at once, requests already
 * running finish (answers carry `Connection: close`; /readyz says "shutting down", other new
 * requests on open connections get 503 ERR_SHUTTING_DOWN), and whatever is still running after
 * `graceMs` is cut off. Resolves when every listener is closed.
 */
export async function closeGracefully (listening: Listening, options: { graceMs: number }): Promise<CloseOutcome> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<'expired'>(resolve => { timer = setTimeout(() => { resolve('expired') }, options.graceMs) })
  const closing = listening.close()
  try {
    const first = await Promise.race([closing.then(() => 'closed' as const), expired])
    if (first === 'closed') return { forced: false }
    listening.forceClose()
    await closing
    return { forced: true }
  } finally {
    clearTimeout(timer)
  }
}
