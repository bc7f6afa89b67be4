#!/usr/bin/env node
// The one skr binary. Runs the compiled dist/ when present (production image), else the
// TypeScript sources directly (Node >= 22.18 strips types natively).
import { existsSync } from 'node:fs'
import module from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'

// Cache compiled bytecode on disk (Node >= 22.1): start-up after the first run skips most of the
// parse and compile work of skr's dependencies. Best effort: an unwritable cache dir is ignored.
module.enableCompileCache?.()

const compiled = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const source = fileURLToPath(new URL('../src/main.ts', import.meta.url))
await import(pathToFileURL(existsSync(compiled) ? compiled : source).href)
