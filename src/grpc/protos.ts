// Loads skr's .proto files at run time with @grpc/proto-loader (no protoc, no generated code,
// nothing downloaded at install) and gives the messages TypeScript shapes. proto-loader's
// objects are untyped, so every request is narrowed here before a handler sees it.
//
// The definition handed to server reflection also holds grpc.health.v1 and the reflection
// protos themselves, so `grpcurl list` shows what a grpc-go server with reflection shows.
import { dirname } from 'node:path'
import { loadSync, type Options, type PackageDefinition, type ServiceDefinition } from '@grpc/proto-loader'
import { protoPath as healthProtoPath } from 'grpc-health-check'
import { InternalError } from '../errors.ts'
import { dependencyFile, packagePath } from '../package-root.ts'

/** Fully-qualified name of the reference's service. */
export const REFERENCE_SERVICE = 'key_provider.KeyProviderService'

/** Fully-qualified name of the ocicrypt / confidential-containers service. */
export const OCICRYPT_SERVICE = 'keyprovider.KeyProviderService'


/** Directory of skr's .proto files (the package root's `proto/`, beside `src/` and `dist/`). */
export const PROTO_DIR = packagePath('proto')

/** proto-loader options shared by the server and test clients: proto field names, defaults filled in. */
export const LOADER_OPTIONS: Readonly<Options> = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true
})

/** The loaded definitions. */
export interface GrpcDefinitions {
  /** Every loaded file, for reflection. */
  readonly all: PackageDefinition
  readonly reference: ServiceDefinition
  readonly ocicrypt: ServiceDefinition
}

function reflectionProtoRoot (): string | null {
  // @grpc/reflection ships its protos but does not export their path; absence only costs
  // the reflection services their line in `grpcurl list`.
  const file = dependencyFile('@grpc/reflection', 'build/proto/grpc/reflection/v1alpha/reflection.proto')
  return file === null ? null : dirname(dirname(dirname(dirname(file))))
}

function service (all: PackageDefinition, name: string): ServiceDefinition {
  const def = all[name]
  if (def === undefined || !('WrapKey' in def)) throw new InternalError(`proto definition ${name} is missing`)
  return def as ServiceDefinition
}

let cached: GrpcDefinitions | null = null

/** Loads (once) skr's protos plus health and reflection for the reflection service. */
export function loadGrpcDefinitions (): GrpcDefinitions {
  if (cached !== null) return cached
  const healthRoot = dirname(dirname(dirname(healthProtoPath)))
  const reflectionRoot = reflectionProtoRoot()
  const files = ['key_provider.proto', 'keyprovider.proto', 'health/v1/health.proto']
  const includeDirs = [PROTO_DIR, healthRoot]
  if (reflectionRoot !== null) {
    files.push('grpc/reflection/v1/reflection.proto', 'grpc/reflection/v1alpha/reflection.proto')
    includeDirs.push(reflectionRoot)
  }
  const all = loadSync(files, { ...LOADER_OPTIONS, includeDirs })
  cached = Object.freeze({ all, reference: service(all, REFERENCE_SERVICE), ocicrypt: service(all, OCICRYPT_SERVICE) })
  return cached
}

// ---- message shapes ------------------------------------------------------------------------

/** The key-provider bytes field's name under each service name. */
export const WRAP_FIELDS = Object.freeze({
  reference: { input: 'key_provider_key_wrap_protocol_input', output: 'key_provider_key_wrap_protocol_output' },
  ocicrypt: { input: 'KeyProviderKeyWrapProtocolInput', output: 'KeyProviderKeyWrapProtocolOutput' }
} as const)

/** key_provider.KeyProviderGetAttestationDataOutput. */
export interface AttestationDataOutput {
  endorsed_tcb: string
  certs: string
  attestation_report: string
  uvm_reference_info: string
}

function member (request: unknown, field: string): unknown {
  if (typeof request !== 'object' || request === null) throw new InternalError('gRPC request is not a message object')
  return (request as Record<string, unknown>)[field]
}

/** A bytes field of a decoded request (proto-loader gives a Buffer; absent means empty). */
export function bytesField (request: unknown, field: string): Buffer {
  const value = member(request, field)
  if (value === undefined || value === null) return Buffer.alloc(0)
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  throw new InternalError(`gRPC field ${field} is not bytes`)
}

/** A string field of a decoded request (absent means ''). */
export function stringField (request: unknown, field: string): string {
  const value = member(request, field)
  if (value === undefined || value === null) return ''
  if (typeof value === 'string') return value
  throw new InternalError(`gRPC field ${field} is not a string`)
}
