import t from 'tap'
import crypto from 'node:crypto'
import { createKeyPool } from '../../../src/release/key-pool.ts'
import type { WrappingKey } from '../../../src/release/wrapping-key.ts'

// One real RSA key, shared: the pool never looks inside its keys, so a counter in `kid` is enough
// to tell them apart without paying for a generation per test key.
const privateKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey

interface Gen {
  generate: () => Promise<WrappingKey>
  /** Generations started. */
  started: () => number
  /** Settles the oldest pending generation (with a key, or with `error`). */
  settle: (error?: Error) => void
  pending: () => number
}

/** A generator whose generations finish only when the test says so. */
function manualGenerator (): Gen {
  let n = 0
  const waiting: Array<{ resolve: (k: WrappingKey) => void, reject: (e: unknown) => void, id: number }> = []
  return {
    generate: async () => await new Promise<WrappingKey>((resolve, reject) => { waiting.push({ resolve, reject, id: ++n }) }),
    started: () => n,
    settle: (error) => {
      const next = waiting.shift()
      if (next === undefined) throw new Error('no generation pending')
      if (error !== undefined) next.reject(error)
      else next.resolve({ privateKey, jwks: Buffer.from(`{"keys":[${next.id}]}`), kid: `key-${next.id}` })
    },
    pending: () => waiting.length
  }
}

const tick = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

async function settleAll (gen: Gen): Promise<void> {
  while (gen.pending() > 0) {
    gen.settle()
    await tick()
  }
}

t.test('fills to size in the background, at most `concurrency` at a time; depth is reported', async (t) => {
  const gen = manualGenerator()
  const depths: number[] = []
  const names = new Set<string>()
  const pool = createKeyPool({ size: 3, concurrency: 2, generate: gen.generate, metrics: { setPoolDepth: (name, d) => { names.add(name); depths.push(d) } } })
  t.teardown(pool.close)
  t.equal(gen.started(), 2, 'two generations at once')
  await settleAll(gen)
  t.equal(pool.depth(), 3)
  t.equal(gen.started(), 3, 'no more than size')
  t.same(depths, [0, 1, 2, 3])
  t.same([...names], ['wrapping_key'])
})

t.test('take from a full pool does not wait for a generation; the pool refills after use', async (t) => {
  const gen = manualGenerator()
  const pool = createKeyPool({ size: 2, generate: gen.generate })
  t.teardown(pool.close)
  await settleAll(gen)
  t.equal(pool.depth(), 2)
  const before = gen.started()
  const a = await pool.take()
  const b = await pool.take()
  t.not(a.kid, b.kid, 'each key is handed out once')
  t.equal(pool.depth(), 0)
  t.equal(gen.started(), before + 2, 'a replacement per key taken, started in the background')
  await settleAll(gen)
  t.equal(pool.depth(), 2, 'refilled to size')
})

t.test('take from an empty pool awaits the next generation; waiters are served in order', async (t) => {
  const gen = manualGenerator()
  const pool = createKeyPool({ size: 1, generate: gen.generate })
  t.teardown(pool.close)
  const first = pool.take()
  const second = pool.take()
  await tick()
  gen.settle()
  gen.settle()
  t.equal((await first).kid, 'key-1')
  t.equal((await second).kid, 'key-2')
  await settleAll(gen)
  t.equal(pool.depth(), 1)
})

t.test('a failed generation rejects the oldest waiter, pauses refills, and does not wedge the pool', async (t) => {
  const gen = manualGenerator()
  const pool = createKeyPool({ size: 2, concurrency: 1, generate: gen.generate })
  t.teardown(pool.close)
  const waiter = pool.take()
  gen.settle(new Error('entropy exhausted'))
  await t.rejects(waiter, { message: 'entropy exhausted' }, 'the waiter learns why')

  // Background failures with nobody waiting pause refills instead of retrying in a loop.
  await tick()
  const started = gen.started()
  gen.settle(new Error('still broken'))
  await tick()
  t.equal(gen.started(), started, 'no retry until someone takes a key')
  t.equal(gen.pending(), 0)

  const later = pool.take()
  t.ok(gen.pending() >= 1, 'take() restarts generation')
  gen.settle()
  t.equal((await later).kid.startsWith('key-'), true, 'the pool works again')
  await settleAll(gen)
  t.equal(pool.depth(), 2)
})

