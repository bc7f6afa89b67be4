// The gRPC server: the key provider under the reference's name and the ocicrypt/CoCo name,
// grpc.health.v1 (so Kubernetes `grpc:` probes work) and server reflection (so `grpcurl
// list` works, as with the reference). Plaintext and loopback-only by default, like the
// reference (which hard-codes localhost) and like skr's HTTP API.
import { Server, ServerCredentials } from '@grpc/grpc-js'
import { ReflectionService } from '@grpc/reflection'
import { HealthImplementation, type ServingStatusMap } from 'grpc-health-check'
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import pino from 'pino'
import { isLoopbackHost, type Config } from '../config/config.ts'
import { ConfigInvalid, ShuttingDown } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { AttestationService, KeyReleaseService } from '../service/types.ts'
import { loadGrpcDefinitions, OCICRYPT_SERVICE, REFERENCE_SERVICE } from './protos.ts'
import { ocicryptHandlers, referenceHandlers } from './service.ts'
import type { WrapOptions } from './wrap.ts'
import type { ConnectionGate } from '../listen/connections.ts'
import { listenFailed } from '../listen/listen-error.ts'

/** What startGrpcServer needs. */
export interface GrpcServerDeps {
  readonly config: Config
  readonly attestation: AttestationService
  readonly keyRelease: KeyReleaseService
  readonly logger?: Logger
  /** The port to bind (0: any free port). Default: config.port for serverType 'grpc', config.grpcPort otherwise. */
  readonly port?: number
  /** File-system seam for WrapKey. */
  readonly wrapOptions?: WrapOptions
  /** The sidecar's connection gate (shared with the HTTP listeners); no cap when absent (tests). */
  readonly gate?: ConnectionGate
}

/** A listening gRPC server. */
export interface RunningGrpcServer {
  readonly port: number
  /** `127.0.0.1:50000` or `[::1]:50000`. */
  readonly address: string
  /**
   * Reports NOT_SERVING, lets in-flight calls finish for up to `graceMs` (default 10 s), then
   * answers those still waiting UNAVAILABLE (ERR_SHUTTING_DOWN) and cuts whatever is left.
   */
  close (graceMs?: number): Promise<void>
}

/** Default grace period for in-flight calls on close. */
export const DEFAULT_GRACE_MS = 10_000

/** How long calls stopped at the end of the grace period get to send their status (ms). */
const STOP_FLUSH_MS = 500

// 1 MiB like the HTTP body limit: key-provider messages are a few kilobytes.
const MAX_MESSAGE_BYTES = 1024 * 1024

/** The address to bind for a configured host: 'localhost' pins IPv4 loopback, IPv6 literals get brackets. */
export function bindHost (host: string): string {
  if (host.toLowerCase() === 'localhost') return '127.0.0.1'
  const bare = host.replace(/^\[|\]$/g, '')
  return bare.includes(':') ? `[${bare}]` : bare
}

/** How long a gRPC connection with no call in progress stays open (ms); clients reconnect when they next call. */
export const MAX_CONNECTION_IDLE_MS = 30_000

/**
 * Listens on host:port with a net.Server of skr's own and hands each accepted connection to
 * grpc-js (Server.createConnectionInjector, its public API for this), so that gRPC connections go
 * through the sidecar's connection gate: they count under the same cap as the HTTP API's, and a
 * flood on the gRPC port can no longer take the descriptors every listener needs.
 */
async function listenThroughGate (server: Server, host: string, port: number, portSetting: string, gate: ConnectionGate | undefined, logger: Logger): Promise<{ listener: NetServer, port: number }> {
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure())
  const listener = createNetServer()
  gate?.attach(listener, { http: false })
  // After the gate's listener: a connection it refused is already destroyed.
  listener.on('connection', (socket: Socket) => { if (!socket.destroyed) injector.injectConnection(socket) })
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => { reject(listenFailed(err, { host: host.replace(/^\[|\]$/g, ''), port, portSetting, what: 'gRPC' })) }
    listener.once('error', onError)
    listener.listen({ host: host.replace(/^\[|\]$/g, ''), port }, () => {
      listener.removeListener('error', onError)
      resolve()
    })
  })
  // An accept() failure once listening must not end the process (see server/listen.ts).
  listener.on('error', (err: NodeJS.ErrnoException) => { logger.error({ code: err.code }, 'gRPC listener error; still serving the connections it has') })
  const bound = listener.address()
  return { listener, port: typeof bound === 'object' && bound !== null ? bound.port : port }
}

