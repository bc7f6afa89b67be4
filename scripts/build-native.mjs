#!/usr/bin/env node
// npm "install" hook: build the SEV-SNP ioctl addon with node-gyp on Linux. A failed or
// skipped build is not fatal: skr loads the addon lazily and answers attestation calls with
// ERR_SNP_DEVICE_UNAVAILABLE (and a hint to run `npm run build:native`) when it is missing.
import { spawnSync } from 'node:child_process'

if (process.platform !== 'linux') {
  console.warn('skr: not Linux; skipping the SEV-SNP addon (the simulated backend still works)')
  process.exit(0)
}
if (process.env.SKR_SKIP_NATIVE_BUILD === '1') {
  console.warn('skr: SKR_SKIP_NATIVE_BUILD=1; skipping the SEV-SNP addon build')
  process.exit(0)
}
const r = spawnSync('node-gyp', ['rebuild'], { stdio: 'inherit', shell: process.platform === 'win32' })
if (r.status !== 0) {
  console.warn('skr: building the SEV-SNP addon failed; hardware attestation will be unavailable until `npm run build:native` succeeds')
}
process.exit(0)
