// The trust boundary between a caller and skr's upstreams, for every transport (HTTP, gRPC):
// before a request does any work (no wrapping key, no report, no MAA call, no token request), the
// hosts it names must be allowed by SKR_ALLOWED_HOSTS (http/allowed-hosts.ts) and its destination
// must have a free admission slot (./destination-admission.ts). The composition root (sidecar.ts)
// wraps the services with this once, so the transports cannot forget it.
//
// Why the check sits here and not in the upstream clients: a refused release must cost nothing,
// and a release's first upstream call (MAA) happens long before its vault is contacted; checking
// both of its hosts at the door refuses it before either.
import { EndpointNotAllowed } from '../errors.ts'
import { DEFAULT_ALLOWED_DESCRIPTION, isEndpointAllowed, type AllowedHosts, type EndpointRole } from '../http/allowed-hosts.ts'
import { parseHostAndPort } from '../http/host-name.ts'
import type { DestinationAdmission } from './destination-admission.ts'

export type { EndpointRole } from '../http/allowed-hosts.ts'
import type { AttestationService, KeyReleaseService } from './types.ts'

/** What the guard enforces. */
export interface EgressGuardOptions {
  allowedHosts: AllowedHosts
  /** Per-destination admission; none when absent. */
  admission?: DestinationAdmission
}

/**
 * Throws EndpointNotAllowed unless `endpoint` (canonical host[:port]) is allowed.
 * The message names the host and the setting, never anything else the caller sent.
 */
export function checkEndpoint (allowedHosts: AllowedHosts, endpoint: string, role: EndpointRole): void {
  if (isEndpointAllowed(allowedHosts, endpoint, role)) return
  const why = allowedHosts.source === 'default'
    ? `SKR_ALLOWED_HOSTS is not set, so only ${DEFAULT_ALLOWED_DESCRIPTION} are allowed (on port 443, each as its own kind of endpoint)`
    : 'it is not listed in SKR_ALLOWED_HOSTS'
  throw new EndpointNotAllowed(`${role} host ${JSON.stringify(endpoint)} is not allowed: ${why}`, { details: { role } })
}

/**
 * The admission key of an endpoint: its host without the port, so that one host's ports (where
 * an operator's entry allows any) share one share of the capacity.
 */
function destinationOf (endpoint: string): string {
  try {
    return parseHostAndPort(endpoint).host.host
  } catch {
    return endpoint
  }
}

async function admitted<T> (admission: DestinationAdmission | undefined, endpoint: string, work: () => Promise<T>): Promise<T> {
  if (admission === undefined) return await work()
  const leave = admission.enter(destinationOf(endpoint))
  try {
    return await work()
  } finally {
    leave()
  }
}

/** `service` with maaToken checked and admitted by its MAA host; its other members unchanged. */
export function guardAttestation<S extends AttestationService> (service: S, options: EgressGuardOptions): S {
  const maaToken: AttestationService['maaToken'] = async (maaEndpoint, runtimeData, signal) => {
    checkEndpoint(options.allowedHosts, maaEndpoint, 'maa_endpoint')
    return await admitted(options.admission, maaEndpoint, async () => await service.maaToken(maaEndpoint, runtimeData, signal))
  }
  // Other members (close(), status(), ...) are reached through the prototype chain.
  return Object.assign(Object.create(service) as S, { maaToken })
}

/** `service` with every release checked (both hosts) and admitted by its vault host. */
export function guardKeyRelease<S extends KeyReleaseService> (service: S, options: EgressGuardOptions): S {
  const check = (request: { maaEndpoint: string, akvEndpoint: string }): void => {
    checkEndpoint(options.allowedHosts, request.akvEndpoint, 'akv_endpoint')
    checkEndpoint(options.allowedHosts, request.maaEndpoint, 'maa_endpoint')
  }
  const members: Pick<KeyReleaseService, 'release' | 'releaseMany'> = {
    release: async (request, signal) => {
      check(request)
      return await admitted(options.admission, request.akvEndpoint, async () => await service.release(request, signal))
    }
  }
  const releaseMany = service.releaseMany
  if (typeof releaseMany === 'function') {
    members.releaseMany = async (request, signal) => {
      check(request)
      return await admitted(options.admission, request.akvEndpoint, async () => await releaseMany.call(service, request, signal))
    }
  }
  return Object.assign(Object.create(service) as S, members)
}
