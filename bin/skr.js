#!/usr/bin/env node
// The one skr binary. Runs the compiled dist/ when present (production image), else the
// TypeScript sources directly (Node >= 22.18 strips types natively).
import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import module from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'

// node:fs through process.getBuiltinModule, not an ES module import: importing node:fs builds its
// namespace, which loads fs/promises and streams (~3 MB of RSS in every `skr healthcheck` run).
const { existsSync } = process.getBuiltinModule('node:fs')

// Cache compiled bytecode on disk (Node >= 22.1): start-up after the first run skips most of the
// parse and compile work of skr's dependencies. Best effort: an unwritable cache dir is ignored.
// NODE_COMPILE_CACHE (the image's read-only cache) wins; otherwise the cache lives under the
// user's home, not Node's default in the shared os.tmpdir(): V8 runs cached code as found, so a
// cache another local user can write is a way to run code inside a process that releases keys.
// No usable home (HOME empty or relative, or an unnamed uid without HOME): no cache, rather than a
// crash (os.homedir() throws) or a cache relative to the working directory.
if (process.env.NODE_COMPILE_CACHE === undefined) {
  let home = ''
  try { home = homedir() } catch { /* an unnamed uid without HOME */ }
  if (isAbsolute(home)) module.enableCompileCache?.(join(home, '.cache', 'skr', 'compile-cache'))
}

const compiled = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const source = fileURLToPath(new URL('../src/main.ts', import.meta.url))
// The bundle's entry for exec probes: `skr healthcheck` loads nothing else (src/healthcheck-main.ts).
const probe = fileURLToPath(new URL('../dist/healthcheck.js', import.meta.url))
const entry = process.argv[2] === 'healthcheck' && existsSync(probe) ? probe : existsSync(compiled) ? compiled : source
await import(pathToFileURL(entry).href)
