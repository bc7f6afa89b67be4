// Whether the app is draining before it stops. Draining begins when close starts (fastify's
// preClose hook) or when closeGracefully (./listen.ts) says so: from then on /readyz answers
// 503 "shutting down", new API requests get 503 ERR_SHUTTING_DOWN, and every answer carries
// `Connection: close` so that keep-alive sockets end with their last response instead of
// holding the close open for the keep-alive timeout.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ShuttingDown } from '../errors.ts'

/** The drain flag of one app. */
export interface Lifecycle {
  readonly draining: boolean
  /** Starts draining; idempotent. */
  beginDrain (): void
  /** Fires when the grace period is over: requests still waiting stop and answer 503 ERR_SHUTTING_DOWN. */
  readonly stopSignal: AbortSignal
  /** Ends the grace period (and begins draining); idempotent. */
  stopInFlight (): void
}

const lifecycles = new WeakMap<FastifyInstance, Lifecycle>()

/** Routes that keep answering normally while draining (probes and scrapes). */
export const DRAIN_EXEMPT_ROUTES: ReadonlySet<string> = new Set(['/status', '/livez', '/readyz', '/metrics', '/openapi.json'])

function createLifecycle (): Lifecycle {
  let draining = false
  const stop = new AbortController()
  return {
    get draining () { return draining },
    beginDrain () { draining = true },
    stopSignal: stop.signal,
    stopInFlight () {
      draining = true
      if (!stop.signal.aborted) {
        stop.abort(new ShuttingDown('server is shutting down: the grace period ended before the answer was ready', { details: { retryAfterSeconds: 1 } }))
      }
    }
  }
}

/**
 * Installs the drain behaviour on `app` (call once, in buildApp) and returns its Lifecycle.
 * @param onShed called once per request refused because the app is draining
 */
export function installLifecycle (app: FastifyInstance, onShed: () => void = () => {}): Lifecycle {
  const lifecycle = createLifecycle()
  lifecycles.set(app, lifecycle)
  app.addHook('preClose', (done) => { lifecycle.beginDrain(); done() })
  app.addHook('onRequest', (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    if (lifecycle.draining && !DRAIN_EXEMPT_ROUTES.has(request.routeOptions.url ?? '')) {
      onShed()
      done(new ShuttingDown('server is shutting down', { details: { retryAfterSeconds: 1 } }))
      return
    }
    done()
  })
  app.addHook('onSend', (_request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) => {
    if (lifecycle.draining && !reply.raw.headersSent) reply.header('connection', 'close')
    done(null, payload)
  })
  return lifecycle
}

/**
 * The Lifecycle of an app built by buildApp, or of a plugin context inside it (fastify makes each
 * encapsulated context with Object.create from its parent, so the root is on its prototype chain);
 * undefined for any other instance.
 */
export function findLifecycle (instance: FastifyInstance): Lifecycle | undefined {
  for (let o: object | null = instance; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    const lifecycle = lifecycles.get(o as FastifyInstance)
    if (lifecycle !== undefined) return lifecycle
  }
  return undefined
}

/** The Lifecycle of an app built by buildApp (throws TypeError for any other instance). */
export function lifecycleOf (app: FastifyInstance): Lifecycle {
  const lifecycle = findLifecycle(app)
  if (lifecycle === undefined) throw new TypeError('lifecycleOf: this fastify instance was not built by buildApp')
  return lifecycle
}
