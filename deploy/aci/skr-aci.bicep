// skr (secure key release sidecar) beside an app container in a confidential ACI container
// group: the Bicep twin of skr-aci.json. Generate the policy from the compiled template
// (`az bicep build -f skr-aci.bicep` then `az confcom acipolicygen -a skr-aci.json`) and pass
// the result as ccePolicy. Walk-through: deploy/README.md.

@description('Name of the container group.')
param containerGroupName string = 'skr-app'

@description('A region with confidential container groups.')
param location string = resourceGroup().location

@description('The skr image, e.g. myregistry.azurecr.io/skr:1.0 (the -root variant if /dev/sev-guest is root-only).')
param skrImage string

@description('Your application image; it calls skr at http://localhost:8080.')
param appImage string

@description('Resource id of the user-assigned managed identity holding the Key Vault Crypto Service Release User role.')
param userAssignedIdentityId string

@description('The reference SkrSideCarArgs (base64 JSON). Default: VCEK chain from the local THIM endpoint.')
param skrSideCarArgs string = 'eyJjZXJ0Y2FjaGUiOnsiZW5kcG9pbnRfdHlwZSI6IkxvY2FsVEhJTSIsImVuZHBvaW50IjoiMTY5LjI1NC4xNjkuMjU0L21ldGFkYXRhL1RISU0vYW1kL2NlcnRpZmljYXRpb24ifX0='

@description('MAA host name without https://; must match the release policy authority.')
param maaEndpoint string

@description('Vault host name, e.g. myvault.vault.azure.net or myhsm.managedhsm.azure.net.')
param akvEndpoint string

@description('Name of the exportable key with a release policy.')
param keyName string

@description('Base64 CCE policy from az confcom acipolicygen (its SHA-256 is the key release policy hostdata).')
param ccePolicy string

var healthcheck = [
  '/nodejs/bin/node'
  '/app/bin/skr.js'
  'healthcheck'
]

resource containerGroup 'Microsoft.ContainerInstance/containerGroups@2023-05-01' = {
  name: containerGroupName
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${userAssignedIdentityId}': {}
    }
  }
  properties: {
    sku: 'Confidential'
    osType: 'Linux'
    restartPolicy: 'Always'
    confidentialComputeProperties: {
      ccePolicy: ccePolicy
    }
    containers: [
      {
        name: 'skr'
        properties: {
          image: skrImage
          environmentVariables: [
            {
              name: 'SkrSideCarArgs'
              value: skrSideCarArgs
            }
            {
              name: 'Port'
              value: '8080'
            }
            {
              name: 'LogLevel'
              value: 'info'
            }
          ]
          // Exec probes: skr listens on loopback, which ACI's httpGet probes cannot reach.
          readinessProbe: {
            exec: {
              command: healthcheck
            }
            initialDelaySeconds: 1
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          }
          livenessProbe: {
            exec: {
              command: healthcheck
            }
            initialDelaySeconds: 10
            periodSeconds: 20
            timeoutSeconds: 3
            failureThreshold: 3
          }
          resources: {
            requests: {
              cpu: json('0.5')
              memoryInGB: json('0.5')
            }
          }
          // no_new_privileges in the policy acipolicygen writes (deploy/README.md, "Pod Security").
          securityContext: {
            allowPrivilegeEscalation: false
          }
        }
      }
      {
        name: 'app'
        properties: {
          image: appImage
          environmentVariables: [
            {
              name: 'SKR_URL'
              value: 'http://localhost:8080'
            }
            {
              name: 'MAA_ENDPOINT'
              value: maaEndpoint
            }
            {
              name: 'AKV_ENDPOINT'
              value: akvEndpoint
            }
            {
              name: 'KEY_NAME'
              value: keyName
            }
          ]
          resources: {
            requests: {
              cpu: 1
              memoryInGB: json('1.5')
            }
          }
          securityContext: {
            allowPrivilegeEscalation: false
          }
        }
      }
    ]
  }
}

output containerGroupId string = containerGroup.id
