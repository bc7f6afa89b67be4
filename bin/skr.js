#!/usr/bin/env node
// The one skr binary. Runs the compiled dist/ when present (production image), else the
// TypeScript sources directly (Node >= 22.18 strips types natively).
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

const compiled = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const source = fileURLToPath(new URL('../src/main.ts', import.meta.url))
await import(pathToFileURL(existsSync(compiled) ? compiled : source).href)
