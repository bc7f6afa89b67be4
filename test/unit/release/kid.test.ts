import t from 'tap'
import { parseKid } from '../../../src/release/kid.ts'

t.test('name and name/version', async (t) => {
  t.same(parseKid('mykey'), { name: 'mykey', version: null })
  t.same(parseKid('my-Key-1'), { name: 'my-Key-1', version: null })
  t.same(parseKid('mykey/0123456789abcdef0123456789abcdef'), { name: 'mykey', version: '0123456789abcdef0123456789abcdef' })
  t.same(parseKid('k'.repeat(127)), { name: 'k'.repeat(127), version: null })
})

t.test('anything else is the caller\'s ERR_REQUEST_INVALID', async (t) => {
  const bad = ['', '/', 'a/', '/v', 'a/b/c', 'a b', 'a_b', 'a/v%2f', '../etc', 'a?x=1', 'k'.repeat(128), 'ключ', 'a/b#c']
  for (const kid of bad) {
    t.throws(() => parseKid(kid), { code: 'ERR_REQUEST_INVALID', statusCode: 400, message: /^kid must be a key name or name\/version/ }, JSON.stringify(kid))
  }
  const long = parseKid.bind(null, `${'x'.repeat(200)}/!`)
  t.throws(long, { message: /…/ }, 'a long kid is echoed truncated')
  t.throws(() => parseKid(undefined as unknown as string), TypeError)
})
