// The @azure/identity credential for skr's identity configuration. Kept apart from
// ./token-source.ts so that the SDK (the heaviest module skr loads) is imported on the first
// token request, not at start-up. Its HTTP goes through skr's own Upstream (./sdk-http-client.ts):
// skr's proxy rules, extra CA roots, per-attempt timeouts and upstream metrics; the SDK ignores
// abortSignal on both identity paths (a hung IMDS or Entra never settles), so that per-attempt
// timeout is what ends a hung attempt, and token-source.ts bounds the whole fetch.
import { ManagedIdentityCredential, WorkloadIdentityCredential } from '@azure/identity'
import type { TokenCredential, TokenCredentialOptions } from '@azure/identity'
import { ConfigInvalid } from '../errors.ts'
import type { UpstreamOptions } from '../http/upstream.ts'
import { oneLine } from '../text/untrusted.ts'
import { createSdkHttpClient } from './sdk-http-client.ts'
import type { IdentityConfig } from './identity-config.ts'

/**
 * Builds the SDK credential: workload identity when configured, else managed identity.
 * @param authorityHost already validated (https) by credentialPlan, or null
 * @param metrics records each token request under 'imds' or 'entra'
 */
export function sdkCredential (
  config: IdentityConfig,
  authorityHost: string | null,
  defaultAttemptTimeoutMs: number,
  metrics?: UpstreamOptions['metrics']
): TokenCredential {
  const common: TokenCredentialOptions = {
    // One Upstream per service for this credential's lifetime; the SDK's own proxy and TLS
    // options would only set an Agent on the request, which this client does not use.
    httpClient: createSdkHttpClient({
      attemptTimeoutMs: config.attemptTimeoutMs ?? defaultAttemptTimeoutMs,
      ...(config.extraCa === undefined ? {} : { ca: config.extraCa }),
      ...(config.proxy === undefined ? {} : { proxy: config.proxy }),
      ...(metrics === undefined ? {} : { metrics }),
      ...(config.upstream === undefined ? {} : { upstream: config.upstream })
    }),
    retryOptions: { maxRetries: 2, retryDelayInMs: 500, maxRetryDelayInMs: 4000 }
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
    throw new ConfigInvalid(`identity configuration invalid: ${oneLine(message, { max: 200, ellipsis: false })}`, { cause: err })
  }
}
