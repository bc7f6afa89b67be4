// The @azure/identity credential for skr's identity configuration. Kept apart from
// ./token-source.ts so that the SDK (the heaviest module skr loads) is imported on the first
// token request, not at start-up.
import tls from 'node:tls'
import { ManagedIdentityCredential, WorkloadIdentityCredential } from '@azure/identity'
import type { TokenCredential, TokenCredentialOptions } from '@azure/identity'
// A dependency of @azure/identity itself: the SDK's own HTTP client, wrapped to add per-attempt timeouts.
import { createDefaultHttpClient } from '@azure/core-rest-pipeline'
import type { HttpClient } from '@azure/core-rest-pipeline'
import { ConfigInvalid } from '../errors.ts'
import type { IdentityConfig } from './token-source.ts'

// The SDK ignores abortSignal on both identity paths (a hung IMDS or Entra never settles), so
// each HTTP attempt gets a timeout here; token-source.ts bounds the whole fetch.
function httpClientWithTimeout (attemptTimeoutMs: number): HttpClient {
  const inner = createDefaultHttpClient()
  return {
    sendRequest: async (request) => {
      if (request.timeout === 0 || request.timeout > attemptTimeoutMs) request.timeout = attemptTimeoutMs
      return await inner.sendRequest(request)
    }
  }
}

/**
 * Builds the SDK credential: workload identity when configured, else managed identity.
 * @param authorityHost already validated (https) by credentialPlan, or null
 */
export function sdkCredential (config: IdentityConfig, authorityHost: string | null, defaultAttemptTimeoutMs: number): TokenCredential {
  const extra = config.extraCa ?? []
  // `ca` replaces Node's roots, so the defaults (incl. NODE_EXTRA_CA_CERTS where Node exposes them) come first.
  const defaults = (tls as { getCACertificates?: (which: 'default') => string[] }).getCACertificates?.('default') ?? [...tls.rootCertificates]
  const common: TokenCredentialOptions = {
    httpClient: httpClientWithTimeout(config.attemptTimeoutMs ?? defaultAttemptTimeoutMs),
    retryOptions: { maxRetries: 2, retryDelayInMs: 500, maxRetryDelayInMs: 4000 },
    ...(extra.length > 0 ? { tlsOptions: { ca: [...defaults, ...extra] } } : {})
  }
  try {
    const wi = config.workload
    if (wi !== null) {
      return new WorkloadIdentityCredential({
        ...common,
        clientId: wi.clientId,
        tenantId: wi.tenantId,
        tokenFilePath: wi.tokenFile,
        // Instance discovery asks login.microsoftonline.com about the authority, which a
        // sovereign cloud or a local double cannot answer (EXP: endpoints_resolution_error).
        ...(authorityHost === null ? {} : { authorityHost, disableInstanceDiscovery: true })
      })
    }
    const clientId = config.managedIdentityClientId
    return new ManagedIdentityCredential({ ...common, ...(clientId === null ? {} : { clientId }) })
  } catch (err) {
    // Construction fails only on configuration: a bad tenant id, or a non-https AZURE_AUTHORITY_HOST in the environment.
    const message = err instanceof Error ? err.message : 'unknown'
    // eslint-disable-next-line no-control-regex -- stripping control characters is the point
    throw new ConfigInvalid(`identity configuration invalid: ${message.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, 200)}`, { cause: err })
  }
}
