// A fetch over a Unix socket, with node:http (whose request() takes a socketPath). The global
// fetch cannot dial a Unix socket, and the usual way (undici's Agent with connect.socketPath)
// would make undici a dependency of every app container that installs this client. It does only
// what the transport needs: one request, the whole body as a string, an AbortSignal.
import { request } from 'node:http'
import type { FetchFn } from './transport.ts'

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
        const headers = new Headers()
        for (const [name, value] of Object.entries(res.headers)) {
          if (Array.isArray(value)) for (const v of value) headers.append(name, v)
          else if (value !== undefined) headers.set(name, value)
        }
        const status = res.statusCode ?? 502
        // A Response cannot carry a body with these statuses.
        const body = status === 204 || status === 304 ? null : Buffer.concat(chunks)
        resolve(new Response(body, { status, headers }))
      })
    })
    req.on('error', reject)
    req.end(init.body)
  })
}
