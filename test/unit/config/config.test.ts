import t from 'tap'
import { loadConfig, isLoopbackHost, normaliseFingerprint } from '../../../src/config/config.ts'
import { NO_PROXY_SETTINGS, parseProxyEnv, proxyFor, type ProxyServer } from '../../../src/http/proxy.ts'

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64')

t.test('defaults match the reference sidecar', async t => {
  const c = loadConfig([], {})
  t.equal(c.port, 8080)
  t.equal(c.host, 'localhost')
  t.equal(c.serverType, 'http')
  t.equal(c.logLevel, 'warn', 'logrus default "warning" maps to pino warn')
  t.equal(c.logFile, null)
  t.equal(c.attestation, 'auto')
  t.equal(c.maa.apiVersion, '2020-10-01')
  t.equal(c.akv.apiVersion, '7.4')
  t.equal(c.azure.certcache.endpointType, null)
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.azure.certcache), 'deep-frozen')
})

t.test('reference flags in Go style, kebab-case, and env', async t => {
  const args = b64({ certcache: { endpoint_type: 'LocalTHIM', endpoint: '169.254.169.254/metadata/THIM/amd/certification' }, identity: { client_id: 'abc' }, maaconfig: { user_agent: 'ua/1' } })
  const c = loadConfig(['-port', '9000', '-base64=' + args, '-loglevel', 'debug', '--server-type', 'grpc', '-allowTestingMismatchedTCB'], {})
  t.equal(c.port, 9000)
  t.equal(c.azure.certcache.endpointType, 'LocalTHIM')
  t.equal(c.azure.identity.clientId, 'abc')
  t.equal(c.azure.maaconfig.userAgent, 'ua/1')
  t.equal(c.logLevel, 'debug')
  t.equal(c.serverType, 'grpc')
  t.equal(c.allowTestingMismatchedTcb, true)

  const e = loadConfig([], { Port: '7000', LogLevel: 'panic', LogFile: '/tmp/x.log', ServerType: 'both', SkrSideCarArgs: args })
  t.equal(e.port, 7000)
  t.equal(e.logLevel, 'fatal')
  t.equal(e.logFile, '/tmp/x.log')
  t.equal(e.serverType, 'both')
  t.equal(e.azure.identity.clientId, 'abc')
})

t.test('flags win over env; env wins over skr.sh positionals', async t => {
  t.equal(loadConfig(['-port', '1'], { Port: '2' }).port, 1)
  t.equal(loadConfig(['', '3'], { Port: '2' }).port, 2)
  t.equal(loadConfig(['', '3'], {}).port, 3)
  t.equal(loadConfig(['', ''], {}).port, 8080, 'an empty $2 is ignored, as skr.sh does')
  const args = b64({ identity: { client_id: 'pos' } })
  t.equal(loadConfig([args], {}).azure.identity.clientId, 'pos')
})

t.test('raw JSON SkrSideCarArgs is accepted', async t => {
  const c = loadConfig([], { SkrSideCarArgs: '{"certcache":{"endpoint_type":"amd","endpoint":"kdsintf.amd.com/vcek/v1","tee_type":"Milan"}}' })
  t.equal(c.azure.certcache.endpointType, 'AMD')
  t.equal(c.azure.certcache.teeType, 'Milan')
})

