// The KeyProviderService method handlers. Each parses its message, calls the domain
// (AttestationService, KeyReleaseService — never a device or an upstream directly) under one
// deadline, and answers a message or a mapped gRPC status. The same WrapKey/UnWrapKey serve
// both service names; only the output encoding of byte fields differs (see
// key-provider-protocol.ts). Logs carry method, kid and endpoints, never data or keys.
import type { handleUnaryCall, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js'
import type { Config } from '../config/config.ts'
import { ClientClosed, isSidecarError, RequestInvalid } from '../errors.ts'
import { decodeBase64Flexible } from '../encoding/base64.ts'
import { normaliseEndpoint } from '../http/endpoint.ts'
import type { Logger } from '../log.ts'
import type { AttestationService, KeyReleaseRequest, KeyReleaseService } from '../service/types.ts'
import { runWithDeadline } from '../util/deadline.ts'
import { decodeAnnotationPacket, kidFromKeyPath } from './annotation.ts'
import { buildUnwrapOutput, buildWrapOutput, parseUnwrapRequest, parseWrapRequest, type KeyProviderFlavour } from './key-provider-protocol.ts'
import { bytesField, OCICRYPT_SERVICE, REFERENCE_SERVICE, stringField, WRAP_FIELDS, type AttestationDataOutput } from './protos.ts'
import { toGrpcFailure } from './status-map.ts'
import { unwrapWithJwk, wrapForKeyPath, type WrapOptions } from './wrap.ts'

/** What the handlers need. */
export interface KeyProviderDeps {
  readonly config: Config
  readonly attestation: AttestationService
  readonly keyRelease: KeyReleaseService
  readonly logger: Logger
  /** File-system seam for WrapKey (default: the process's cwd and fs). */
  readonly wrapOptions?: WrapOptions
  /** Fires when the server's shutdown grace period ends: calls still waiting answer UNAVAILABLE (ERR_SHUTTING_DOWN). */
  readonly stopSignal?: AbortSignal
  /** Told of every call's work, so shutdown can wait for calls in flight. */
  readonly track?: (call: Promise<unknown>) => void
}

type Work<T> = (request: unknown, signal: AbortSignal, log: Logger) => Promise<T>

/** Milliseconds left for a call: the sooner of the client's deadline and the configured limit. */
function budgetMs (call: ServerUnaryCall<unknown, unknown>, limitMs: number): number {
  const deadline = call.getDeadline()
  const at = deadline instanceof Date ? deadline.getTime() : deadline
  return Number.isFinite(at) ? Math.max(0, Math.min(limitMs, at - Date.now())) : limitMs
}

/**
 * Runs `work` under the call's deadline (util/deadline.ts); a client cancelling counts as the
 * caller leaving, and the end of the server's grace period (`stop`) ends it with ShuttingDown.
 */
async function withCallDeadline<T> (call: ServerUnaryCall<unknown, unknown>, limitMs: number, stop: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  return await runWithDeadline(budgetMs(call, limitMs), (cancel) => {
    const onCancel = (): void => { cancel(new ClientClosed('the client cancelled the call')) }
    const onStop = (): void => {
      const reason: unknown = stop?.reason
      if (isSidecarError(reason)) cancel(reason)
    }
    call.once('cancelled', onCancel)
    if (stop?.aborted === true) onStop()
    else stop?.addEventListener('abort', onStop, { once: true })
    return () => {
      call.removeListener('cancelled', onCancel)
      stop?.removeEventListener('abort', onStop)
    }
  }, work)
}

function unary<T> (deps: KeyProviderDeps, method: string, work: Work<T>): handleUnaryCall<unknown, T> {
  return (call, callback) => {
    const log = deps.logger.child({ method })
    const running = withCallDeadline(call, deps.config.requestTimeoutMs, deps.stopSignal, async signal => await work(call.request, signal, log))
    deps.track?.(running)
    running.then(
      value => { callback(null, value) },
      (err: unknown) => {
        const failure = toGrpcFailure(err)
        const fields = { code: failure.error.code, grpcCode: failure.status.code, details: failure.error.details }
        if (failure.error.statusCode >= 500) log.error({ ...fields, err }, failure.error.message)
        else log.info(fields, failure.error.message)
        callback(failure.status)
      })
  }
}

function wrapKey (deps: KeyProviderDeps, flavour: KeyProviderFlavour): Work<Record<string, Buffer>> {
  const fields = WRAP_FIELDS[flavour]
  return async (request, _signal, log) => {
    const { keyPath, optsData } = parseWrapRequest(bytesField(request, fields.input))
    log.info({ kid: kidFromKeyPath(keyPath) }, 'wrap requested')
    const { packetJson } = await wrapForKeyPath(optsData, keyPath, deps.wrapOptions)
    return { [fields.output]: buildWrapOutput(packetJson, flavour) }
  }
}

function unwrapKey (deps: KeyProviderDeps, flavour: KeyProviderFlavour): Work<Record<string, Buffer>> {
  const fields = WRAP_FIELDS[flavour]
  return async (request, signal, log) => {
    const { annotation } = parseUnwrapRequest(bytesField(request, fields.input))
    const packet = decodeAnnotationPacket(annotation)
    const release: KeyReleaseRequest = {
      maaEndpoint: normaliseEndpoint(packet.attesterEndpoint, 'annotation.attester_endpoint'),
      akvEndpoint: normaliseEndpoint(packet.kmsEndpoint, 'annotation.kms_endpoint'),
      kid: packet.kid
    }
    log.info({ kid: release.kid, akv: release.akvEndpoint, maa: release.maaEndpoint }, 'unwrap requested')
    // The same release as POST /key/release: the RSA private key comes back as a JWK.
    const jwk = await deps.keyRelease.release(release, signal)
    return { [fields.output]: buildUnwrapOutput(unwrapWithJwk(jwk, packet.wrappedData), flavour) }
  }
}

function getReport (deps: KeyProviderDeps): Work<{ report_hex_string: string }> {
  return async (request, signal) => {
    const text = stringField(request, 'report_data_hex_string')
    // Reference quirk, kept on purpose: REPORT_DATA binds sha256 of the string's characters (its
    // UTF-8 bytes), not of the bytes the hex would spell, and verifiers written against the
    // reference expect that. So, like the reference, any string is accepted: its own test suite
    // (tests/skr/test.py) sends base64 text here.
    const report = await deps.attestation.rawReport(Buffer.from(text, 'utf8'), signal)
    return { report_hex_string: report.toString('hex') }
  }
}

function getAttestationData (deps: KeyProviderDeps): Work<AttestationDataOutput> {
  return async (request, signal) => {
    const runtimeData = decodeBase64Flexible(stringField(request, 'b64_runtime_data_string'))
    // The reference answers FAILED_PRECONDITION here; it is the caller's input, so INVALID_ARGUMENT.
    if (runtimeData === null) throw new RequestInvalid('b64_runtime_data_string is not base64')
    const evidence = await deps.attestation.combined(runtimeData, signal)
    return {
      endorsed_tcb: evidence.endorsedTcb,
      certs: evidence.endorsements,
      attestation_report: evidence.evidence,
      uvm_reference_info: evidence.uvmEndorsements
    }
  }
}

/** Handlers for key_provider.KeyProviderService (the reference's five methods). */
export function referenceHandlers (deps: KeyProviderDeps): UntypedServiceImplementation {
  return {
    WrapKey: unary(deps, `${REFERENCE_SERVICE}/WrapKey`, wrapKey(deps, 'reference')),
    UnWrapKey: unary(deps, `${REFERENCE_SERVICE}/UnWrapKey`, unwrapKey(deps, 'reference')),
    GetReport: unary(deps, `${REFERENCE_SERVICE}/GetReport`, getReport(deps)),
    GetAttestationData: unary(deps, `${REFERENCE_SERVICE}/GetAttestationData`, getAttestationData(deps)),
    SayHello: unary(deps, `${REFERENCE_SERVICE}/SayHello`, async request => ({ message: 'Hello ' + stringField(request, 'name') }))
  }
}

/** Handlers for keyprovider.KeyProviderService (ocicrypt / confidential-containers). */
export function ocicryptHandlers (deps: KeyProviderDeps): UntypedServiceImplementation {
  return {
    WrapKey: unary(deps, `${OCICRYPT_SERVICE}/WrapKey`, wrapKey(deps, 'ocicrypt')),
    UnWrapKey: unary(deps, `${OCICRYPT_SERVICE}/UnWrapKey`, unwrapKey(deps, 'ocicrypt'))
  }
}
