// scripts/bundle.mjs rewrites the Azure SDK's `typeof FormData` checks so that a request whose
// body is not a FormData never reads globalThis.FormData (whose first read makes Node load its own
// copy of undici, ~16 MB). Checked on the SDK's own file, for the same answers and for the reads.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { guardFormDataChecks } from '../../../scripts/bundle.mjs'

const require = createRequire(import.meta.url)
const policyFile = require.resolve('@typespec/ts-http-runtime/package.json').replace(/package\.json$/, 'dist/esm/formData.js')
const original = readFileSync(policyFile, 'utf8')

type Convert = (body: unknown) => Record<string, unknown[]> | undefined

async function load (text: string): Promise<Convert> {
  const mod = await import(`data:text/javascript,${encodeURIComponent(text)}`) as { convertBodyToFormDataMap: Convert }
  return mod.convertBodyToFormDataMap
}

/** Runs `fn` with globalThis.FormData behind a getter that counts its reads. */
async function countingReads<T> (fn: () => Promise<T> | T): Promise<{ result: T, reads: number }> {
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, 'FormData')
  const real = globalThis.FormData
  let reads = 0
  Object.defineProperty(globalThis, 'FormData', { configurable: true, get () { reads++; return real } })
  try {
    return { result: await fn(), reads }
  } finally {
    if (descriptor !== undefined) Object.defineProperty(globalThis, 'FormData', descriptor)
  }
}

t.test('the SDK\'s policy file has the check, and the rewrite guards it', async t => {
  t.match(original, /typeof FormData !== "undefined" && body instanceof FormData/, 'the check bundle.mjs expects is in the installed SDK')
  const guarded = guardFormDataChecks(original)
  t.match(guarded, /body\?\.\[Symbol\.toStringTag\] === "FormData" && typeof FormData !== "undefined" && body instanceof FormData/)
  t.equal(guardFormDataChecks('const x = 1'), 'const x = 1', 'other text is left as it is')
})

t.test('same answers; the global is read only for a FormData', async t => {
  const before = await load(original)
  const after = await load(guardFormDataChecks(original))
  const form = new FormData()
  form.append('a', '1')
  form.append('a', '2')
  form.append('b', '3')
  for (const body of ['grant_type=client_credentials', new Uint8Array([1, 2]), undefined, null, { a: 1 }, form]) {
    t.same(after(body), before(body), `the same result for ${Object.prototype.toString.call(body)}`)
  }
  t.same(after(form), { a: ['1', '2'], b: ['3'] })
  const nonForm = await countingReads(() => after('resource=https%3A%2F%2Fvault.azure.net'))
  t.equal(nonForm.reads, 0, 'a string body: FormData is not read')
  t.equal((await countingReads(() => before('x'))).reads, 2, 'where the SDK as shipped reads it (twice) for every body')
  t.equal((await countingReads(() => after(form))).reads, 2, 'a FormData body: read, as before')
})
