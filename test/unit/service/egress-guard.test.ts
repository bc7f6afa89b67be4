import t from 'tap'
import { parseAllowedHosts } from '../../../src/http/allowed-hosts.ts'
import { createDestinationAdmission } from '../../../src/service/destination-admission.ts'
import { checkEndpoint, guardAttestation, guardKeyRelease } from '../../../src/service/egress-guard.ts'
import type { AttestationService, KeyReleaseBatchRequest, KeyReleaseRequest, KeyReleaseService } from '../../../src/service/types.ts'

const allowedHosts = parseAllowedHosts('maa.example, vault.example, other-vault.example')

function recordingKeyRelease (): KeyReleaseService & { calls: string[], gate: { open: () => void } } {
  const calls: string[] = []
  let open = (): void => {}
  let opened = new Promise<void>(resolve => { open = resolve })
  return {
    calls,
    gate: { open: () => { open(); opened = Promise.resolve() } },
    release: async (request: KeyReleaseRequest) => {
      calls.push(`release ${request.akvEndpoint}`)
      if (request.kid === 'hang') await opened
      return { kty: 'oct' }
    },
    releaseMany: async (request: KeyReleaseBatchRequest) => {
      calls.push(`releaseMany ${request.akvEndpoint}`)
      return { keys: {}, errors: {} }
    }
  }
}

t.test('checkEndpoint names the host, the role and the setting', async t => {
  t.doesNotThrow(() => { checkEndpoint(allowedHosts, 'vault.example', 'akv_endpoint') })
  t.throws(() => { checkEndpoint(allowedHosts, 'evil.example:8443', 'akv_endpoint') }, {
    name: 'EndpointNotAllowed',
    code: 'ERR_ENDPOINT_NOT_ALLOWED',
    statusCode: 403,
    message: 'akv_endpoint host "evil.example:8443" is not allowed: it is not listed in SKR_ALLOWED_HOSTS',
    details: { role: 'akv_endpoint' }
  })
  t.throws(() => { checkEndpoint(parseAllowedHosts(null), '127.0.0.1:1', 'maa_endpoint') }, {
    message: /^maa_endpoint host "127\.0\.0\.1:1" is not allowed: SKR_ALLOWED_HOSTS is not set, so only Azure Key Vault, Managed HSM and Azure Attestation hosts/
  })
})

t.test('a release naming a refused host never reaches the service, whichever host it is and whatever token it carries', async t => {
  const inner = recordingKeyRelease()
  const guarded = guardKeyRelease(inner, { allowedHosts })
  const cases: KeyReleaseRequest[] = [
    { maaEndpoint: 'maa.example', akvEndpoint: 'evil.example', kid: 'k' },
    { maaEndpoint: 'evil.example', akvEndpoint: 'vault.example', kid: 'k' },
    { maaEndpoint: 'maa.example', akvEndpoint: 'evil.example', kid: 'k', accessToken: 'caller-token' }
  ]
  for (const request of cases) {
    await t.rejects(guarded.release(request), { code: 'ERR_ENDPOINT_NOT_ALLOWED' })
  }
  const releaseMany = guarded.releaseMany
  if (releaseMany === undefined) throw new Error('the guard dropped releaseMany')
  await t.rejects(releaseMany({ maaEndpoint: 'maa.example', akvEndpoint: 'evil.example', kids: ['a', 'b'] }), { code: 'ERR_ENDPOINT_NOT_ALLOWED' })
  t.same(inner.calls, [])
  await guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'vault.example', kid: 'k' })
  await guarded.releaseMany?.({ maaEndpoint: 'maa.example', akvEndpoint: 'vault.example', kids: ['a'] })
  t.same(inner.calls, ['release vault.example', 'releaseMany vault.example'])
})

t.test('an MAA attestation naming a refused host never reaches the service', async t => {
  const calls: string[] = []
  const inner: AttestationService & { close: () => string } = {
    rawReport: async () => Buffer.alloc(1184),
    combined: async () => { throw new Error('unused') },
    maaToken: async (maa) => { calls.push(maa); return 'token' },
    status: async () => ({ backend: null, simulated: false, problems: [] }),
    close: () => 'closed'
  }
  const guarded = guardAttestation(inner, { allowedHosts })
  await t.rejects(guarded.maaToken('evil.example', Buffer.from('x')), { code: 'ERR_ENDPOINT_NOT_ALLOWED', details: { role: 'maa_endpoint' } })
  t.equal(await guarded.maaToken('maa.example', Buffer.from('x')), 'token')
  t.same(calls, ['maa.example'])
  t.equal(guarded.close(), 'closed', 'other members pass through')
  t.equal((await guarded.rawReport(Buffer.from('x'))).length, 1184)
})

