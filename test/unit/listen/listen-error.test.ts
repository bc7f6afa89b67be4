// A failed listen() becomes ERR_LISTEN_FAILED with a message that says what to change. The
// errnos are made up here (EACCES cannot be provoked as root); listen.test.ts, grpc/server.test.ts
// and cli/serve.test.ts provoke the real ones by occupying ports.
import t from 'tap'
import { ConfigInvalid, ListenFailed } from '../../../src/errors.ts'
import { listenFailed } from '../../../src/listen/listen-error.ts'

function sysError (code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`listen ${code}: something 127.0.0.1:8080`), { code, syscall: 'listen' })
}

const http = { host: '127.0.0.1', port: 8080, portSetting: 'Port / --port' }

t.test('messages name the address and the setting to change', async t => {
  const rows: Array<[string, Parameters<typeof listenFailed>[1], string]> = [
    ['EADDRINUSE', http, 'port 8080 on 127.0.0.1 is in use (EADDRINUSE): another skr or the reference sidecar? Stop it, or set Port / --port to a free port (0 picks one)'],
    ['EADDRINUSE', { host: '::1', port: 50000, portSetting: 'SKR_GRPC_PORT / --grpc-port', what: 'gRPC' },
      'gRPC port 50000 on [::1] is in use (EADDRINUSE): another skr or the reference sidecar? Stop it, or set SKR_GRPC_PORT / --grpc-port to a free port (0 picks one)'],
    ['EACCES', { ...http, port: 80 }, 'port 80 on 127.0.0.1 needs privileges (EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE, which skr\'s non-root image does not have; set Port / --port to 1024 or above'],
    ['EACCES', http, 'listening on 127.0.0.1:8080 is not permitted (EACCES): a security policy of this machine forbids it; set Port / --port to another port'],
    ['EADDRNOTAVAIL', { ...http, host: '10.9.8.7' }, '10.9.8.7 is not an address of this machine (EADDRNOTAVAIL): set SKR_HOST / --host to one of its addresses, or leave it unset for localhost'],
    ['EMFILE', http, 'cannot listen on 127.0.0.1:8080 (EMFILE)'],
    ['EMFILE', { ...http, what: 'gRPC' }, 'cannot listen for gRPC on 127.0.0.1:8080 (EMFILE)'],
    ['EACCES', { socketSetting: 'SKR_UNIX_SOCKET' }, 'cannot create the Unix socket SKR_UNIX_SOCKET names (EACCES): its directory must exist and be writable by skr\'s user']
  ]
  for (const [code, target, message] of rows) {
    const cause = sysError(code)
    const err = listenFailed(cause, target)
    t.ok(err instanceof ListenFailed, `${code}: ListenFailed`)
    t.match(err, { code: 'ERR_LISTEN_FAILED', message, cause })
    t.same((err as ListenFailed).details, 'socketSetting' in target ? { errno: code } : { errno: code, host: target.host, port: target.port })
  }
})

t.test('anything but a system error passes through unchanged', async t => {
  const plain = new Error('no code')
  t.equal(listenFailed(plain, http), plain)
  const ours = new ConfigInvalid('SKR_UNIX_SOCKET is in use by another process')
  t.equal(listenFailed(ours, http), ours, 'a SidecarError (its code is a string too) is not rewrapped')
  t.equal(listenFailed('text', http), 'text')
})
