// Doubles and a real client for the gRPC key provider tests: a KeyReleaseService that holds
// RSA keys by kid (unknown kid → KeyNotFound, as the vault answers), key files on disk in the
// reference's layout, and grpc-js clients built from the same protos the server loads, on
// 127.0.0.1:0.
import { generateKeyPairSync, createPrivateKey } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import {
  credentials,
  loadPackageDefinition,
  Metadata,
  type Client,
  type ClientDuplexStream,
  type GrpcObject,
  type ServiceClientConstructor,
  type ServiceError
} from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'
import { protoPath as healthProtoPath } from 'grpc-health-check'
import pino from 'pino'
import { KeyNotFound } from '../../src/errors.ts'
import { loadGrpcDefinitions, LOADER_OPTIONS } from '../../src/grpc/protos.ts'
import { startGrpcServer, type RunningGrpcServer } from '../../src/grpc/server.ts'
import type { WrapOptions } from '../../src/grpc/wrap.ts'
import { loggerOptions } from '../../src/log.ts'
import type { KeyReleaseRequest } from '../../src/service/types.ts'
import { FakeAttestationService, FakeKeyReleaseService, testConfig } from './fake-services.ts'

/** Directory of the hand-built fixtures. */
export const FIXTURE_DIR = new URL('../fixtures/grpc/', import.meta.url).pathname

/** An RSA key as the tests use it: the PEM the wrap side reads, the JWK the release returns. */
export interface TestRsaKey {
  readonly publicPem: string
  readonly privateJwk: Record<string, unknown>
}

/** A fresh RSA key (2048 bits by default: fast, and the reference labels every key rsa_3072 anyway). */
export function generateRsaKey (bits = 2048): TestRsaKey {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits })
  return {
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateJwk: privateKey.export({ format: 'jwk' }) as Record<string, unknown>
  }
}

/** The fixture key (test/fixtures/grpc/testkey000-*.pem). */
export async function fixtureKey (): Promise<TestRsaKey> {
  const privatePem = await readFile(join(FIXTURE_DIR, 'testkey000-private.pem'), 'utf8')
  return {
    publicPem: await readFile(join(FIXTURE_DIR, 'testkey000-pub.pem'), 'utf8'),
    privateJwk: createPrivateKey(privatePem).export({ format: 'jwk' }) as Record<string, unknown>
  }
}

/** Endpoints written into key info files by default. */
export const TEST_ENDPOINTS = Object.freeze({ kms: 'myhsm.managedhsm.azure.net', attester: 'sharedeus2.eus2.attest.azure.net' })

/** Writes `<dir>/<name>-pub.pem` and `<dir>/<name>-info.json` (absolute public_key_path); returns the key path. */
export async function writeKeyFiles (dir: string, name: string, key: TestRsaKey, endpoints = TEST_ENDPOINTS): Promise<string> {
  const keyPath = join(dir, name)
  await writeFile(`${keyPath}-pub.pem`, key.publicPem)
  await writeFile(`${keyPath}-info.json`, JSON.stringify({
    public_key_path: `${keyPath}-pub.pem`,
    kms_endpoint: endpoints.kms,
    attester_endpoint: endpoints.attester
  }))
  return keyPath
}

/** A temporary directory removed by `cleanup`. */
export async function tempDir (): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'skr-grpc-'))
  return { dir, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
}

/** A KeyReleaseService holding keys by kid; the FakeMode still decides failures and hangs. */
export class KeyedReleaseService extends FakeKeyReleaseService {
  readonly keys = new Map<string, Record<string, unknown>>()

  override async release (request: KeyReleaseRequest, signal?: AbortSignal): Promise<Record<string, unknown>> {
    await super.release(request, signal)
    const key = this.keys.get(request.kid)
    if (key === undefined) throw new KeyNotFound(`the vault has no key named ${request.kid}`)
    return key
  }
}

// ---- clients -------------------------------------------------------------------------------

function serviceCtor (root: GrpcObject, name: string): ServiceClientConstructor {
  let node: unknown = root
  for (const part of name.split('.')) node = (node as Record<string, unknown>)[part]
  if (typeof node !== 'function') throw new Error(`no service ${name} in the loaded protos`)
  return node as ServiceClientConstructor
}

