// Real servers on 127.0.0.1:0 for test doubles: HTTPS with a leaf from a LocalPki (clients get
// `ca` as an extra root), and plain HTTP for IMDS/THIM-style endpoints. close() also destroys
// keep-alive sockets, so a test never hangs on an idle connection held by a client's Agent.
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { createLocalPki, type LocalPki } from '../../src/emulator/pki.ts'

/** A listening test server and how to reach it. */
export interface TestServer<S extends http.Server> {
  url: string
  port: number
  server: S
  close: () => Promise<void>
}

async function listen<S extends http.Server> (server: S, scheme: 'http' | 'https'): Promise<TestServer<S>> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve() })
  })
  const { port } = server.address() as AddressInfo
  let closed: Promise<void> | null = null
  const close = async (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => { resolve() })
      server.closeAllConnections()
    })
    return await closed
  }
  return { url: `${scheme}://127.0.0.1:${port}`, port, server, close }
}

/** Starts an HTTPS server whose leaf (for `hosts`, default localhost and 127.0.0.1) chains to `ca`. */
export async function startHttpsServer (
  handler: http.RequestListener,
  options: { pki?: LocalPki, hosts?: string[] } = {}
): Promise<TestServer<https.Server> & { ca: string, pki: LocalPki }> {
  const pki = options.pki ?? await createLocalPki()
  const { certPem, keyPem } = await pki.issue(options.hosts ?? ['localhost', '127.0.0.1'])
  const server = https.createServer({ cert: certPem, key: keyPem }, handler)
  const started = await listen(server, 'https')
  return { ...started, ca: pki.caCertPem, pki }
}

/** Starts a plain HTTP server (IMDS and THIM speak plain http on the link-local address). */
export async function startHttpServer (handler: http.RequestListener): Promise<TestServer<http.Server>> {
  return await listen(http.createServer(handler), 'http')
}
