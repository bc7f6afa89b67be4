// `skr wrap` as the reference's tool is used (`skr -infile plaintext -keypath ./testkey000
// -outfile wrapped`): its file unwraps through the gRPC UnWrapKey as unwrap.sh sends it.
import t from 'tap'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run } from '../../../src/cli/wrap.ts'
import { decodeAnnotationPacket, decodeWrappedFile } from '../../../src/grpc/annotation.ts'
import { callUnary, fixtureKey, FIXTURE_DIR, startHarness, tempDir } from '../../doubles/grpc-fakes.ts'

async function runCaptured (argv: string[]): Promise<{ code: number; out: string }> {
  const chunks: string[] = []
  const original = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) }
  const capture = (chunk: string | Uint8Array): boolean => { chunks.push(String(chunk)); return true }
  process.stdout.write = capture as typeof process.stdout.write
  process.stderr.write = capture as typeof process.stderr.write
  try {
    return { code: await run(argv, {}), out: chunks.join('') }
  } finally {
    process.stdout.write = original.out
    process.stderr.write = original.err
  }
}

const keyPath = join(FIXTURE_DIR, 'testkey000')
const infile = join(FIXTURE_DIR, 'plaintext')

t.test('reference flags: writes the base64 packet (0644, no newline) that UnWrapKey opens', async t => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const outfile = join(dir, 'wrapped')
  const { code, out } = await runCaptured(['-infile', infile, '-keypath', keyPath, '-outfile', outfile])
  t.equal(code, 0, out)
  const text = await readFile(outfile, 'utf8')
  t.match(text, /^[A-Za-z0-9+/]+=*$/)
  t.equal((await stat(outfile)).mode & 0o777, 0o644)
  const packet = decodeAnnotationPacket(decodeWrappedFile(text))
  t.match(packet, { kid: 'testkey000', wrapType: 'rsa_3072', kmsEndpoint: 'accmhsm.managedhsm.azure.net' })

  const h = await startHarness()
  t.teardown(h.close)
  h.keyRelease.keys.set('testkey000', (await fixtureKey()).privateJwk)
  const aaa = Buffer.from('skr').toString('base64')
  const req = Buffer.from(`{"op":"keyunwrap","keywrapparams":{},"keyunwrapparams":{"dc":{"Parameters":{"attestation-agent":["${aaa}"]}},"annotation":"${text}"}}`)
  const res = await callUnary(h.clients.reference, 'UnWrapKey', { key_provider_key_wrap_protocol_input: req })
  const reply = JSON.parse((res.key_provider_key_wrap_protocol_output as Buffer).toString()) as { keyunwrapresults: { optsdata: string } }
  t.same(Buffer.from(reply.keyunwrapresults.optsdata, 'base64'), await readFile(infile))
})

t.test('kebab/double-dash spelling works too', async t => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const { code } = await runCaptured([`--infile=${infile}`, '--keypath', keyPath, '--outfile', join(dir, 'w')])
  t.equal(code, 0)
})

t.test('usage errors exit 2, wrap failures exit 1 with the error code', async t => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  t.equal((await runCaptured(['--help'])).code, 0)
  const missing = await runCaptured(['-infile', infile])
  t.equal(missing.code, 2)
  t.match(missing.out, /missing --keypath, --outfile/)
  t.equal((await runCaptured(['-bogus', 'x'])).code, 2)
  t.equal((await runCaptured(['-infile', infile, '-keypath', keyPath, '-outfile', join(dir, 'o'), 'extra'])).code, 2)
  const noInput = await runCaptured(['-infile', join(dir, 'nope'), '-keypath', keyPath, '-outfile', join(dir, 'o')])
  t.equal(noInput.code, 1)
  t.match(noInput.out, /cannot read input file .*nope \(ENOENT\)/)
  const noKey = await runCaptured(['-infile', infile, '-keypath', join(dir, 'nokey'), '-outfile', join(dir, 'o')])
  t.equal(noKey.code, 1)
  t.match(noKey.out, /ERR_WRAPPING_KEY_INVALID: key info file .*nokey-info\.json not found/)
  await writeFile(join(dir, 'big'), Buffer.alloc(400))
  const tooBig = await runCaptured(['-infile', join(dir, 'big'), '-keypath', keyPath, '-outfile', join(dir, 'o')])
  t.equal(tooBig.code, 1)
  t.match(tooBig.out, /ERR_REQUEST_INVALID: data to wrap is 400 bytes/)
  const badOut = await runCaptured(['-infile', infile, '-keypath', keyPath, '-outfile', join(dir, 'no', 'such', 'dir')])
  t.equal(badOut.code, 1)
  t.match(badOut.out, /cannot write/)
})

t.test('--json reports the output file, the kid and the size on stdout', async t => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const outfile = join(dir, 'wrapped')
  const { code, out } = await runCaptured(['-infile', infile, '-keypath', keyPath, '-outfile', outfile, '--json'])
  t.equal(code, 0)
  t.same(JSON.parse(out), { outfile, kid: 'testkey000', bytes: (await readFile(infile)).length })
})
