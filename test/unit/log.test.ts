import t from 'tap'
import { mkdtempSync, readFileSync, writeFileSync, chmodSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger, REDACT_PATHS } from '../../src/log.ts'

// The destination writes asynchronously; flush() can call back before a write queued by another
// logger on the same file lands, so wait (boundedly) for the text instead of trusting the callback.
async function fileContains (file: string, re: RegExp): Promise<string> {
  let text = ''
  for (let i = 0; i < 200; i++) {
    text = readFileSync(file, 'utf8')
    if (re.test(text)) break
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  return text
}

t.test('LogFile is appended to, created 0644, parent directories made', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-log-'))
  const file = join(dir, 'nested', 'skr.log')
  const log = createLogger('info', file)
  log.info({ kid: 'k1', access_token: 'secret-token-value' }, 'hello')
  const text = await fileContains(file, /"msg":"hello"/)
  t.match(text, /"msg":"hello"/)
  t.match(text, /"kid":"k1"/)
  t.notMatch(text, /secret-token-value/, 'redacted')
  t.equal(statSync(file).mode & 0o777 & ~process.umask(), 0o644 & ~process.umask())
  const again = createLogger('info', file)
  again.info('second')
  t.match(await fileContains(file, /second/), /hello[\s\S]*second/, 'appended, not truncated')
})

t.test('an unwritable LogFile is ERR_CONFIG_INVALID, not a crash', { skip: process.getuid?.() === 0 ? 'root can write anywhere; the directory case below still runs' : false }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-log-'))
  const file = join(dir, 'ro.log')
  writeFileSync(file, '')
  chmodSync(file, 0o444)
  t.throws(() => createLogger('info', file), { code: 'ERR_CONFIG_INVALID', message: /LogFile cannot be opened for appending \(EACCES\)/ })
})

t.test('a LogFile that is a directory is ERR_CONFIG_INVALID', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-log-'))
  t.throws(() => createLogger('info', dir), { code: 'ERR_CONFIG_INVALID', message: /LogFile cannot be opened for appending \(EISDIR\)/ })
})

t.test('redaction covers headers and JWK private members', async t => {
  for (const p of ['req.headers.authorization', 'access_token', '*.access_token', '*.d', '*.k', 'maaToken']) t.ok(REDACT_PATHS.includes(p), p)
})
