// A fetch over a Unix socket, with node:http (whose request() takes a socketPath). The global
// fetch cannot dial a Unix socket, and the usual way (undici's Agent with connect.socketPath)
// would make undici a dependency of every app container that installs this client. It does only
// what the transport needs: one request, the whole body as a string, an AbortSignal.
import { request } from 'node:http'
import type { FetchFn } from './transport.ts'

const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([204, 205, 304])

/** A FetchFn that sends every request to the HTTP server listening on `socketPath`. */
export function unixSocketFetch (socketPath: string): FetchFn {
  return async (url, init) => await new Promise<Response>((resolve, reject) => {
    const target = new URL(url)
    const req = request({
      socketPath,
      method: init.method,
      path: `${target.pathname}${target.search}`,
      headers: { host: target.host, ...init.headers, ...(init.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(init.body)) }) },
      signal: init.signal
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => { chunks.push(chunk) })
      res.on('error', reject)
      res.on('end', () => {
        // Inside an event listener a throw would be uncaught in the app that uses this client:
        // every failure here rejects instead.
        try {
          const status = res.statusCode ?? 0
          if (status < 200 || status > 599) throw new Error(`the sidecar answered with HTTP status ${status}`)
          const headers = new Headers()
          for (const [name, value] of Object.entries(res.headers)) {
            if (Array.isArray(value)) for (const v of value) headers.append(name, v)
            else if (value !== undefined) headers.set(name, value)
          }
          // A Response cannot carry a body with these statuses (Fetch Standard, "null body status").
          const body = NULL_BODY_STATUSES.has(status) ? null : Buffer.concat(chunks)
          resolve(new Response(body, { status, headers }))
        } catch (err) {
          reject(err)
        }
      })
    })
    req.on('error', reject)
    req.end(init.body)
  })
}
