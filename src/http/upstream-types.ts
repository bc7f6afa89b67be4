// The names and policy shape of skr's upstreams, apart from the client (upstream.ts) so the
// retry and error-mapping modules it uses can name them without importing it back.
/** The upstreams skr calls; used in messages, error details and logs. */
export type UpstreamName = 'maa' | 'akv' | 'imds' | 'thim' | 'kds' | 'azcache' | 'entra'

/** Timeouts (ms), retry budget and response cap of one upstream. */
export interface UpstreamPolicy {
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  totalTimeoutMs: number
  maxRetries: number
  baseDelayMs: number
  maxDelayMs: number
  maxResponseBytes: number
}
