// The allowed import directions of src/ (docs/architecture.md), checked by `npm run lint`.
// Layers, lowest first; a module may import its own layer and the ones below, never above:
//   core      errors.ts + errors/, public-error.ts, log.ts, package-root.ts, encoding/, text/, util/, observability/
//   formats   snp/, certs/, uvm/, akv/, maa/ (pure parsers and checks, with thin device and network edges)
//   io        http/, identity/, collateral/, simulated/
//   domain    attest/, release/, service/
//   config    config/ (parsed once, at the top; domain code receives narrow options, never Config)
//   delivery  server/, grpc/, ops/, cli/ (cli may use the rest), emulator/ (test doubles)
//   root      app/ (the one composition root), main.ts, healthcheck-main.ts
const DOMAIN = '^src/(errors(\\.ts)?|public-error\\.ts|log\\.ts|package-root\\.ts|encoding|text|util|observability|snp|certs|uvm|akv|maa|http|identity|collateral|simulated|attest|release|skr|service)(/|$)'
const FORMATS = '^src/(encoding|text|util|snp/(abi|report-fields|reserved|report-data|tcb|tsm-errors)\\.ts|certs|uvm/(cose-sign1|reference-info|transparency-receipt|transparency-keys)\\.ts|akv/(host-match|jwk|jws-signature|key-hsm|release-jws|release-policy|release-policy-evaluate|unwrap|wrap)\\.ts|maa/(request|token)\\.ts)'
const IO_MODULES = '^(node:)?(fs|fs/promises|http|https|http2|tls|dgram|child_process|worker_threads|undici)$'

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'import circles, type-only ones included, make load order and layering unreadable', from: {}, to: { circular: true } },
    { name: 'domain-not-to-outer', severity: 'error', comment: 'domain code never reaches the configuration, the delivery layers, the emulators or the composition root', from: { path: DOMAIN }, to: { path: '^src/(config|server|grpc|cli|ops|emulator|app)/|^src/(main|healthcheck-main)\\.ts$' } },
    { name: 'config-only-down', severity: 'error', comment: 'configuration is parsed from the pure parts of the layers below it', from: { path: '^src/config/' }, to: { path: '^src/(server|grpc|cli|ops|emulator|app|attest|release|service)/' } },
    { name: 'transports-apart', severity: 'error', comment: 'the HTTP and gRPC front ends share the domain, not each other', from: { path: '^src/grpc/' }, to: { path: '^src/server/' } },
    { name: 'transports-apart-back', severity: 'error', from: { path: '^src/server/' }, to: { path: '^src/grpc/' } },
    { name: 'emulator-is-a-double', severity: 'error', comment: 'only the CLI (demo, emulate) starts the emulators; the product never depends on them', from: { path: '^src/', pathNot: '^src/(cli|emulator)/' }, to: { path: '^src/emulator/' } },
    { name: 'formats-are-pure', severity: 'error', comment: 'format and check modules do no I/O', from: { path: FORMATS }, to: { path: IO_MODULES, dependencyTypesNot: ['type-only'] } },
    { name: 'formats-no-network-client', severity: 'error', from: { path: FORMATS }, to: { path: '^src/(http|identity|collateral)/', dependencyTypesNot: ['type-only'] } }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.cts', '.mts', '.js', '.cjs', '.mjs'] },
    exclude: { path: '\\.d\\.cts$' }
  }
}
