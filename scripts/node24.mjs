#!/usr/bin/env node
// Runs a command under a Node.js that can execute skr's TypeScript sources directly
// (type stripping on by default: Node >= 22.18 or >= 23.6). On an older Node (the build
// machines ship Node 20) it provisions Node 24 LTS from the npm registry into .cache/node24
// once and re-runs the command there, so `npm test` and `npm run demo` work on a fresh machine.
//
// Usage: node scripts/node24.mjs <file.ts|file.js|bin-name> [args...]
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function stripsTypes (version) {
  const [major, minor] = version.split('.').map(Number)
  return major >= 24 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18)
}

function node24 () {
  const prefix = join(root, '.cache', 'node24')
  const bin = join(prefix, 'node_modules', '.bin', 'node')
  if (!existsSync(bin)) {
    process.stderr.write(`skr: Node ${process.versions.node} cannot run TypeScript directly; installing Node 24 LTS into ${prefix}\n`)
    const r = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', prefix, 'node@24'],
      { stdio: ['ignore', 'inherit', 'inherit'] })
    if (r.status !== 0 || !existsSync(bin)) {
      process.stderr.write('skr: could not install node@24 from the npm registry\n')
      process.exit(1)
    }
  }
  return bin
}

const [cmd, ...args] = process.argv.slice(2)
if (!cmd) {
  process.stderr.write('usage: node scripts/node24.mjs <file|bin> [args...]\n')
  process.exit(2)
}

let nodeBin = process.execPath
const env = { ...process.env }
if (!stripsTypes(process.versions.node)) {
  nodeBin = node24()
  env.PATH = `${dirname(nodeBin)}${process.platform === 'win32' ? ';' : ':'}${env.PATH ?? ''}`
}

const localBin = join(root, 'node_modules', '.bin', cmd)
const isScript = /\.(c|m)?(t|j)s$/.test(cmd)
const argv = isScript ? [cmd, ...args] : [localBin, ...args]
if (!isScript && !existsSync(localBin)) {
  process.stderr.write(`skr: ${cmd} is not installed; run npm install first\n`)
  process.exit(1)
}
// Resolve the bin script's real path and run it with the chosen node (its shebang may name another node).
const r = spawnSync(nodeBin, argv, { stdio: 'inherit', env, cwd: process.cwd() })
if (r.error) {
  process.stderr.write(`skr: ${r.error.message}\n`)
  process.exit(1)
}
process.exit(r.status ?? (r.signal ? 1 : 0))
