// The AKV emulator's fault knobs (src/emulator/akv-faults.ts): `hold` keeps each release waiting
// until the test lets it go (test/e2e/shutdown.test.ts relies on it), and a rejected hold lets it go too.
import t from 'tap'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { faultAnswer, type AkvFaults } from '../../../src/emulator/akv-faults.ts'

t.test('hold: the answer waits for the promise, then the other faults apply', async (t) => {
  let go = (): void => {}
  const faults: AkvFaults = { hold: new Promise<void>(resolve => { go = resolve }), status: 503 }
  let settled = false
  const answer = faultAnswer(faults, 'k').then(a => { settled = true; return a })
  for (let i = 0; i < 5; i++) await nextTurn()
  t.notOk(settled, 'still waiting while the hold is pending')
  go()
  t.match(await answer, { status: 503 }, 'then the status fault answers')
})

t.test('a rejected hold lets the release go on', async (t) => {
  const faults: AkvFaults = { hold: Promise.reject(new Error('cancelled')) }
  t.equal(await faultAnswer(faults, 'k'), null)
})
