import t from 'tap'
import { X509Certificate, createPrivateKey } from 'node:crypto'
import https from 'node:https'
import tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import { createLocalPki } from '../../../src/emulator/pki.ts'

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1'

t.test('CA and leaf have the promised shape', async (t) => {
  const now = new Date('2030-06-15T12:00:00Z')
  const pki = await createLocalPki({ commonName: 'unit CA', now })
  const ca = new X509Certificate(pki.caCertPem)
  t.equal(ca.ca, true, 'CA:TRUE')
  t.equal(ca.subject, 'CN=unit CA')
  t.equal(ca.issuer, ca.subject, 'self-signed')
  t.equal(ca.verify(ca.publicKey), true)
  t.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1')
  t.equal(new Date(ca.validFrom).toISOString(), '2030-06-14T12:00:00.000Z', 'valid from a day back')
  t.equal(new Date(ca.validTo).toISOString(), '2031-06-14T12:00:00.000Z', 'for a year')

  const { certPem, keyPem } = await pki.issue(['localhost', '127.0.0.1', 'vault.test'])
  const leaf = new X509Certificate(certPem)
  t.equal(leaf.ca, false)
  t.equal(leaf.verify(ca.publicKey), true, 'signed by the CA')
  t.equal(leaf.checkIssued(ca), true)
  t.equal(leaf.checkHost('localhost'), 'localhost')
  t.equal(leaf.checkHost('vault.test'), 'vault.test')
  t.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1')
  t.equal(leaf.checkHost('other.test'), undefined, 'no SAN beyond those asked for')
  t.same(leaf.keyUsage, [SERVER_AUTH], 'serverAuth EKU')
  t.equal(leaf.checkPrivateKey(createPrivateKey(keyPem)), true, 'key matches the leaf')
  t.equal(new Date(leaf.validFrom).toISOString(), '2030-06-14T12:00:00.000Z')
  const again = new X509Certificate((await pki.issue(['localhost'])).certPem)
  t.not(again.serialNumber, leaf.serialNumber, 'fresh serial per leaf')
  t.equal(again.serialNumber.length, 32, '128-bit serial')
})

t.test('issue() refuses an empty host list', async (t) => {
  const pki = await createLocalPki()
  await t.rejects(pki.issue([]), TypeError)
  await t.rejects(pki.issue(['']), TypeError)
})

t.test('a real TLS handshake trusts the CA, and only that CA', async (t) => {
  const pki = await createLocalPki()
  const other = await createLocalPki()
  const { certPem, keyPem } = await pki.issue(['localhost', '127.0.0.1'])
  const server = https.createServer({ cert: certPem, key: keyPem }, (_req, res) => { res.end('ok') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const { port } = server.address() as AddressInfo

  const handshake = async (ca: string, servername: string): Promise<string> => await new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername }, () => {
      socket.end()
      resolve('authorized')
    })
    socket.on('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? 'error') })
  })
  t.equal(await handshake(pki.caCertPem, 'localhost'), 'authorized')
  t.equal(await handshake(other.caCertPem, 'localhost'), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
  t.equal(await handshake(pki.caCertPem, 'vault.test'), 'ERR_TLS_CERT_ALTNAME_INVALID')
})
