// In-memory AttestationService and KeyReleaseService for transport tests. They record every
// call (with the signal they were given) and can be told to fail with a given error or to
// hang, either honouring their AbortSignal or ignoring it like a misbehaving dependency;
// GatedKeyRelease holds every release until the test opens its gate.
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { loadConfig, type Config } from '../../src/config/config.ts'
import { loggerOptions } from '../../src/log.ts'
import { buildApp } from '../../src/server/app.ts'
import type { AttestationBackend } from '../../src/snp/provider.ts'
import type {
  AttestationService,
  AttestationStatus,
  CombinedEvidence,
  KeyReleaseBatchRequest,
  KeyReleaseBatchResult,
  KeyReleaseRequest,
  KeyReleaseService
} from '../../src/service/types.ts'
import type { SidecarError } from '../../src/errors.ts'
import { NO_SHEDDING } from '../helpers/shedding.ts'

/** How an operation behaves: answer, throw `error`, or never settle (optionally rejecting on abort). */
export type FakeMode =
  | { kind: 'ok' }
  | { kind: 'fail'; error: unknown }
  | { kind: 'hang'; honourSignal: boolean }

/** One recorded service call. */
export interface FakeCall {
  op: 'rawReport' | 'combined' | 'maaToken' | 'release'
  runtimeData?: Buffer
  maaEndpoint?: string
  request?: KeyReleaseRequest
  signal?: AbortSignal
}

async function run<T> (mode: FakeMode, signal: AbortSignal | undefined, value: () => T): Promise<T> {
  switch (mode.kind) {
    case 'ok':
      return value()
    case 'fail':
      throw mode.error
    case 'hang':
      return await new Promise<T>((_resolve, reject) => {
        if (mode.honourSignal && signal !== undefined) {
          signal.addEventListener('abort', () => {
            const abort = new Error('The operation was aborted')
            abort.name = 'AbortError'
            reject(abort)
          }, { once: true })
        }
      })
  }
}

/** A canned report: distinctive bytes, including ones whose hex needs lowercase letters. */
export const FAKE_REPORT = Buffer.from('02000000abcdef0123456789feedface', 'hex')

/** Canned combined evidence in the reference's encodings. */
export const FAKE_COMBINED: CombinedEvidence = Object.freeze({
  endorsedTcb: '7308000000000003',
  endorsements: Buffer.from('-----BEGIN CERTIFICATE-----\nVCEK\n-----END CERTIFICATE-----\n').toString('base64'),
  evidence: FAKE_REPORT.toString('base64'),
  uvmEndorsements: 'dXZtLXJlZmVyZW5jZS1pbmZv'
})

/** A canned MAA token (not a real JWT signature). */
export const FAKE_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJ4LW1zLWF0dGVzdGF0aW9uLXR5cGUiOiJzZXZzbnB2bSJ9.c2ln'

/** A canned released JWK (symmetric key with private member `k`). */
export const FAKE_JWK: Readonly<Record<string, unknown>> = Object.freeze({
  kty: 'oct',
  k: 'c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcyEhISE',
  key_ops: ['encrypt', 'decrypt'],
  kid: 'https://myvault.vault.azure.net/keys/mykey/0123456789abcdef0123456789abcdef'
})

/** In-memory AttestationService. */
export class FakeAttestationService implements AttestationService {
  mode: FakeMode = { kind: 'ok' }
  backend: AttestationBackend | null = 'tsm'
  simulated = false
  problems: string[] = []
  report: Buffer = FAKE_REPORT
  evidence: CombinedEvidence = FAKE_COMBINED
  token: string = FAKE_TOKEN
  readonly calls: FakeCall[] = []

  async rawReport (runtimeData: Buffer, signal?: AbortSignal): Promise<Buffer> {
    this.calls.push({ op: 'rawReport', runtimeData, signal })
    return await run(this.mode, signal, () => this.report)
  }

  async combined (runtimeData: Buffer, signal?: AbortSignal): Promise<CombinedEvidence> {
    this.calls.push({ op: 'combined', runtimeData, signal })
    return await run(this.mode, signal, () => this.evidence)
  }

