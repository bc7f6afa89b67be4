import t from 'tap'
import { parseFlags, parseBool, formatFlags, type FlagSpecs } from '../../../src/config/flags.ts'

const specs: FlagSpecs = {
  port: { type: 'string', help: 'p' },
  server_type: { type: 'string', aliases: ['server-type'], help: 's' },
  verbose: { type: 'boolean', help: 'v' }
}

t.test('Go flag forms', async t => {
  t.same(parseFlags(['-port', '1', '--server-type=grpc', '-verbose', 'x'], specs), { values: { port: '1', server_type: 'grpc', verbose: 'true' }, positionals: ['x'] })
  t.same(parseFlags(['--port=2', '-verbose=false', '--', '-port'], specs), { values: { port: '2', verbose: 'false' }, positionals: ['-port'] })
  t.same(parseFlags(['-SERVER_TYPE', 'http'], specs).values, { server_type: 'http' }, 'case-insensitive')
  t.same(parseFlags(['-port='], specs).values, { port: '' }, 'explicit empty value')
})

t.test('errors', async t => {
  t.throws(() => parseFlags(['-x'], specs), { name: 'FlagError', message: 'unknown flag -x' })
  t.throws(() => parseFlags(['-port'], specs), { message: /needs a value/ })
  t.throws(() => parseFlags(['-verbose=maybe'], specs), { message: /true or false/ })
})

t.test('parseBool and help', async t => {
  t.equal(parseBool('TRUE'), true)
  t.equal(parseBool('0'), false)
  t.equal(parseBool('maybe'), null)
  t.match(formatFlags(specs), /--server_type, --server-type <value>/)
})