t.test('admission: a destination at its limit is refused, others are admitted, slots come back', async t => {
  let shed = 0
  const admission = createDestinationAdmission({ limit: 2, onShed: () => { shed++ } })
  const inner = recordingKeyRelease()
  const guarded = guardKeyRelease(inner, { allowedHosts, admission })
  const hung = [1, 2].map(async () => await guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'vault.example', kid: 'hang' }))
  await new Promise(resolve => setImmediate(resolve))
  t.equal(admission.inFlight('vault.example'), 2)
  await t.rejects(guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'vault.example', kid: 'hang' }), {
    code: 'ERR_OVERLOADED',
    statusCode: 503,
    details: { reason: 'destination', limit: 2, retryAfterSeconds: 1 }
  })
  t.equal(shed, 1)
  t.same(await guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'other-vault.example', kid: 'k' }), { kty: 'oct' }, 'another vault is admitted')
  inner.gate.open()
  await Promise.all(hung)
  t.equal(admission.inFlight('vault.example'), 0)
  t.equal(admission.destinations, 0, 'no entry is kept for an idle destination')
  await guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'vault.example', kid: 'k' })
})

t.test('admission: a failing release gives its slot back; a refused host takes none', async t => {
  const admission = createDestinationAdmission({ limit: 1 })
  const failing: KeyReleaseService = { release: async () => { throw new Error('boom') } }
  const guarded = guardKeyRelease(failing, { allowedHosts, admission })
  await t.rejects(guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'vault.example', kid: 'k' }), /boom/)
  await t.rejects(guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'vault.example', kid: 'k' }), /boom/, 'the slot came back')
  await t.rejects(guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'evil.example', kid: 'k' }), { code: 'ERR_ENDPOINT_NOT_ALLOWED' })
  t.equal(admission.destinations, 0)
  t.equal(guarded.releaseMany, undefined, 'no batch member is invented')
})

t.test('a leave function is idempotent and limits are checked', async t => {
  const admission = createDestinationAdmission({ limit: 1 })
  const leave = admission.enter('a')
  leave()
  leave()
  t.equal(admission.inFlight('a'), 0)
  const again = admission.enter('a')
  t.throws(() => admission.enter('a'), { code: 'ERR_OVERLOADED' })
  again()
  t.throws(() => createDestinationAdmission({ limit: 0 }), TypeError)
  t.throws(() => createDestinationAdmission({ limit: 1.5 }), TypeError)
})

t.test('admission: one host\'s ports share its share; the total cap covers every destination and transport', async t => {
  const sheds: string[] = []
  const admission = createDestinationAdmission({ limit: 2, totalLimit: 3, onShed: (reason) => { sheds.push(reason) } })
  const anyPort = parseAllowedHosts('maa.example, vault.example, other-vault.example, third.example')
  const inner = recordingKeyRelease()
  const guarded = guardKeyRelease(inner, { allowedHosts: anyPort, admission })
  const hung = [':1', ':2'].map(async (port) => await guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: `vault.example${port}`, kid: 'hang' }))
  await new Promise(resolve => setImmediate(resolve))
  await t.rejects(guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'vault.example:3', kid: 'hang' }), { code: 'ERR_OVERLOADED', details: { reason: 'destination' } },
    'a third port of the same host is the same destination')
  const third = guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'other-vault.example', kid: 'hang' })
  await new Promise(resolve => setImmediate(resolve))
  t.equal(admission.total, 3)
  await t.rejects(guarded.release({ maaEndpoint: 'maa.example', akvEndpoint: 'third.example', kid: 'k' }), { code: 'ERR_OVERLOADED', details: { reason: 'in_flight', limit: 3 } })
  t.same(sheds, ['destination', 'in_flight'])
  inner.gate.open()
  await Promise.all([...hung, third])
  t.equal(admission.total, 0)
  t.throws(() => createDestinationAdmission({ limit: 1, totalLimit: 0 }), TypeError)
})