t.test('bad values stop start-up naming the key, never the value', async t => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['-port', '99999'], {}, /Port must be a TCP port/],
    [[], { Port: 'eighty' }, /Port must be a TCP port/],
    [[], { LogLevel: 'verbose' }, /LogLevel must be one of/],
    [[], { ServerType: 'soap' }, /ServerType must be/],
    [[], { SKR_ATTESTATION: 'tdx' }, /SKR_ATTESTATION must be/],
    [[], { SkrSideCarArgs: 'not base64 at all!' }, /SkrSideCarArgs is neither base64 nor JSON/],
    [[], { SkrSideCarArgs: b64({ cert_cache: {} }) }, /unknown key "cert_cache"/],
    [[], { SkrSideCarArgs: b64({ certcache: { endpoint_type: 'KDS' } }) }, /endpoint_type must be AMD, AzCache or LocalTHIM/],
    [[], { SkrSideCarArgs: b64({ identity: { client_id: 42 } }) }, /identity.client_id must be a string/],
    [[], { SkrSideCarArgs: b64({ identity: { clientid: 'x' } }) }, /identity has unknown key "clientid"/],
    [[], { SkrSideCarArgs: b64({ maaconfig: { useragent: 'x' } }) }, /maaconfig has unknown key "useragent"/],
    [[], { SkrSideCarArgs: b64([1, 2]) }, /must be a JSON object/],
    [[], { SKR_HOST: '0.0.0.0' }, /not a loopback address/],
    [[], { SKR_TRUSTED_ARK_FINGERPRINTS: 'abc' }, /SKR_TRUSTED_ARK_FINGERPRINTS/],
    [['-nope'], {}, /unknown flag -nope/],
    [['-port'], {}, /needs a value/],
    [[], { AllowTestingMismatchedTCB: 'maybe' }, /AllowTestingMismatchedTCB must be true or false/]
  ]
  for (const [argv, env, re] of cases) {
    t.throws(() => loadConfig(argv, env), { code: 'ERR_CONFIG_INVALID', message: re }, `${argv.join(' ')} ${JSON.stringify(env)}`)
  }
  try {
    loadConfig([], { SkrSideCarArgs: b64({ identity: { client_id: 42 } }), Port: 'secret-value-x' })
    t.fail('should throw')
  } catch (err) {
    t.notMatch((err as Error).message, /secret-value-x/, 'value not echoed')
    t.match((err as Error).message, /Port.*identity|identity.*Port/, 'every problem listed')
  }
})

t.test('non-loopback binding needs the explicit opt-in', async t => {
  const c = loadConfig(['--host', '0.0.0.0', '--allow-non-loopback'], {})
  t.equal(c.host, '0.0.0.0')
  t.equal(c.allowNonLoopback, true)
  t.ok(isLoopbackHost('127.0.0.5'))
  t.ok(isLoopbackHost('[::1]'))
  t.notOk(isLoopbackHost('10.0.0.1'))
  t.notOk(isLoopbackHost('localhost.evil.com'))
})

t.test('fingerprint normalisation', async t => {
  const hex = '69D063B45344D26A2E94E1F4210DE49EF555308287D4C174445C95639A540BCD'
  t.equal(normaliseFingerprint(hex.toLowerCase()), hex.match(/../g)!.join(':'))
  const c = loadConfig([], { SKR_TRUSTED_ARK_FINGERPRINTS: `${hex}, ${hex.match(/../g)!.join(':')}` })
  t.same(c.trustedArkFingerprints, [hex.match(/../g)!.join(':'), hex.match(/../g)!.join(':')])
})

