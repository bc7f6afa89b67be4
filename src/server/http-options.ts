// The node:http settings of every API listener, in one place: fastify's own server gets them
// through its options (buildApp), the extra listeners (::1, the Unix socket: ./listen.ts) through
// applyListenerSettings, so no listener is laxer than another.
//
// Timeouts: Node checks headersTimeout and requestTimeout only every connectionsCheckingInterval
// (30 s by default), which is why trickled headers used to be cut after ~47 s and an endless body
// after ~76 s; checking every second keeps each bound close to what it says.
// `requireHostHeader: false`: Node would answer an HTTP/1.1 request without Host itself, with a
// bare 400 outside skr's error shape; the browser guard (./plugins/browser-guard.ts) answers it.
import type { Server, ServerOptions } from 'node:http'
import type { ListenerConfig } from '../config/config.ts'

/** How often Node checks the header and whole-request timeouts (ms). */
export const CONNECTIONS_CHECKING_INTERVAL_MS = 1_000

/** The node:http createServer options of an API listener. */
export function nodeServerOptions (listener: ListenerConfig): ServerOptions {
  return {
    headersTimeout: listener.headersTimeoutMs,
    requestTimeout: listener.receiveTimeoutMs,
    keepAliveTimeout: listener.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(CONNECTIONS_CHECKING_INTERVAL_MS, listener.headersTimeoutMs),
    requireHostHeader: false
  }
}

/** Sets the timeouts that can change after creation on `server` (fastify sets them on its own server from its options). */
export function applyListenerTimeouts (server: Server, listener: ListenerConfig): void {
  server.headersTimeout = listener.headersTimeoutMs
  server.requestTimeout = listener.receiveTimeoutMs
  server.keepAliveTimeout = listener.keepAliveTimeoutMs
}
