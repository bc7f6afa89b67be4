// What a failed listen() means for the person starting skr. Node's own text ("listen
// EADDRINUSE: address already in use 127.0.0.1:8080") says what happened but not what to do;
// the usual causes are a second sidecar (skr, or the reference beside it) on the same port, a
// port below 1024 in the non-root image, and a --host that is not this machine's. Shared by the
// HTTP listeners and the gRPC port, so both say it the same way.
import { isSidecarError, ListenFailed } from '../errors.ts'

/** Where skr tried to listen, and the setting a person changes to move it. */
export type ListenTarget =
  | {
    readonly host: string
    readonly port: number
    /** How the port is set, e.g. `Port / --port` or `SKR_GRPC_PORT / --grpc-port`. */
    readonly portSetting: string
    /** Which listener, for the message (`gRPC`); omitted for the HTTP API. */
    readonly what?: string
    /** How the host is set; default `SKR_HOST / --host` (the API's and gRPC's). */
    readonly hostSetting?: string
  }
  | { readonly socketSetting: string }

function errnoOf (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

function describe (errno: string, target: ListenTarget): string {
  if ('socketSetting' in target) {
    // The path is the operator's, but named by its setting as the other socket messages do.
    return `cannot create the Unix socket ${target.socketSetting} names (${errno}): its directory must exist and be writable by skr's user`
  }
  const { host, port, portSetting } = target
  const what = target.what === undefined ? '' : `${target.what} `
  const at = host.includes(':') ? `[${host}]` : host
  switch (errno) {
    case 'EADDRINUSE':
      return `${what}port ${port} on ${at} is in use (EADDRINUSE): another skr or the reference sidecar? Stop it, or set ${portSetting} to a free port (0 picks one)`
    case 'EACCES':
      return port > 0 && port < 1024
        ? `${what}port ${port} on ${at} needs privileges (EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE, which skr's non-root image does not have; set ${portSetting} to 1024 or above`
        : `${what}listening on ${at}:${port} is not permitted (EACCES): a security policy of this machine forbids it; set ${portSetting} to another port`
    case 'EADDRNOTAVAIL':
      return target.hostSetting === undefined
        ? `${at} is not an address of this machine (EADDRNOTAVAIL): set SKR_HOST / --host to one of its addresses, or leave it unset for localhost`
        : `${at} is not an address of this machine (EADDRNOTAVAIL): set ${target.hostSetting} to one of its addresses, or leave it unset`
    default:
      return `cannot listen ${what === '' ? '' : `for ${target.what} `}on ${at}:${port} (${errno})`
  }
}

/**
 * The error to throw for a listen() that failed: ListenFailed with a message that names the
 * setting to change (details: errno, and host and port for TCP). Anything that is not a system
 * error (no string `code`, or already one of skr's) is returned unchanged.
 */
export function listenFailed (err: unknown, target: ListenTarget): unknown {
  const errno = errnoOf(err)
  if (errno === undefined || isSidecarError(err)) return err
  const details = 'socketSetting' in target ? { errno } : { errno, host: target.host, port: target.port }
  return new ListenFailed(describe(errno, target), { cause: err, details })
}