/** Starts the gRPC server on config.host and the given port. */
export async function startGrpcServer (deps: GrpcServerDeps): Promise<RunningGrpcServer> {
  const { config } = deps
  // config.ts already refuses this; checked again because exposure is the costly mistake.
  if (!isLoopbackHost(config.host) && !config.allowNonLoopback) {
    throw new ConfigInvalid('SKR_HOST is not a loopback address and SKR_ALLOW_NON_LOOPBACK is not set')
  }
  const logger = (deps.logger ?? pino({ level: 'silent' })).child({ component: 'grpc' })
  const defs = loadGrpcDefinitions()
  // Aborted when the grace period of close() ends: calls still waiting then answer UNAVAILABLE
  // with ERR_SHUTTING_DOWN instead of being cut by forceShutdown.
  const stop = new AbortController()
  // Calls in flight, for close() to wait on (grpc-js's tryShutdown does not wait for calls on
  // injected connections).
  const pending = new Set<Promise<unknown>>()
  const track = (call: Promise<unknown>): void => {
    pending.add(call)
    const done = (): void => { pending.delete(call) }
    call.then(done, done)
  }
  const handlerDeps = { config, attestation: deps.attestation, keyRelease: deps.keyRelease, logger, wrapOptions: deps.wrapOptions, stopSignal: stop.signal, track }

  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    // A connection with no call in progress (including one that never sent a byte) is closed.
    'grpc.max_connection_idle_ms': MAX_CONNECTION_IDLE_MS
  })
  server.addService(defs.reference, referenceHandlers(handlerDeps))
  server.addService(defs.ocicrypt, ocicryptHandlers(handlerDeps))
  const serving: ServingStatusMap = { '': 'SERVING', [REFERENCE_SERVICE]: 'SERVING', [OCICRYPT_SERVICE]: 'SERVING' }
  const health = new HealthImplementation(serving)
  health.addToServer(server)
  new ReflectionService(defs.all).addToServer(server)

  const requested = deps.port ?? (config.serverType === 'grpc' ? config.port : config.grpcPort)
  // ServerType=grpc serves gRPC on Port, as the reference; `both` puts it on SKR_GRPC_PORT.
  const portSetting = config.serverType === 'both' ? 'SKR_GRPC_PORT / --grpc-port' : 'Port / --port'
  const host = bindHost(config.host)
  const { listener, port } = await listenThroughGate(server, host, requested, portSetting, deps.gate, logger)
  const address = `${host}:${port}`
  if (!isLoopbackHost(config.host)) {
    logger.warn({ address }, `the gRPC key provider is listening on the NON-LOOPBACK address ${address}: anyone who can reach it can unwrap keys; this was allowed by SKR_ALLOW_NON_LOOPBACK`)
  }
  logger.info({ address }, 'skr gRPC key provider listening')

  let closing: Promise<void> | null = null
  const drained = async (ms: number): Promise<boolean> => {
    let timer: ReturnType<typeof setTimeout> | undefined
    const expired = new Promise<false>(resolve => { timer = setTimeout(() => { resolve(false) }, ms) })
    try {
      return await Promise.race([Promise.allSettled([...pending]).then(() => true), expired])
    } finally {
      clearTimeout(timer)
    }
  }
  const close = async (graceMs: number = DEFAULT_GRACE_MS): Promise<void> => {
    closing ??= (async () => {
      for (const name of Object.keys(serving)) health.setStatus(name, 'NOT_SERVING')
      // No new connections; calls in flight may finish within the grace period.
      listener.close()
      if (!await drained(graceMs)) {
        stop.abort(new ShuttingDown('server is shutting down: the grace period ended before the answer was ready', { details: { retryAfterSeconds: 1 } }))
        // The stopped calls' statuses go out on the next turns of the loop: give them a moment on
        // the wire before what is left is cut.
        await drained(STOP_FLUSH_MS)
        await new Promise(resolve => setTimeout(resolve, graceMs === 0 ? 0 : STOP_FLUSH_MS))
      }
      server.forceShutdown()
    })()
    await closing
  }
  return { port, address, close }
}