t.test('performance settings', async t => {
  const d = loadConfig([], {})
  t.same(d.performance, { attestationTtlSeconds: 300, keyPoolSize: 4, maxInFlight: 256, maxInFlightPerDestination: 64, maxEventLoopDelayMs: 1000, maxHeapUsedBytes: 0, maxRssBytes: 536870912, shutdownGraceMs: 10000 })
  t.equal(d.requestTimeoutMs, 15_000, 'a hung upstream ends in 504 within 15 s by default')
  t.equal(loadConfig([], { SKR_MAX_INFLIGHT_PER_DESTINATION: '3' }).performance.maxInFlightPerDestination, 3)
  t.throws(() => loadConfig([], { SKR_MAX_INFLIGHT_PER_DESTINATION: '0' }), { message: /SKR_MAX_INFLIGHT_PER_DESTINATION must be at least 1/ })
  const c = loadConfig([], { SKR_ATTESTATION_TTL_SECONDS: '0', SKR_KEY_POOL_SIZE: '0', SKR_MAX_INFLIGHT: '8' })
  t.match(c.performance, { attestationTtlSeconds: 0, keyPoolSize: 0, maxInFlight: 8 })
  t.throws(() => loadConfig([], { SKR_ATTESTATION_TTL_SECONDS: '-1' }), { code: 'ERR_CONFIG_INVALID', message: /SKR_ATTESTATION_TTL_SECONDS must be a whole number from 0 to 28800/ })
  t.throws(() => loadConfig([], { SKR_ATTESTATION_TTL_SECONDS: '99999' }), { message: /SKR_ATTESTATION_TTL_SECONDS/ })
  t.throws(() => loadConfig([], { SKR_KEY_POOL_SIZE: '1.5' }), { message: /SKR_KEY_POOL_SIZE/ })
  t.throws(() => loadConfig([], { SKR_RELEASE_ENC: 'AES' }), { message: /SKR_RELEASE_ENC must be/ })
  t.equal(loadConfig([], { SKR_RELEASE_ENC: 'RSA_AES_KEY_WRAP_256' }).akv.enc, 'RSA_AES_KEY_WRAP_256')
})

t.test('every kebab-case alias in the settings reaches the same setting', async t => {
  const args = b64({ identity: { client_id: 'kebab' } })
  const c = loadConfig(['--skr-sidecar-args', args, '--log-level=info', '--log-file', '/tmp/k.log', '--server-type', 'both',
    '--allow-testing-mismatched-tcb', '--grpc-port', '50001', '--unix-socket', '/run/skr.sock', '--allow-non-loopback', '--host', '0.0.0.0'], {})
  t.equal(c.azure.identity.clientId, 'kebab')
  t.equal(c.logLevel, 'info')
  t.equal(c.logFile, '/tmp/k.log')
  t.equal(c.serverType, 'both')
  t.equal(c.allowTestingMismatchedTcb, true)
  t.equal(c.grpcPort, 50001)
  t.equal(c.unixSocket, '/run/skr.sock')
  t.equal(c.allowNonLoopback, true)
  t.throws(() => loadConfig(['--grpc-port', 'x'], {}), { code: 'ERR_CONFIG_INVALID', message: /SKR_GRPC_PORT must be a TCP port/ })
})