t.test('a waiter that gives up leaves the queue; the key goes to the pool', async (t) => {
  const gen = manualGenerator()
  const pool = createKeyPool({ size: 1, concurrency: 1, generate: gen.generate })
  t.teardown(pool.close)
  const controller = new AbortController()
  const leaving = pool.take(controller.signal)
  controller.abort(new Error('deadline'))
  await t.rejects(leaving, { message: 'deadline' })
  await settleAll(gen)
  t.equal(pool.depth(), 1)
  await t.rejects(pool.take(AbortSignal.abort(new Error('gone'))), { message: 'gone' }, 'an aborted caller gets nothing')
  t.equal(pool.depth(), 1)
})

t.test('close drops ready keys and stops refills; later takes generate directly', async (t) => {
  const gen = manualGenerator()
  const pool = createKeyPool({ size: 2, generate: gen.generate })
  await settleAll(gen)
  const gen2 = manualGenerator()
  const waiterPool = createKeyPool({ size: 1, concurrency: 1, generate: gen2.generate })
  const waiting = waiterPool.take()
  const extra = waiterPool.take()
  pool.close()
  t.equal(pool.depth(), 0)
  const started = gen.started()
  await tick()
  t.equal(gen.started(), started, 'no refill after close')
  const direct = pool.take()
  t.equal(gen.started(), started + 1, 'take() after close generates its own key')
  gen.settle()
  t.ok((await direct).kid)

  t.equal(gen2.pending(), 1, 'one generation for two waiters at concurrency 1')
  waiterPool.close()
  t.equal(gen2.pending(), 3, 'close hands each waiter a generation of its own')
  await settleAll(gen2)
  t.ok((await waiting).kid, 'a request already waiting still gets a key')
  t.ok((await extra).kid)
  t.equal(waiterPool.depth(), 0)
})

t.test('deferFill: nothing is generated until start() or the first take()', async (t) => {
  const gen = manualGenerator()
  const pool = createKeyPool({ size: 2, concurrency: 2, generate: gen.generate, deferFill: true })
  t.teardown(pool.close)
  await tick()
  t.equal(gen.started(), 0, 'idle until started')
  pool.start()
  t.equal(gen.started(), 2, 'start() fills')
  pool.start()
  t.equal(gen.started(), 2, 'start() again is a no-op')
  await settleAll(gen)
  t.equal(pool.depth(), 2)

  const lazy = manualGenerator()
  const taken = createKeyPool({ size: 2, concurrency: 1, generate: lazy.generate, deferFill: true })
  t.teardown(taken.close)
  const key = taken.take()
  t.equal(lazy.started(), 1, 'a take() before start() generates for itself')
  await settleAll(lazy)
  t.ok((await key).kid)
  t.equal(taken.depth(), 2, 'and starts the pool too')
})

t.test('size 0: no pool, every take generates', async (t) => {
  const gen = manualGenerator()
  const depths: number[] = []
  const pool = createKeyPool({ size: 0, generate: gen.generate, metrics: { setPoolDepth: (_n, d) => depths.push(d) } })
  t.teardown(pool.close)
  t.equal(gen.started(), 0, 'nothing generated ahead')
  const a = pool.take()
  const b = pool.take()
  t.equal(gen.started(), 2)
  await settleAll(gen)
  t.not((await a).kid, (await b).kid)
  t.equal(pool.depth(), 0)
  t.same(depths, [0])
})

t.test('settings are checked; the default generator makes real RSA-2048 keys off the event loop', async (t) => {
  t.throws(() => createKeyPool({ size: -1 }), TypeError)
  t.throws(() => createKeyPool({ size: 1.5 }), TypeError)
  t.throws(() => createKeyPool({ concurrency: 0 }), TypeError)
  const pool = createKeyPool({ size: 1 })
  t.teardown(pool.close)
  const key = await pool.take()
  t.equal(key.privateKey.asymmetricKeyDetails?.modulusLength, 2048)
  t.match(key.jwks.toString(), /"kid":"[\w-]{43}"/)
})
