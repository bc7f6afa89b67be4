import t from 'tap'
import { EXIT, helpText, parseCommandFlags, runOperatorCommand, takeRepeated, toJson, wantsHelp, type CommandIo } from '../../../src/cli/operator-kit.ts'
import { ConfigInvalid, KeyNotFound } from '../../../src/errors.ts'

t.test('takeRepeated collects every form of a repeatable flag, in order', async t => {
  t.same(takeRepeated(['--a', '1', '-A=2', '--keep', 'x', '-a', '3', '--', '--a', '4'], ['a']), {
    rest: ['--keep', 'x', '--', '--a', '4'],
    values: { a: ['1', '2', '3'] }
  })
  t.same(takeRepeated(['--a='], ['a', 'b']).values, { a: [''], b: [] })
  t.throws(() => takeRepeated(['--a'], ['a']), { code: 'ERR_CONFIG_INVALID', message: 'flag --a needs a value' })
})

t.test('help, flags and JSON', async t => {
  t.ok(wantsHelp(['x', '-help']))
  t.notOk(wantsHelp(['--', '--help']))
  t.match(helpText('skr x', 'does x', { yes: { type: 'boolean', help: 'why' } }, ['note']), /usage: skr x\n\ndoes x\n\nflags:\n {2}--yes\n {6}why\n\nnote\n/)
  t.throws(() => parseCommandFlags(['--nope'], {}), { code: 'ERR_CONFIG_INVALID' })
  t.equal(toJson({ n: 255n }), '{\n  "n": "0xff"\n}\n')
})

t.test('runOperatorCommand: one line on stderr, exit 2 for usage, 1 otherwise', async t => {
  const lines: string[] = []
  const io: CommandIo = { stdout: () => {}, stderr: (s) => { lines.push(s) } }
  t.equal(await runOperatorCommand('x', io, async () => 0), EXIT.ok)
  t.equal(await runOperatorCommand('x', io, async () => { throw new ConfigInvalid('bad\n  flag') }), EXIT.usage)
  t.equal(await runOperatorCommand('x', io, async () => { throw new KeyNotFound('gone') }), EXIT.failed)
  t.equal(await runOperatorCommand('x', io, async () => { throw new Error('boom') }), EXIT.failed)
  t.equal(await runOperatorCommand('x', io, async () => { throw 'text' as unknown as Error }), EXIT.failed)
  t.same(lines, ['skr x: ERR_CONFIG_INVALID: bad flag\n', 'skr x: ERR_KEY_NOT_FOUND: gone\n', 'skr x: ERR_INTERNAL: boom\n', 'skr x: ERR_INTERNAL: text\n'])
})

t.test('runOperatorCommand: a message cannot drive the terminal (ESC, C1 CSI, U+2028, bidi override)', async t => {
  const lines: string[] = []
  const io: CommandIo = { stdout: () => {}, stderr: (s) => { lines.push(s) } }
  await runOperatorCommand('x', io, async () => { throw new Error('upstream said \u001b[2K\u009b1Aforged\u2028line \u202eevil\t') })
  t.same(lines, ['skr x: ERR_INTERNAL: upstream said  [2K 1Aforged line  evil\n'])
})