  async maaToken (maaEndpoint: string, runtimeData: Buffer, signal?: AbortSignal): Promise<string> {
    this.calls.push({ op: 'maaToken', maaEndpoint, runtimeData, signal })
    return await run(this.mode, signal, () => this.token)
  }

  async status (): Promise<AttestationStatus> {
    return { backend: this.backend, simulated: this.simulated, problems: [...this.problems] }
  }
}

/** In-memory KeyReleaseService. */
export class FakeKeyReleaseService implements KeyReleaseService {
  mode: FakeMode = { kind: 'ok' }
  jwk: Record<string, unknown> = { ...FAKE_JWK }
  readonly calls: FakeCall[] = []

  async release (request: KeyReleaseRequest, signal?: AbortSignal): Promise<Record<string, unknown>> {
    this.calls.push({ op: 'release', request, signal })
    return await run(this.mode, signal, () => this.jwk)
  }
}

/** A KeyReleaseService with batch release: kids named in `errors` fail with that error, the rest are released; `batchFailure` fails a whole batch. */
export class FakeBatchKeyReleaseService extends FakeKeyReleaseService {
  readonly batches: Array<{ request: KeyReleaseBatchRequest, signal: AbortSignal | undefined }> = []
  errors = new Map<string, SidecarError>()
  batchFailure: SidecarError | null = null

  async releaseMany (request: KeyReleaseBatchRequest, signal?: AbortSignal): Promise<KeyReleaseBatchResult> {
    this.batches.push({ request, signal })
    if (this.batchFailure !== null) throw this.batchFailure
    const keys: Record<string, Record<string, unknown>> = {}
    const errors: Record<string, SidecarError> = {}
    for (const kid of request.kids) {
      const err = this.errors.get(kid)
      if (err === undefined) keys[kid] = { ...FAKE_JWK, kid }
      else errors[kid] = err
    }
    return { keys, errors }
  }
}

/** A KeyReleaseService whose releases wait until the test opens the gate (in-flight and draining tests). */
export class GatedKeyRelease implements KeyReleaseService {
  readonly started: KeyReleaseRequest[] = []
  readonly #gates: Array<() => void> = []
  async release (request: KeyReleaseRequest): Promise<Record<string, unknown>> {
    this.started.push(request)
    await new Promise<void>(resolve => this.#gates.push(resolve))
    return { ...FAKE_JWK }
  }

  open (): void {
    for (const gate of this.#gates.splice(0)) gate()
  }
}

// Load shedding off, for the apps these doubles build (test/helpers/shedding.ts says why).
export { NO_SHEDDING, TEST_SHEDDING_OFF } from '../helpers/shedding.ts'

/** A validated Config from skr-style environment overrides (no flags). */
export function testConfig (env: Readonly<Record<string, string>> = {}): Config {
  return loadConfig([], env)
}

/** A built app over fresh fakes, with every log line it writes captured as parsed JSON. */
export interface Harness {
  app: FastifyInstance
  attestation: FakeAttestationService
  keyRelease: FakeKeyReleaseService
  /** Raw log lines, for scanning for secrets. */
  logText: string[]
  /** Parsed log lines. */
  logs: Array<Record<string, unknown>>
}

/** Builds the app with fakes and a trace-level logger captured in memory. */
export function createHarness (env: Readonly<Record<string, string>> = {}): Harness {
  const attestation = new FakeAttestationService()
  const keyRelease = new FakeKeyReleaseService()
  const logText: string[] = []
  const logs: Array<Record<string, unknown>> = []
  const logger = pino(loggerOptions('trace'), {
    write (line: string) {
      logText.push(line)
      logs.push(JSON.parse(line) as Record<string, unknown>)
    }
  })
  const app = buildApp({ config: testConfig(env), attestation, keyRelease, logger, backpressure: NO_SHEDDING })
  return { app, attestation, keyRelease, logText, logs }
}