t.test('environment-only settings land in the frozen config; blank values are ignored', async t => {
  const c = loadConfig([], {
    SKR_TSM_ROOT: '/tmp/tsm',
    SKR_SIMULATED_CACHE_DIR: '/tmp/cache',
    SKR_SIMULATED_VCEK_KEY: 'KEY',
    SKR_SIMULATED_CERT_CHAIN: 'CHAIN',
    SKR_EXTRA_CA_CERTS: '/tmp/ca.pem',
    SKR_MAA_API_VERSION: '2022-08-01',
    SKR_MAA_VERIFY_TOKEN: 'false',
    SKR_AKV_API_VERSION: '7.5',
    SKR_REQUEST_TIMEOUT_MS: '1500',
    SKR_UNIX_SOCKET: '/run/s.sock',
    SKR_MAX_EVENT_LOOP_DELAY_MS: '0',
    SKR_MAX_HEAP_USED_BYTES: '1024',
    SKR_MAX_RSS_BYTES: '0',
    SKR_SHUTDOWN_GRACE_MS: '5',
    UVM_SECURITY_CONTEXT_DIR: '/sc',
    UVM_SECURITY_POLICY: 'cG9s',
    UVM_HOST_AMD_CERTIFICATE: 'Y2VydA==',
    UVM_REFERENCE_INFO: 'cmVm',
    AZURE_CLIENT_ID: 'cid',
    AZURE_TENANT_ID: 'tid',
    AZURE_FEDERATED_TOKEN_FILE: '/var/run/token',
    AZURE_AUTHORITY_HOST: 'https://login.example'
  })
  t.equal(c.tsmRoot, '/tmp/tsm')
  t.same(c.simulated, { cacheDir: '/tmp/cache', vcekKeyPem: 'KEY', certChainPem: 'CHAIN' })
  t.equal(c.extraCaFile, '/tmp/ca.pem')
  t.same(c.maa, { apiVersion: '2022-08-01', verifyToken: false })
  t.equal(c.akv.apiVersion, '7.5')
  t.equal(c.requestTimeoutMs, 1500)
  t.equal(c.unixSocket, '/run/s.sock')
  t.match(c.performance, { maxEventLoopDelayMs: 0, maxHeapUsedBytes: 1024, maxRssBytes: 0, shutdownGraceMs: 5 })
  t.same(c.env, {
    uvmSecurityContextDir: '/sc',
    uvmSecurityPolicy: 'cG9s',
    uvmHostAmdCertificate: 'Y2VydA==',
    uvmReferenceInfo: 'cmVm',
    azureClientId: 'cid',
    azureTenantId: 'tid',
    azureFederatedTokenFile: '/var/run/token',
    azureAuthorityHost: 'https://login.example'
  })
  const blank = loadConfig([], { Port: ' ', SKR_TSM_ROOT: '', SKR_MAA_VERIFY_TOKEN: '', AZURE_CLIENT_ID: '  ', SKR_KEY_POOL_SIZE: '' })
  t.equal(blank.port, 8080)
  t.equal(blank.tsmRoot, '/sys/kernel/config/tsm/report')
  t.equal(blank.maa.verifyToken, true)
  t.equal(blank.env.azureClientId, null)
  t.equal(blank.performance.keyPoolSize, 4)
  t.throws(() => loadConfig([], { SKR_REQUEST_TIMEOUT_MS: '0' }), { message: /SKR_REQUEST_TIMEOUT_MS must be a positive number/ })
  t.throws(() => loadConfig([], { SKR_MAA_VERIFY_TOKEN: 'perhaps' }), { message: /SKR_MAA_VERIFY_TOKEN must be true or false/ })
  t.throws(() => loadConfig([], { SKR_ALLOW_NON_LOOPBACK: 'perhaps' }), { message: /SKR_ALLOW_NON_LOOPBACK must be true or false/ })
})

t.test('egress proxy: parsed from the env loadConfig is given, as parseProxyEnv parses it, frozen, never a config error', async t => {
  const env = { HTTPS_PROXY: 'http://skr-user:s3cr3t@proxy.corp:3128', http_proxy: 'proxy.corp:8080', NO_PROXY: '.internal.example, 10.0.0.0/8,vault.example:8443' }
  const c = loadConfig([], env)
  t.same(c.proxy, parseProxyEnv(env), 'the same settings parseProxyEnv gives for that env')
  const https = c.proxy.https as ProxyServer
  t.equal(https.kind, 'proxy')
  t.equal(https.variable, 'HTTPS_PROXY')
  t.equal(https.origin, 'http://proxy.corp:3128')
  t.equal(https.authorization(), `Basic ${Buffer.from('skr-user:s3cr3t').toString('base64')}`)
  t.match(c.proxy.http, { kind: 'proxy', variable: 'http_proxy', origin: 'http://proxy.corp:8080' })
  t.equal(c.proxy.noProxy.length, 3)
  t.equal(proxyFor(c.proxy, new URL('https://myvault.vault.azure.net/keys/k')), https)
  t.equal(proxyFor(c.proxy, new URL('https://akv.internal.example/')), null, 'NO_PROXY suffix')
  t.equal(proxyFor(c.proxy, new URL('https://10.1.2.3/')), null, 'NO_PROXY CIDR')
  t.equal(proxyFor(c.proxy, new URL('https://vault.example:8443/')), null, 'NO_PROXY host:port')
  t.ok(Object.isFrozen(c.proxy) && Object.isFrozen(c.proxy.noProxy) && c.proxy.noProxy.every(Object.isFrozen), 'frozen with the rest')
  t.notMatch(JSON.stringify(c), /s3cr3t|skr-user/, 'printing the config never shows the proxy credentials')

  t.same(loadConfig([], {}).proxy, NO_PROXY_SETTINGS, 'nothing set: no proxy (process.env is not consulted)')
  const unusable = loadConfig([], { HTTPS_PROXY: 'socks5://proxy.corp:1080' }).proxy.https
  t.match(unusable, { kind: 'unusable', variable: 'HTTPS_PROXY' }, 'an unusable value fails the calls it carries, not start-up')
})

