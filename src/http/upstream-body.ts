// Reading an upstream's answer: the whole body, under the size cap of the upstream's policy.
import type { Readable } from 'node:stream'
import { UpstreamResponseInvalid } from '../errors.ts'
import type { UpstreamName } from './upstream-types.ts'

/** The first value of a header undici may give as a list. */
export function firstHeader (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/**
 * Reads `stream` to its end; over `cap` bytes (declared or read), drops the connection and throws
 * UpstreamResponseInvalid naming the upstream and host.
 */
export async function readCappedBody (stream: Readable, contentLength: string | string[] | undefined, cap: number, upstream: UpstreamName, url: URL): Promise<Buffer> {
  const tooLarge = (found: string): UpstreamResponseInvalid => {
    const err = new UpstreamResponseInvalid(`${upstream} ${url.host}: response body ${found} bytes, want at most ${cap}`,
      { details: { upstream, host: url.host, maxResponseBytes: cap } })
    // Dropping the connection is the only way to stop the rest of the body; the stream's own
    // 'error' is expected and must not become an uncaught exception.
    stream.on('error', () => {})
    stream.destroy(err)
    return err
  }
  const declared = Number(firstHeader(contentLength))
  if (Number.isFinite(declared) && declared > cap) throw tooLarge(String(declared))
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length
    if (total > cap) throw tooLarge(`over ${cap}`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, total)
}