const reflectionProto = join(dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json')),
  'build/proto/grpc/reflection/v1alpha/reflection.proto')

/** Clients for every service the server offers, from the same protos. */
export interface GrpcClients {
  readonly reference: Client
  readonly ocicrypt: Client
  readonly health: Client
  readonly reflection: Client
  close (): void
}

/** Connects plaintext clients to `address`. */
export function connectClients (address: string): GrpcClients {
  const root = loadPackageDefinition(loadGrpcDefinitions().all)
  const health = loadPackageDefinition(loadSync(healthProtoPath, LOADER_OPTIONS))
  const reflection = loadPackageDefinition(loadSync(reflectionProto, LOADER_OPTIONS))
  const creds = credentials.createInsecure()
  const clients = {
    reference: new (serviceCtor(root, 'key_provider.KeyProviderService'))(address, creds),
    ocicrypt: new (serviceCtor(root, 'keyprovider.KeyProviderService'))(address, creds),
    health: new (serviceCtor(health, 'grpc.health.v1.Health'))(address, creds),
    reflection: new (serviceCtor(reflection, 'grpc.reflection.v1alpha.ServerReflection'))(address, creds)
  }
  return { ...clients, close: () => { for (const c of Object.values(clients)) c.close() } }
}

type UnaryMethod = (request: unknown, metadata: Metadata, options: { deadline?: Date }, cb: (err: ServiceError | null, res?: unknown) => void) => void

/** Calls a unary method; resolves with the response, rejects with the ServiceError. */
export async function callUnary<T = Record<string, unknown>> (client: Client, method: string, request: unknown, deadline?: Date): Promise<T> {
  const fn = (client as unknown as Record<string, UnaryMethod>)[method]
  if (typeof fn !== 'function') throw new Error(`no method ${method}`)
  return await new Promise<T>((resolve, reject) => {
    fn.call(client, request, new Metadata(), deadline === undefined ? {} : { deadline }, (err, res) => {
      if (err !== null) reject(err)
      else resolve(res as T)
    })
  })
}

/** Calls a unary method that must fail; resolves with its ServiceError. */
export async function callFails (client: Client, method: string, request: unknown, deadline?: Date): Promise<ServiceError> {
  try {
    await callUnary(client, method, request, deadline)
  } catch (err) {
    return err as ServiceError
  }
  throw new Error(`${method} succeeded but a failure was expected`)
}

/** Lists services through server reflection (v1alpha, the version grpcurl tries first). */
export async function listServices (client: Client): Promise<string[]> {
  const open = (client as unknown as { ServerReflectionInfo: () => ClientDuplexStream<unknown, unknown> }).ServerReflectionInfo
  const stream = open.call(client)
  return await new Promise<string[]>((resolve, reject) => {
    stream.once('data', (msg: { list_services_response?: { service?: Array<{ name: string }> } }) => {
      resolve((msg.list_services_response?.service ?? []).map(s => s.name))
      stream.end()
    })
    stream.once('error', reject)
    stream.write({ host: '', list_services: '' })
  })
}

// ---- harness -------------------------------------------------------------------------------

/** A running server over fakes, with clients and captured logs. */
export interface GrpcHarness {
  readonly server: RunningGrpcServer
  readonly clients: GrpcClients
  readonly attestation: FakeAttestationService
  readonly keyRelease: KeyedReleaseService
  /** Raw log lines, for scanning for secrets. */
  readonly logText: string[]
  close (): Promise<void>
}

/** Starts the server on 127.0.0.1:0 over fresh fakes. */
export async function startHarness (options: { env?: Readonly<Record<string, string>>; wrapOptions?: WrapOptions } = {}): Promise<GrpcHarness> {
  const attestation = new FakeAttestationService()
  const keyRelease = new KeyedReleaseService()
  const logText: string[] = []
  const logger = pino(loggerOptions('trace'), { write (line: string) { logText.push(line) } })
  const server = await startGrpcServer({
    config: testConfig({ ServerType: 'grpc', ...options.env }),
    attestation,
    keyRelease,
    logger,
    port: 0,
    wrapOptions: options.wrapOptions
  })
  const clients = connectClients(server.address)
  return {
    server,
    clients,
    attestation,
    keyRelease,
    logText,
    close: async () => { clients.close(); await server.close(0) }
  }
}