t.test('listener settings: defaults, overrides, and what Node would refuse', async t => {
  t.same(loadConfig([], {}).listener, { serverNames: [], idleConnectionTimeoutMs: 5000, headersTimeoutMs: 10000, receiveTimeoutMs: 30000, keepAliveTimeoutMs: 5000, maxConnections: null })
  const c = loadConfig([], { SKR_IDLE_CONNECTION_TIMEOUT_MS: '100', SKR_HEADERS_TIMEOUT_MS: '200', SKR_RECEIVE_TIMEOUT_MS: '300', SKR_KEEP_ALIVE_TIMEOUT_MS: '400', SKR_MAX_CONNECTIONS: '50', SKR_SERVER_NAMES: 'Skr.Example., b.example' })
  t.same(c.listener, { serverNames: ['skr.example', 'b.example'], idleConnectionTimeoutMs: 100, headersTimeoutMs: 200, receiveTimeoutMs: 300, keepAliveTimeoutMs: 400, maxConnections: 50 })
  t.equal(loadConfig(['--server-names', 'x.example'], {}).listener.serverNames[0], 'x.example', 'a flag too')
  t.throws(() => loadConfig([], { SKR_HEADERS_TIMEOUT_MS: '40000' }), { message: /SKR_HEADERS_TIMEOUT_MS must not exceed SKR_RECEIVE_TIMEOUT_MS/ })
  t.throws(() => loadConfig([], { SKR_KEEP_ALIVE_TIMEOUT_MS: '0' }), { message: /SKR_KEEP_ALIVE_TIMEOUT_MS must be at least 1 ms/ })
  t.throws(() => loadConfig([], { SKR_MAX_CONNECTIONS: '0' }), { message: /SKR_MAX_CONNECTIONS must be at least 1/ })
  t.throws(() => loadConfig([], { SKR_IDLE_CONNECTION_TIMEOUT_MS: 'soon' }), { message: /SKR_IDLE_CONNECTION_TIMEOUT_MS must be a whole number/ })
})

t.test('SKR_ALLOWED_HOSTS: default, entries, * and refusals that never echo the value', async t => {
  t.equal(loadConfig([], {}).allowedHosts.source, 'default')
  const c = loadConfig(['--allowed-hosts', 'a.example:8443, .corp.example'], {})
  t.same(c.allowedHosts, { any: false, source: 'configured', rules: [{ host: 'a.example', suffix: false, port: 8443, role: null }, { host: '.corp.example', suffix: true, port: null, role: null }] })
  t.ok(Object.isFrozen(c.allowedHosts.rules[0]))
  t.equal(loadConfig([], { SKR_ALLOWED_HOSTS: '*' }).allowedHosts.any, true)
  try {
    loadConfig([], { SKR_ALLOWED_HOSTS: 'ok.example,secret_value.example' })
    t.fail('should throw')
  } catch (err) {
    t.match(err, { code: 'ERR_CONFIG_INVALID', message: /SKR_ALLOWED_HOSTS entry 2 is not host, host:port, \.suffix or \*: it has an invalid host name/ })
    t.notMatch((err as Error).message, /secret_value/)
  }
})
